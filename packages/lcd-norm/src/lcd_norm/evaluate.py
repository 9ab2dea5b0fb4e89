"""How well a representation removes batch effects and keeps biology: silhouettes and replicate mAP."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from lcd_norm._data import check_keys, feature_source, get_features


def _silhouette(X: np.ndarray, labels: pd.Series, sample_size: int, seed: int) -> tuple[float, str]:
    """Cosine silhouette of ``labels`` (rows with a missing label left out); NaN and a reason if undefined."""
    from sklearn.metrics import silhouette_score

    keep = labels.notna().to_numpy()
    values = labels[keep].astype(str).to_numpy()
    n_levels = len(np.unique(values))
    if n_levels < 2 or n_levels >= keep.sum():
        return float("nan"), f"needs 2 to n-1 distinct labels; found {n_levels} among {int(keep.sum())} rows"
    rows = X[keep]
    n = len(rows)
    if n > sample_size:
        # a seeded subsample keeps the O(n²) silhouette affordable and reproducible
        pick = np.random.default_rng(seed).choice(n, size=sample_size, replace=False)
        rows, values = rows[pick], values[pick]
        if len(np.unique(values)) < 2:
            return float("nan"), "subsample holds a single label"
    return float(silhouette_score(rows, values, metric="cosine")), ""


def replicate_map(
    X: np.ndarray, obs: pd.DataFrame, label_key: str, batch_key: str | None
) -> tuple[float, str, str]:
    """Mean over labels of replicate-retrieval mAP via lcd-metrics: ``(value, status, reason)``.

    Positives share ``label_key`` (and come from another ``batch_key`` level when given: cross-batch
    retrieval, what batch correction should improve); negatives have another label. Rows with a missing
    label are left out. Without lcd-metrics installed the value is NaN with status ``"not computed"``.
    """
    try:
        from lcd_metrics import mean_average_precision
    except ImportError:
        return float("nan"), "not computed", "lcd-metrics is not installed (pip install lcd-metrics)"
    keep = obs[label_key].notna().to_numpy()
    meta = obs.loc[keep, [label_key] + ([batch_key] if batch_key else [])].reset_index(drop=True)
    for col in meta.columns:
        meta[col] = meta[col].astype(str)
    try:
        result = mean_average_precision(
            X[keep],
            meta,
            pos_sameby=[label_key],
            pos_diffby=[batch_key] if batch_key else [],
            neg_sameby=[],
            neg_diffby=[label_key],
        )
    except Exception as exc:  # lcd-metrics refuses undefined cases with a message: keep it as the reason
        return float("nan"), "failed", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    table = result if isinstance(result, pd.DataFrame) else getattr(result, "groups", None)
    if table is None or "mean_average_precision" not in table:
        return float("nan"), "failed", "unexpected result from lcd_metrics.mean_average_precision"
    values = pd.to_numeric(table["mean_average_precision"], errors="coerce").dropna()
    if values.empty:
        return float("nan"), "failed", "no label had a retrievable replicate"
    return float(values.mean()), "ok", ""


def evaluate(
    adata: AnnData,
    batch_key: str = "replica",
    label_key: str = "compound",
    *,
    layer: str | None = None,
    use_rep: str | None = None,
    map_cross_batch: bool = True,
    sample_size: int = 5000,
    seed: int = 0,
) -> dict:
    """Score a representation: batch mixing and biological signal.

    Parameters
    ----------
    adata
        Profiles; the representation is ``X``, ``layers[layer]`` or ``obsm[use_rep]``.
    batch_key
        Batch column (e.g. replica). ``batch_silhouette``: cosine silhouette of the batch labels —
        lower is better (batches mixed).
    label_key
        Biological label (e.g. compound or MoA). ``label_silhouette``: higher is better.
    map_cross_batch
        Replicate-retrieval mAP with positives only from other batches (default) or from any batch.
    sample_size, seed
        Silhouettes use a seeded subsample of at most ``sample_size`` rows.

    Returns
    -------
    dict with ``representation``, ``n_rows``, ``n_dims``, ``batch_silhouette``, ``label_silhouette``,
    ``map`` (mean over labels of the replicate-retrieval mAP; lcd-metrics needed), ``map_status``,
    ``reason`` (why a value is NaN, "" otherwise).
    """
    check_keys(adata.obs, batch_key)
    if label_key not in adata.obs.columns:
        check_keys(adata.obs, label_key)
    X = get_features(adata, layer=layer, use_rep=use_rep)
    batch_sil, batch_reason = _silhouette(X, adata.obs[batch_key], sample_size, seed)
    label_sil, label_reason = _silhouette(X, adata.obs[label_key], sample_size, seed)
    map_value, map_status, map_reason = replicate_map(
        X, adata.obs, label_key, batch_key if map_cross_batch else None
    )
    reasons = [
        f"batch silhouette: {batch_reason}" if batch_reason else "",
        f"label silhouette: {label_reason}" if label_reason else "",
        f"mAP: {map_reason}" if map_reason else "",
    ]
    return {
        "representation": feature_source(layer, use_rep),
        "n_rows": int(X.shape[0]),
        "n_dims": int(X.shape[1]),
        "batch_silhouette": batch_sil,
        "label_silhouette": label_sil,
        "map": map_value,
        "map_status": map_status,
        "reason": "; ".join(r for r in reasons if r),
    }
