"""Harmony wrapper: orientation against harmonypy called directly, determinism, bad input."""

from __future__ import annotations

import harmonypy
import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from lcd_norm import InputError, harmony
from lcd_norm.harmony import _oriented
from sklearn.metrics import silhouette_score


def _direct(X, obs, keys, seed=0):
    ho = harmonypy.run_harmony(X, obs, keys, random_state=seed, verbose=False, max_iter_harmony=10)
    return np.asarray(ho.Z_corr)


def test_matches_harmonypy_called_directly(profiles):
    harmony(profiles, "replica", fov_key="fov", seed=3)
    expected = _direct(profiles.X, profiles.obs[["replica", "fov"]].astype(str), ["replica", "fov"], seed=3)
    assert expected.shape == profiles.shape  # harmonypy >= 2 returns cells × dims
    np.testing.assert_allclose(profiles.obsm["X_harmony"], expected, rtol=1e-10, atol=1e-10)
    assert profiles.uns["X_harmony"]["params"]["harmony_keys"] == ["replica", "fov"]


def test_square_input_is_not_transposed(profile_factory):
    # as many features as rows: harmonypy cannot tell the axes from the shape; the wrapper must
    adata = profile_factory(
        n_replicas=2,
        plates_per_replica=1,
        n_compounds=1,
        wells_per_compound=2,
        n_dmso=3,
        n_fov=2,
        timepoints=(1, 2),
        n_features=40,
    )
    assert adata.shape == (40, 40)
    harmony(adata, "replica", fov_key=None, nclust=2)
    Z = adata.obsm["X_harmony"]
    # corrected rows stay closest to their own input row (a transpose would scramble this)
    dist = ((Z[:, None, :] - adata.X[None, :, :]) ** 2).sum(-1)
    assert (dist.argmin(axis=1) == np.arange(40)).mean() > 0.9


def test_orientation_helper_reads_old_layout():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(7, 3))
    corrected = X + 1
    unused = lambda: pytest.fail("Z_orig is not needed when the shape decides")  # noqa: E731
    np.testing.assert_array_equal(_oriented(corrected.T, X, unused, "Z"), corrected)  # harmonypy < 2 layout
    np.testing.assert_array_equal(_oriented(corrected, X, unused, "Z"), corrected)
    with pytest.raises(RuntimeError, match="not supported"):
        _oriented(corrected[:5], X, unused, "Z")
    square = rng.normal(size=(4, 4))
    np.testing.assert_array_equal(_oriented(square + 1, square, lambda: square, "Z"), square + 1)
    np.testing.assert_array_equal(_oriented(square.T + 1, square, lambda: square.T, "Z"), square + 1)
    with pytest.raises(RuntimeError, match="not supported"):
        _oriented(square, square, lambda: square + 5, "Z")


def test_seed_determinism_and_batch_mixing(profiles):
    a = harmony(profiles, "replica", fov_key=None, seed=1, copy=True).obsm["X_harmony"]
    b = harmony(profiles, "replica", fov_key=None, seed=1, copy=True).obsm["X_harmony"]
    np.testing.assert_array_equal(a, b)
    one_thread = harmony(profiles, "replica", fov_key=None, seed=1, n_threads=1, copy=True).obsm["X_harmony"]
    np.testing.assert_allclose(one_thread, a, rtol=0, atol=1e-12)  # independent of the thread count
    before = silhouette_score(profiles.X, profiles.obs["replica"])
    after = silhouette_score(a, profiles.obs["replica"])
    assert after < before - 0.1


def test_reads_layer_and_obsm(profiles):
    profiles.layers["scaled"] = profiles.X * 2
    harmony(profiles, "replica", fov_key=None, layer="scaled", key_added="H")
    expected = _direct(profiles.X * 2, profiles.obs[["replica"]].astype(str), ["replica"])
    np.testing.assert_allclose(profiles.obsm["H"], expected, rtol=1e-10, atol=1e-10)
    profiles.obsm["pcs"] = profiles.X[:, :6]
    harmony(profiles, "replica", fov_key=None, use_rep="pcs", key_added="H2")
    assert profiles.obsm["H2"].shape == (profiles.n_obs, 6)


def test_bad_input(profiles):
    with pytest.raises(InputError, match="'batch' not found"):
        harmony(profiles, "replica", fov_key="batch")
    profiles.obs["one"] = "x"
    with pytest.raises(InputError, match="'one' has a single level"):
        harmony(profiles, "replica", fov_key="one")
    with pytest.raises(InputError, match="layer 'nope' not found"):
        harmony(profiles, "replica", layer="nope")
    X = profiles.X.copy()
    X[3, 3] = np.nan
    profiles.X = X
    with pytest.raises(InputError, match=r"1 NaN/inf values in 1 rows \(first: '3'\)"):
        harmony(profiles, "replica")
    assert isinstance(profiles.obs, pd.DataFrame)


def test_mad_harmony_fov_is_mad_then_harmony_on_replica_and_fov(profiles):
    from lcd_norm import mad_harmony_fov, mad_robustize

    mad_harmony_fov(profiles, seed=2)
    mad_robustize(profiles, ("plate", "timepoint"))
    expected = _direct(
        profiles.obsm["X_mad"], profiles.obs[["replica", "fov"]].astype(str), ["replica", "fov"], seed=2
    )
    np.testing.assert_allclose(profiles.obsm["X_mad_harmony_fov"], expected, rtol=1e-10, atol=1e-10)
    params = profiles.uns["X_mad_harmony_fov"]["params"]
    assert params["harmony_keys"] == ["replica", "fov"] and params["measurement_keys"] == [
        "plate",
        "timepoint",
    ]
    mad_harmony_fov(profiles, fov_key=None, key_added="replica_only")
    assert profiles.uns["replica_only"]["params"]["harmony_keys"] == ["replica"]
    with pytest.raises(InputError, match="'fov' not found"):
        mad_harmony_fov(AnnData(profiles.X, obs=profiles.obs.drop(columns="fov")))
