"""Per-profile AP and group mAP against copairs on the real LINCS plate and the cell-injury screen."""

import itertools
import warnings

import lcd_metrics as lm
import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

copairs_map = pytest.importorskip("copairs.map")
from copairs.matching import assign_reference_index  # noqa: E402


def copairs_ap(meta, feats, **rules):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return copairs_map.average_precision(meta, feats, progress_bar=False, **rules)


def assert_same_ap(ours, theirs):
    """Same pairs and the same AP to 1e-6.

    Tolerance: copairs computes similarities and AP in float32 (1 ulp at 1.0 is 6e-8, and its
    precision cumsum adds a few ulps), we in float64, so equal rankings give APs ~1e-7 apart. A
    positive and a negative whose similarities differ by less than float32 resolution tie in copairs
    (positive first) and not here: that moves the query's AP by far more than 1e-6 (9.8e-5 for one
    query in 26,988 on 30k synthetic wells; ``test_float32_resolution_tie_is_ranked_exactly``), so
    this tolerance also asserts that the real tables compared here have no such near-tie (ours is the
    exact float64 ranking).
    """
    assert len(ours) == len(theirs)
    np.testing.assert_array_equal(ours["n_pos_pairs"].to_numpy(), theirs["n_pos_pairs"].to_numpy())
    np.testing.assert_array_equal(ours["n_total_pairs"].to_numpy(), theirs["n_total_pairs"].to_numpy())
    np.testing.assert_allclose(
        ours["average_precision"].to_numpy(),
        theirs["average_precision"].to_numpy(),
        atol=1e-6,
        equal_nan=True,
    )
    np.testing.assert_allclose(
        ours["normalized_average_precision"].to_numpy(),
        theirs["normalized_average_precision"].to_numpy(),
        atol=1e-6,
        equal_nan=True,
    )


def brute_force_p(n_pos, n_total, observed):
    """P(null mAP >= observed) by enumerating every ranking of every configuration of the group.

    Profiles sharing a configuration share one random ranking (copairs' null); distinct configurations
    are independent. A plain loop over the product of the configurations' rankings.
    """
    confs, counts = np.unique(np.stack([n_pos, n_total], axis=1), axis=0, return_counts=True)
    per_conf = []
    for k, total in confs:
        aps = [
            np.mean([(j + 1) / (r + 1) for j, r in enumerate(c)])
            for c in itertools.combinations(range(total), k)
        ]
        per_conf.append(aps)
    hits, n = 0.0, 0
    for combo in itertools.product(*per_conf):
        value = sum(c * a for c, a in zip(counts, combo, strict=True)) / counts.sum()
        hits += value >= observed - 1e-10
        n += 1
    return hits / n


@pytest.fixture(scope="module")
def lincs_ref(lincs):
    df = assign_reference_index(
        lincs, "Metadata_broad_sample == 'DMSO'", reference_col="Metadata_reference_index", default_value=-1
    )
    meta = df.filter(regex="^Metadata")
    feats = df.drop(columns=meta.columns).to_numpy()
    return meta, feats


RETRIEVE_VS_DMSO = dict(
    pos_sameby=["Metadata_broad_sample", "Metadata_reference_index"],
    pos_diffby=[],
    neg_sameby=[],
    neg_diffby=["Metadata_broad_sample", "Metadata_reference_index"],
)


