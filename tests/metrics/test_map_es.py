"""map_es on constructed screens with known answers, on the real cell-injury screen, and sensitivity."""

import lcd_metrics as lm
import numpy as np
import pandas as pd
import pytest
from lcd_metrics import kernels
from lcd_metrics.mean_ap import expected_random_ap


def as_frame(obs, X):
    return pd.concat(
        [obs, pd.DataFrame(X, index=obs.index, columns=[f"f{i}" for i in range(X.shape[1])])], axis=1
    )


def test_identical_replicates_give_map_one_and_large_effect(make_screen):
    obs, X = make_screen(n_compounds=2, effect=None)
    X = X.copy()
    signature = np.random.default_rng(5).normal(size=X.shape[1]) * 5
    X[(obs["compound"] == "cmp0").to_numpy()] = signature  # every well of cmp0 is the same profile
    res = lm.map_es(as_frame(obs, X), features="^f", n_draws=300)
    row = res[(res["compound"] == "cmp0")].iloc[0]
    assert row["status"] == "ok" and row["reason"] == ""
    assert row["map_mean"] == pytest.approx(1.0)
    assert row["map_ci_low"] == pytest.approx(1.0)
    assert row["map_es"] > 3 and row["active"]
    # the null is AP of 3 random positives among 3 + 31: its mean is close to the closed form
    assert row["null_mean"] == pytest.approx(expected_random_ap(np.array([3]), np.array([34]))[0], abs=0.03)


def test_compound_from_control_distribution_has_effect_near_zero(make_screen):
    obs, X = make_screen(n_compounds=8, n_replicas=4, seed=3)
    res = lm.map_es(as_frame(obs, X), features="^f", n_draws=400, seed=1)
    assert (res["status"] == "ok").all()
    assert abs(res["map_es"].mean()) < 0.3
    assert res["map_mean"].sub(res["null_mean"]).abs().mean() < 0.05


def test_one_draw_equals_naive_ranking(make_screen):
    """With one well per replica and exactly n_pos other replicas, each draw's positives are fixed:
    the mean AP over draws is the mean over queries of a brute-force AP, weighted by how often each
    query was drawn; with n_neg = all controls of the plate the negatives are fixed too."""
    obs, X = make_screen(n_compounds=1, n_replicas=4, plates_per_replica=1, n_ctrl=31, doses=(1.0,), seed=4)
    res, samples = lm.map_es(as_frame(obs, X), features="^f", n_draws=200, return_samples=True)
    xn = kernels.l2_normalize(X)
    wells = np.flatnonzero((obs["compound"] == "cmp0").to_numpy())
    expected = {}
    for q in wells:
        others = [w for w in wells if w != q]
        ctrl = np.flatnonzero(
            ((obs["compound"] == "DMSO") & (obs["plate"] == obs["plate"].iloc[q])).to_numpy()
        )
        pos = xn[others] @ xn[q]
        neg = xn[ctrl] @ xn[q]
        labels = np.r_[np.ones(pos.size), np.zeros(neg.size)]
        order = np.lexsort((1 - labels, -np.r_[pos, neg]))  # decreasing similarity, positives first on ties
        expected[q] = kernels.ap_from_ranked_labels(labels[order])
    drawn = samples.loc[samples["kind"] == "compound", "ap"].to_numpy()
    assert set(np.round(drawn, 12)) <= set(np.round(list(expected.values()), 12))
    assert res["map_mean"].iloc[0] == pytest.approx(drawn.mean())
    assert res["map_es"].iloc[0] == pytest.approx(
        kernels.cohens_d(drawn, samples.loc[samples["kind"] == "null", "ap"])
    )


def test_design_shortfalls_are_recorded_and_strict_refuses(make_screen):
    obs, X = make_screen(n_compounds=3, n_ctrl=20)
    single = obs["compound"].eq("cmp1") & obs["replica"].ne("R0")
    one_plate = obs["compound"].eq("cmp2") & obs["plate"].ne("24h-R0-P0")
    drop = (single | one_plate).to_numpy()
    obs, X = obs[~drop], X[~drop]  # cmp1 only in replica R0 (two plates), cmp2 on one plate only
    data = as_frame(obs, X)
    res = lm.map_es(data, features="^f", n_draws=100)
    cmp0 = res[res["compound"] == "cmp0"]
    cmp1 = res[res["compound"] == "cmp1"]
    cmp2 = res[res["compound"] == "cmp2"]
    assert (cmp0["status"] == "partial").all() and (cmp0["pos_rule"] == "other_replica").all()
    assert cmp0["reason"].str.contains("only 20 control wells on a query plate").all()
    assert cmp0["map_es"].notna().all() and (cmp0["neg_available"] == 20).all()
    # a single replica: positives from its other plate (the paper's low-dose sets), not a failure
    assert (cmp1["pos_rule"] == "other_plate").all() and (cmp1["status"] == "partial").all()
    assert cmp1["reason"].str.contains("only 1 positive wells in other plates of its replica").all()
    assert cmp1["map_es"].notna().all()
    assert (cmp2["status"] == "failed").all() and (cmp2["pos_rule"] == "").all()
    assert cmp2["reason"].str.contains("on one plate of one replica").all()
    assert cmp2["map_es"].isna().all() and not cmp2["active"].any() and (cmp2["n_draws"] == 0).all()
    with pytest.raises(lm.InputError, match=r"strict=True: 6 compound × condition groups.*cmp0"):
        lm.map_es(data, features="^f", n_draws=100, strict=True)


