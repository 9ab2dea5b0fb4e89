"""Plate-blocked permutation null of a group's mAP (``null="blocked"``): our definition.

copairs 0.6 describes a ``null=`` option whose default permutation null "respects plate blocks"; its
exact semantics could not be read here (copairs 0.6 is not installable in this environment and its
source is not in the readable mirror), so this is lcd-metrics' own definition, written down here:

For a query with ranked list ``L`` (its positive and negative partners, ranked by the real cosine
similarities, positives first on ties as in copairs), let ``k_b`` be the number of real positives whose
partner profile lies in block ``b`` (the value of the ``null_blocks`` columns, e.g. the plate). A null
draw keeps every similarity and re-draws *which* entries are positives: in every block ``b``, ``k_b``
entries of ``L`` from block ``b`` chosen uniformly at random; entries of blocks without real positives
stay negatives. The draw's AP is computed on the real ranking. A group's null mAP is the mean of its
queries' null APs (draw ``r`` of every query), and
``p = (1 + #{null mAP >= observed mAP}) / (null_size + 1)``.

Random stream (documented so that a test can re-implement it): the entries of a query's list are in
the order *positives (ascending row), then negatives (ascending row)*; each query has its own
generator ``numpy.random.default_rng([seed, row])`` with ``row`` its position in the AP table; one
draw ``keys = rng.random((null_size, len(L)))``; in block ``b`` the ``k_b`` entries with the smallest
keys are the positives.

The null therefore keeps how many positives sit on each plate and how similar a query is to each
candidate; what it breaks is which candidates of a plate are the replicates. A plate effect that makes
a query's same-plate candidates all similar to it no longer inflates significance the way it does under
the rank null, which puts positives at uniformly random ranks.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from . import kernels
from .pairs import PairRules, _candidates, _pair_mask
from .pvalues import TIE_TOL

_QUERY_BLOCK = 256


def query_lists(
    xn: np.ndarray, codes: dict[str, np.ndarray], rules: PairRules, rows: np.ndarray
) -> Iterator[tuple[int, np.ndarray, np.ndarray, int]]:
    """Ranked-list entries of each query row: ``(row, partner rows, similarities, n_positives)``.

    Entries are the positives (ascending row) followed by the negatives (ascending row); a partner that
    satisfies both rules appears twice, as in copairs.
    """
    n = xn.shape[0]
    for s in range(0, rows.size, _QUERY_BLOCK):
        q = rows[s : s + _QUERY_BLOCK]
        pos_cols = np.flatnonzero(_candidates(codes, q, rules.pos_sameby, rules.pos_diffby, n))
        neg_cols = np.flatnonzero(_candidates(codes, q, rules.neg_sameby, rules.neg_diffby, n))
        pos = _pair_mask(codes, q, pos_cols, rules.pos_sameby, rules.pos_diffby)
        neg = _pair_mask(codes, q, neg_cols, rules.neg_sameby, rules.neg_diffby)
        sp = kernels.cosine_block(xn[q], xn[pos_cols])
        sn = kernels.cosine_block(xn[q], xn[neg_cols])
        for i, row in enumerate(q):
            pr, nr = pos_cols[pos[i]], neg_cols[neg[i]]
            yield int(row), np.concatenate([pr, nr]), np.concatenate([sp[i, pos[i]], sn[i, neg[i]]]), pr.size


def blocked_null_ap(
    sims: np.ndarray, blocks: np.ndarray, n_pos: int, null_size: int, rng: np.random.Generator
) -> np.ndarray:
    """``null_size`` APs of one ranked list with its positives re-drawn within their blocks.

    Parameters
    ----------
    sims
        Similarities of the list's entries, the ``n_pos`` real positives first.
    blocks
        Block code of each entry's partner profile.
    n_pos
        Number of real positives.
    null_size
        Draws.
    rng
        Generator; one ``rng.random((null_size, len(sims)))`` call (see the module notes).
    """
    m = sims.size
    keys = rng.random((null_size, m))
    # entries strictly above each entry (ties: positives first, so tied negatives are not above)
    above = m - np.searchsorted(np.sort(sims), sims, side="right")
    chosen = []
    for b in np.unique(blocks[:n_pos]):
        idx = np.flatnonzero(blocks == b)
        k = int(np.count_nonzero(blocks[:n_pos] == b))
        if k == idx.size:
            chosen.append(np.broadcast_to(idx, (null_size, k)))
        else:
            chosen.append(idx[np.argpartition(keys[:, idx], k - 1, axis=1)[:, :k]])
    ch = np.concatenate(chosen, axis=1)  # (draws, n_pos) entries drawn as positives
    s, g = sims[ch], above[ch]
    higher = s[:, None, :] > s[:, :, None]  # [r, a, b]: drawn positive b ranks above a
    tie_before = (s[:, None, :] == s[:, :, None]) & np.tri(n_pos, dtype=bool)[None]
    j = (higher | tie_before).sum(axis=2)  # a's place among the drawn positives (1-based)
    neg_above = g - higher.sum(axis=2)
    return (j / (j + neg_above)).mean(axis=1)


def blocked_pvalues(
    xn: np.ndarray,
    codes: dict[str, np.ndarray],
    rules: PairRules,
    block_codes: np.ndarray,
    query_rows: np.ndarray,
    group_ids: np.ndarray,
    mean_ap: np.ndarray,
    null_size: int,
    seed: int,
) -> np.ndarray:
    """p-value of each group's mAP under the plate-blocked permutation null (module notes).

    Parameters
    ----------
    xn
        Unit-norm profiles.
    codes, rules
        Pair rules as in :func:`lcd_metrics.pairs.rank_profiles`.
    block_codes
        Block of every profile (e.g. plate code).
    query_rows
        Rows whose AP enters a group's mAP.
    group_ids
        Group of each of `query_rows`.
    mean_ap
        Observed mAP per group.
    null_size, seed
        Draws per query and the seed.
    """
    null_sum = np.zeros((mean_ap.size, null_size))
    count = np.bincount(group_ids, minlength=mean_ap.size)
    group_of = dict(zip(query_rows.tolist(), group_ids.tolist(), strict=True))
    for row, partners, sims, n_pos in query_lists(xn, codes, rules, np.sort(query_rows)):
        rng = np.random.default_rng([seed, row])
        null_sum[group_of[row]] += blocked_null_ap(sims, block_codes[partners], n_pos, null_size, rng)
    null = null_sum / np.maximum(count, 1)[:, None]
    hits = np.count_nonzero(null >= mean_ap[:, None] - TIE_TOL, axis=1)
    return (1 + hits) / (null_size + 1)