def test_lincs_replicates_vs_dmso_ap_and_map_match_copairs(lincs_ref):
    meta, feats = lincs_ref
    theirs = copairs_ap(meta, feats, **RETRIEVE_VS_DMSO)
    ours = lm.average_precision(meta, feats, **RETRIEVE_VS_DMSO)
    assert_same_ap(ours, theirs)
    assert ours["average_precision"].notna().sum() == 360  # every compound well is a query
    # control= is the same recipe in one argument
    short = lm.average_precision(
        meta.drop(columns="Metadata_reference_index"),
        feats,
        pos_sameby=["Metadata_broad_sample"],
        neg_diffby=["Metadata_broad_sample"],
        control="Metadata_broad_sample == 'DMSO'",
    )
    assert_same_ap(short, theirs)
    assert "__lcd_reference_index" not in short.columns

    sameby = ["Metadata_broad_sample"]
    m_theirs = copairs_map.mean_average_precision(
        theirs, sameby, null_size=5000, threshold=0.05, seed=0, progress_bar=False
    )
    m_ours = lm.mean_average_precision(ours, sameby, null_size=5000, threshold=0.05, seed=0)
    both = m_theirs.merge(m_ours, on=sameby, suffixes=("_c", "_l"))
    assert len(both) == len(m_theirs) == len(m_ours) == 58
    np.testing.assert_allclose(both["mean_average_precision_c"], both["mean_average_precision_l"], atol=1e-6)
    np.testing.assert_allclose(
        both["mean_normalized_average_precision_c"], both["mean_normalized_average_precision_l"], atol=1e-6
    )
    # p-values come from different random nulls: statistically consistent, not equal
    rho = spearmanr(both["p_value_c"], both["p_value_l"]).statistic
    assert rho > 0.95
    clear = (both["p_value_c"] < 0.005) | (both["p_value_c"] > 0.2)
    assert clear.sum() >= 10
    assert (both.loc[clear, "p_value_c"] < 0.05).equals(both.loc[clear, "p_value_l"] < 0.05)
    ratio = np.log10(both["p_value_l"]) - np.log10(both["p_value_c"])
    assert np.abs(ratio).median() < 0.15


def test_one_call_from_file_equals_two_step(lincs_path, lincs_ref):
    meta, feats = lincs_ref
    two_step = lm.mean_average_precision(
        lm.average_precision(meta, feats, **RETRIEVE_VS_DMSO), ["Metadata_broad_sample"], null_size=500
    )
    df = pd.read_csv(lincs_path)
    df = assign_reference_index(
        df, "Metadata_broad_sample == 'DMSO'", reference_col="Metadata_reference_index", default_value=-1
    )
    one_call = lm.mean_average_precision(
        df, null_size=500, sameby=["Metadata_broad_sample"], **RETRIEVE_VS_DMSO
    )
    pd.testing.assert_frame_equal(two_step, one_call)


@pytest.mark.parametrize("cube_max_pos", [16, 0])
def test_lincs_dose_rules_with_diffby_match_copairs(lincs_ref, monkeypatch, cube_max_pos):
    """Positives: same compound at a different dose; negatives: other compounds at the same dose.
    Run through both AP paths (count per positive; sort negatives and search)."""
    from lcd_metrics import kernels

    monkeypatch.setattr(kernels, "_CUBE_MAX_POS", cube_max_pos)
    meta, feats = lincs_ref
    keep = (meta["Metadata_broad_sample"] != "DMSO").to_numpy()
    rules = dict(
        pos_sameby=["Metadata_broad_sample"],
        pos_diffby=["Metadata_mmoles_per_liter"],
        neg_sameby=["Metadata_mmoles_per_liter"],
        neg_diffby=["Metadata_broad_sample"],
    )
    theirs = copairs_ap(meta[keep].reset_index(drop=True), feats[keep], **rules)
    ours = lm.average_precision(meta[keep].reset_index(drop=True), feats[keep], **rules)
    assert_same_ap(ours, theirs)


