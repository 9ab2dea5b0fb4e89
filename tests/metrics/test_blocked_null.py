"""The plate-blocked permutation null (``null="blocked"``) against a naive loop and exact enumeration;
the grouped-positives fast path against the block path it replaced."""

import itertools

import lcd_metrics as lm
import numpy as np
import pandas as pd
import pytest
from lcd_core import InputError
from lcd_metrics import pairs


def plates(n_plates=4, n_ctrl=6, n_comp=5, d=16, seed=0, shift=0.8):
    """Every compound once on every plate, `n_ctrl` DMSO wells per plate, a per-plate offset."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_plates):
        rows += [("DMSO", f"P{p}")] * n_ctrl + [(f"c{c}", f"P{p}") for c in range(n_comp)]
    obs = pd.DataFrame(rows, columns=["compound", "plate"])
    obs["well"] = [f"w{i}" for i in range(len(obs))]
    X = rng.normal(size=(len(obs), d)) + rng.normal(size=(n_plates, d))[obs["plate"].str[1:].astype(int)]
    comp = obs["compound"].str[1:].replace("MSO", "-1").astype(int).to_numpy()
    X[comp == 0] += shift * rng.normal(size=d)  # c0 has a phenotype
    return obs, X


RULES = dict(pos_sameby=["compound"], neg_diffby=["compound"], control="compound == 'DMSO'")


def ap_of_labels(sims, labels):
    """AP of one list: sort by similarity, positives first on ties; mean precision at the positives."""
    order = sorted(range(len(sims)), key=lambda e: (-sims[e], not labels[e]))
    hits, total = 0, 0.0
    for rank, e in enumerate(order, start=1):
        if labels[e]:
            hits += 1
            total += hits / rank
    return total / hits


def oracle_lists(obs, X):
    """Per query row: partner rows (positives ascending, then the controls ascending), sims, n_pos."""
    xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    ctrl = np.flatnonzero(obs["compound"].to_numpy() == "DMSO")
    out = {}
    for i in range(len(obs)):
        if obs["compound"].iloc[i] == "DMSO":
            continue
        pos = [j for j in range(len(obs)) if j != i and obs["compound"].iloc[j] == obs["compound"].iloc[i]]
        partners = pos + list(ctrl)
        out[i] = (partners, [float(np.dot(xn[i], xn[j])) for j in partners], len(pos))
    return out


def oracle_pvalues(obs, X, sameby, null_size, seed):
    """The documented definition written as plain loops, with the documented random stream."""
    lists = oracle_lists(obs, X)
    plate = obs["plate"].to_numpy()
    groups = {}
    for i in lists:
        groups.setdefault(tuple(obs.loc[obs.index[i], sameby]), []).append(i)
    p = {}
    for key, members in groups.items():
        observed = np.mean(
            [ap_of_labels(lists[i][1], [e < lists[i][2] for e in range(len(lists[i][0]))]) for i in members]
        )
        null = np.zeros(null_size)
        for i in members:
            partners, sims, k = lists[i]
            blocks = [plate[j] for j in partners]
            keys = np.random.default_rng([seed, i]).random((null_size, len(partners)))
            for r in range(null_size):
                labels = [False] * len(partners)
                for b in sorted(set(blocks[:k])):
                    idx = [e for e in range(len(partners)) if blocks[e] == b]
                    k_b = sum(1 for e in range(k) if blocks[e] == b)
                    for e in sorted(idx, key=lambda e: keys[r, e])[:k_b]:
                        labels[e] = True
                null[r] += ap_of_labels(sims, labels) / len(members)
        p[key] = (1 + np.sum(null >= observed - 1e-10)) / (null_size + 1)
    return p


def test_blocked_null_equals_a_naive_loop_of_its_definition():
    obs, X = plates()
    ours = lm.mean_average_precision(
        pd.concat([obs, pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])], axis=1),
        ["compound"],
        null="blocked",
        null_blocks="plate",
        null_size=300,
        seed=7,
        features="^f",
        **RULES,
    )
    expected = oracle_pvalues(obs, X, ["compound"], 300, 7)
    assert set(ours["p_method"]) == {"blocked permutation"}
    for _, row in ours.iterrows():
        assert row["p_value"] == pytest.approx(expected[(row["compound"],)], abs=1e-12), row["compound"]
    assert ours.set_index("compound").loc["c0", "p_value"] < 0.01  # the compound with a phenotype


def test_blocked_null_p_value_matches_exact_enumeration():
    """Per-query groups: p over every within-plate relabelling (7^3 = 343) versus 20,000 draws."""
    obs, X = plates(n_comp=3, seed=3)
    frame = pd.concat([obs, pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])], axis=1)
    null_size = 20000
    ours = lm.mean_average_precision(
        frame,
        ["well"],
        null="blocked",
        null_blocks="plate",
        null_size=null_size,
        seed=1,
        features="^f",
        **RULES,
    ).set_index("well")
    plate = obs["plate"].to_numpy()
    for i, (partners, sims, k) in list(oracle_lists(obs, X).items())[:6]:
        blocks = [plate[j] for j in partners]
        observed = ap_of_labels(sims, [e < k for e in range(len(partners))])
        per_block = []
        for b in sorted(set(blocks[:k])):
            idx = [e for e in range(len(partners)) if blocks[e] == b]
            per_block.append(list(itertools.combinations(idx, sum(1 for e in range(k) if blocks[e] == b))))
        hits = n = 0
        for combo in itertools.product(*per_block):
            chosen = {e for part in combo for e in part}
            hits += ap_of_labels(sims, [e in chosen for e in range(len(partners))]) >= observed - 1e-10
            n += 1
        exact = hits / n
        se = np.sqrt(exact * (1 - exact) / null_size) + 1 / null_size
        assert abs(ours.loc[obs["well"].iloc[i], "p_value"] - exact) < 5 * se


def test_blocked_null_refuses_what_it_cannot_do():
    obs, X = plates()
    frame = pd.concat([obs, pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])], axis=1)
    with pytest.raises(InputError, match="null_blocks"):
        lm.mean_average_precision(frame, ["compound"], null="blocked", features="^f", **RULES)
    with pytest.raises(InputError, match="null="):
        lm.mean_average_precision(frame, ["compound"], null="plates", features="^f", **RULES)
    ap = lm.average_precision(frame, features="^f", **RULES)
    with pytest.raises(InputError, match="AP table"):
        lm.mean_average_precision(ap, ["compound"], null="blocked", null_blocks="plate")
    with pytest.raises(InputError, match="nope"):
        lm.mean_average_precision(
            frame, ["compound"], null="blocked", null_blocks="nope", features="^f", **RULES
        )


@pytest.mark.parametrize("neg_sameby", [[], ["plate"]])
def test_grouped_positives_give_the_block_path_bits(monkeypatch, neg_sameby):
    """The grouped path (per pos_sameby group, batched einsum) against the block path it replaced."""
    obs, X = plates(n_plates=6, n_ctrl=10, n_comp=40, d=32, seed=5)
    obs["replicate_col"] = np.arange(len(obs)) % 3
    rules = dict(
        pos_sameby=["compound"], pos_diffby=["replicate_col"], neg_sameby=neg_sameby, neg_diffby=["compound"]
    )
    fast = lm.average_precision(obs, X, **rules)
    monkeypatch.setattr(pairs, "_grouped_positives", lambda *a, **k: None)
    slow = lm.average_precision(obs, X, **rules)
    for col in ("average_precision", "n_pos_pairs", "n_total_pairs", "status"):
        np.testing.assert_array_equal(fast[col].to_numpy(), slow[col].to_numpy())
