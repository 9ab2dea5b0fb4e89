"""Harmony integration (Korsunsky et al. 2019, Nat Methods 16:1289) through harmonypy.

harmonypy (GPL-3.0) is called, never copied. Its ``run_harmony`` accepts cells × dims or dims × cells and
guesses which from the shape, and releases ≥ 2 return ``Z_corr`` as cells × dims where older ones returned
dims × cells (which is why scanpy's ``harmony_integrate`` breaks). This wrapper removes both guesses: it
always passes dims × cells (unambiguous, since the second axis must equal the number of cells) and
orients the result by its shape, or, when there are as many dims as cells, by matching ``Z_orig``
against the input.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from lcd_norm._data import InputError, as_key_list, check_keys, feature_source, get_features, jsonable


def _oriented(result: np.ndarray, reference: np.ndarray, original, what: str) -> np.ndarray:
    """Return harmonypy's ``result`` as cells × dims.

    When cells ≠ dims the shape decides. When they are equal, ``original()`` (harmonypy's ``Z_orig``,
    fetched only then because copying it out of the C++ object costs as much as copying the result)
    must equal the input on up to 1,000 evenly spaced rows in one orientation.
    """
    n, d = reference.shape
    result = np.asarray(result)
    if n != d:
        if result.shape == (n, d):
            return np.ascontiguousarray(result)
        if result.shape == (d, n):
            return np.ascontiguousarray(result.T)
    elif result.shape == (n, n):
        orig = np.asarray(original())
        rows = np.unique(np.linspace(0, n - 1, min(n, 1000)).astype(int))
        expected = reference[rows]
        tol = 1e-6 * (1 + np.abs(expected).max())
        if np.allclose(orig[rows], expected, rtol=1e-5, atol=tol):
            return np.ascontiguousarray(result)
        if np.allclose(orig[:, rows].T, expected, rtol=1e-5, atol=tol):
            return np.ascontiguousarray(result.T)
    raise RuntimeError(
        f"harmonypy returned {what} with shape {result.shape}, which matches neither cells × dims "
        f"({n}, {d}) nor its transpose for this input; this harmonypy version is not supported"
    )


def run_harmony_matrix(
    X: np.ndarray,
    obs: pd.DataFrame,
    keys: Sequence[str],
    *,
    theta: float | Sequence[float] = 2.0,
    nclust: int | None = None,
    max_iter: int = 10,
    seed: int = 0,
    sigma: float = 0.1,
    n_threads: int = 0,
    **harmony_kwargs,
) -> np.ndarray:
    """Harmony on a cells × dims float matrix; returns the corrected matrix, cells × dims, float64."""
    import harmonypy

    keys = as_key_list(keys)
    meta = pd.DataFrame({k: obs[k].astype(str).to_numpy() for k in keys})
    for k in keys:
        if meta[k].nunique() < 2:
            raise InputError(
                f"Harmony key {k!r} has a single level ({meta[k].iloc[0]!r}): nothing to integrate; drop it from keys"
            )
    # harmonypy copies its input to float64 itself: converting here too would add a full copy
    data = np.asarray(X)
    theta_arg = list(theta) if isinstance(theta, Sequence) else float(theta)
    log = logging.getLogger("harmonypy")
    previous = log.level
    log.setLevel(logging.WARNING)  # harmonypy logs every iteration at INFO through its own handler
    try:
        with contextlib.redirect_stdout(None):
            ho = harmonypy.run_harmony(
                data.T,
                meta,
                keys,
                theta=theta_arg,
                nclust=nclust,
                max_iter_harmony=max_iter,
                sigma=sigma,
                random_state=seed,
                verbose=False,
                ncores=n_threads,
                **harmony_kwargs,
            )
    finally:
        log.setLevel(previous)
    return _oriented(ho.Z_corr, data, lambda: ho.Z_orig, "Z_corr")


def harmony(
    adata: AnnData,
    keys: str | Sequence[str] = ("replica", "fov"),
    *,
    theta: float | Sequence[float] = 2.0,
    nclust: int | None = None,
    max_iter: int = 10,
    seed: int = 0,
    sigma: float = 0.1,
    layer: str | None = None,
    use_rep: str | None = None,
    key_added: str = "X_harmony",
    n_threads: int = 0,
    copy: bool = False,
    **harmony_kwargs,
) -> AnnData | None:
    """Remove the effects of the batch columns ``keys`` with Harmony.

    Parameters
    ----------
    adata
        Profiles or embeddings; features from ``X``, ``layers[layer]`` or ``obsm[use_rep]`` (Harmony
        works in any space; on many raw features, pass a PCA via ``use_rep``).
    keys
        Batch columns, integrated jointly (e.g. experimental replica and field of view). Each must have
        at least two levels.
    theta
        Diversity penalty, one value or one per key (harmonypy's ``theta``); higher = stronger mixing.
    nclust
        Number of soft clusters; default harmonypy's ``min(n/30, 100)``.
    max_iter
        Maximum Harmony iterations (``max_iter_harmony``).
    seed
        Random state of the k-means initialisation; same seed, same result (any thread count).
    sigma
        Soft-clustering bandwidth.
    n_threads
        Threads for harmonypy's C++ backend (0 = its default, one per physical core).
    key_added
        ``obsm`` key receiving the corrected matrix (cells × dims); provenance in ``uns[key_added]``.
    copy
        Return a modified copy instead of changing ``adata``.
    **harmony_kwargs
        Passed to ``harmonypy.run_harmony`` (e.g. ``tau``, ``lamb``, ``max_iter_kmeans``).
    """
    keys = check_keys(adata.obs, keys)
    X = get_features(adata, layer=layer, use_rep=use_rep)
    corrected = run_harmony_matrix(
        X,
        adata.obs,
        keys,
        theta=theta,
        nclust=nclust,
        max_iter=max_iter,
        seed=seed,
        sigma=sigma,
        n_threads=n_threads,
        **harmony_kwargs,
    )
    adata = adata.copy() if copy else adata
    adata.obsm[key_added] = corrected.astype(X.dtype if X.dtype == np.float32 else np.float64, copy=False)
    import harmonypy

    adata.uns[key_added] = {
        "params": jsonable(
            {
                "method": "harmony",
                "keys": keys,
                "theta": theta,
                "nclust": nclust,
                "max_iter": max_iter,
                "seed": seed,
                "sigma": sigma,
                "features": feature_source(layer, use_rep),
                "harmonypy_version": getattr(harmonypy, "__version__", "unknown"),
                **{k: v for k, v in harmony_kwargs.items() if isinstance(v, (int, float, str, bool))},
            }
        )
    }
    return adata if copy else None
