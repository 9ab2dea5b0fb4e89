"""Run every normalization on one input and score each: the LCD paper's Table 1 analog."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from lcd_norm._data import DEFAULT_CONTROL, InputError, check_keys, get_features
from lcd_norm._progress import progress_bar
from lcd_norm.evaluate import EVALUATION_COLUMNS, evaluate
from lcd_norm.fastmnn import fastmnn_matrix
from lcd_norm.harmony import run_harmony_matrix
from lcd_norm.mad import robustized_kept_features
from lcd_norm.mad_harmony_fov import mad_harmony_fov

METHODS = ("none", "mad", "harmony", "fastmnn", "mad_harmony_fov")
#: obsm key each method's representation is stored under by :func:`compare`
OBSM_KEYS = {
    "none": None,
    "mad": "X_mad",
    "harmony": "X_harmony",
    "fastmnn": "X_mnn",
    "mad_harmony_fov": "X_mad_harmony_fov",
}


def compare(
    adata: AnnData,
    *,
    methods: Sequence[str] = METHODS,
    batch_key: str = "replica",
    label_key: str = "compound",
    measurement_keys: Sequence[str] = ("plate", "timepoint"),
    fov_key: str | None = "fov",
    control: str = DEFAULT_CONTROL,
    layer: str | None = None,
    theta: float = 2.0,
    k: int = 20,
    n_components: int = 50,
    seed: int = 0,
    map_cross_batch: bool = True,
    null_size: int = 1000,
    sample_size: int = 5000,
    progress: bool = False,
) -> pd.DataFrame:
    """Normalize ``adata`` with each method and evaluate every result the same way.

    Methods: ``none`` (features as given), ``mad`` (:func:`~lcd_norm.mad_robustize` per
    ``measurement_keys``), ``harmony`` (Harmony on ``batch_key``), ``fastmnn`` (on ``batch_key``),
    ``mad_harmony_fov`` (MAD then Harmony on ``batch_key`` × ``fov_key``). Each result is scored by
    :func:`~lcd_norm.evaluate` (batch silhouette on ``batch_key``, label silhouette and replicate mAP
    on ``label_key``). The representations are stored in ``adata.obsm`` (:data:`OBSM_KEYS`).

    A method that cannot run on this input (e.g. no FOV column, a group without controls) gets
    ``status="failed"`` and the error in ``reason``; the others still run.

    Returns
    -------
    One row per method: ``method``, ``status``, ``seconds`` (normalization time), the columns of
    :func:`~lcd_norm.evaluate`, ``reason``.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise InputError(f"unknown method {unknown[0]!r}; choose from {list(METHODS)}")
    X = get_features(adata, layer=layer)
    rows = []
    with progress_bar("normalize + evaluate", len(methods), progress) as advance:
        for method in methods:
            start = time.perf_counter()
            try:
                rep = _normalize(
                    adata,
                    X,
                    method,
                    batch_key=batch_key,
                    measurement_keys=measurement_keys,
                    fov_key=fov_key,
                    control=control,
                    theta=theta,
                    k=k,
                    n_components=n_components,
                    seed=seed,
                )
            except InputError as exc:
                rows.append({"method": method, "status": "failed", "seconds": np.nan, "reason": str(exc)})
                advance()
                continue
            seconds = time.perf_counter() - start
            key = OBSM_KEYS[method]
            if key is not None:
                adata.obsm[key] = rep
            scores = evaluate(
                adata,
                batch_key,
                label_key,
                layer=layer if key is None else None,
                use_rep=key,
                map_cross_batch=map_cross_batch,
                null_size=null_size,
                sample_size=sample_size,
                seed=seed,
            )
            rows.append({"method": method, "status": "ok", "seconds": seconds, **scores})
            advance()
    columns = ["method", "status", "seconds", *EVALUATION_COLUMNS]
    return pd.DataFrame(rows).reindex(columns=columns)


def _normalize(
    adata, X, method, *, batch_key, measurement_keys, fov_key, control, theta, k, n_components, seed
):
    """The representation one method produces (cells × dims)."""
    if method == "none":
        return X
    if method == "mad":
        return robustized_kept_features(X, adata.obs, measurement_keys, control, adata.var_names)[0]
    if method == "harmony":
        return run_harmony_matrix(X, adata.obs, [batch_key], theta=theta, seed=seed)
    if method == "fastmnn":
        check_keys(adata.obs, batch_key)
        return fastmnn_matrix(X, adata.obs[batch_key].to_numpy(), k=k, n_components=n_components)[0]
    tmp = AnnData(X=X, obs=adata.obs, var=adata.var)
    mad_harmony_fov(
        tmp,
        measurement_keys=measurement_keys,
        replica_key=batch_key,
        fov_key=fov_key,
        control=control,
        theta=theta,
        seed=seed,
    )
    return tmp.obsm["X_mad_harmony_fov"]