def test_cell_injury_per_plate_matches_copairs(cell_injury):
    """Replicate wells of a compound (any plate) against the negative controls of the query's plate."""
    df = cell_injury.dropna(subset=["Compound Name"]).reset_index(drop=True)  # one well has no name
    df["is_neg"] = df["Control Type"].eq("Negative")
    df = assign_reference_index(df, "is_neg", reference_col="ref", default_value=-1)
    df["compound"] = df["Compound Name"]
    df["plate"] = df["Plate"]
    meta_cols = [c for c in df.columns if not c.startswith(("Cells_", "Cytoplasm_", "Nuclei_", "Image_"))]
    meta = df[meta_cols].reset_index(drop=True)
    feats = df.drop(columns=meta_cols).to_numpy()
    rules = dict(
        pos_sameby=["compound", "ref"], pos_diffby=[], neg_sameby=["plate"], neg_diffby=["compound", "ref"]
    )
    theirs = copairs_ap(meta[["compound", "ref", "plate"]], feats, **rules)
    ours = lm.average_precision(meta, feats, **rules)
    assert_same_ap(ours, theirs)
    sameby = ["compound"]
    m_theirs = copairs_map.mean_average_precision(
        theirs, sameby, null_size=2000, threshold=0.05, seed=1, progress_bar=False
    )
    m_ours = lm.mean_average_precision(ours, sameby, null_size=2000, threshold=0.05, seed=1)
    both = m_theirs.merge(m_ours, on=sameby, suffixes=("_c", "_l"))
    assert len(both) == len(m_ours) > 50
    np.testing.assert_allclose(both["mean_average_precision_c"], both["mean_average_precision_l"], atol=1e-6)
    # 5 controls per plate: most groups have small nulls, so our p-values are exact there (copairs 0.5.5
    # samples them); the exact ones equal a brute-force enumeration written here
    exact = both["p_method"] == "exact"
    assert exact.sum() >= 10
    for _, row in both[exact].iterrows():
        members = ours[(ours["compound"] == row["compound"]) & ours["average_precision"].notna()]
        expected = brute_force_p(
            members["n_pos_pairs"].to_numpy(),
            members["n_total_pairs"].to_numpy(),
            row["mean_average_precision_l"],
        )
        assert row["p_value_l"] == pytest.approx(expected, abs=1e-12)
    # copairs 0.5.5 counts null > mAP, we count null >= mAP (ties against): ours is never far below
    assert (both["p_value_l"] >= both["p_value_c"] - 0.02).all()
    perm = both[~exact]
    if len(perm) > 10:
        assert spearmanr(perm["p_value_c"], perm["p_value_l"]).statistic > 0.9
    agree = (both["below_corrected_p_c"] == both["below_corrected_p_l"]).mean()
    assert agree > 0.8


@pytest.mark.parametrize(("k", "total"), [(3, 34), (5, 29), (11, 35)])
def test_permutation_null_has_copairs_distribution(k, total):
    """Our null APs and copairs' come from the same distribution (two-sample KS), from different draws."""
    from copairs.compute import random_ap
    from lcd_metrics.pvalues import null_distributions
    from scipy.stats import ks_2samp

    ours = null_distributions(np.array([[k, total]]), 5000, seed=0)[0]
    theirs = random_ap(5000, k, total, seed=1)
    assert ks_2samp(ours, theirs).pvalue > 0.001
    assert not np.array_equal(np.sort(ours), np.sort(theirs))


def test_multilabel_moa_matches_copairs(lincs):
    """MoA lists ('a|b') as labels: positives share a MoA (other compounds), negatives share none."""
    from copairs.map import multilabel

    df = (
        lincs[lincs["Metadata_broad_sample"].ne("DMSO")]
        .dropna(subset=["Metadata_moa"])
        .reset_index(drop=True)
    )
    df["Metadata_moa_list"] = df["Metadata_moa"].str.split("|")
    meta = df.filter(regex="^Metadata")
    feats = df.drop(columns=meta.columns).to_numpy()
    rules = dict(
        pos_sameby=["Metadata_moa_list"],
        pos_diffby=["Metadata_broad_sample"],
        neg_sameby=[],
        neg_diffby=["Metadata_moa_list"],
        multilabel_col="Metadata_moa_list",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = multilabel.average_precision(meta, feats, progress_bar=False, **rules)
    ours = lm.average_precision(meta, feats, **rules)
    key = ["Metadata_Well", "Metadata_moa_list"]
    assert len(ours) == len(theirs) > 50
    both = theirs.merge(ours, on=key, suffixes=("_c", "_l"))
    assert len(both) == len(ours)
    np.testing.assert_array_equal(both["n_pos_pairs_c"], both["n_pos_pairs_l"])
    np.testing.assert_array_equal(both["n_total_pairs_c"], both["n_total_pairs_l"])
    np.testing.assert_allclose(both["average_precision_c"], both["average_precision_l"], atol=1e-6)
    m_c = copairs_map.mean_average_precision(
        theirs, ["Metadata_moa_list"], null_size=1000, threshold=0.05, seed=0, progress_bar=False
    )
    m_l = lm.mean_average_precision(ours, ["Metadata_moa_list"], null_size=1000, seed=0)
    mm = m_c.merge(m_l, on="Metadata_moa_list")
    assert len(mm) == len(m_c) == len(m_l)
    np.testing.assert_allclose(mm["mean_average_precision_x"], mm["mean_average_precision_y"], atol=1e-6)
