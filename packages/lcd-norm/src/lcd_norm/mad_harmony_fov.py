"""MAD + Harmony/FOV: the LCD paper's normalization (MAD per measurement, then Harmony on replica × FOV)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from anndata import AnnData

from lcd_norm._data import DEFAULT_CONTROL, check_keys, feature_source, get_features, jsonable
from lcd_norm.harmony import run_harmony_matrix
from lcd_norm.mad import robustized_kept_features


def mad_harmony_fov(
    adata: AnnData,
    *,
    measurement_keys: str | Sequence[str] = ("plate", "timepoint"),
    replica_key: str = "replica",
    fov_key: str = "fov",
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
        As ``by``, ``control``, ``eps``, ``raw_mad`` of :func:`lcd_norm.mad_robustize`.
    replica_key, fov_key
        Harmony batch columns; ``fov_key=None`` runs Harmony on the replica only.
    theta, nclust, max_iter, seed, n_threads
        As in :func:`lcd_norm.harmony`.
    key_added
        ``obsm`` key receiving the corrected matrix; provenance in ``uns[key_added]``.
    copy
        Return a modified copy instead of changing ``adata``.
    """
    keys = [replica_key] if fov_key is None else [replica_key, fov_key]
    measurement = check_keys(adata.obs, measurement_keys)
    check_keys(adata.obs, keys)
    X = get_features(adata, layer=layer, use_rep=use_rep)
    names = adata.var_names if use_rep is None else [f"{use_rep}_{i}" for i in range(X.shape[1])]
    robust, zero_names = robustized_kept_features(
        X, adata.obs, measurement, control, names, eps=eps, raw_mad=raw_mad
    )
    corrected = run_harmony_matrix(
        robust, adata.obs, keys, theta=theta, nclust=nclust, max_iter=max_iter, seed=seed, n_threads=n_threads
    )
    adata = adata.copy() if copy else adata
    adata.obsm[key_added] = corrected.astype(X.dtype if X.dtype == np.float32 else np.float64, copy=False)
    adata.uns[key_added] = {
        "params": jsonable(
            {
                "method": "mad_harmony_fov",
                "measurement_keys": measurement,
                "harmony_keys": keys,
                "control": control,
                "eps": eps,
                "raw_mad": raw_mad,
                "theta": theta,
                "nclust": nclust,
                "max_iter": max_iter,
                "seed": seed,
                "features": feature_source(layer, use_rep),
            }
        ),
        "zero_mad_features": zero_names,
    }
    return adata if copy else None
