"""Exact and permutation p-values of group mAPs against brute-force enumeration; hierarchical FDR against
a loop over statsmodels' BH (the library copairs uses), on the LINCS plate's compound × dose groups."""

import itertools

import lcd_metrics as lm
import numpy as np
import pandas as pd
import pytest
from lcd_metrics import pvalues


def all_aps(k, total):
    return [
        np.mean([(j + 1) / (r + 1) for j, r in enumerate(c)]) for c in itertools.combinations(range(total), k)
    ]


def brute_p(members, observed):
    """P(mean >= observed): members = [(k, total), ...]; members sharing a configuration share a ranking."""
    confs = sorted(set(members))
    counts = [members.count(c) for c in confs]
    hits = n = 0
    for combo in itertools.product(*[all_aps(k, t) for k, t in confs]):
        value = sum(c * a for c, a in zip(counts, combo, strict=True)) / len(members)
        hits += value >= observed - 1e-10
        n += 1
    return hits / n


def ap_table(groups):
    """An AP table (copairs call style) from {group: [(k, total, ap), ...]}."""
    rows = [(g, ap, k, t) for g, members in groups.items() for k, t, ap in members]
    df = pd.DataFrame(rows, columns=["g", "average_precision", "n_pos_pairs", "n_total_pairs"])
    df["normalized_average_precision"] = 0.0
    return df


def test_exact_p_values_equal_enumeration():
    groups = {
        "single": [(2, 10, 0.7), (2, 10, 0.5)],  # one configuration: the null is one shared ranking
        "mixed": [(1, 5, 1.0), (1, 5, 0.5), (2, 6, 0.8333333333333333)],
        "perfect": [(1, 5, 1.0)],  # AP 1 of 1 among 5: p = 1/5, not 1/(null_size + 1)
        "worst": [(3, 7, all_aps(3, 7)[-1])],
    }
    m = lm.mean_average_precision(ap_table(groups), "g", null_size=1000, seed=0).set_index("g")
    for g, members in groups.items():
        assert m.loc[g, "p_method"] == "exact"
        observed = np.mean([ap for _, _, ap in members])
        expected = brute_p([(k, t) for k, t, _ in members], observed)
        assert m.loc[g, "p_value"] == pytest.approx(expected, abs=1e-12), g
    assert m.loc["perfect", "p_value"] == pytest.approx(0.2)
    assert m.loc["worst", "p_value"] == pytest.approx(1.0)


def test_permutation_p_value_estimates_the_exact_one():
    """C(16, 4) = 1820 rankings: exact with null_size 2000, permutation with 1000; they agree."""
    aps = all_aps(4, 16)
    observed = float(np.quantile(aps, 0.9))
    groups = {"g": [(4, 16, observed)]}
    exact = lm.mean_average_precision(ap_table(groups), "g", null_size=2000).iloc[0]
    perm = lm.mean_average_precision(ap_table(groups), "g", null_size=1000, seed=3).iloc[0]
    assert exact["p_method"] == "exact" and perm["p_method"] == "permutation"
    truth = brute_p([(4, 16)], observed)
    assert exact["p_value"] == pytest.approx(truth, abs=1e-12)
    se = np.sqrt(truth * (1 - truth) / 1000)
    assert abs(perm["p_value"] - truth) < 5 * se + 2 / 1001


def test_exact_convolution_falls_back_when_too_large():
    configs = np.array([[3, 30], [2, 40]])
    assert pvalues.exact_group_null(configs, np.array([1, 1]), {}, cap=10_000) is None  # C(30, 3) > cap
    values, probs = pvalues.exact_group_null(np.array([[1, 4], [1, 3]]), np.array([1, 1]), {}, cap=100)
    assert probs.sum() == pytest.approx(1.0)
    expected = sorted({round((a + b) / 2, 12) for a in (1, 1 / 2, 1 / 3, 1 / 4) for b in (1, 1 / 2, 1 / 3)})
    np.testing.assert_allclose(values, expected)


def naive_hierarchical(table, family, threshold):
    """copairs' two-stage procedure written as a loop over statsmodels' BH (an independent library)."""
    from statsmodels.stats.multitest import multipletests

    stage1 = table.groupby(family)["p_value"].min()
    reject, q1, _, _ = multipletests(stage1.to_numpy(), method="fdr_bh", alpha=threshold)
    out = {}
    for (fam, p1), q, ok in zip(stage1.items(), q1, reject, strict=True):
        rows = table[table[family] == fam]
        if not ok:
            corrected = np.ones(len(rows))
        elif len(rows) == 1:
            corrected = rows["p_value"].to_numpy()
        else:
            corrected = multipletests(rows["p_value"].to_numpy(), method="fdr_bh")[1]
        for idx, c in zip(rows.index, corrected, strict=True):
            out[idx] = (p1, q, ok, c)
    return out


def test_hierarchical_fdr_on_lincs_doses_equals_naive_loop(lincs):
    """copairs PR #116's example: mAP per compound × dose, FDR at the compound level."""
    df = lincs.copy()
    ap = lm.average_precision(
        df,
        pos_sameby=["Metadata_broad_sample"],
        neg_diffby=["Metadata_broad_sample"],
        control="Metadata_broad_sample == 'DMSO'",
    )
    sameby = ["Metadata_broad_sample", "Metadata_mmoles_per_liter"]
    flat = lm.mean_average_precision(ap, sameby, null_size=2000, seed=1)
    hier = lm.mean_average_precision(
        ap, sameby, null_size=2000, seed=1, hierarchical_by="Metadata_broad_sample"
    )
    pd.testing.assert_series_equal(flat["p_value"], hier["p_value"])
    expected = naive_hierarchical(hier, "Metadata_broad_sample", 0.05)
    for idx, (p1, q1, ok, corrected) in expected.items():
        row = hier.loc[idx]
        assert row["stage1_p_value"] == pytest.approx(p1, abs=1e-15)
        assert row["stage1_corrected_p_value"] == pytest.approx(q1, abs=1e-12)
        assert bool(row["stage1_significant"]) == bool(ok)
        assert row["corrected_p_value"] == pytest.approx(corrected, abs=1e-12)
    assert (hier["below_corrected_p"] == (hier["corrected_p_value"] < 0.05)).all()
    assert 0 < hier["stage1_significant"].sum() < len(hier)
