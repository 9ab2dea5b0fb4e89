"""Metrics against scikit-learn and lcd-moa 0.1.0's kernels; McNemar against statsmodels and the closed form.

0.1.0 computed F1, top-k and the confusion matrix by hand; 0.2.0 takes F1, accuracy and the confusion
matrix from ``sklearn.metrics`` (issue #14). The 0.1.0 kernels are kept below, verbatim, as the oracle
that the swap gives the same numbers, on random inputs and end to end on the synthetic screens.
"""

from math import comb

import numpy as np
import pandas as pd
import pytest
from lcd_core import InputError
from lcd_moa import classification_metrics, confusion_table, cross_validate, mcnemar_exact
from lcd_moa.classification import top_k_hits
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, top_k_accuracy_score
from statsmodels.stats.contingency_tables import mcnemar

# --------------------------------------------------------------------- lcd-moa 0.1.0 kernels (oracle)


def _v010_labels(values):
    return np.array(
        [None if (v is None or (isinstance(v, float) and np.isnan(v))) else str(v) for v in values],
        dtype=object,
    )


def v010_f1_scores(y_true, y_pred):
    t, p = _v010_labels(y_true), _v010_labels(y_pred)
    classes = sorted(set(t.tolist()) - {None})
    f1 = np.zeros(len(classes))
    support = np.zeros(len(classes))
    for i, c in enumerate(classes):
        tp = np.sum((t == c) & (p == c))
        n_pred = np.sum(p == c)
        n_true = np.sum(t == c)
        support[i] = n_true
        if tp > 0:
            precision, recall = tp / n_pred, tp / n_true
            f1[i] = 2 * precision * recall / (precision + recall)
    if not classes:
        return float("nan"), float("nan")
    return float(np.sum(f1 * support) / support.sum()), float(f1.mean())


def v010_top_k_correct(proba, true_index, k):
    proba = np.asarray(proba, dtype=np.float64)
    true_index = np.asarray(true_index)
    ok = (true_index >= 0) & np.isfinite(proba).all(axis=1)
    out = np.zeros(len(true_index), dtype=bool)
    rows = np.flatnonzero(ok)
    if rows.size:
        p_true = proba[rows, true_index[rows]]
        n_greater = (proba[rows] > p_true[:, None]).sum(axis=1)
        out[rows] = n_greater < k
    return out


def v010_confusion_table(y_true, y_pred, labels=None):
    t, p = _v010_labels(y_true), _v010_labels(y_pred)
    p = np.array(["(none)" if v is None else v for v in p], dtype=object)
    rows = list(labels) if labels is not None else sorted(set(t.tolist()) - {None})
    cols = rows + sorted(set(p.tolist()) - set(rows))
    table = pd.DataFrame(0, index=pd.Index(rows, name="true"), columns=pd.Index(cols, name="predicted"))
    for a, b in zip(t, p, strict=True):
        if a in table.index:
            table.loc[a, b] += 1
    return table


# ------------------------------------------------------------------------------------------ the tests


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


@pytest.mark.parametrize("seed", range(6))
def test_f1_and_confusion_equal_the_010_kernels(seed):
    """Random labels with missing predictions, control predictions and classes never predicted."""
    rng = np.random.default_rng(seed)
    classes = ["MoA0", "MoA1", "MoA2", "MoA3", "MoA4"][: 2 + seed % 4]
    n = int(rng.integers(5, 80))
    y_true = rng.choice(classes, n).astype(object)
    y_pred = np.where(rng.random(n) < 0.5, y_true, rng.choice([*classes, "DMSO", None], n)).astype(object)
    got = classification_metrics(y_true, y_pred)
    wf1, mf1 = v010_f1_scores(y_true, y_pred)
    assert got["f1_weighted"] == pytest.approx(wf1, rel=1e-12)
    assert got["f1_macro"] == pytest.approx(mf1, rel=1e-12)
    assert got["accuracy"] == pytest.approx(np.mean(_v010_labels(y_true) == _v010_labels(y_pred)), rel=1e-12)
    for labels in (None, classes, [*classes, "DMSO"]):
        pd.testing.assert_frame_equal(
            confusion_table(y_true, y_pred, labels),
            v010_confusion_table(y_true, y_pred, labels),
            check_dtype=False,
        )


def test_top_k_matches_sklearn_and_survives_absent_classes():
    rng = np.random.default_rng(2)
    proba = rng.random((40, 6))
    proba /= proba.sum(axis=1, keepdims=True)
    y = rng.integers(0, 6, 40)
    y[y == 5] = 4  # class 5 never occurs as a true label
    for k in (1, 3):
        ours = top_k_hits(proba, y, k).mean()
        assert ours == pytest.approx(top_k_accuracy_score(y, proba, k=k, labels=np.arange(6)))
        assert (top_k_hits(proba, y, k) == v010_top_k_correct(proba, y, k)).all()
    classes = list("abcdef")
    got = classification_metrics(
        np.array(classes)[y], np.array(classes)[proba.argmax(1)], proba, classes=classes, top_k=3
    )
    assert got["top3_accuracy"] == pytest.approx(top_k_accuracy_score(y, proba, k=3, labels=np.arange(6)))


def test_top_k_nan_row_and_unknown_label_are_misses():
    proba = np.array([[0.5, 0.5], [np.nan, np.nan], [0.9, 0.1]])
    assert top_k_hits(proba, np.array([0, 0, -1]), 1).tolist() == [True, False, False]


