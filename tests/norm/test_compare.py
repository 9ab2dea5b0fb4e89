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
