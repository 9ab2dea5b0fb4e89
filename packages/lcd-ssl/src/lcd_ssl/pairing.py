"""Cross-batch partner index (pure numpy): each image's partners of its condition in other replicas.

For each image, the candidates are the images of the same compound, dose and timepoint in *other*
experimental replicas.

Following Haslum et al. 2023 ("Metadata-guided Consistency Learning for High Content Images"), the
two global crops of a training sample come from two replicas of the same condition, so the only
thing the teacher and student views share is the biology, not the batch.

The index stores O(N) integers however large a condition is (DMSO groups hold thousands of fields):
images are sorted by (condition, replica); an anchor's candidates are its condition's block minus its
own replica's sub-block, and the k-th candidate is found by skipping that sub-block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from lcd_core import InputError


class MetadataError(InputError):
    """Metadata needed by cross-batch sampling is missing or invalid (the message names the column/row)."""


@dataclass(frozen=True)
class PartnerIndex:
    """Precomputed cross-replica partner candidates.

    Attributes
    ----------
    replica_ids
        (N,) int64 replica index of each image (into ``replica_names``).
    replica_names
        Sorted distinct replica labels (as strings).
    order
        (N,) image indices sorted by (condition, replica).
    group_start, group_stop
        (N,) the image's condition block in ``order``.
    own_start, own_stop
        (N,) the image's replica sub-block inside its condition block.
    """

    replica_ids: np.ndarray
    replica_names: tuple[str, ...]
    order: np.ndarray
    group_start: np.ndarray
    group_stop: np.ndarray
    own_start: np.ndarray
    own_stop: np.ndarray

    @property
    def n_candidates(self) -> np.ndarray:
        """(N,) number of partners of each image (0: no other replica has its condition)."""
        return (self.group_stop - self.group_start) - (self.own_stop - self.own_start)

    def draw(self, anchors: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Partners of ``anchors`` from uniform numbers ``u`` in [0, 1).

        Returns ``(partners, has_partner)``; an anchor without candidates gets itself (the caller's
        fallback) and ``has_partner = False``.
        """
        anchors = np.asarray(anchors, dtype=np.int64)
        n_cand = self.n_candidates[anchors]
        has = n_cand > 0
        k = np.minimum(np.floor(u * n_cand).astype(np.int64), np.maximum(n_cand - 1, 0))
        pos = self.group_start[anchors] + k
        own_len = self.own_stop[anchors] - self.own_start[anchors]
        pos = np.where(pos >= self.own_start[anchors], pos + own_len, pos)
        partners = np.where(has, self.order[np.minimum(pos, len(self.order) - 1)], anchors)
        return partners, has


def _codes(values: pd.Series) -> np.ndarray:
    """Integer codes of a metadata column; missing values form their own group (e.g. DMSO dose NaN)."""
    return pd.factorize(values.astype(str), sort=True)[0].astype(np.int64)


def build_partner_index(
    obs: pd.DataFrame, *, replica_key: str = "replica", condition_keys: Sequence[str]
) -> PartnerIndex:
    """Build the partner index of a metadata table (one row per image/field).

    Parameters
    ----------
    obs
        Metadata, one row per image.
    replica_key
        Column of the experimental replica.
    condition_keys
        Columns that must match between anchor and partner (compound, dose, timepoint).

    Raises
    ------
    MetadataError
        A column is missing, or a replica label is missing (naming the first row).
    """
    for key in (replica_key, *condition_keys):
        if key not in obs.columns:
            raise MetadataError(
                f"cross-batch sampling needs column {key!r}; the table has {', '.join(map(str, obs.columns))} "
                "(set replica_key/compound_key/dose_key/timepoint_key or use a variant without +xb)"
            )
    missing = obs[replica_key].isna().to_numpy()
    if missing.any():
        raise MetadataError(
            f"column {replica_key!r} is empty in {int(missing.sum())} row(s), first row {int(np.argmax(missing))}"
        )
    replica_str = obs[replica_key].astype(str)
    names, replica_ids = np.unique(replica_str.to_numpy(), return_inverse=True)
    n = len(obs)
    group = np.zeros(n, dtype=np.int64)
    for key in condition_keys:
        codes = _codes(obs[key])
        # re-factorize after each key so the combined code stays < n (no overflow)
        group = pd.factorize(group * (int(codes.max()) + 1) + codes, sort=True)[0].astype(np.int64)
    order = np.lexsort((np.arange(n), replica_ids, group))
    g_sorted, r_sorted = group[order], replica_ids[order]
    pos = np.arange(n)
    g_new = np.r_[True, g_sorted[1:] != g_sorted[:-1]]
    gr_new = g_new | np.r_[True, r_sorted[1:] != r_sorted[:-1]]
    g_start_sorted = np.maximum.accumulate(np.where(g_new, pos, 0))
    o_start_sorted = np.maximum.accumulate(np.where(gr_new, pos, 0))
    g_stop_sorted = _block_stops(g_new)
    o_stop_sorted = _block_stops(gr_new)
    inv = np.empty(n, dtype=np.int64)
    inv[order] = pos
    return PartnerIndex(
        replica_ids=replica_ids.astype(np.int64),
        replica_names=tuple(str(x) for x in names),
        order=order.astype(np.int64),
        group_start=g_start_sorted[inv],
        group_stop=g_stop_sorted[inv],
        own_start=o_start_sorted[inv],
        own_stop=o_stop_sorted[inv],
    )


def _block_stops(is_start: np.ndarray) -> np.ndarray:
    """For sorted positions with block starts flagged, the (exclusive) stop of each position's block."""
    n = len(is_start)
    starts = np.flatnonzero(is_start)
    stops = np.r_[starts[1:], n]
    block = np.cumsum(is_start) - 1
    return stops[block]
