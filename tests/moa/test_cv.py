"""Cross-validation on synthetic screens: accuracy, leakage, dose steps and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lcd_core import ConfigError, InputError
from lcd_moa import cross_validate
from lcd_moa import probe as probe_module


def test_separable_moas_are_recovered(screen, activity):
    adata = screen(seed=0)
    result = cross_validate(adata, activity(adata, 3.0), seed=0)
    metrics = result.metrics.set_index("method")
    assert metrics.loc[result.final_method, "accuracy"] >= 0.95
    assert metrics.loc[result.final_method, "f1_macro"] >= 0.95
    assert metrics.loc[result.final_method, "top3_accuracy"] == 1.0
    assert (metrics["coverage"] == 1.0).all()
    conf = result.confusion()
    assert np.trace(conf.to_numpy()) == pytest.approx(metrics.loc[result.final_method, "accuracy"] * 24)


def test_shuffled_labels_fall_to_chance(screen, activity):
    """The same pipeline on MoA labels shuffled across compounds cannot beat chance by much."""
    adata = screen(seed=0, effect=3.0)
    compounds = sorted(set(adata.obs["compound"]) - {"DMSO"})
    rng = np.random.default_rng(0)
    shuffled = dict(zip(compounds, rng.permutation([f"MoA{i // 6}" for i in range(24)]), strict=True))
    adata.obs["moa"] = adata.obs["compound"].map(shuffled)
    result = cross_validate(adata, activity(adata, 3.0), seed=0)
    assert result.metrics.set_index("method").loc[result.final_method, "accuracy"] < 0.6


def test_no_compound_is_scored_by_a_model_that_saw_it(screen, activity, monkeypatch):
    """Instrument the probe: every fit records its training compounds, every scoring its compounds."""
    adata = screen(n_moa=3, n_per_moa=5, seed=3)
    row_compound = {adata.X[i].tobytes(): c for i, c in enumerate(adata.obs["compound"])}
    fitted_on: dict[int, set[str]] = {}
    scored_by: dict[int, set[str]] = {}
    alive = []  # keep every probe alive so that id() is never reused
    original_fit = probe_module.fit_probe
    original_predict = probe_module.LinearProbe.predict_proba

    def fit(X, y, **kw):
        p = original_fit(X, y, **kw)
        alive.append(p)
        fitted_on[id(p)] = {row_compound[x.tobytes()] for x in X}
        return p

    def predict(self, X):
        scored_by.setdefault(id(self), set()).update(row_compound[x.tobytes()] for x in X)
        return original_predict(self, X)

    monkeypatch.setattr(probe_module, "fit_probe", fit)
    monkeypatch.setattr(probe_module.LinearProbe, "predict_proba", predict)
    result = cross_validate(
        adata, activity(adata, 3.0), probe={"weights": "accuracy", "inner_folds": 3}, seed=0
    )
    assert len(fitted_on) > 20 and scored_by  # outer and inner (nested) probes were all instrumented
    for key, compounds in scored_by.items():
        assert not (compounds & fitted_on[key]), "a probe scored a compound it was trained on"
    folds = result.folds.set_index("compound")["fold"]
    # fold table: each compound in exactly one fold; scored rows come from the compound's own fold
    assert folds.index.is_unique
    assert (
        result.condition_probs["fold"].to_numpy() == folds[result.condition_probs["compound"]].to_numpy()
    ).all()
    for f in folds.unique():
        test = set(folds.index[folds == f])
        train = set(folds.index[folds != f])
        assert not (test & train)
    # the outer test compounds never enter a probe fitted for their fold, inner ones included
    trained = set().union(*fitted_on.values()) - {"DMSO"}
    assert trained == set(folds.index)


def test_test_fold_labels_cannot_change_its_predictions(screen, activity):
    """Scrambling the MoA labels of one fold's compounds leaves that fold's probabilities and
    accuracy weights unchanged: nothing learned for the fold depends on its test compounds."""
    adata = screen(n_moa=3, n_per_moa=5, seed=4)
    act = activity(adata, 3.0)
    first = cross_validate(adata, act, probe={"weights": "accuracy"}, seed=2)
    folds = first.folds
    test = set(folds.loc[folds["fold"] == 0, "compound"])
    scrambled = adata.copy()
    moas = sorted(folds["moa"].unique())
    hit = scrambled.obs["compound"].isin(test)
    scrambled.obs.loc[hit, "moa"] = scrambled.obs.loc[hit, "moa"].map(
        lambda m: moas[(moas.index(m) + 1) % len(moas)]
    )
    second = cross_validate(
        scrambled, act, probe={"weights": "accuracy"}, folds=folds, seed=2
    )  # seed: inner folds
    cols = [c for c in first.condition_probs if c.startswith("p_")] + ["weight"]
    a = first.condition_probs[first.condition_probs["fold"] == 0].reset_index(drop=True)
    b = second.condition_probs[second.condition_probs["fold"] == 0].reset_index(drop=True)
    np.testing.assert_allclose(a[cols].to_numpy(float), b[cols].to_numpy(float), rtol=1e-12)
    w1 = first.fits[first.fits["fold"] == 0]["accuracy_weight"].to_numpy()
    w2 = second.fits[second.fits["fold"] == 0]["accuracy_weight"].to_numpy()
    np.testing.assert_array_equal(w1, w2)
    # while the other folds did change (their training sets hold the scrambled compounds)
    c = first.condition_probs[first.condition_probs["fold"] == 1][cols].to_numpy(float)
    d = second.condition_probs[second.condition_probs["fold"] == 1][cols].to_numpy(float)
    assert not np.allclose(c, d)


def test_dose_steps_and_single_doses(screen, activity):
    adata = screen(seed=1)
    result = cross_validate(adata, activity(adata, 0.0), seed=0)
    m = result.metrics.set_index("method")
    assert m.loc["incremental_1", "doses"] == "10" and m.loc["incremental_3", "doses"] == "10, 3, 1"
    assert {"single_10", "single_3", "single_1"} <= set(m.index)
    assert m.loc["incremental_1", "n_conditions"] == 2  # both timepoints of the top dose
    # the single top dose is the first incremental step
    assert m.loc["single_10", "accuracy"] == m.loc["incremental_1", "accuracy"]
    asc = cross_validate(adata, activity(adata, 0.0), folds=result.folds, dose_order="ascending")
    assert asc.metrics.set_index("method").loc["incremental_1", "doses"] == "1"
    custom = cross_validate(adata, activity(adata, 0.0), folds=result.folds, dose_order=[3, 10, 1])
    assert custom.metrics.set_index("method").loc["incremental_2", "doses"] == "3, 10"
    # all doses in any order aggregate the same conditions
    last = result.predictions[result.predictions["method"] == "incremental_3"].reset_index(drop=True)
    other = asc.predictions[asc.predictions["method"] == "incremental_3"].reset_index(drop=True)
    pd.testing.assert_series_equal(last["predicted"], other["predicted"])


def test_condition_without_active_compound_is_skipped_and_reported(screen, activity):
    adata = screen(seed=2)
    result = cross_validate(adata, activity(adata, 3.0), seed=0)
    cond = result.conditions
    skipped = cond[cond["dose"] == 1.0]
    assert (skipped["status"] == "skipped").all()
    assert (skipped["reason"] == "no active compound at this condition").all()
    assert not (result.condition_probs["dose"] == 1.0).any()


def test_map_es_layout_with_other_key_names_and_failed_rows(screen, activity):
    adata = screen(n_moa=3, n_per_moa=5, seed=5)
    act = activity(adata, 3.0).rename(columns={"compound": "cpd", "timepoint": "t_h", "dose": "conc"})
    failed = (act["cpd"] == "cpd_0_0") & (act["conc"] == 10.0)
    act.loc[failed, "status"] = "failed"
    act["active"] = act["active"].astype(object)
    act.loc[failed, "active"] = None  # a failed map_es row: activity unknown → inactive
    act["t_h"] = act["t_h"].astype(str)  # "24" must still match 24 in the profiles
    keys = {"activity_keys": ["cpd", "t_h", "conc"]}
    result = cross_validate(adata, act, keys, seed=0)
    rows = result.condition_probs
    assert not ((rows["compound"] == "cpd_0_0") & (rows["dose"] == 10.0)).any()
    assert ((rows["compound"] == "cpd_0_0") & (rows["dose"] == 3.0)).sum() == 2
    partial = cross_validate(adata, act.iloc[2:], keys, seed=0)
    assert any(n.startswith("2 of 90 compound × conditions with wells are absent") for n in partial.notes), (
        partial.notes
    )
    with pytest.raises(InputError, match=r"activity table: column\(s\) \['compound'.*activity_keys"):
        cross_validate(adata, act, seed=0)
    bad = act.assign(active="maybe")
    with pytest.raises(InputError, match="must be boolean; row 0 holds 'maybe'"):
        cross_validate(adata, bad, keys)
    dup = pd.concat([act, act.iloc[:1]])
    with pytest.raises(InputError, match="duplicated compound × condition"):
        cross_validate(adata, dup, keys)


def test_small_class_error_and_drop(screen, activity):
    adata = screen(n_moa=3, n_per_moa=5, seed=6)
    small = adata[~adata.obs["compound"].isin(["cpd_2_0", "cpd_2_1", "cpd_2_2"])].copy()
    with pytest.raises(InputError, match=r"fewer compounds than n_folds=5: 'MoA2' \(2\)"):
        cross_validate(small, activity(small, 3.0))
    result = cross_validate(small, activity(small, 3.0), drop_small_classes=True)
    comp = result.compounds.set_index("compound")
    assert comp.loc["cpd_2_3", "status"] == "dropped_small_class"
    assert "MoA2" in comp.loc["cpd_2_3", "reason"]
    assert "MoA2" not in result.classes


def test_missing_labels_recorded_and_other_bad_input(screen, activity):
    adata = screen(n_moa=3, n_per_moa=6, seed=7)
    adata.obs.loc[adata.obs["compound"] == "cpd_1_5", "moa"] = None
    result = cross_validate(adata, activity(adata, 3.0))
    comp = result.compounds.set_index("compound")
    assert comp.loc["cpd_1_5", "status"] == "no_label" and "'moa'" in comp.loc["cpd_1_5", "reason"]
    assert "cpd_1_5" not in set(result.condition_probs["compound"])
    assert any("no 'moa' label" in n for n in result.notes)
    never = activity(adata, 3.0)
    never.loc[never["compound"] == "cpd_0_0", "active"] = False
    comp = cross_validate(adata, never).compounds.set_index("compound")
    assert comp.loc["cpd_0_0", "status"] == "never_active"
    with pytest.raises(InputError, match="no control rows match"):
        cross_validate(adata, None, {"control": "compound == 'water'"})
    with pytest.raises(InputError, match=r"cannot evaluate control query 'no such column == 1'"):
        cross_validate(adata, None, {"control": "no such column == 1"})
    conflicting = adata.copy()
    conflicting.obs.loc[conflicting.obs.index[0], "moa"] = "MoA2"
    with pytest.raises(InputError, match="compound 'cpd_0_0' has several 'moa' labels"):
        cross_validate(conflicting, None)
    nan = adata.copy()
    nan.X[5, 2] = np.nan
    with pytest.raises(InputError, match=r"X has 1 NaN/inf values in 1 rows \(first: '5'\)"):
        cross_validate(nan, None)
    with pytest.raises(InputError, match=r"column 'mechanism' not found"):
        cross_validate(adata, None, {"moa_key": "mechanism"})
    with pytest.raises(ConfigError, match=r"ProbeSpec\.weights: must be one of equal, wells, accuracy"):
        cross_validate(adata, None, probe={"weights": "votes"})


def test_deterministic_for_a_seed(screen, activity):
    adata = screen(n_moa=3, n_per_moa=5, seed=8)
    a = cross_validate(adata, activity(adata, 3.0), seed=11, probe={"weights": "accuracy"})
    b = cross_validate(adata, activity(adata, 3.0), seed=11, probe={"weights": "accuracy"})
    pd.testing.assert_frame_equal(a.predictions, b.predictions)
    pd.testing.assert_frame_equal(a.folds, b.folds)


def test_inert_compound_can_be_called_control_when_allowed(screen):
    """With score="all" and allow_control_prediction, a compound with no effect is predicted as DMSO,
    while by default the prediction is restricted to MoAs."""
    adata = screen(n_moa=3, n_per_moa=5, seed=14)
    inert = (adata.obs["compound"] == "cpd_0_0").to_numpy()
    adata.X[inert] = np.random.default_rng(1).normal(size=(inert.sum(), adata.n_vars))
    allowed = cross_validate(adata, None, probe={"score": "all", "allow_control_prediction": True}, seed=0)
    final = allowed.predictions[allowed.predictions["method"] == allowed.final_method].set_index("compound")
    assert final.loc["cpd_0_0", "predicted"] == "DMSO"
    assert "p_DMSO" in final.columns
    assert (final.drop(index="cpd_0_0")["predicted"] != "DMSO").mean() > 0.8
    default = cross_validate(adata, None, probe={"score": "all"}, seed=0)
    pred = default.predictions
    assert "DMSO" not in set(pred["predicted"]) and "p_DMSO" not in pred.columns


def test_nullable_activity_and_boolean_control_column(screen, activity):
    """A pandas `boolean` activity column with missing values counts them inactive (0.1.0 crashed in
    numpy); a boolean control column with a missing value is refused in one line naming it."""
    adata = screen(n_moa=3, n_per_moa=5, seed=60)
    act = activity(adata, 3.0)
    nullable = act.assign(active=act["active"].astype("boolean"))
    missing = (nullable["compound"] == "cpd_0_0") & (nullable["dose"] == 10.0)
    nullable.loc[missing, "active"] = pd.NA
    as_false = act.assign(active=act["active"] & ~missing)
    a = cross_validate(adata, nullable, seed=0)
    b = cross_validate(adata, as_false, seed=0)
    pd.testing.assert_frame_equal(a.predictions, b.predictions)
    assert not ((a.condition_probs["compound"] == "cpd_0_0") & (a.condition_probs["dose"] == 10.0)).any()
    flagged = adata.copy()
    flagged.obs["is_control"] = (flagged.obs["compound"] == "DMSO").astype("boolean")
    same = cross_validate(flagged, act, {"control": "is_control"}, seed=0)
    pd.testing.assert_frame_equal(same.predictions, cross_validate(adata, act, seed=0).predictions)
    flagged.obs.loc[flagged.obs.index[0], "is_control"] = pd.NA
    with pytest.raises(InputError, match="control column 'is_control' has 1 missing values"):
        cross_validate(flagged, act, {"control": "is_control"})
