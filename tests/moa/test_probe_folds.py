"""The probe against scikit-learn's own pipeline; folds grouped by compound and stratified by MoA."""

import numpy as np
import pandas as pd
import pytest
from lcd_core import ConfigError, InputError
from lcd_moa import assign_folds
from lcd_moa.probe import fit_probe
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


@pytest.mark.parametrize("n_classes", [2, 4])
def test_probe_probabilities_match_sklearn_pipeline(n_classes):
    rng = np.random.default_rng(n_classes)
    X = rng.normal(size=(90, 7)) * rng.uniform(0.5, 20, 7) + rng.normal(size=7) * 5
    y = np.array([f"c{i % n_classes}" for i in range(90)])
    X[y == "c1"] += 2.0
    probe = fit_probe(X, y, C=0.5, max_iter=2000)
    ref = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000)).fit(X, y)
    Xt = rng.normal(size=(25, 7)) * 10
    assert probe.classes.tolist() == ref.classes_.tolist()
    np.testing.assert_allclose(probe.predict_proba(Xt), ref.predict_proba(Xt), rtol=1e-9, atol=1e-12)


def test_probe_needs_two_classes():
    with pytest.raises(ValueError, match="at least two classes"):
        fit_probe(np.zeros((3, 2)), ["a", "a", "a"])


def _labels(counts):
    return pd.Series({f"{moa}_{i}": moa for moa, n in counts.items() for i in range(n)})


def test_folds_group_and_stratify():
    labels = _labels({"A": 10, "B": 7, "C": 5, "D": 12})
    folds = assign_folds(labels, n_folds=5, seed=3)
    assert folds["compound"].is_unique and set(folds["compound"]) == set(labels.index)
    assert set(folds["fold"]) == set(range(5))
    per_fold = pd.crosstab(folds["moa"], folds["fold"])
    # stratified: each class spread as evenly as possible (counts differ by at most one across folds)
    assert ((per_fold.max(axis=1) - per_fold.min(axis=1)) <= 1).all()
    again = assign_folds(labels.sample(frac=1, random_state=0), n_folds=5, seed=3)
    pd.testing.assert_frame_equal(folds, again)  # independent of input order
    other = assign_folds(labels, n_folds=5, seed=4)
    assert not (other["fold"].to_numpy() == folds["fold"].to_numpy()).all()


def test_folds_refuse_small_classes_with_names():
    labels = _labels({"A": 10, "Rare": 3, "Tiny": 1})
    with pytest.raises(InputError, match=r"'Rare' \(3\).*'Tiny' \(1\)"):
        assign_folds(labels, n_folds=5)
    with pytest.raises(InputError, match="no MoA label"):
        assign_folds(pd.Series({"x": "A", "y": None}), n_folds=2)
    with pytest.raises(ConfigError, match="n_folds must be an integer >= 2, got 1"):
        assign_folds(labels, n_folds=1)
