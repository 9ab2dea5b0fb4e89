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
from lcd_core import InputError, as_list, check_keys, get_rep, record_params, rep_name, source_of


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


def check_harmony_options(
    *, theta: float | Sequence[float], nclust: int | None, max_iter: int, sigma: float, n_obs: int
) -> None:
    """Refuse Harmony options outside their meaning, naming the option (one line).

    Parameters
    ----------
    theta
        Diversity penalty (>= 0, one value or one per key).
    nclust
        Soft clusters (between 2 and the number of rows), or ``None``.
    max_iter
        Harmony iterations (>= 1).
    sigma
        Soft-clustering bandwidth (> 0).
    n_obs
        Number of rows.
    """
    thetas = list(theta) if isinstance(theta, Sequence) and not isinstance(theta, str) else [theta]
    if not all(isinstance(t, int | float) and np.isfinite(t) and t >= 0 for t in thetas):
        raise InputError(f"theta must be a number >= 0 (or one per key), got {theta!r}")
    if nclust is not None and not 2 <= nclust <= n_obs:
        raise InputError(f"nclust must be between 2 and the number of rows ({n_obs}), got {nclust}")
    if max_iter < 1:
        raise InputError(f"max_iter must be >= 1, got {max_iter}")
    if not (np.isfinite(sigma) and sigma > 0):
        raise InputError(f"sigma must be > 0, got {sigma}")


def check_magnitude(X: np.ndarray, row_ids: Sequence, source: str) -> None:
    """Refuse rows whose squared norm overflows float64 (Harmony normalizes rows by it).

    Parameters
    ----------
    X
        cells × dims, finite.
    row_ids
        Row names, for the message.
    source
        Named in the message.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        sq = np.einsum("ij,ij->i", X, X, dtype=np.float64)
    bad = ~np.isfinite(sq)
    if bad.any():
        first = ", ".join(repr(str(row_ids[i])) for i in np.flatnonzero(bad)[:3])
        big = float(np.abs(np.asarray(X)[bad]).max())
        raise InputError(
            f"{source}: {int(bad.sum())} rows hold values too large for Harmony (|x| up to {big:.3g}; "
            f"their squared norm overflows float64; first: {first}); rescale or drop them"
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
    source: str = "profiles",
    **harmony_kwargs,
) -> np.ndarray:
    """Harmony on a cells × dims float matrix; returns the corrected matrix, cells × dims, float64.

    Options and values harmonypy cannot work with are refused here, naming them: out-of-range options
    were accepted silently (``theta=-1``, ``max_iter=0``), and rows whose squared norm overflows
    float64 (values near 1e300) crashed harmonypy's C++ backend with a segmentation fault.
    """
    import harmonypy

    check_harmony_options(theta=theta, nclust=nclust, max_iter=max_iter, sigma=sigma, n_obs=len(obs))
    check_magnitude(X, obs.index, source)
    keys = as_list(keys)
    meta = pd.DataFrame({k: obs[k].astype(str).to_numpy() for k in keys})
    for k in keys:
        if meta[k].nunique() < 2:
            raise InputError(
                f"Harmony key {k!r} has a single level ({meta[k].iloc[0]!r}): nothing to integrate; leave it out (fov_key=None when it is the FOV column)"
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
    replica_key: str = "replica",
    *,
    fov_key: str | None = "fov",
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
    """Remove the effects of the experimental replica and the field of view with Harmony.

    Parameters
    ----------
    adata
        Profiles or embeddings; features from ``X``, ``layers[layer]`` or ``obsm[use_rep]`` (Harmony
        works in any space; on many raw features, pass a PCA via ``use_rep``).
    replica_key
        ``obs`` column of the experimental replica (the strongest batch level).
    fov_key
        ``obs`` column of the field of view, integrated jointly with the replica (position effects
        within the well); ``None``: the replica only (well-level data). Each column needs at least
        two levels.
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
    layer, use_rep
        Read features from ``layers[layer]`` or ``obsm[use_rep]`` instead of ``X``.
    key_added
        ``obsm`` key receiving the corrected matrix (cells × dims); ``uns[key_added]["params"]``.
    n_threads
        Threads for harmonypy's C++ backend (0 = its default, one per physical core).
    copy
        Return a modified copy instead of changing ``adata``.
    **harmony_kwargs
        Passed to ``harmonypy.run_harmony`` (e.g. ``tau``, ``lamb``, ``max_iter_kmeans``).

    Returns
    -------
    anndata.AnnData or None
        The modified copy when ``copy=True``, else None.
    """
    keys = [replica_key] if fov_key is None else [replica_key, fov_key]
    keys = check_keys(adata.obs, keys, source=source_of(adata))
    X = get_rep(adata, layer=layer, use_rep=use_rep, dtype=None)
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
        source=source_of(adata),
        **harmony_kwargs,
    )
    adata = adata.copy() if copy else adata
    adata.obsm[key_added] = corrected.astype(X.dtype if X.dtype == np.float32 else np.float64, copy=False)
    import harmonypy

    params = {
        "method": "harmony",
        "replica_key": replica_key,
        "fov_key": fov_key,
        "harmony_keys": keys,
        "theta": theta,
        "nclust": nclust,
        "max_iter": max_iter,
        "seed": seed,
        "sigma": sigma,
        "features": rep_name(layer=layer, use_rep=use_rep),
        "harmonypy_version": getattr(harmonypy, "__version__", "unknown"),
        **{k: v for k, v in harmony_kwargs.items() if isinstance(v, int | float | str | bool)},
    }
    record_params(adata, key_added, params)
    return adata if copy else None
