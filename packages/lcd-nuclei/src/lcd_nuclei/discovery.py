"""Object discovery kernels on ViT attention and keys (pure numpy).

Background discovery follows FOUND (Simeoni et al., CVPR 2023, "Unsupervised object localization:
observing the background to discover objects"): the patch the CLS token attends to least is a
background *seed*; every patch whose key is similar to the seed's (cosine > tau) is background, the
rest is foreground. Heads are weighted by the sparsity of their CLS attention (FOUND weighs heads by
attention sparsity so heads that focus on objects dominate); keys are L2-normalized per head, scaled
by the head weight and L2-normalized again. Only the seed's similarity row is computed (N values per
tile, never an N x N matrix).

FOUND works on whole images, which always show some background. Our tiles are small (a model's
``img_size``), and a tile that lies inside a cell has no background at all: its least-attended
patch is cytoplasm, and the cell is then called background. :func:`field_prototype` therefore
pools the per-tile seeds of a field and keeps the one most similar to all the others (the cosine
medoid of the seeds, computed as ``S @ mean(S)``, never a seeds x seeds matrix) as the field's
background prototype. Most tiles of a field do show background, so the medoid is background even
when some tiles' seeds are not.

Nuclei are found inside the foreground by a second step (see :func:`nucleus_patches`): k-means
on the foreground patches' keys, the nucleus cluster being the one whose pixels are darkest (or
brightest) relative to the surrounding cell. Rationale: in transmitted light nuclei are the most
contrasted compact structure inside cells, so the key space of a self-supervised ViT separates
nucleus patches from cytoplasm patches, and the stain-free polarity (dark nuclei in brightfield,
bright cell bodies in phase contrast) names the cluster without labels. More than two clusters
let dark cytoplasm form its own cluster instead of joining the nuclei.
"""

from __future__ import annotations

import numpy as np
from lcd_core import InputError

__all__ = [
    "background_from_seed",
    "field_prototype",
    "head_weights",
    "kmeans",
    "nucleus_patches",
    "seed_features",
]


def head_weights(cls_attention: np.ndarray) -> np.ndarray:
    """Per-tile head weights (B, heads) from the sparsity of each head's CLS->patch attention.

    Sparsity = 1 - (entropy of the attention distribution over patches) / log(N): 0 for a uniform
    head, 1 for a head attending to a single patch. Weights are normalized to sum to 1 per tile
    (uniform when every head is uniform).

    Parameters
    ----------
    cls_attention
        (B, heads, N) last-block CLS->patch attention.
    """
    a = np.asarray(cls_attention, dtype=np.float64)
    if a.ndim != 3:
        raise InputError(f"cls_attention must be (B, heads, N), got shape {a.shape}")
    n = a.shape[-1]
    p = a / np.maximum(a.sum(-1, keepdims=True), 1e-30)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(p > 0, p * np.log(p), 0.0).sum(-1)
    sparsity = np.clip(1.0 - entropy / np.log(max(n, 2)), 0.0, None)
    total = sparsity.sum(-1, keepdims=True)
    uniform = np.full_like(sparsity, 1.0 / a.shape[1])
    return np.where(total > 0, sparsity / np.where(total > 0, total, 1.0), uniform)


