"""Kernels against independent oracles: scikit-learn AP, brute-force enumeration, scipy's BH."""

import itertools

import numpy as np
import pytest
from lcd_metrics import kernels
from lcd_metrics.mean_ap import expected_random_ap
from scipy.stats import false_discovery_control
from sklearn.metrics import average_precision_score


def naive_ap_with_ties(pos, neg):
    """Rank by decreasing similarity, positives ahead of negatives on ties, then precision at each hit."""
    items = [(s, 0) for s in pos] + [(s, 1) for s in neg]  # 0 sorts before 1 on equal similarity
    items.sort(key=lambda t: (-t[0], t[1]))
    hits, total = 0, 0.0
    for rank, (_, is_neg) in enumerate(items, start=1):
        if not is_neg:
            hits += 1
            total += hits / rank
    return total / len(pos)


@pytest.mark.parametrize("seed", range(5))
def test_ap_matches_sklearn_on_tie_free_scores(seed):
    rng = np.random.default_rng(seed)
    n_q, k, m = 40, 5, 30
    pos = rng.normal(0.3, 1, size=(n_q, k))
    neg = rng.normal(0.0, 1, size=(n_q, m))
    ours = kernels.ap_from_similarities(pos, neg)
    for i in range(n_q):
        y = np.r_[np.ones(k), np.zeros(m)]
        s = np.r_[pos[i], neg[i]]
        assert ours[i] == pytest.approx(average_precision_score(y, s), abs=1e-12)
        order = np.argsort(-s)
        assert kernels.ap_from_ranked_labels(y[order]) == pytest.approx(ours[i], abs=1e-12)


def test_ties_rank_positives_first_and_padding_is_ignored():
    rng = np.random.default_rng(1)
    pos = rng.integers(0, 4, size=(200, 4)).astype(float)  # coarse values: many ties
    neg = rng.integers(0, 4, size=(200, 9)).astype(float)
    pos[::3, 3] = np.nan  # padding of queries with fewer positives
    neg[::2, 7:] = -np.inf
    ours = kernels.ap_from_similarities(pos, neg)
    np.testing.assert_allclose(ours, kernels._ap_by_sorting(pos, neg), atol=1e-12)  # both paths agree
    for i in range(200):
        p = pos[i][~np.isnan(pos[i])]
        n = neg[i][np.isfinite(neg[i])]
        assert ours[i] == pytest.approx(naive_ap_with_ties(p, n), abs=1e-12)


def test_no_positive_gives_nan():
    assert np.isnan(kernels.ap_from_similarities(np.full((1, 2), np.nan), np.zeros((1, 3)))[0])
    assert np.isnan(kernels.ap_from_ranked_labels([0, 0]))


@pytest.mark.parametrize(("k", "total"), [(1, 4), (2, 5), (3, 7), (4, 4)])
def test_null_ap_matches_exhaustive_enumeration(k, total):
    """Mean and support of the permutation null equal those of all C(total, k) rankings."""
    all_aps = [
        np.mean(np.arange(1, k + 1) / (np.array(c) + 1.0)) for c in itertools.combinations(range(total), k)
    ]
    null = kernels.null_ap(k, total, 20000, np.random.default_rng(0))
    assert null.mean() == pytest.approx(np.mean(all_aps), abs=0.01)
    assert set(np.round(np.unique(null), 10)) <= set(np.round(all_aps, 10))
    assert expected_random_ap(np.array([k]), np.array([total]))[0] == pytest.approx(
        np.mean(all_aps), abs=1e-12
    )


def naive_bh(p):
    """Benjamini & Hochberg (1995) by definition: q_(i) = min over j >= i of p_(j) m / j, at most 1."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    q = [0.0] * m
    for rank, i in enumerate(order, start=1):
        q[i] = min(1.0, min(p[order[j - 1]] * m / j for j in range(rank, m + 1)))
    return np.array(q)


def test_bh_qvalues_match_the_definition_and_scipy():
    """0.3.0 computes BH with scipy.stats.false_discovery_control (was hand-written): same numbers."""
    rng = np.random.default_rng(3)
    p = rng.uniform(size=200) ** 3
    p[[5, 9]] = p[3]  # ties
    assert np.allclose(kernels.bh_qvalues(p), naive_bh(list(p)), atol=1e-15)
    assert np.allclose(kernels.bh_qvalues(p), false_discovery_control(p, method="bh"))
    with_nan = np.r_[p[:10], np.nan]
    q = kernels.bh_qvalues(with_nan)
    assert np.isnan(q[-1])
    assert np.allclose(q[:10], naive_bh(list(p[:10])), atol=1e-15)


def test_cohens_d_closed_form():
    # means 2 and 5, both SD 1: d = -3
    assert kernels.cohens_d([1, 2, 3], [4, 5, 6]) == pytest.approx(-3.0)
    # unequal sizes: pooled variance ((2-1)*0.5 + (4-1)*(5/3)) / 4
    a, b = np.array([0.0, 1.0]), np.array([0.0, 1.0, 2.0, 3.0])
    pooled = np.sqrt((1 * 0.5 + 3 * (5 / 3)) / 4)
    assert kernels.cohens_d(a, b) == pytest.approx((0.5 - 1.5) / pooled)
    assert np.isnan(kernels.cohens_d([1.0, 1.0], [1.0, 1.0]))


def test_many_positive_path_matches_naive_ranking():
    """Rows with more than 16 positives take the sort-and-search path; ties and padding included."""
    rng = np.random.default_rng(7)
    pos = rng.integers(-3, 4, size=(50, 25)) / 3.0
    neg = rng.integers(-3, 4, size=(50, 40)) / 3.0
    pos[::4, 20:] = np.nan
    neg[::3, 30:] = -np.inf
    ours = kernels.ap_from_similarities(pos, neg)
    np.testing.assert_allclose(ours, kernels._ap_by_counting(pos, neg), atol=1e-12)
    for i in range(50):
        p = pos[i][~np.isnan(pos[i])]
        n = neg[i][np.isfinite(neg[i])]
        assert ours[i] == pytest.approx(naive_ap_with_ties(p, n), abs=1e-12)