def test_top_k_true_class_at_probability_zero_is_a_miss_whatever_the_class_names():
    """A class no probe of the compound had (probability exactly 0) is never in its top k. 0.1.0 counted
    it a hit when fewer than k classes were above 0; sklearn's answer depends on the class names."""
    proba = np.array([[1.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0], [0.6, 0.4, 0.0, 0.0, 0.0]])
    true = np.array([4, 0, 1])
    assert top_k_hits(proba, true, 3).tolist() == [False, False, True]
    assert v010_top_k_correct(proba, true, 3).tolist() == [True, True, True]  # the 0.1.0 rule
    # the same rows with the class order reversed: our answer does not move
    assert top_k_hits(proba[:, ::-1], 4 - true, 3).tolist() == [False, False, True]
    # even with fewer classes than k, a class at probability 0 is not a hit
    assert top_k_hits(np.array([[1.0, 0.0]]), np.array([1]), 3).tolist() == [False]


def test_confusion_matches_sklearn():
    rng = np.random.default_rng(3)
    labels = ["x", "y", "z"]
    t, p = rng.choice(labels, 50), rng.choice(labels, 50)
    assert (confusion_table(t, p, labels).to_numpy() == confusion_matrix(t, p, labels=labels)).all()


@pytest.mark.parametrize("weights", ["equal", "wells", "accuracy"])
def test_metrics_table_equals_the_010_kernels_end_to_end(screen, activity, weights):
    """Every metrics row of a cross-validation, recomputed from its predictions with 0.1.0's kernels."""
    adata = screen(n_moa=4, n_per_moa=5, effect=1.2, seed=30)
    result = cross_validate(adata, activity(adata, 3.0), probe={"weights": weights}, seed=0)
    assert result.metrics["accuracy"].between(0.2, 0.99).any()  # not trivially perfect
    for _, row in result.metrics.iterrows():
        pred = result.predictions[result.predictions["method"] == row["method"]]
        pred = pred[pred["predicted"].notna()]
        classes = [c[2:] for c in pred.columns if c.startswith("p_")]
        wf1, mf1 = v010_f1_scores(pred["moa"], pred["predicted"])
        assert row["f1_weighted"] == pytest.approx(wf1, rel=1e-12)
        assert row["f1_macro"] == pytest.approx(mf1, rel=1e-12)
        true_index = np.array([classes.index(m) for m in pred["moa"]])
        proba = pred[[f"p_{c}" for c in classes]].to_numpy(float)
        assert row["top3_accuracy"] == pytest.approx(
            v010_top_k_correct(proba, true_index, 3).mean(), rel=1e-12
        )
    conf = result.confusion()
    final = result.predictions[result.predictions["method"] == result.final_method]
    pd.testing.assert_frame_equal(
        conf, v010_confusion_table(final["moa"], final["predicted"], list(conf.index)), check_dtype=False
    )


@pytest.mark.parametrize(("only_a", "only_b"), [(9, 2), (2, 9), (5, 5), (0, 7), (13, 4), (0, 0), (30, 8)])
def test_mcnemar_exact_matches_statsmodels_and_closed_form(only_a, only_b):
    both, neither = 20, 6
    a = np.array([True] * both + [True] * only_a + [False] * only_b + [False] * neither)
    b = np.array([True] * both + [False] * only_a + [True] * only_b + [False] * neither)
    n = only_a + only_b
    # two-sided exact McNemar: 2 * P(X <= min(b, c)) for X ~ Binomial(n, 1/2), capped at 1
    expected = min(1.0, 2 * sum(comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2**n)
    got = mcnemar_exact(a, b)
    assert (got.both, got.only_a, got.only_b, got.neither) == (both, only_a, only_b, neither)
    assert got.p_value == pytest.approx(expected, rel=1e-12)
    table = got.table().to_numpy()
    assert table.tolist() == [[both, only_a], [only_b, neither]]
    assert got.p_value == pytest.approx(mcnemar(table, exact=True).pvalue, rel=1e-12)


@pytest.mark.parametrize(("only_a", "only_b"), [(9, 2), (2, 9), (5, 5), (0, 7), (13, 4), (1, 0), (30, 8)])
def test_mcnemar_chi2_with_continuity_correction_matches_statsmodels(only_a, only_b):
    both, neither = 11, 3
    a = np.array([True] * both + [True] * only_a + [False] * only_b + [False] * neither)
    b = np.array([True] * both + [False] * only_a + [True] * only_b + [False] * neither)
    got = mcnemar_exact(a, b)
    ref = mcnemar(got.table().to_numpy(), exact=False, correction=True)
    assert got.chi2 == pytest.approx(ref.statistic, rel=1e-12)
    assert got.p_value_chi2 == pytest.approx(ref.pvalue, rel=1e-12)
    # closed form, written out: (|b - c| - 1)^2 / (b + c)
    assert got.chi2 == pytest.approx((abs(only_a - only_b) - 1) ** 2 / (only_a + only_b), rel=1e-12)


def test_mcnemar_chi2_undefined_without_discordant_pairs():
    got = mcnemar_exact([True, False, True], [True, False, True])
    assert got.p_value == 1.0
    assert np.isnan(got.chi2) and np.isnan(got.p_value_chi2)


def test_mcnemar_hand_table():
    # 9 vs 2 discordant pairs: p = 2 * (C(11,0) + C(11,1) + C(11,2)) / 2**11 = 134 / 2048
    a = [True] * 9 + [False] * 2
    b = [False] * 9 + [True] * 2
    assert mcnemar_exact(a, b).p_value == pytest.approx(134 / 2048, rel=1e-12)
    assert mcnemar_exact([True, False], [True, False]).p_value == 1.0
    with pytest.raises(InputError, match="equal lengths"):
        mcnemar_exact([True], [True, False])