def seed_features(cls_attention: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Head-weighted key features and the background seed of each tile.

    Parameters
    ----------
    cls_attention
        (B, heads, N) last-block CLS->patch attention.
    keys
        (B, heads, N, head_dim) last-block keys.

    Returns
    -------
    features, seeds, weights
        ``features`` (B, N, heads * head_dim) keys L2-normalized per head, scaled by the head
        weight and L2-normalized again (float64); ``seeds`` (B,) index of the least-attended patch
        under the head-weighted attention; ``weights`` (B, heads) from :func:`head_weights`.
    """
    keys = np.asarray(keys, dtype=np.float64)
    if keys.ndim != 4 or keys.shape[:3] != np.shape(cls_attention):
        raise InputError(f"keys {keys.shape} do not match cls_attention {np.shape(cls_attention)}")
    w = head_weights(cls_attention)
    attention = (w[:, :, None] * np.asarray(cls_attention)).sum(1)  # (B, N)
    seeds = attention.argmin(1)
    k = keys / np.maximum(np.linalg.norm(keys, axis=-1, keepdims=True), 1e-12)
    k = k * w[:, :, None, None]
    b, h, n, d = k.shape
    feats = k.transpose(0, 2, 1, 3).reshape(b, n, h * d)
    feats /= np.maximum(np.linalg.norm(feats, axis=-1, keepdims=True), 1e-12)
    return feats, seeds, w


def background_from_seed(
    cls_attention: np.ndarray, keys: np.ndarray, *, tau: float = 0.3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FOUND background discovery per tile (each tile's own seed).

    Parameters
    ----------
    cls_attention
        (B, heads, N) last-block CLS->patch attention.
    keys
        (B, heads, N, head_dim) last-block keys.
    tau
        Cosine-similarity threshold to the seed above which a patch is background.

    Returns
    -------
    background, features, weights
        ``background`` (B, N) bool; ``features`` (B, N, heads * head_dim) head-weighted,
        L2-normalized keys (float32); ``weights`` (B, heads).
    """
    feats, seeds, w = seed_features(cls_attention, keys)
    b = len(feats)
    seed_feat = feats[np.arange(b), seeds]  # (B, D): the only similarity row formed
    similarity = np.einsum("bnd,bd->bn", feats, seed_feat)
    return similarity > tau, feats.astype(np.float32), w


def field_prototype(seed_feats: np.ndarray) -> np.ndarray:
    """Background prototype of a field: the cosine medoid of its tiles' seed features.

    ``seed_feats`` (T, D) are unit vectors, so the mean similarity of seed i to all seeds is
    ``seed_i . mean(seeds)``; the seed maximizing it is returned (D,). O(T D) time and memory.

    Parameters
    ----------
    seed_feats
        (T, D) unit-norm seed features, one per tile.
    """
    s = np.asarray(seed_feats, dtype=np.float64)
    if s.ndim != 2 or len(s) == 0:
        raise InputError(f"seed_feats must be a non-empty (T, D) array, got shape {s.shape}")
    return s[int(np.argmax(s @ s.mean(0)))]


def kmeans(x: np.ndarray, k: int, *, seed: int = 0, iterations: int = 50) -> np.ndarray:
    """k-means labels (n,) of the rows of ``x``: scikit-learn's ``KMeans`` (Lloyd, k-means++, one init).

    Deterministic for a seed. Until 0.3.0 this was a hand-written Lloyd loop with plain k-means++;
    scikit-learn's greedy k-means++ (2 + ln k candidates per centre) reaches the same partition on
    separated clusters and an equal or lower inertia on average (tests/nuclei/test_discovery.py),
    and its compiled Lloyd steps are faster. With fewer rows than clusters every row is cluster 0.

    Parameters
    ----------
    x
        ``(n, D)`` rows to cluster.
    k
        Number of clusters.
    seed
        ``random_state`` of the initialization.
    iterations
        Largest number of Lloyd iterations.
    """
    import warnings

    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    x = np.asarray(x, dtype=np.float64)
    if len(x) < k:
        return np.zeros(len(x), dtype=np.int64)
    model = KMeans(
        n_clusters=int(k),
        init="k-means++",
        n_init=1,
        max_iter=int(iterations),
        random_state=seed,
        algorithm="lloyd",
    )
    with warnings.catch_warnings():  # fewer distinct rows than clusters: some clusters stay empty, as before
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit_predict(x).astype(np.int64)


def nucleus_patches(
    features: np.ndarray,
    darkness: np.ndarray,
    *,
    n_clusters: int = 4,
    seed: int = 0,
) -> np.ndarray:
    """Pick nucleus patches among foreground patches: k-means on keys, the darkest cluster wins.

    Parameters
    ----------
    features
        (n, D) keys of the foreground patches (from :func:`background_from_seed`).
    darkness
        (n,) how nucleus-like each patch's pixels are, e.g. the surrounding cell's mean grey minus
        the patch's mean grey (dark nuclei) or its negative (bright nuclei).
    n_clusters
        Clusters; the one with the highest mean ``darkness`` is the nucleus cluster.
    seed
        k-means seed.

    Returns
    -------
    numpy.ndarray
        (n,) bool, True for nucleus patches.
    """
    features, darkness = np.asarray(features), np.asarray(darkness, dtype=np.float64)
    if len(features) == 0:
        return np.zeros(0, dtype=bool)
    labels = kmeans(features, n_clusters, seed=seed)
    means = np.array(
        [darkness[labels == j].mean() if (labels == j).any() else -np.inf for j in range(n_clusters)]
    )
    return labels == int(means.argmax())
