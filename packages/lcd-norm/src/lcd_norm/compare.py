"""Run every normalization on one input and score each: the LCD paper's Table 1 analog."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from lcd_core import DEFAULT_CONTROL, MEASUREMENT_KEYS, REP_KEYS, InputError, get_rep, track

from lcd_norm.dmso_map import DMSO_MAP_COLUMNS, dmso_map
from lcd_norm.evaluate import EVALUATION_COLUMNS, evaluate
from lcd_norm.fastmnn import fastmnn
from lcd_norm.harmony import harmony
from lcd_norm.mad import mad_robustize
from lcd_norm.mad_harmony_fov import mad_harmony_fov

#: obsm key each method's representation is stored under (lcd_core.REP_KEYS; ``None``: the input)
OBSM_KEYS = REP_KEYS
METHODS = tuple(OBSM_KEYS)


def compare(
    adata: AnnData,
    *,
    methods: Sequence[str] = METHODS,
    replica_key: str = "replica",
    compound_key: str = "compound",
    measurement_keys: Sequence[str] = MEASUREMENT_KEYS,
    fov_key: str | None = "fov",
    control: str = DEFAULT_CONTROL,
    layer: str | None = None,
    theta: float = 2.0,
    k: int = 20,
    n_components: int = 50,
    seed: int = 0,
    map_cross_replica: bool = True,
    null_size: int = 1000,
    sample_size: int = 5000,
    paper_criterion: bool = True,
    plate_key: str = "plate",
    well_key: str = "well",
    timepoint_key: str = "timepoint",
    dose_key: str = "dose",
    n_draws: int = 200,
    progress: bool = False,
    copy: bool = False,
) -> pd.DataFrame:
    """Normalize ``adata`` with each method and evaluate every result the same way.

    Methods: ``none`` (features as given), ``mad`` (:func:`~lcd_norm.mad_robustize` per
    ``measurement_keys``), ``harmony`` (:func:`~lcd_norm.harmony` on ``replica_key`` alone),
    ``fastmnn`` (on ``replica_key``), ``mad_harmony_fov`` (MAD then Harmony on ``replica_key`` ×
    ``fov_key``). Each result is scored by :func:`~lcd_norm.evaluate` (batch silhouette on
    ``replica_key``, label silhouette and replicate mAP on ``compound_key``) and, by default, by the LCD
    paper's criterion (:func:`~lcd_norm.dmso_map`: mean AP against DMSO per dose × timepoint of wells,
    averaged), which is the one Table 1 reports.

    A method that cannot run on this input (e.g. no FOV column, a group without controls) gets
    ``status="failed"`` and the error in ``reason``; the others still run.

    Parameters
    ----------
    adata
        Profiles; features from ``X`` or ``layers[layer]``.
    methods
        Subset of :data:`METHODS`, in the order to run.
    replica_key, compound_key
        Batch (experimental replica) and biological label columns.
    measurement_keys, fov_key, control
        As in :func:`~lcd_norm.mad_harmony_fov`.
    layer
        Read features from this layer instead of ``X``.
    theta
        Harmony's diversity penalty.
    k, n_components
        fastMNN's neighbours and principal components.
    seed
        Seed of Harmony, the silhouette subsample and the mAP null.
    map_cross_replica, null_size, sample_size
        As in :func:`~lcd_norm.evaluate`.
    paper_criterion
        Also score each method by :func:`~lcd_norm.dmso_map` (columns ``map_dmso`` ...); a method it
        cannot score (no dose or timepoint column, no replica with positives) gets
        ``map_dmso_status="failed"`` and the reason.
    plate_key, well_key, timepoint_key, dose_key, n_draws
        Columns and mAP-ES draws of the paper's criterion.
    progress
        Show a progress bar over the methods.
    copy
        Work on a copy: ``adata`` is left unchanged. By default each representation is stored in
        ``adata.obsm[OBSM_KEYS[method]]`` with its parameters in ``adata.uns[OBSM_KEYS[method]]``.

    Returns
    -------
    pandas.DataFrame
        One row per method: ``method``, ``status``, ``seconds`` (normalization time), the columns of
        :func:`~lcd_norm.evaluate`, ``reason``, and with ``paper_criterion`` ``map_dmso``,
        ``map_dmso_sd``, ``map_dmso_conditions``, ``map_dmso_status``, ``map_dmso_reason``.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise InputError(f"unknown method {unknown[0]!r}; choose from {list(METHODS)}")
    X = get_rep(adata, layer=layer, dtype=None)
    target = adata.copy() if copy else adata
    options = {
        "mad": lambda a: mad_robustize(a, measurement_keys, control),
        "harmony": lambda a: harmony(a, replica_key, fov_key=None, theta=theta, seed=seed),
        "fastmnn": lambda a: fastmnn(a, replica_key, k=k, n_components=n_components),
        "mad_harmony_fov": lambda a: mad_harmony_fov(
            a,
            measurement_keys=measurement_keys,
            replica_key=replica_key,
            fov_key=fov_key,
            control=control,
            theta=theta,
            seed=seed,
        ),
    }
    rows = []
    for method in track(list(methods), "normalize + evaluate", enabled=progress, unit="methods"):
        key = OBSM_KEYS[method]
        start = time.perf_counter()
        if key is not None:
            # each method reads the same features from X of a light view and writes its own key there
            work = AnnData(X=X, obs=adata.obs, var=adata.var, uns={"lcd": adata.uns.get("lcd", {})})
            try:
                options[method](work)
            except InputError as exc:
                rows.append(
                    {
                        "method": method,
                        "status": "failed",
                        "seconds": np.nan,
                        "reason": str(exc),
                        "map_dmso_status": "failed",
                        "map_dmso_reason": "the normalization failed",
                        "map_dmso_conditions": 0,
                    }
                )
                continue
            target.obsm[key] = work.obsm[key]
            target.uns[key] = work.uns[key]
        seconds = time.perf_counter() - start
        scores = evaluate(
            target,
            replica_key,
            compound_key,
            layer=layer if key is None else None,
            use_rep=key,
            map_cross_replica=map_cross_replica,
            null_size=null_size,
            sample_size=sample_size,
            seed=seed,
        )
        if paper_criterion:
            criterion, _ = dmso_map(
                target,
                use_rep=key,
                layer=layer if key is None else None,
                compound_key=compound_key,
                replica_key=replica_key,
                plate_key=plate_key,
                well_key=well_key,
                fov_key=fov_key or "fov",
                timepoint_key=timepoint_key,
                dose_key=dose_key,
                control=control,
                n_draws=n_draws,
                seed=seed,
            )
            scores.update(criterion)
        rows.append({"method": method, "status": "ok", "seconds": seconds, **scores})
    columns = ["method", "status", "seconds", *EVALUATION_COLUMNS]
    if paper_criterion:
        columns += list(DMSO_MAP_COLUMNS)
    return pd.DataFrame(rows).reindex(columns=columns)
