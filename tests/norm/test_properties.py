"""Properties that must hold for any input: row order does not matter, groups are independent."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from hypothesis import given, settings
from hypothesis import strategies as st
from lcd_norm import aggregate, mad_robustize


@st.composite
def small_design(draw):
    n_groups = draw(st.integers(1, 3))
    per_group = draw(st.integers(3, 8))
    n_features = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = n_groups * per_group
    group = np.repeat([f"g{i}" for i in range(n_groups)], per_group)
    control = np.tile(np.arange(per_group) < 2, n_groups)  # two controls per group at least
    obs = pd.DataFrame(
        {
            "plate": group,
            "timepoint": 1,
            "compound": np.where(control, "DMSO", "x"),
            "well": rng.integers(0, 3, n),
        }
    )
    obs.index = obs.index.astype(str)
    X = rng.normal(size=(n, n_features)) * rng.uniform(0.5, 5, n_features) + rng.normal(0, 10, n_features)
    return AnnData(X=X, obs=obs), rng.permutation(n)


@settings(max_examples=30, deadline=None)
@given(small_design())
def test_mad_is_row_order_invariant(case):
    adata, perm = case
    out = mad_robustize(adata, zero_mad="keep", eps=1e-9, copy=True)
    shuffled = AnnData(X=adata.X[perm], obs=adata.obs.iloc[perm])
    mad_robustize(shuffled, zero_mad="keep", eps=1e-9)
    np.testing.assert_allclose(shuffled.obsm["X_mad"], out.obsm["X_mad"][perm], rtol=1e-12, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(small_design())
def test_aggregate_is_row_order_invariant(case):
    adata, perm = case
    a = aggregate(adata, ["plate", "well"], func="mean")
    b = aggregate(AnnData(X=adata.X[perm], obs=adata.obs.iloc[perm]), ["plate", "well"], func="mean")
    np.testing.assert_allclose(a.X, b.X, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(a.obs["n_members"], b.obs["n_members"])
    assert a.obs["n_members"].sum() == adata.n_obs
