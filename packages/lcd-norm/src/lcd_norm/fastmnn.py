"""fastMNN batch correction on AnnData (orchestration; kernels in ``_mnn_kernels``)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from anndata import AnnData
from lcd_core import InputError, check_keys, get_rep, record_params, rep_name, source_of, track

from lcd_norm import _mnn_kernels as K
from lcd_norm.harmony import check_magnitude


def fastmnn_matrix(
    X: np.ndarray,
    batches: np.ndarray,
    *,
    k: int = 20,
    n_components: int = 50,
    ndist: float = 3.0,
    cos_norm: bool = True,
    merge_order: Sequence | None = None,
    progress: bool = False,
    source: str = "profiles",
) -> tuple[np.ndarray, dict]:
    """Run fastMNN on a cells × features matrix with one batch label per row.

    Returns the corrected cells × components matrix and a record of the merges (parameters as in
    :func:`fastmnn`).
    """
    levels, codes = np.unique(np.asarray(batches).astype(str), return_inverse=True)
    if len(levels) < 2:
        raise InputError(f"fastMNN needs at least two batches; found one ({levels[0]!r})")
    if merge_order is None:
        order = list(range(len(levels)))
    else:
        names = [str(b) for b in merge_order]
        unknown = [b for b in names if b not in set(levels)]
        if unknown or len(set(names)) != len(levels):
            raise InputError(
                f"merge_order must list every batch once; batches are {list(levels)}, got {names}"
            )
        order = [int(np.flatnonzero(levels == b)[0]) for b in names]
    if k < 1:
        raise InputError(f"k must be >= 1, not {k}")
    if n_components < 1:
        raise InputError(f"n_components must be >= 1, not {n_components}")
    if not (np.isfinite(ndist) and ndist > 0):
        raise InputError(f"ndist must be > 0, not {ndist}")
    X = np.asarray(X, dtype=np.float64)
    if cos_norm:
        zero = np.flatnonzero(~np.any(X != 0, axis=1))
        if len(zero):
            raise InputError(
                f"{source}: {len(zero)} profiles have zero norm and cannot be cosine-normalised "
                f"(first rows: {zero[:5].tolist()}); drop them or pass cos_norm=False"
            )
        X = K.cosine_normalize(X)
    else:
        check_magnitude(X, np.arange(len(X)), source)
    n_components = int(min(n_components, X.shape[1], X.shape[0]))
    scores, _, _ = K.multibatch_pca(X, codes, n_components)

    rows = [np.flatnonzero(codes == b) for b in order]
    merged_rows = rows[0]
    merged = scores[merged_rows]
    record = {"merge_order": [str(levels[b]) for b in order], "n_mnn_pairs": [], "uncorrected_batches": []}
    merges = list(zip(order[1:], rows[1:], strict=True))
    for b, cur_rows in track(merges, "fastMNN merges", enabled=progress, unit="batches"):
        current = scores[cur_rows]
        ref_idx, cur_idx = K.mutual_pairs(merged, current, k)
        record["n_mnn_pairs"].append(len(ref_idx))
        if len(ref_idx) == 0:
            warnings.warn(
                f"fastMNN: batch {levels[b]!r} has no mutual nearest neighbours with the merged reference; "
                "it was appended uncorrected",
                UserWarning,
                stacklevel=2,
            )
            record["uncorrected_batches"].append(str(levels[b]))
        else:
            # the average batch vector: direction of the mean correction over all MNN pairs
            _, vectors = K.average_corrections(merged, current, ref_idx, cur_idx)
            batch_vector = vectors.mean(axis=0)
            norm = np.linalg.norm(batch_vector)
            if norm > 0:
                # within-batch spread along the batch vector is batch-specific (Haghverdi et al.):
                # remove it from both sides before computing the final corrections
                direction = batch_vector / norm
                merged = K.center_along(merged, direction)
                current = K.center_along(current, direction)
            anchors, vectors = K.average_corrections(merged, current, ref_idx, cur_idx)
            current = current + K.tricube_smoothed_corrections(current, current[anchors], vectors, k, ndist)
        merged = np.vstack([merged, current])
        merged_rows = np.concatenate([merged_rows, cur_rows])
    out = np.empty_like(merged)
    out[merged_rows] = merged
    return out, record


def fastmnn(
    adata: AnnData,
    replica_key: str = "replica",
    *,
    k: int = 20,
    n_components: int = 50,
    ndist: float = 3.0,
    cos_norm: bool = True,
    merge_order: Sequence[str] | None = None,
    layer: str | None = None,
    use_rep: str | None = None,
    key_added: str = "X_mnn",
    progress: bool = False,
    copy: bool = False,
) -> AnnData | None:
    """Correct batch effects with fast mutual nearest neighbours (fastMNN).

    Steps (Haghverdi et al. 2018, Nat Biotech 36:421; batchelor's fastMNN description): cosine-normalise
    profiles; PCA in which each batch weighs the same; merge batches one at a time into a growing
    reference: find mutual nearest-neighbour pairs, remove each side's variation along the average batch
    vector, and shift every cell of the new batch by the tricube-weighted mean correction vector of its
    nearest paired cells. Deterministic (exact neighbours, no random initialisation).

    Parameters
    ----------
    adata
        Profiles; features from ``X``, ``layers[layer]`` or ``obsm[use_rep]``.
    replica_key
        ``obs`` column of the batch to correct (the experimental replica); at least two levels.
    k
        Neighbours for MNN pairs and for smoothing the correction vectors.
    n_components
        Principal components of the multi-batch PCA (capped at the number of features).
    ndist
        Smoothing bandwidth as a multiple of the median distance to the k nearest paired cells.
    cos_norm
        Cosine-normalise profiles first (recommended; zero-norm rows are an error).
    merge_order
        Replica names in merge order (the first is the initial reference); default sorted names.
    layer, use_rep
        Read features from ``layers[layer]`` or ``obsm[use_rep]`` instead of ``X``.
    key_added
        ``obsm`` key receiving the corrected cells × components matrix; ``uns[key_added]`` holds
        ``params``, the merge order and the MNN pairs found per merge.
    progress
        Show a rich progress bar over the merges.
    copy
        Return a modified copy instead of changing ``adata``.

    Returns
    -------
    anndata.AnnData or None
        The modified copy when ``copy=True``, else None.
    """
    check_keys(adata.obs, [replica_key], source=source_of(adata))
    X = get_rep(adata, layer=layer, use_rep=use_rep, dtype=None)
    corrected, record = fastmnn_matrix(
        X,
        adata.obs[replica_key].to_numpy(),
        k=k,
        n_components=n_components,
        ndist=ndist,
        cos_norm=cos_norm,
        merge_order=merge_order,
        progress=progress,
        source=source_of(adata),
    )
    adata = adata.copy() if copy else adata
    adata.obsm[key_added] = corrected
    params = {
        "method": "fastmnn",
        "replica_key": replica_key,
        "k": k,
        "n_components": corrected.shape[1],
        "ndist": ndist,
        "cos_norm": cos_norm,
        "features": rep_name(layer=layer, use_rep=use_rep),
    }
    record_params(adata, key_added, params, **record)
    return adata if copy else None
