"""copairs pair semantics, evaluated block by block without ever building a table of pairs.

Rules (as in copairs' ``find_pairs``): two different profiles form a *positive* pair when they share the
value of every ``pos_sameby`` column and differ in every ``pos_diffby`` column; a *negative* pair when
they share every ``neg_sameby`` column and differ in every ``neg_diffby`` column. A profile's ranked list
holds its positive and its negative partners (a partner that satisfies both rules appears in both, as in
copairs). Entries of the rule lists that are not column names are pandas query strings: like copairs,
they first filter the rows, and the column they name then takes part in the rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import kernels
from .errors import InputError

# the queries of one block are compared with at most this many candidate cells at once
_CELLS_PER_BLOCK = 1 << 21
# below this fraction of wanted cells a block gathers pairs instead of a full matrix product
_GATHER_DENSITY = 0.1
_GATHER_CHUNK = 1 << 14
# above this many positives per query the negatives are sorted instead of compared one by one
_CUBE_MAX_POS = 16


@dataclass(frozen=True)
class PairRules:
    """Column lists of the four copairs rules, after query strings were turned into filters."""

    pos_sameby: tuple[str, ...]
    pos_diffby: tuple[str, ...]
    neg_sameby: tuple[str, ...]
    neg_diffby: tuple[str, ...]

    @property
    def columns(self) -> list[str]:
        seen: dict[str, None] = {}
        for c in (*self.pos_sameby, *self.pos_diffby, *self.neg_sameby, *self.neg_diffby):
            seen[c] = None
        return list(seen)


def _as_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        raise InputError(
            "dict-style ('all'/'any') rules are not supported by mean_average_precision; pass lists"
        )
    return [str(v) for v in value]


def parse_rules(
    obs: pd.DataFrame,
    pos_sameby: str | Sequence[str] | None,
    pos_diffby: str | Sequence[str] | None,
    neg_sameby: str | Sequence[str] | None,
    neg_diffby: str | Sequence[str] | None,
    source: str,
) -> tuple[PairRules, np.ndarray]:
    """Split rule entries into columns and query filters; return the rules and the kept-rows mask."""
    keep = np.ones(len(obs), dtype=bool)
    lists = []
    for name, value in (
        ("pos_sameby", pos_sameby),
        ("pos_diffby", pos_diffby),
        ("neg_sameby", neg_sameby),
        ("neg_diffby", neg_diffby),
    ):
        cols = []
        for entry in _as_list(value):
            if entry in obs.columns:
                cols.append(entry)
                continue
            named = [c for c in re.findall(r"(\w+)\s*[=<>!]+", entry) if c in obs.columns]
            if not named:
                avail = ", ".join(str(c) for c in list(obs.columns)[:25])
                raise InputError(
                    f"{source}: {name} column {entry!r} not found (nor a query on a column); available columns: {avail}"
                )
            try:
                hit = np.asarray(obs.eval(entry), dtype=bool)
            except Exception as exc:
                raise InputError(
                    f"{source}: cannot evaluate {name} query {entry!r}: {exc}".splitlines()[0]
                ) from exc
            keep &= hit
            cols.extend(named)
        lists.append(tuple(dict.fromkeys(cols)))
    rules = PairRules(*lists)
    if not (rules.pos_sameby or rules.pos_diffby):
        raise InputError("pos_sameby and pos_diffby are both empty: no rule defines positive pairs")
    if not (rules.neg_sameby or rules.neg_diffby):
        raise InputError("neg_sameby and neg_diffby are both empty: no rule defines negative pairs")
    for same, diff, kind in (
        (rules.pos_sameby, rules.pos_diffby, "pos"),
        (rules.neg_sameby, rules.neg_diffby, "neg"),
    ):
        both = set(same) & set(diff)
        if both:
            raise InputError(
                f"{kind}_sameby and {kind}_diffby share column(s) {sorted(both)}; they must be disjoint"
            )
    if not keep.any():
        raise InputError(f"{source}: the query filters in the pair rules leave no rows")
    return rules, keep


def encode(obs: pd.DataFrame, columns: Sequence[str]) -> dict[str, np.ndarray]:
    """Integer codes per column (equal values, equal codes); callers refuse missing values beforehand."""
    return {c: pd.factorize(obs[c], sort=True)[0].astype(np.int64) for c in columns}


def _candidates(
    codes: dict[str, np.ndarray], q: np.ndarray, same: Sequence[str], diff: Sequence[str], n: int
) -> np.ndarray:
    """Rows that may pair with at least one query of `q` (a cheap superset, refined later)."""
    cand = np.ones(n, dtype=bool)
    for c in same:
        lut = np.zeros(codes[c].max() + 1, dtype=bool)
        lut[codes[c][q]] = True
        cand &= lut[codes[c]]
    for c in diff:
        vals = np.unique(codes[c][q])
        if vals.size == 1:  # every query of the block has this value: partners must not
            cand &= codes[c] != vals[0]
    return cand


def _pair_mask(
    codes: dict[str, np.ndarray], q: np.ndarray, cols: np.ndarray, same: Sequence[str], diff: Sequence[str]
) -> np.ndarray:
    mask = q[:, None] != cols[None, :]
    for c in same:
        mask &= codes[c][q][:, None] == codes[c][cols][None, :]
    for c in diff:
        mask &= codes[c][q][:, None] != codes[c][cols][None, :]
    return mask


def _block_similarities(
    xn: np.ndarray, q: np.ndarray, cols: np.ndarray, pos: np.ndarray, neg: np.ndarray
) -> np.ndarray:
    """Similarities of queries `q` to candidates `cols` where a pair is positive or negative (NaN elsewhere).

    Columns holding negatives (usually the same controls for the whole block) get one matrix product;
    columns that only hold positives (a few replicates among many candidates) gather just those pairs
    unless they are dense.
    """
    sims = np.full(pos.shape, np.nan)
    xq = xn[q]
    neg_cols = np.flatnonzero(neg.any(axis=0))
    if neg_cols.size:
        sims[:, neg_cols] = kernels.cosine_block(xq, xn[cols[neg_cols]])
    pos_cols = np.flatnonzero(pos.any(axis=0) & ~neg.any(axis=0))
    if pos_cols.size:
        sub = pos[:, pos_cols]
        if sub.mean() >= _GATHER_DENSITY:
            sims[:, pos_cols] = kernels.cosine_block(xq, xn[cols[pos_cols]])
        else:
            qi, cj = np.nonzero(sub)
            for s in range(0, qi.size, _GATHER_CHUNK):
                a, b = qi[s : s + _GATHER_CHUNK], pos_cols[cj[s : s + _GATHER_CHUNK]]
                sims[a, b] = np.einsum("ij,ij->i", xq[a], xn[cols[b]])
    return sims


def _ap_of_block(sims: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """AP per row of a block, given the similarity rows and the positive / negative masks."""
    n_pos = pos.sum(axis=1)
    kmax = int(n_pos.max())
    neg_sims = np.where(neg, sims, -np.inf)
    if kmax <= _CUBE_MAX_POS:
        # positives packed to the left of a (rows, kmax) array; padding NaN
        order = np.argsort(~pos, axis=1, kind="stable")[:, :kmax]
        packed = np.take_along_axis(sims, order, axis=1)
        packed[np.arange(kmax)[None, :] >= n_pos[:, None]] = np.nan
        return kernels.ap_from_similarities(packed, neg_sims)
    neg_sorted = np.sort(neg_sims, axis=1)
    out = np.empty(len(sims))
    for i in range(len(sims)):
        p = np.sort(sims[i, pos[i]])[::-1]
        row = neg_sorted[i]
        out[i] = kernels.ap_from_sorted_negatives(p, row[np.isfinite(row)])
    return out


def rank_profiles(
    xn: np.ndarray,
    codes: dict[str, np.ndarray],
    rules: PairRules,
    *,
    advance: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AP, number of positive partners and number of partners (positives + negatives) of every row.

    `xn` holds unit-norm rows. Queries are sorted by their rule keys so that a block of neighbouring
    queries shares few candidate partners; similarities are computed per block by one matrix product
    (memory bounded by ``_CELLS_PER_BLOCK``) and reduced to AP at once.
    """
    n = xn.shape[0]
    ap = np.full(n, np.nan)
    n_pos = np.zeros(n, dtype=np.int64)
    n_neg = np.zeros(n, dtype=np.int64)
    sort_cols = [*rules.neg_sameby, *rules.pos_sameby, *rules.neg_diffby, *rules.pos_diffby]
    order = np.lexsort([codes[c] for c in reversed(sort_cols)]) if sort_cols else np.arange(n)
    block = 256
    for start in range(0, n, block):
        q_all = order[start : start + block]
        cand = _candidates(codes, q_all, rules.pos_sameby, rules.pos_diffby, n)
        cand |= _candidates(codes, q_all, rules.neg_sameby, rules.neg_diffby, n)
        cols = np.flatnonzero(cand)
        step = max(1, _CELLS_PER_BLOCK // max(1, cols.size))
        for sub in range(0, q_all.size, step):
            q = q_all[sub : sub + step]
            pos = _pair_mask(codes, q, cols, rules.pos_sameby, rules.pos_diffby)
            neg = _pair_mask(codes, q, cols, rules.neg_sameby, rules.neg_diffby)
            n_pos[q] = pos.sum(axis=1)
            n_neg[q] = neg.sum(axis=1)
            has = (n_pos[q] > 0) & (n_neg[q] > 0)
            if has.any():
                sims = _block_similarities(xn, q[has], cols, pos[has], neg[has])
                ap[q[has]] = _ap_of_block(sims, pos[has], neg[has])
            # a query with positives but no negatives has a trivial list: AP 1 in copairs
            only_pos = (n_pos[q] > 0) & (n_neg[q] == 0)
            ap[q[only_pos]] = 1.0
        if advance is not None:
            advance(q_all.size)
    return ap, n_pos, n_pos + n_neg
