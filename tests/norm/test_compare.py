"""evaluate and compare: silhouettes vs scikit-learn, mAP vs lcd-metrics/copairs, every method on one input."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from lcd_norm import METHODS, InputError, compare, evaluate, plot_compare
from lcd_norm.evaluate import EVALUATION_COLUMNS
from sklearn.metrics import average_precision_score, silhouette_score


def _naive_cross_batch_map(X, label, batch):
    """Oracle: per query, AP of same-label rows from other batches against other-label rows (cosine)."""
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    sim = unit @ unit.T
    per_query = {}
    for i in range(len(X)):
        pos = (label == label[i]) & (batch != batch[i])
        neg = label != label[i]
        if pos.any():
            y = np.r_[np.ones(pos.sum()), np.zeros(neg.sum())]
            per_query.setdefault(label[i], []).append(
                average_precision_score(y, np.r_[sim[i, pos], sim[i, neg]])
            )
    return np.mean([np.mean(v) for v in per_query.values()])


def test_evaluate_matches_sklearn_and_naive_map(profiles):
    profiles.obsm["rep"] = profiles.X[:, :8]
    scores = evaluate(profiles, "replica", "compound", use_rep="rep", sample_size=10_000)
    X = profiles.obsm["rep"]
    assert scores["batch_silhouette"] == pytest.approx(
        silhouette_score(X, profiles.obs["replica"], metric="cosine")
    )
    assert scores["label_silhouette"] == pytest.approx(
        silhouette_score(X, profiles.obs["compound"], metric="cosine")
    )
    label, batch = profiles.obs["compound"].to_numpy(), profiles.obs["replica"].to_numpy()
    assert scores["map"] == pytest.approx(_naive_cross_batch_map(X, label, batch), abs=1e-6)
    assert scores["map_status"] == "ok" and scores["reason"] == ""
    assert 0 <= scores["map_fraction_significant"] <= 1
    assert tuple(scores) == EVALUATION_COLUMNS


def test_evaluate_without_lcd_metrics_says_why(profiles, monkeypatch):
    monkeypatch.setitem(sys.modules, "lcd_metrics", None)  # import now raises ImportError
    scores = evaluate(profiles, "replica", "compound")
    assert np.isnan(scores["map"]) and scores["map_status"] == "not computed"
    assert "lcd-metrics is not installed" in scores["reason"]
    assert np.isfinite(scores["batch_silhouette"])


def test_evaluate_undefined_silhouette_has_reason(profiles):
    profiles.obs["single"] = "a"
    scores = evaluate(profiles, "single", "compound")
    assert np.isnan(scores["batch_silhouette"]) and "batch silhouette: needs 2" in scores["reason"]


def test_compare_runs_every_method_and_corrections_help(profile_factory, tmp_path):
    adata = profile_factory(n_replicas=3, plates_per_replica=1, timepoints=(24,), batch_shift=4.0, seed=2)
    table = compare(adata, compound_key="compound", n_components=10, k=10)
    assert table["method"].tolist() == list(METHODS)
    assert table["map_fraction_significant"].between(0, 1).all()
    assert (table["status"] == "ok").all(), table["reason"].tolist()
    by = table.set_index("method")
    assert by.loc["harmony", "batch_silhouette"] < by.loc["none", "batch_silhouette"]
    assert by.loc["fastmnn", "batch_silhouette"] < by.loc["none", "batch_silhouette"]
    assert by.loc["mad_harmony_fov", "batch_silhouette"] < by.loc["mad", "batch_silhouette"]
    assert by.loc["mad_harmony_fov", "map"] > by.loc["none", "map"]
    for key in ("X_mad", "X_harmony", "X_mnn", "X_mad_harmony_fov"):
        assert adata.obsm[key].shape[0] == adata.n_obs
    figure = plot_compare(table, tmp_path / "compare.png")
    assert figure.stat().st_size > 10_000


def test_compare_records_a_method_that_cannot_run(profiles):
    profiles.obs = profiles.obs.drop(columns="fov")
    table = compare(profiles, methods=["none", "mad_harmony_fov"])
    row = table.set_index("method").loc["mad_harmony_fov"]
    assert row["status"] == "failed" and "'fov' not found" in row["reason"]
    assert table.set_index("method").loc["none", "status"] == "ok"
    with pytest.raises(InputError, match="unknown method"):
        compare(profiles, methods=["combat"])
    assert isinstance(table, pd.DataFrame)


def _with_dose(adata):
    adata.obs["dose"] = np.where(adata.obs["compound"] == "DMSO", 0.0, 1.0)
    adata.obs.loc[adata.obs["compound"].isin(["cpd0", "cpd1"]), "dose"] = 10.0
    return adata


def test_dmso_map_is_the_mean_over_conditions_of_map_es_mean_ap(profile_factory):
    """Oracle: lcd-metrics' map_es on the median well profiles, averaged by hand per condition."""
    from lcd_metrics import map_es
    from lcd_norm import aggregate, dmso_map

    adata = _with_dose(profile_factory(n_replicas=4, plates_per_replica=1, n_dmso=34, seed=3))
    summary, per = dmso_map(adata, n_draws=60, seed=4)
    wells = aggregate(adata, by="well")
    act = map_es(wells, n_draws=60, seed=4)
    ok = act[act["status"] != "failed"]
    expected = ok.groupby(["timepoint", "dose"])["map_mean"].mean()
    got = per.set_index(["timepoint", "dose"])["mean_ap"]
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_names=False)
    assert summary["map_dmso"] == pytest.approx(expected.mean(), rel=1e-12)
    assert summary["map_dmso_conditions"] == len(expected) == 4  # 2 timepoints x 2 doses
    assert summary["map_dmso_status"] in ("ok", "partial")


def test_compare_reports_the_paper_criterion_and_says_why_it_cannot(profile_factory):
    adata = _with_dose(
        profile_factory(n_replicas=4, plates_per_replica=1, n_dmso=34, batch_shift=4.0, seed=2)
    )
    table = compare(adata, methods=["none", "mad_harmony_fov"], n_draws=60, null_size=50)
    by = table.set_index("method")
    assert (by["map_dmso_status"] != "failed").all(), by["map_dmso_reason"].tolist()
    # planted replica/FOV shifts: the correction retrieves replicates against DMSO better
    assert by.loc["mad_harmony_fov", "map_dmso"] > by.loc["none", "map_dmso"]
    # without a dose column the criterion cannot be computed: a status and the reason, not a number
    no_dose = profile_factory(n_replicas=3, plates_per_replica=1, seed=2)
    row = compare(no_dose, methods=["none"], null_size=50).iloc[0]
    assert row["status"] == "ok" and row["map_dmso_status"] == "failed"
    assert np.isnan(row["map_dmso"]) and "'dose'" in row["map_dmso_reason"]
