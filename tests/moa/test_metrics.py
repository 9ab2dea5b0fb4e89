"""Metrics against scikit-learn and McNemar against the closed-form binomial."""

from math import comb

import numpy as np
import pytest
from lcd_moa.metrics import classification_metrics, confusion_table, mcnemar_exact, top_k_correct
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, top_k_accuracy_score


def test_accuracy_and_f1_match_sklearn():
    rng = np.random.default_rng(1)
    classes = ["a", "b", "c", "d"]
    y_true = rng.choice(classes, 60)
    y_pred = np.where(rng.random(60) < 0.6, y_true, rng.choice(classes, 60))
    got = classification_metrics(y_true, y_pred)
    assert got["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    labels = sorted(set(y_true))
    assert got["f1_weighted"] == pytest.approx(
        f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)
    )
    assert got["f1_macro"] == pytest.approx(
        f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    )


def test_missing_prediction_counts_as_wrong():
    y_true = ["a", "a", "b", "b"]
    got = classification_metrics(y_true, ["a", None, "b", "DMSO"])
    as_other = ["a", "zz", "b", "DMSO"]  # sklearn oracle: a class never true
    assert got["accuracy"] == pytest.approx(0.5)
    assert got["f1_macro"] == pytest.approx(
        f1_score(y_true, as_other, labels=["a", "b"], average="macro", zero_division=0)
    )


def test_top_k_matches_sklearn_and_survives_absent_classes():
    rng = np.random.default_rng(2)
    proba = rng.random((40, 6))
    proba /= proba.sum(axis=1, keepdims=True)
    y = rng.integers(0, 6, 40)
    y[y == 5] = 4  # class 5 never occurs as a true label
    for k in (1, 3):
        ours = top_k_correct(proba, y, k).mean()
        assert ours == pytest.approx(top_k_accuracy_score(y, proba, k=k, labels=np.arange(6)))
    classes = list("abcdef")
    got = classification_metrics(
        np.array(classes)[y], np.array(classes)[proba.argmax(1)], proba, classes, k=3
    )
    assert got["top3_accuracy"] == pytest.approx(top_k_accuracy_score(y, proba, k=3, labels=np.arange(6)))


def test_top_k_nan_row_and_unknown_label_are_misses():
    proba = np.array([[0.5, 0.5], [np.nan, np.nan], [0.9, 0.1]])
    assert top_k_correct(proba, np.array([0, 0, -1]), 1).tolist() == [True, False, False]


def test_confusion_matches_sklearn():
    rng = np.random.default_rng(3)
    labels = ["x", "y", "z"]
    t, p = rng.choice(labels, 50), rng.choice(labels, 50)
    assert (confusion_table(t, p, labels).to_numpy() == confusion_matrix(t, p, labels=labels)).all()


@pytest.mark.parametrize(("only_a", "only_b"), [(9, 2), (2, 9), (5, 5), (0, 7), (13, 4)])
def test_mcnemar_exact_matches_closed_form(only_a, only_b):
    both, neither = 20, 6
    a = np.array([True] * both + [True] * only_a + [False] * only_b + [False] * neither)
    b = np.array([True] * both + [False] * only_a + [True] * only_b + [False] * neither)
    n = only_a + only_b
    # two-sided exact McNemar: 2 * P(X <= min(b, c)) for X ~ Binomial(n, 1/2), capped at 1
    expected = min(1.0, 2 * sum(comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2**n)
    got = mcnemar_exact(a, b)
    assert (got.both, got.only_a, got.only_b, got.neither) == (both, only_a, only_b, neither)
    assert got.p_value == pytest.approx(expected, rel=1e-12)
    assert got.table().to_numpy().tolist() == [[both, only_a], [only_b, neither]]


def test_mcnemar_hand_table():
    # 9 vs 2 discordant pairs: p = 2 * (C(11,0) + C(11,1) + C(11,2)) / 2**11 = 134 / 2048
    a = [True] * 9 + [False] * 2
    b = [False] * 9 + [True] * 2
    assert mcnemar_exact(a, b).p_value == pytest.approx(134 / 2048, rel=1e-12)
    assert mcnemar_exact([True, False], [True, False]).p_value == 1.0
    with pytest.raises(ValueError, match="equal lengths"):
        mcnemar_exact([True], [True, False])