def test_plate_without_controls_makes_wells_unusable(make_screen):
    obs, X = make_screen(n_compounds=1, doses=(1.0,))
    drop = (obs["compound"].eq("DMSO") & obs["plate"].eq("24h-R0-P0")).to_numpy()
    res = lm.map_es(as_frame(obs[~drop], X[~drop]), features="^f", n_draws=100)
    assert res["status"].iloc[0] == "partial"
    assert "1 of 6 wells unusable as queries" in res["reason"].iloc[0]


def test_deterministic_for_a_seed_and_anndata_equals_table(make_screen):
    ad = pytest.importorskip("anndata")
    obs, X = make_screen(n_compounds=3, effect={0: 0.8})
    a = lm.map_es(as_frame(obs, X), features="^f", n_draws=200, seed=7)
    b = lm.map_es(ad.AnnData(X=X, obs=obs), n_draws=200, seed=7)
    pd.testing.assert_frame_equal(a, b)
    c = lm.map_es(as_frame(obs, X), features="^f", n_draws=200, seed=8)
    assert not np.allclose(a["map_es"], c["map_es"])
    assert a.loc[a["compound"] == "cmp0", "active"].all()


def test_cell_injury_with_batch_as_replica(cell_injury):
    """The adoption path: well-level Cell Painting profiles, replica = experimental batch."""
    df = cell_injury.dropna(subset=["Compound Name"])
    res = lm.map_es(
        df,
        compound_key="Compound Name",
        replica_key="Experimental Condition [Experimental Batch]",
        plate_key="Plate",
        timepoint_key="Experimental Condition [Treatment time (h)]",
        dose_key="Compound Concentration (microMolar)",
        control="`Control Type` == 'Negative'",
        n_draws=200,
    )
    keys = [
        "Compound Name",
        "Experimental Condition [Treatment time (h)]",
        "Compound Concentration (microMolar)",
    ]
    groups = df[df["Control Type"].ne("Negative")].groupby(keys)
    assert len(res) == groups.ngroups
    seen = groups.agg(
        n_batches=("Experimental Condition [Experimental Batch]", "nunique"), n_plates=("Plate", "nunique")
    )
    got = res.set_index(keys).loc[seen.index]
    # the paper's rule: other batches when the group spans two, else other plates of its batch
    expected_rule = np.where(
        seen["n_batches"] > 1, "other_replica", np.where(seen["n_plates"] > 1, "other_plate", "")
    )
    np.testing.assert_array_equal(got["pos_rule"].to_numpy(), expected_rule)
    np.testing.assert_array_equal((got["status"] == "failed").to_numpy(), expected_rule == "")
    assert got.loc[got["status"] == "failed", "reason"].str.contains("on one plate of one replica").all()
    assert (got["pos_rule"] == "other_plate").sum() > 100  # single-batch groups are now scored
    scored = res[res["status"] != "failed"]
    assert scored["map_es"].notna().all() and scored["map_mean"].between(0, 1).all()
    assert (
        scored["reason"].str.contains("control wells on a query plate").any()
    )  # 5 controls per plate, not 31


def test_sensitivity_counts_actives(make_screen):
    obs, X = make_screen(n_compounds=4, effect={0: 1.0, 1: 0.3}, timepoints=("24h", "48h"))
    res = lm.map_es(as_frame(obs, X), features="^f", n_draws=100)
    thresholds = [0.0, 0.8, 2.0]
    sens = lm.sensitivity(res, thresholds)
    assert len(sens) == 4 * len(thresholds)  # 2 timepoints × 2 doses
    for _, row in sens.iterrows():
        g = res[(res["timepoint"] == row["timepoint"]) & (res["dose"] == row["dose"])]
        assert row["n_active"] == (g["map_es"] >= row["threshold"]).sum()
        assert row["fraction_active"] == pytest.approx(row["n_active"] / len(g))
    plain = pd.DataFrame(res)  # attrs lost (e.g. read back from CSV): keys come from the column order
    plain.attrs = {}
    pd.testing.assert_frame_equal(lm.sensitivity(plain, thresholds), sens)
