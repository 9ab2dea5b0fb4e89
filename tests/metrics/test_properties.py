"""Hypothesis properties: AP in [0, 1], row-order invariance, agreement with a naive ranking."""

import lcd_metrics as lm
import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from lcd_metrics import kernels

sims = st.floats(-1, 1, allow_nan=False, width=32)


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 4)), elements=sims),
    st.integers(0, 8),
    st.randoms(),
)
def test_ap_in_unit_interval_and_matches_naive(pos, m, rnd):
    neg = np.array(
        [
            [rnd.choice([-1.0, 0.0, 0.5, 1.0, rnd.uniform(-1, 1)]) for _ in range(m)]
            for _ in range(pos.shape[0])
        ]
    ).reshape(pos.shape[0], m)
    ap = kernels.ap_from_similarities(pos, neg)
    assert np.all((ap > 0) & (ap <= 1))
    for i in range(pos.shape[0]):
        labels = np.r_[np.ones(pos.shape[1]), np.zeros(m)]
        scores = np.r_[pos[i], neg[i]]
        order = np.lexsort((1 - labels, -scores))
        assert abs(ap[i] - kernels.ap_from_ranked_labels(labels[order])) < 1e-12


def _frame(seed):
    rng = np.random.default_rng(seed)
    n = 30
    meta = pd.DataFrame(
        {
            "Metadata_cmp": rng.choice(["DMSO", "A", "B", "C", "D"], n),
            "Metadata_plate": rng.choice(["p1", "p2"], n),
        }
    )
    feats = pd.DataFrame(
        rng.integers(-2, 3, size=(n, 4)).astype(float) + 0.01, columns=[f"Cells_{i}" for i in range(4)]
    )
    return pd.concat([meta, feats], axis=1)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.permutations(list(range(30))))
def test_per_profile_ap_is_row_order_invariant(seed, perm):
    df = _frame(seed)
    rules = dict(pos_sameby=["Metadata_cmp"], neg_sameby=["Metadata_plate"], neg_diffby=["Metadata_cmp"])
    a = lm.average_precision(df, **rules)
    b = lm.average_precision(df.iloc[perm], **rules).loc[a.index]
    np.testing.assert_allclose(a["average_precision"], b["average_precision"], equal_nan=True, atol=1e-12)
    np.testing.assert_array_equal(a["n_total_pairs"], b["n_total_pairs"])
    ok = a["average_precision"].dropna()
    assert ((ok >= 0) & (ok <= 1)).all()
    ma = lm.mean_average_precision(a, "Metadata_cmp", null_size=200, seed=seed)
    mb = lm.mean_average_precision(b, "Metadata_cmp", null_size=200, seed=seed)
    pd.testing.assert_frame_equal(ma, mb)
