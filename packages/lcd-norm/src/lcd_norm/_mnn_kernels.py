"""Numpy kernels of fast mutual-nearest-neighbour correction (fastMNN).

Written from the published method: Haghverdi, Lun, Morgan & Marioni (2018), "Batch effects in single-cell
RNA-sequencing data are corrected by matching mutual nearest neighbors", Nat Biotech 36:421, and the
fastMNN method description of the batchelor Bioconductor package (Lun 2019): cosine normalisation, a
PCA in which every batch weighs the same, MNN pairs found in that space, removal of the within-batch
variation along the average batch vector, and correction vectors smoothed with a tricube kernel whose
bandwidth is a multiple of the median neighbour distance. No batchelor (GPL) code was used.
"""

from __future__ import annotations

import numpy as np
from lcd_core import blas_threads


def cosine_normalize(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (rows of zero norm are the caller's error to report).

    A row whose squared norm overflows (values near 1e300) or underflows (near 1e-200) is first divided
    by its largest absolute value: its norm was inf (the row became a zero vector, silently) or 0. Only
    such rows are rescaled, so every other row is bit-identical to the plain division.
    """
    X = np.asarray(X, dtype=np.float64)
    with np.errstate(over="ignore"):
        norms = np.linalg.norm(X, axis=1, keepdims=True)
    extreme = (~np.isfinite(norms) | (norms == 0)).ravel()
    if extreme.any():
        peak = np.abs(X[extreme]).max(axis=1, keepdims=True)
        scaled = X[extreme] / np.where(peak > 0, peak, 1.0)
        X = X.copy()
        X[extreme] = scaled
        norms[extreme] = np.linalg.norm(scaled, axis=1, keepdims=True)
    return X / norms


def multibatch_pca(
    X: np.ndarray, batch_codes: np.ndarray, n_components: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA in which each batch contributes equally, whatever its size.

    The centre is the mean of the batch means; the covariance is the average over batches of each
    batch's covariance about that centre. Returns ``(scores, rotation, centre)`` with scores = cells ×
    components. Each component's sign is fixed (largest-magnitude loading positive) for reproducibility.
    """
    n_batches = int(batch_codes.max()) + 1
    d = X.shape[1]
    means = np.stack([X[batch_codes == b].mean(axis=0) for b in range(n_batches)])
    centre = means.mean(axis=0)
    cov = np.zeros((d, d))
    for b in range(n_batches):
        centred = X[batch_codes == b] - centre
        cov += centred.T @ centred / len(centred)
    cov /= n_batches
    # a features × features eigenproblem gains nothing from threads, and multithreaded OpenBLAS on a
    # busy machine can take seconds instead of milliseconds for it
    with blas_threads(1):
        eigvals, eigvecs = np.linalg.eigh(cov)
    top = np.argsort(eigvals)[::-1][:n_components]
    rotation = eigvecs[:, top]
    flip = np.sign(rotation[np.abs(rotation).argmax(axis=0), np.arange(rotation.shape[1])])
    rotation = rotation * np.where(flip == 0, 1.0, flip)
    return (X - centre) @ rotation, rotation, centre


#: Brute-force kNN searches below this many flops (2 x queries x references x dims) run on one thread.
#: Measured 2026-12-02 on the 2-core machine (benchmarks/threads.py, median of 3): 1,344 x 1,344 x 50
#: (1.8e8 flops, the demo's FOVs per replica) took 31 ms on 1 thread / 20 ms on 2 idle, 34 / 53 ms with
#: one other job running; the whole fastMNN (4 x 1,344 FOVs) 0.15 / 0.19 s idle, 0.17 / 0.67 s loaded.
#: 20,000 x 20,000 x 50 (4e10 flops, a paper-scale replica) keeps the default: 3.0 / 1.8 s idle,
#: 3.3 / 3.1 s loaded.
KNN_ONE_THREAD_FLOPS = 4.0e9


def nearest_neighbors(query: np.ndarray, reference: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact Euclidean k nearest rows of ``reference`` for every row of ``query``: (distances, indices)."""
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(reference))
    flops = 2.0 * len(query) * len(reference) * max(1, query.shape[1] if query.ndim == 2 else 1)
    # small searches: thread start-up and contention cost more than the second core gives (above)
    with blas_threads(1 if flops < KNN_ONE_THREAD_FLOPS else None):
        index = NearestNeighbors(n_neighbors=k, algorithm="brute", metric="euclidean").fit(reference)
        dist, idx = index.kneighbors(query)
    return dist, idx


def mutual_pairs(reference: np.ndarray, current: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Mutual nearest-neighbour pairs ``(ref_idx, cur_idx)``: each is among the other's k nearest."""
    n_cur = len(current)
    _, ref_of_cur = nearest_neighbors(current, reference, k)  # for each current cell, reference ids
    # only a reference cell in some current cell's list can be half of a mutual pair, so the reverse
    # search is limited to those (exact, and much less work when the reference is large)
    candidates = np.unique(ref_of_cur)
    _, cur_of_candidate = nearest_neighbors(reference[candidates], current, k)
    # encode (ref, cur) pairs as single integers and intersect the two directed neighbour sets
    from_cur = ref_of_cur.astype(np.int64) * n_cur + np.arange(n_cur)[:, None]
    from_ref = candidates.astype(np.int64)[:, None] * n_cur + cur_of_candidate
    both = np.intersect1d(from_cur.ravel(), from_ref.ravel(), assume_unique=True)
    return both // n_cur, both % n_cur


def average_corrections(
    reference: np.ndarray, current: np.ndarray, ref_idx: np.ndarray, cur_idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each current cell in an MNN pair: mean over its partners of (reference − current).

    Returns ``(cells, vectors)``: the distinct current-cell indices and their averaged correction.
    """
    order = np.argsort(cur_idx, kind="stable")
    cur_sorted = cur_idx[order]
    cells, starts, counts = np.unique(cur_sorted, return_index=True, return_counts=True)
    diffs = reference[ref_idx[order]] - current[cur_sorted]
    sums = np.add.reduceat(diffs, starts, axis=0)
    return cells, sums / counts[:, None]


def center_along(X: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Remove the spread of ``X`` along the unit vector ``direction``, keeping its mean position on it."""
    proj = X @ direction
    return X - np.outer(proj - proj.mean(), direction)


def tricube_smoothed_corrections(
    current: np.ndarray, anchors: np.ndarray, vectors: np.ndarray, k: int, ndist: float
) -> np.ndarray:
    """Correction for every current cell: tricube-weighted mean of the vectors of its k nearest anchors.

    The bandwidth per cell is ``ndist`` × the median distance to those k anchors; anchors beyond it get
    weight 0. Anchors at distance 0 when the bandwidth is 0 get weight 1.
    """
    dist, idx = nearest_neighbors(current, anchors, k)
    bandwidth = ndist * np.median(dist, axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(bandwidth > 0, dist / bandwidth, np.where(dist > 0, 1.0, 0.0))
    weights = (1.0 - np.minimum(rel, 1.0) ** 3) ** 3
    weights /= weights.sum(axis=1, keepdims=True)
    out = np.empty((len(current), vectors.shape[1]))
    step = 8192  # bounds the (rows × k × dims) gather in memory
    for start in range(0, len(current), step):
        block = slice(start, start + step)
        out[block] = np.einsum("nk,nkd->nd", weights[block], vectors[idx[block]])
    return out
