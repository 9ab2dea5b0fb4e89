"""How well a representation removes batch effects and keeps biology: silhouettes and replicate mAP."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from lcd_core import InputError, check_keys, get_rep, rep_name, source_of

#: keys of the dict :func:`evaluate` returns, in table order
EVALUATION_COLUMNS = (
    "representation",
    "n_rows",
    "n_dims",
    "batch_silhouette",
    "label_silhouette",
    "map",
    "map_fraction_significant",
    "map_status",
    "reason",
)


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
    X: np.ndarray,
    obs: pd.DataFrame,
    compound_key: str,
    replica_key: str | None,
    *,
    null_size: int = 1000,
    seed: int = 0,
) -> dict:
    """Replicate-retrieval mAP via lcd-metrics (copairs call style).

    Positives share ``compound_key`` (and come from another ``replica_key`` level when given:
    cross-replica retrieval, what batch correction should improve); negatives have another label.
    Rows with a missing label are left out. Returns ``map`` (mean over labels of each label's mAP),
    ``map_fraction_significant`` (fraction of labels with BH q < 0.05 against lcd-metrics' permutation
    null), ``map_status`` and ``map_reason``. Without lcd-metrics importable (an install without
    dependencies) the values are NaN with status ``"not computed"``.
    """
    nan = {"map": float("nan"), "map_fraction_significant": float("nan")}
    try:
        from lcd_metrics import average_precision, mean_average_precision
    except ImportError:
        return {
            **nan,
            "map_status": "not computed",
            "map_reason": "lcd-metrics is not installed (pip install lcd-metrics)",
        }
    keep = obs[compound_key].notna().to_numpy()
    meta = obs.loc[keep, [compound_key] + ([replica_key] if replica_key else [])].reset_index(drop=True)
    for col in meta.columns:
        meta[col] = meta[col].astype(str)
    try:
        ap = average_precision(
            meta,
            np.asarray(X[keep], dtype=np.float64),
            pos_sameby=[compound_key],
            pos_diffby=[replica_key] if replica_key else [],
            neg_sameby=[],
            neg_diffby=[compound_key],
        )
        table = mean_average_precision(ap, [compound_key], null_size=null_size, threshold=0.05, seed=seed)
    except InputError as exc:  # lcd-metrics refuses undefined cases with a message: keep it as the reason
        return {**nan, "map_status": "failed", "map_reason": str(exc)}
    values = pd.to_numeric(table["mean_average_precision"], errors="coerce")
    defined = values.notna().to_numpy()
    if not defined.any():
        return {**nan, "map_status": "failed", "map_reason": "no label had a retrievable replicate"}
    significant = table.loc[defined, "below_corrected_p"].astype(bool)
    return {
        "map": float(values[defined].mean()),
        "map_fraction_significant": float(significant.mean()),
        "map_status": "ok",
        "map_reason": "",
    }


def evaluate(
    adata: AnnData,
    replica_key: str = "replica",
    compound_key: str = "compound",
    *,
    layer: str | None = None,
    use_rep: str | None = None,
    map_cross_replica: bool = True,
    null_size: int = 1000,
    sample_size: int = 5000,
    seed: int = 0,
) -> dict:
    """Score a representation: batch mixing and biological signal.

    Parameters
    ----------
    adata
        Profiles; the representation is ``X``, ``layers[layer]`` or ``obsm[use_rep]``.
    replica_key
        Batch column (the experimental replica). ``batch_silhouette``: cosine silhouette of its
        labels — lower is better (replicas mixed).
    compound_key
        Biological label (the compound, or e.g. the MoA). ``label_silhouette``: higher is better.
    layer, use_rep
        Read the representation from ``layers[layer]`` or ``obsm[use_rep]`` instead of ``X``.
    map_cross_replica
        Replicate-retrieval mAP with positives only from other replicas (default) or from any.
    null_size
        Permutations of lcd-metrics' null for ``map_fraction_significant`` (the mAP itself needs none).
    sample_size, seed
        Silhouettes use a seeded subsample of at most ``sample_size`` rows; ``seed`` also seeds the null.

    Returns
    -------
    dict
        ``representation``, ``n_rows``, ``n_dims``, ``batch_silhouette``, ``label_silhouette``,
        ``map`` (mean over labels of the replicate-retrieval mAP), ``map_fraction_significant``,
        ``map_status``, ``reason`` (why a value is NaN, "" otherwise).
    """
    check_keys(adata.obs, [replica_key], source=source_of(adata))
    check_keys(adata.obs, [compound_key], source=source_of(adata), allow_missing=True)
    X = get_rep(adata, layer=layer, use_rep=use_rep, dtype=None)
    batch_sil, batch_reason = _silhouette(X, adata.obs[replica_key], sample_size, seed)
    label_sil, label_reason = _silhouette(X, adata.obs[compound_key], sample_size, seed)
    mapped = replicate_map(
        X, adata.obs, compound_key, replica_key if map_cross_replica else None, null_size=null_size, seed=seed
    )
    reasons = [
        f"batch silhouette: {batch_reason}" if batch_reason else "",
        f"label silhouette: {label_reason}" if label_reason else "",
        f"mAP: {mapped['map_reason']}" if mapped["map_reason"] else "",
    ]
    return {
        "representation": rep_name(layer=layer, use_rep=use_rep),
        "n_rows": int(X.shape[0]),
        "n_dims": int(X.shape[1]),
        "batch_silhouette": batch_sil,
        "label_silhouette": label_sil,
        "map": mapped["map"],
        "map_fraction_significant": mapped["map_fraction_significant"],
        "map_status": mapped["map_status"],
        "reason": "; ".join(r for r in reasons if r),
    }
