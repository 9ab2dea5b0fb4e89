"""Random subsets for the mAP-ES draws: k distinct items out of n, for many draws at once.

Two exact samplers of a uniform k-subset, chosen by size only (so a seed gives the same draws
whatever else is in the screen):

- few candidates (n at most ``_KEYS_MAX_WIDTH`` or k large against n): one random key per candidate
  and the k smallest (``argpartition``); cost draws × n;
- many candidates, few picks (a null's control positives among thousands of controls): Robert
  Floyd's algorithm, k vectorized steps; cost draws × k².
"""

from __future__ import annotations

import hashlib

import numpy as np

_KEYS_MAX_WIDTH = 64


def seed_words(seed: int, *parts: object) -> list[int]:
    """Seed words for :func:`numpy.random.default_rng` from a seed and values naming a stream.

    The values (a compound and its condition) are hashed from their text, so a group's draws depend
    on what the group is, not on its position among other groups.
    """
    text = repr(tuple(p.item() if isinstance(p, np.generic) else p for p in parts)).encode()
    return [int(seed), int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")]


def sample_k(rng: np.random.Generator, n: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per draw ``i``, ``min(k, n[i])`` distinct integers of ``0 .. n[i]-1``, uniformly.

    Parameters
    ----------
    rng
        Generator.
    n
        ``(draws,)`` candidate counts (>= 1).
    k
        Items per draw.

    Returns
    -------
    tuple of numpy.ndarray
        ``(index, valid)``, both ``(draws, k)``; draws with fewer than k candidates take all of them and
        have ``valid`` False in the remaining slots (index 0 there).
    """
    n = np.asarray(n, dtype=np.int64)
    draws = n.size
    width = int(n.max()) if draws else 0
    idx = np.zeros((draws, k), dtype=np.int64)
    valid = np.zeros((draws, k), dtype=bool)
    if draws == 0:
        return idx, valid
    if width <= _KEYS_MAX_WIDTH or 4 * k >= width:
        keys = rng.random((draws, width))
        keys[np.arange(width)[None, :] >= n[:, None]] = np.inf
        k_eff = min(k, width)
        part = (
            np.argpartition(keys, k_eff - 1, axis=1)[:, :k_eff] if k_eff < width else np.argsort(keys, axis=1)
        )
        idx[:, :k_eff] = part
        # ineligible columns (index >= n) have key inf: one is among the k smallest only when n < k
        valid[:, :k_eff] = part < n[:, None]
        idx[~valid] = 0
        return idx, valid
    full = n >= k
    if (~full).any():  # fewer candidates than picks: take them all
        few = np.flatnonzero(~full)
        cols = np.arange(k)[None, :]
        valid[few] = cols < n[few, None]
        idx[few] = np.where(valid[few], cols, 0)
    rows = np.flatnonzero(full)
    if rows.size:
        m = n[rows]
        out = np.empty((rows.size, k), dtype=np.int64)
        for s in range(k):  # Floyd: j = m-k+s; t uniform in 0..j; t if new, else j
            j = m - k + s
            t = rng.integers(0, j + 1)
            dup = (out[:, :s] == t[:, None]).any(axis=1)
            out[:, s] = np.where(dup, j, t)
        idx[rows] = out
        valid[rows] = True
    return idx, valid
