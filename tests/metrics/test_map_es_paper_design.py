"""map_es on a layout like the LCD paper's, against a loop oracle of the draw rule written here.

Layout: two replicas at 10 µM (two plates of two randomization layouts each), one replica at three low
doses (0.156, 0.625, 2.5 µM) on plates of two layouts, 32 DMSO wells per plate. The oracle is plain
Python: for the compounds it enumerates every (query, positive subset, negative subset) the rule allows
and checks that each drawn AP is one of those lists' AP and that the mean over draws is the exact mean;
for the nulls it draws with Python's own `random` module and compares means.
"""

import itertools
import random
import tracemalloc

import lcd_metrics as lm
import numpy as np
import pandas as pd
import pytest

N_CTRL = 32


def frame(obs, X):
    return pd.concat(
        [obs, pd.DataFrame(X, index=obs.index, columns=[f"f{i}" for i in range(X.shape[1])])], axis=1
    )


# ------------------------------------------------------------------------------------------ the oracle


def cosine(a, b):
    return float(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b)))


def naive_ap(pos, neg):
    """Decreasing similarity, positives ahead of negatives on ties; mean precision at each positive."""
    items = sorted([(s, 0) for s in pos] + [(s, 1) for s in neg], key=lambda t: (-t[0], t[1]))
    hits, total = 0, 0.0
    for rank, (_, is_neg) in enumerate(items, start=1):
        if not is_neg:
            hits += 1
            total += hits / rank
    return total / len(pos)


def rule_of(obs, wells):
    if obs["replica"].iloc[wells].nunique() > 1:
        return "other_replica"
    return "other_plate" if obs["plate"].iloc[wells].nunique() > 1 else ""


def positives_of(obs, wells, q, rule):
    col = obs["replica" if rule == "other_replica" else "plate"].to_numpy()
    return [w for w in wells if col[w] != col[q]]


def controls_of_plate(obs, plate):
    return [i for i in range(len(obs)) if obs["compound"].iloc[i] == "DMSO" and obs["plate"].iloc[i] == plate]


def oracle_group(obs, X, compound, dose, n_pos, n_neg):
    """Every AP the rule can produce for this group, and the exact mean AP of a uniform draw."""
    wells = [
        i for i in range(len(obs)) if obs["compound"].iloc[i] == compound and obs["dose"].iloc[i] == dose
    ]
    rule = rule_of(obs, wells)
    values, per_query = set(), []
    for q in wells:
        pos_cands = positives_of(obs, wells, q, rule)
        neg_cands = controls_of_plate(obs, obs["plate"].iloc[q])
        aps = []
        for P in itertools.combinations(pos_cands, min(n_pos, len(pos_cands))):
            for N in itertools.combinations(neg_cands, min(n_neg, len(neg_cands))):
                ap = naive_ap([cosine(X[q], X[p]) for p in P], [cosine(X[q], X[n]) for n in N])
                aps.append(ap)
                values.add(round(ap, 10))
        per_query.append(np.mean(aps))
    return rule, values, float(np.mean(per_query))


def oracle_null_mean(obs, X, rule, replica, n_pos, n_neg, n_draws, seed):
    """Mean AP of control draws under `rule` (positives: other replicas / other plates of `replica`)."""
    rnd = random.Random(seed)
    ctrl = [i for i in range(len(obs)) if obs["compound"].iloc[i] == "DMSO"]
    if rule == "other_plate":
        ctrl = [i for i in ctrl if obs["replica"].iloc[i] == replica]
    plates = {p: controls_of_plate(obs, p) for p in obs["plate"].unique()}
    total = 0.0
    for _ in range(n_draws):
        q = rnd.choice(ctrl)
        pos_cands = positives_of(obs, ctrl, q, rule)
        neg_cands = [c for c in plates[obs["plate"].iloc[q]] if c != q]
        P = rnd.sample(pos_cands, min(n_pos, len(pos_cands)))
        N = rnd.sample(neg_cands, min(n_neg, len(neg_cands)))
        total += naive_ap([cosine(X[q], X[p]) for p in P], [cosine(X[q], X[n]) for n in N])
    return total / n_draws


# ------------------------------------------------------------------------------------------- the tests


