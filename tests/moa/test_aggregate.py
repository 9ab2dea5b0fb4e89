"""Aggregation kernels and the evaluation of a cross-validation against naive re-implementations."""

import numpy as np
import pandas as pd
import pytest
from lcd_core import ConfigError, InputError
from lcd_moa import cross_validate
from lcd_moa.class_probs import drop_column, map_to_classes, weighted_average
from lcd_moa.evaluation import dose_steps


def naive_weighted_average(proba, group, weights, n_groups):
    out = np.full((n_groups, proba.shape[1]), np.nan)
    for g in range(n_groups):
        rows = [i for i in range(len(group)) if group[i] == g]
        if not rows:
            continue
        w = [weights[i] for i in rows]
        if sum(w) == 0:
            w = [1.0] * len(rows)
        out[g] = sum(wi * proba[i] for wi, i in zip(w, rows, strict=True)) / sum(w)
    return out


def test_weighted_average_matches_loops():
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(5), size=40)
    group = rng.integers(0, 9, 40)
    group[group == 7] = 8  # group 7 empty
    weights = rng.integers(0, 4, 40).astype(float)
    weights[group == 2] = 0.0  # all-zero weights: equal-weight fallback
    got = weighted_average(proba, group, weights, 9)
    want = naive_weighted_average(proba, group, weights, 9)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert np.isnan(got[7]).all()
    with pytest.raises(ValueError, match="non-negative"):
        weighted_average(proba, group, -weights - 1, 9)


def test_map_to_classes_places_columns_and_zero_fills():
    proba = np.array([[0.2, 0.8], [0.6, 0.4]])
    out = map_to_classes(proba, ["DMSO", "B"], ["A", "B", "C", "DMSO"])
    np.testing.assert_array_equal(out, [[0, 0.8, 0, 0.2], [0, 0.4, 0, 0.6]])
    with pytest.raises(KeyError, match="Z"):
        map_to_classes(proba, ["Z", "B"], ["A", "B"])


def test_drop_column_renormalizes_and_keeps_nan():
    out = drop_column(np.array([[0.5, 0.25, 0.25], [1.0, 0, 0], [np.nan] * 3]), 0)
    np.testing.assert_allclose(out[0], [0.5, 0.5])
    np.testing.assert_allclose(out[1], [0.5, 0.5])  # no mass left: uniform, a visible tie
    assert np.isnan(out[2]).all()


def test_dose_steps_orders():
    assert dose_steps([1.0, 10.0, 3.0]) == [[10.0], [10.0, 3.0], [10.0, 3.0, 1.0]]
    assert dose_steps([1.0, 10.0, 3.0], "ascending")[1] == [1.0, 3.0]
    assert dose_steps([1.0, 10.0, 3.0], [3.0, 1.0, 10.0])[1] == [3.0, 1.0]
    with pytest.raises(InputError, match="once"):
        dose_steps([1.0, 3.0], [3.0])
    with pytest.raises(ConfigError, match="dose_order must be 'descending', 'ascending' or a list"):
        dose_steps([1.0, 3.0], "high")


@pytest.mark.parametrize("weights", ["equal", "wells", "accuracy"])
def test_cv_predictions_equal_naive_aggregation(screen, activity, weights):
    adata = screen(n_moa=3, n_per_moa=5, effect=1.2, seed=5)
    # drop some wells so that well counts differ between compounds and conditions
    keep = ~(
        (adata.obs["well"] == 2)
        & (adata.obs["compound"].str.endswith(("_1", "_3")))
        & (adata.obs["dose"] == 10)
    )
    adata = adata[keep.to_numpy()].copy()
    result = cross_validate(adata, activity(adata, 3.0), probe={"weights": weights}, seed=1)
    cp = result.condition_probs
    moas = [c for c in result.classes if c != "DMSO"]
    if weights == "wells":
        np.testing.assert_array_equal(cp["weight"], cp["n_wells"])
    if weights == "accuracy":  # one accuracy per fold × condition, taken from the fits table
        fits = result.fits.set_index(["fold", "condition"])["accuracy_weight"]
        np.testing.assert_allclose(
            cp["weight"], fits.loc[list(zip(cp["fold"], cp["condition"], strict=True))].to_numpy()
        )
    preds = result.predictions
    for method, doses in [("incremental_1", {10.0}), ("incremental_2", {10.0, 3.0}), ("single_3", {3.0})]:
        sub = preds[preds["method"] == method].set_index("compound")
        for compound, rows in cp[cp["dose"].isin(doses)].groupby("compound"):
            w = rows["weight"].to_numpy()
            if w.sum() == 0:
                w = np.ones_like(w)
            p = np.array([(w * rows[f"p_{c}"].to_numpy()).sum() / w.sum() for c in moas])
            p = p / p.sum()  # the control class is dropped and the rest renormalized
            np.testing.assert_allclose(
                sub.loc[compound, [f"p_{c}" for c in moas]].to_numpy(dtype=float), p, rtol=1e-10
            )
            assert sub.loc[compound, "predicted"] == moas[int(np.argmax(p))]
            assert sub.loc[compound, "n_conditions"] == len(rows)
        # metrics row recomputed from the predictions table
        m = result.metrics.set_index("method").loc[method]
        assert m["accuracy"] == pytest.approx((sub["predicted"] == sub["moa"]).mean())


def test_condition_probs_are_mean_of_well_probabilities(screen, activity, monkeypatch):
    """A compound's probability at a condition is the mean of its wells' probabilities."""
    from lcd_moa import probe as probe_module

    adata = screen(n_moa=3, n_per_moa=5, seed=2)
    fitted = []
    original = probe_module.fit_probe

    def recording_fit(X, y, **kw):
        p = original(X, y, **kw)
        fitted.append(p)
        return p

    monkeypatch.setattr(probe_module, "fit_probe", recording_fit)
    result = cross_validate(adata, activity(adata, 3.0), seed=0)
    fits = result.fits[result.fits["status"] == "ok"].reset_index(drop=True)
    assert len(fits) == len(fitted)  # one fit per fold × usable condition, in this order
    row = result.condition_probs.iloc[7]
    probe = fitted[
        int(np.flatnonzero((fits["fold"] == row["fold"]) & (fits["condition"] == row["condition"]))[0])
    ]
    obs = adata.obs
    wells = (
        (obs["compound"] == row["compound"])
        & (obs["dose"] == row["dose"])
        & (obs["timepoint"] == row["timepoint"])
    ).to_numpy()
    mean = probe.predict_proba(adata.X[wells]).mean(axis=0)
    got = row[[f"p_{c}" for c in probe.classes]].to_numpy(dtype=float)
    np.testing.assert_allclose(got, mean, rtol=1e-10)
    assert row["n_wells"] == wells.sum()
    assert isinstance(result.conditions, pd.DataFrame)
