"""MAD + Harmony/FOV: the LCD paper's normalization (MAD per measurement, then Harmony on replica × FOV)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from anndata import AnnData
from lcd_core import (
    DEFAULT_CONTROL,
    MEASUREMENT_KEYS,
    check_keys,
    get_rep,
    record_params,
    rep_name,
    source_of,
)

from lcd_norm.harmony import check_harmony_options, run_harmony_matrix
from lcd_norm.mad import feature_names, robustized_kept_features


def mad_harmony_fov(
    adata: AnnData,
    *,
    measurement_keys: str | Sequence[str] = MEASUREMENT_KEYS,
    replica_key: str = "replica",
    fov_key: str | None = "fov",
    control: str = DEFAULT_CONTROL,
    eps: float = 1e-18,
    raw_mad: bool = False,
    theta: float | Sequence[float] = 2.0,
    nclust: int | None = None,
    max_iter: int = 10,
    seed: int = 0,
    layer: str | None = None,
    use_rep: str | None = None,
    key_added: str = "X_mad_harmony_fov",
    n_threads: int = 0,
    copy: bool = False,
) -> AnnData | None:
    """MAD-robustize each measurement against its controls, then Harmony on replica and field of view.

    1. Per measurement group (``measurement_keys``: a plate imaged at one timepoint),
       ``(x − median_ctrl) / (1.4826·MAD_ctrl + eps)`` as in :func:`lcd_norm.mad_robustize`; features
       with zero control MAD in any group are left out (warned, listed in ``uns``).
    2. The robustized profiles of all measurements together go through Harmony with the batch keys
       ``(replica_key, fov_key)``: experimental replica (strongest batch level) and field-of-view index
       (position effects within the well), as in the LCD paper.

    Parameters
    ----------
    adata
        Profiles at tile or FOV level (the FOV key must exist); features from ``X``, ``layers[layer]``
        or ``obsm[use_rep]``.
    measurement_keys, control, eps, raw_mad
        As in :func:`lcd_norm.mad_robustize`.
    replica_key, fov_key
        Harmony batch columns; ``fov_key=None`` runs Harmony on the replica only.
    theta, nclust, max_iter, seed, n_threads
        As in :func:`lcd_norm.harmony`.
    layer, use_rep
        Read features from ``layers[layer]`` or ``obsm[use_rep]`` instead of ``X``.
    key_added
        ``obsm`` key receiving the corrected matrix; ``uns[key_added]`` holds ``params`` and
        ``zero_mad_features`` (left out before Harmony).
    copy
        Return a modified copy instead of changing ``adata``.

    Returns
    -------
    anndata.AnnData or None
        The modified copy when ``copy=True``, else None.
    """
    source = source_of(adata)
    check_harmony_options(theta=theta, nclust=nclust, max_iter=max_iter, sigma=0.1, n_obs=adata.n_obs)
    keys = [replica_key] if fov_key is None else [replica_key, fov_key]
    measurement = check_keys(adata.obs, measurement_keys, source=source)
    check_keys(adata.obs, keys, source=source)
    X = get_rep(adata, layer=layer, use_rep=use_rep, dtype=None)
    robust, zero_names = robustized_kept_features(
        X,
        adata.obs,
        measurement,
        control,
        feature_names(adata, X.shape[1], use_rep),
        eps=eps,
        raw_mad=raw_mad,
        source=source,
    )
    corrected = run_harmony_matrix(
        robust,
        adata.obs,
        keys,
        theta=theta,
        nclust=nclust,
        max_iter=max_iter,
        seed=seed,
        n_threads=n_threads,
        source=source,
    )
    adata = adata.copy() if copy else adata
    adata.obsm[key_added] = corrected.astype(X.dtype if X.dtype == np.float32 else np.float64, copy=False)
    params = {
        "method": "mad_harmony_fov",
        "measurement_keys": measurement,
        "replica_key": replica_key,
        "fov_key": fov_key,
        "harmony_keys": keys,
        "control": control,
        "eps": eps,
        "raw_mad": raw_mad,
        "theta": theta,
        "nclust": nclust,
        "max_iter": max_iter,
        "seed": seed,
        "features": rep_name(layer=layer, use_rep=use_rep),
    }
    record_params(adata, key_added, params, zero_mad_features=zero_names)
    return adata if copy else None