@pytest.fixture(scope="module")
def paper(make_paper):
    obs, X = make_paper()
    res, samples = lm.map_es(frame(obs, X), features="^f", n_draws=3000, seed=3, return_samples=True)
    return obs, X, res, samples


def test_single_replica_low_doses_are_ok_with_pos_rule(paper):
    res = paper[2]
    assert len(res) == 3 * 4
    assert (res["status"] == "ok").all(), res.loc[res["status"] != "ok", "reason"].tolist()
    high = res["dose"] == 10.0
    assert (res.loc[high, "pos_rule"] == "other_replica").all()
    assert (res.loc[~high, "pos_rule"] == "other_plate").all()
    assert (res.loc[high, "n_replicas"] == 2).all() and (res.loc[~high, "n_replicas"] == 1).all()
    assert (res.loc[high, "pos_available"] == 4).all() and (res.loc[~high, "pos_available"] == 3).all()
    assert (res["neg_available"] == N_CTRL).all()
    # the effect is found at every dose, inert compounds are not called
    assert res.loc[res["compound"] == "cmp0", "active"].all()
    assert not res.loc[res["compound"] != "cmp0", "active"].any()


@pytest.mark.parametrize(
    ("compound", "dose"), [("cmp0", 10.0), ("cmp1", 10.0), ("cmp0", 0.625), ("cmp2", 2.5)]
)
def test_draws_follow_the_rule_exactly(paper, compound, dose):
    """Every drawn AP is the AP of a list the oracle's rule allows; the mean is the exact mean."""
    obs, X, res, samples = paper
    rule, values, exact_mean = oracle_group(obs, X, compound, dose, n_pos=3, n_neg=31)
    row = res[(res["compound"] == compound) & (res["dose"] == dose)].iloc[0]
    assert row["pos_rule"] == rule
    drawn = samples[
        (samples["kind"] == "compound") & (samples["compound"] == compound) & (samples["dose"] == dose)
    ]
    assert len(drawn) == 3000
    assert set(np.round(drawn["ap"].to_numpy(), 10)) <= values
    se = drawn["ap"].std() / np.sqrt(len(drawn))
    assert abs(row["map_mean"] - exact_mean) < 5 * se + 1e-12


def test_nulls_follow_the_rule(paper):
    """The 10 µM rows use the cross-replica null; the low-dose rows the null of replica R3's plates."""
    obs, X, res, samples = paper
    nulls = samples[samples["kind"] == "null"]
    labels = sorted(nulls["null"].unique())
    assert labels == ["timepoint='24h', other_plate, replica='R3'", "timepoint='24h', other_replica"]
    for label, rule, rep in ((labels[1], "other_replica", None), (labels[0], "other_plate", "R3")):
        ours = nulls.loc[nulls["null"] == label, "ap"]
        theirs = oracle_null_mean(obs, X, rule, rep, 3, 31, 4000, seed=11)
        se = ours.std() * np.sqrt(1 / len(ours) + 1 / 4000)
        assert abs(ours.mean() - theirs) < 5 * se
    # rows report the null they were compared with
    low = res["dose"] != 10.0
    r3 = nulls.loc[nulls["null"] == labels[0], "ap"]
    np.testing.assert_allclose(res.loc[low, "null_mean"], r3.mean())


def test_repeated_plate_names_are_refused_or_scoped_by_replica(make_paper):
    obs, X = make_paper(n_compounds=2)
    renamed = obs.assign(plate=obs["plate"].str.split("-").str[1])  # "A"/"B" in every replica
    with pytest.raises(lm.InputError) as exc:
        lm.map_es(frame(renamed, X), features="^f", n_draws=50)
    msg = str(exc.value)
    assert "\n" not in msg
    assert "plate 'A' appears in replicas 'R1', 'R2', 'R3'" in msg and "plate_scope='replica'" in msg
    scoped = lm.map_es(frame(renamed, X), features="^f", n_draws=200, plate_scope="replica")
    unique = lm.map_es(frame(obs, X), features="^f", n_draws=200)
    # replica + plate is the same plate identity as the unique names: identical results
    pd.testing.assert_frame_equal(scoped.drop(columns=[]), unique)
    with pytest.raises(lm.InputError, match="plate_scope must be one of 'screen', 'replica'"):
        lm.map_es(frame(obs, X), features="^f", plate_scope="plate")


