"""Evaluation metrics vs scipy and closed forms."""

import numpy as np
import pytest
from lcd_nuclei.evaluate import count_agreement, foreground_iou, instance_f1, reference_from_stain
from scipy import stats


def test_pearson_and_fisher_ci_match_scipy():
    rng = np.random.default_rng(0)
    ref = rng.uniform(20, 150, 30)
    pred = 0.8 * ref + rng.normal(0, 10, 30) + 5
    out = count_agreement(pred, ref)
    res = stats.pearsonr(pred, ref)
    ci = res.confidence_interval(0.95)  # scipy uses the Fisher transform too
    assert out["pearson_r"] == pytest.approx(res.statistic, abs=1e-12)
    assert out["r_ci_low"] == pytest.approx(ci.low, abs=1e-12)
    assert out["r_ci_high"] == pytest.approx(ci.high, abs=1e-12)
    lin = stats.linregress(ref, pred)
    assert out["slope"] == pytest.approx(lin.slope) and out["intercept"] == pytest.approx(lin.intercept)
    assert out["bias"] == pytest.approx(np.mean(pred - ref))


def test_fisher_ci_equals_the_0_2_formula_and_its_edge_cases():
    """count_agreement's CI is scipy's since 0.3.0; the Fisher formula of 0.2.0, written out here,
    gives the same numbers for n > 3 and |r| < 1. The explained differences: n <= 3 gives [-1, 1]
    (0.2.0: NaN), |r| = 1 gives [r, r] (0.2.0: NaN); constant counts still give NaN, without a warning."""
    import warnings

    rng = np.random.default_rng(5)
    for n, confidence in ((4, 0.95), (8, 0.95), (30, 0.9), (200, 0.99)):
        ref = rng.uniform(0, 100, n)
        pred = ref + rng.normal(0, 20, n)
        out = count_agreement(pred, ref, confidence=confidence)
        r = np.corrcoef(pred, ref)[0, 1]
        half = stats.norm.ppf(0.5 + confidence / 2) / np.sqrt(n - 3)
        assert out["r_ci_low"] == pytest.approx(np.tanh(np.arctanh(r) - half), abs=1e-12)
        assert out["r_ci_high"] == pytest.approx(np.tanh(np.arctanh(r) + half), abs=1e-12)
    three = count_agreement([1.0, 3.0, 2.0], [1.0, 2.0, 3.0])
    assert (three["r_ci_low"], three["r_ci_high"]) == (-1.0, 1.0)
    x = np.arange(5.0)
    perfect = count_agreement(2 * x, x)
    assert perfect["pearson_r"] == pytest.approx(1.0)
    assert perfect["r_ci_low"] == pytest.approx(1.0) and perfect["r_ci_high"] == pytest.approx(1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flat = count_agreement(np.full(5, 3.0), x)
    assert np.isnan(flat["pearson_r"]) and np.isnan(flat["r_ci_low"]) and np.isnan(flat["r_ci_high"])


def test_ccc_closed_forms():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert count_agreement(x, x)["ccc"] == pytest.approx(1.0)
    # y = x + c: CCC = 2 var / (2 var + c^2), var with 1/n
    assert count_agreement(x + 2, x)["ccc"] == pytest.approx(2 * 2.0 / (2 * 2.0 + 4))
    # y = -x: perfectly discordant
    assert count_agreement(-x, x)["ccc"] == pytest.approx(-2 * 2.0 / (2 * 2.0 + 36))


def test_count_agreement_errors():
    with pytest.raises(ValueError, match="at least 2"):
        count_agreement([1], [1])
    with pytest.raises(ValueError, match="NaN"):
        count_agreement([1, np.nan, 3], [1, 2, 3])


def naive_f1(pred, ref, thr=0.5):
    tp = 0
    used = set()
    for p in np.unique(pred[pred > 0]):
        for r in np.unique(ref[ref > 0]):
            a, b = pred == p, ref == r
            iou = (a & b).sum() / (a | b).sum()
            if iou > thr and r not in used:
                tp += 1
                used.add(r)
    n_p, n_r = len(np.unique(pred[pred > 0])), len(np.unique(ref[ref > 0]))
    return 2 * tp / (n_p + n_r)


def test_instance_f1_matches_naive_loop():
    rng = np.random.default_rng(1)
    for _ in range(5):
        ref = np.zeros((40, 40), int)
        pred = np.zeros((40, 40), int)
        for k in range(1, 7):
            y, x = rng.integers(0, 32, 2)
            ref[y : y + 8, x : x + 8] = k
            dy, dx = rng.integers(-4, 5, 2)
            yy, xx = np.clip(y + dy, 0, 32), np.clip(x + dx, 0, 32)
            pred[yy : yy + 8, xx : xx + 8] = 10 * k  # ids need not be consecutive
        assert instance_f1(pred, ref)["f1"] == pytest.approx(naive_f1(pred, ref))


def test_iou_and_empty():
    a = np.zeros((10, 10), bool)
    b = a.copy()
    a[:5] = True
    b[:, :5] = True
    assert foreground_iou(a, b) == pytest.approx(25 / 75)
    assert np.isnan(foreground_iou(np.zeros((3, 3)), np.zeros((3, 3))))
    assert instance_f1(np.zeros((4, 4), int), np.zeros((4, 4), int))["f1"] == 1.0
    with pytest.raises(ValueError, match="shape"):
        foreground_iou(a, b[:5])


def test_reference_from_stain_counts_blobs():
    yy, xx = np.mgrid[:80, :80]
    stain = np.zeros((80, 80))
    for cy, cx in [(20, 20), (20, 60), (60, 40)]:
        stain += 100 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 50)
    assert reference_from_stain(stain).max() == 3
    assert reference_from_stain(np.full((20, 20), 7.0)).max() == 0
