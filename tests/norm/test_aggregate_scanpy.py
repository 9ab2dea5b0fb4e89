"""lcd_norm.aggregate against scanpy.get.aggregate (issue #14: scanpy where it does the job).

scanpy computes the same group medians and means; lcd_norm.aggregate is kept because it also carries
the obs columns constant within groups, ``n_members`` and its parameters in ``uns``, and because
lcd-norm would otherwise depend on scanpy (numba, llvmlite, umap-learn, pynndescent) for one
groupby (benchmarks/aggregate_vs_scanpy.py has the speed comparison; lcd-norm's README the numbers).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from lcd_norm import aggregate

sc = pytest.importorskip("scanpy")  # not in the lcd-norm-alone environment of .ci/run


def _scanpy(adata: AnnData, keys: list[str], func: str) -> pd.DataFrame:
    obs = adata.obs[keys].astype(str).astype("category")
    out = sc.get.aggregate(AnnData(X=np.asarray(adata.X), obs=obs), keys, func)
    index = pd.MultiIndex.from_frame(out.obs[keys].astype(str))
    return pd.DataFrame(np.asarray(out.layers[func]), index=index)


@pytest.mark.parametrize("func", ["median", "mean"])
def test_fov_to_well_equals_scanpy(profiles, func):
    keys = ["plate", "well", "timepoint"]
    ours = aggregate(profiles, "well", func=func)
    theirs = _scanpy(profiles, keys, func)
    index = pd.MultiIndex.from_frame(ours.obs[keys].astype(str))
    assert len(theirs) == ours.n_obs
    np.testing.assert_allclose(ours.X, theirs.loc[index].to_numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("func", ["median", "mean"])
def test_lincs_wells_by_moa_equals_scanpy(lincs_table, func):
    """Real profiles (LINCS A549, 384 wells): groups of 1 to dozens of wells, odd and even sizes."""
    from lcd_core import table_to_anndata

    adata = table_to_anndata(lincs_table)
    keys = ["Metadata_moa"]
    adata.obs[keys[0]] = adata.obs[keys[0]].fillna("none")
    ours = aggregate(adata, keys, func=func)
    theirs = _scanpy(adata, keys, func)
    index = pd.MultiIndex.from_frame(ours.obs[keys].astype(str))
    sizes = ours.obs["n_members"]
    assert ours.n_obs == len(theirs) > 20 and (sizes % 2 == 0).any() and (sizes > 2).any()
    np.testing.assert_allclose(ours.X, theirs.loc[index].to_numpy(), rtol=1e-6, atol=1e-9)