def test_row_order_does_not_change_any_result(make_paper):
    obs, X = make_paper(n_compounds=2, seed=4)
    df = frame(obs, X)
    # exact duplicates (a control measured twice) must not make the order matter either
    df = pd.concat([df, df.iloc[[0, 1]].set_axis(["dup0", "dup1"])])
    a, sa = lm.map_es(df, features="^f", n_draws=400, seed=5, return_samples=True)
    for k in range(3):
        shuffled = df.sample(frac=1, random_state=k)
        b, sb = lm.map_es(shuffled, features="^f", n_draws=400, seed=5, return_samples=True)
        pd.testing.assert_frame_equal(a, b)
        pd.testing.assert_frame_equal(sa, sb)
    ad = pytest.importorskip("anndata")
    shuffled = df.sample(frac=1, random_state=9)
    c = lm.map_es(
        ad.AnnData(X=shuffled.filter(regex="^f").to_numpy(), obs=shuffled[obs.columns]), n_draws=400, seed=5
    )
    pd.testing.assert_frame_equal(a, c)


def test_a_group_does_not_depend_on_other_groups(make_paper):
    obs, X = make_paper(n_compounds=3, seed=6)
    df = frame(obs, X)
    full = lm.map_es(df, features="^f", n_draws=300, seed=2)
    without = lm.map_es(df[df["compound"] != "cmp1"], features="^f", n_draws=300, seed=2)
    keep = full["compound"] != "cmp1"
    pd.testing.assert_frame_equal(full[keep].reset_index(drop=True), without)


def test_memory_is_flat_in_the_number_of_draws(make_paper):
    obs, X = make_paper(n_compounds=1, d=8)
    df = frame(obs, X)
    peaks = []
    for n_draws in (5_000, 50_000):
        tracemalloc.start()
        lm.map_es(df, features="^f", n_draws=n_draws)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    # 10x the draws: the AP samples (8 bytes each) grow, the working arrays do not
    assert peaks[1] - peaks[0] < 8 * 50_000 * 20
    assert peaks[1] < 3 * peaks[0]


def test_design_report_before_draws(paper):
    obs, X, res, _ = paper
    rep = lm.map_es_design(frame(obs, X), features="^f")
    cols = [
        "compound",
        "timepoint",
        "dose",
        "status",
        "reason",
        "pos_rule",
        "n_wells",
        "n_replicas",
        "n_plates",
    ]
    pd.testing.assert_frame_equal(rep[cols], res[cols])
    assert (rep["pos_available"] == res["pos_available"]).all()
    summary = pd.DataFrame(rep.attrs["conditions"])
    assert summary["dose"].tolist() == [0.156, 0.625, 2.5, 10.0]
    assert summary["pos_rule"].tolist() == ["other_plate"] * 3 + ["other_replica"]
    assert (summary["ok"] == 3).all() and (summary["failed"] == 0).all()
    # the same table rides along with the activity table
    pd.testing.assert_frame_equal(
        pd.DataFrame(res.attrs["lcd_metrics"]["design"]), rep.set_axis(range(len(rep)))
    )


def test_design_report_in_uns(tmp_path, make_paper):
    ad = pytest.importorskip("anndata")
    from lcd_core import read_h5ad, write_h5ad

    obs, X = make_paper(n_compounds=2)
    adata = ad.AnnData(X=X, obs=obs)
    before = adata.copy()
    out = lm.map_es_design(adata, key_added="map_es_design", copy=True)
    assert "map_es_design" not in adata.uns  # the input is untouched with copy=True
    np.testing.assert_array_equal(adata.X, before.X)
    entry = out.uns["map_es_design"]
    assert entry["params"]["n_neg"] == 31 and entry["params"]["plate_scope"] == "screen"
    assert len(entry["groups"]) == 8 and set(entry["groups"]["pos_rule"]) == {"other_replica", "other_plate"}
    write_h5ad(out, tmp_path / "p.h5ad")
    back = read_h5ad(tmp_path / "p.h5ad")
    assert len(back.uns["map_es_design"]["conditions"]) == 4
    assert lm.map_es_design(adata, key_added="design") is None and "design" in adata.uns
    with pytest.raises(lm.InputError, match="stores the report in an AnnData"):
        lm.map_es_design(frame(obs, X), features="^f", key_added="x")
