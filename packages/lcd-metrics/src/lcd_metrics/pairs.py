"""copairs pair semantics, evaluated block by block without ever building a table of pairs.

Rules (as in copairs' ``find_pairs``): two different profiles form a *positive* pair when they share the
value of every ``pos_sameby`` column and differ in every ``pos_diffby`` column; a *negative* pair when
they share every ``neg_sameby`` column and differ in every ``neg_diffby`` column. A profile's ranked list
holds its positive and its negative partners (a partner that satisfies both rules appears in both, as in
copairs). Entries of the rule lists that are not column names are pandas query strings: like copairs,
they first filter the rows, and the column they name then takes part in the rule.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from lcd_core import InputError, blas_threads, threads_for

from . import kernels

# the queries of one block are compared with at most this many candidate cells at once
_CELLS_PER_BLOCK = 1 << 21
# below this fraction of wanted cells a block gathers pairs instead of a full matrix product
_GATHER_DENSITY = 0.1
_GATHER_CHUNK = 1 << 14
# rows of positive groups gathered at once (3 MB at 384 features; 16k rows cost page faults)
_GROUP_CHUNK = 1 << 10


@dataclass(frozen=True)
class PairRules:
    """Column lists of the four copairs rules, after query strings were turned into filters."""

    pos_sameby: tuple[str, ...]
    pos_diffby: tuple[str, ...]
    neg_sameby: tuple[str, ...]
    neg_diffby: tuple[str, ...]

    @property
    def columns(self) -> list[str]:
        """Every column named by a rule, once, in rule order."""
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
    *,
    multilabel: bool = False,
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
    if not multilabel and not (rules.pos_sameby or rules.pos_diffby):
        raise InputError("pos_sameby and pos_diffby are both empty: no rule defines positive pairs")
    if not multilabel and not (rules.neg_sameby or rules.neg_diffby):
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
        qc = codes[c][q]
        if qc.size and (qc == qc[0]).all():  # every query of the block has this value: partners must not
            cand &= codes[c] != qc[0]
    return cand


def _negative_candidates(
    codes: dict[str, np.ndarray], q: np.ndarray, rules: PairRules, n: int, groups: _Groups | None
) -> np.ndarray:
    """Sorted rows that may be a negative of some query of `q` (the superset of :func:`_candidates`).

    With ``neg_sameby`` the rows come from the queries' groups (a plate: ~400 rows) instead of a pass
    over every row per block, which cost ~10 % of the AP step at 100k wells.
    """
    if groups is None:
        return np.flatnonzero(_candidates(codes, q, rules.neg_sameby, rules.neg_diffby, n))
    cols = groups.rows_of(q)
    for c in rules.neg_diffby:
        qc = codes[c][q]
        if qc.size and (qc == qc[0]).all():  # every query of the block has this value: partners must not
            cols = cols[codes[c][cols] != qc[0]]
    return cols


def _pair_mask(
    codes: dict[str, np.ndarray], q: np.ndarray, cols: np.ndarray, same: Sequence[str], diff: Sequence[str]
) -> np.ndarray:
    mask = q[:, None] != cols[None, :]
    for c in same:
        mask &= codes[c][q][:, None] == codes[c][cols][None, :]
    for c in diff:
        mask &= codes[c][q][:, None] != codes[c][cols][None, :]
    return mask


class _Groups:
    """Rows grouped by the combination of some columns' codes: each group's rows, ascending."""

    def __init__(self, codes: dict[str, np.ndarray], columns: Sequence[str], n: int) -> None:
        key = codes[columns[0]]
        for c in columns[1:]:  # mixed radix, renumbered densely (a row-wise unique was 5x slower)
            key = np.unique(key * (int(codes[c].max(initial=0)) + 1) + codes[c], return_inverse=True)[1]
        self.key = key.ravel()
        self.order = np.argsort(self.key, kind="stable")  # stable: rows of a group stay ascending
        sk = self.key[self.order]
        self.starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]]) if n else np.zeros(0, dtype=np.int64)
        self.sizes = np.diff(np.r_[self.starts, n])
        self.group_of = np.empty(self.key.max() + 1 if n else 0, dtype=np.int64)
        self.group_of[sk[self.starts]] = np.arange(self.starts.size)

    def groups_of(self, rows: np.ndarray) -> np.ndarray:
        """The groups that hold any of `rows`, ascending."""
        gids = self.group_of[self.key[rows]]
        if gids.size < 2 or (gids[1:] >= gids[:-1]).all():  # rows in the sort order: runs, no hashing
            new = np.empty(gids.size, dtype=bool)
            new[:1] = True
            np.not_equal(gids[1:], gids[:-1], out=new[1:])
            return gids[new]
        return np.unique(gids)

    def rows_of(self, rows: np.ndarray) -> np.ndarray:
        """Every row of the groups that hold any of `rows`, ascending."""
        gids = self.groups_of(rows)
        if gids.size == 1:
            g = gids[0]
            out = self.order[self.starts[g] : self.starts[g] + self.sizes[g]]
            return out
        return np.sort(
            np.concatenate([self.order[self.starts[g] : self.starts[g] + self.sizes[g]] for g in gids])
        )


def _grouped_positives(
    xn: np.ndarray, codes: dict[str, np.ndarray], rules: PairRules
) -> tuple[np.ndarray, np.ndarray] | None:
    """Similarities of every row to its positive partners, found within its ``pos_sameby`` group.

    Returns ``(packed, n_pos)``: ``packed[i, :n_pos[i]]`` are row i's positive similarities in
    ascending partner order (NaN padded), or None when the widest group makes the packed array larger
    than ``_CELLS_PER_BLOCK`` (e.g. positives = every control well): the block path handles those.

    Why: replicate groups are small (2–8 wells), and finding them per block of 256 queries through a
    candidate mask over every row, then gathering each pair's two rows, was ~60 % of the AP step with
    plate-restricted negatives (cProfile, 100k wells). Here each group's rows are gathered once and
    their products taken with one batched einsum per group size, which gives the same bits as the
    pairwise ``einsum("ij,ij->i")`` used before (same per-pair summation; checked in the tests).
    """
    n = xn.shape[0]
    groups = _Groups(codes, rules.pos_sameby, n)
    widest = int(groups.sizes.max(initial=1))
    if n * max(1, widest - 1) > _CELLS_PER_BLOCK:
        return None
    packed = np.full((n, max(1, widest - 1)), np.nan)
    n_pos = np.zeros(n, dtype=np.int64)
    for g in np.unique(groups.sizes[groups.sizes > 1]):
        starts = groups.starts[groups.sizes == g]
        step = max(1, _GROUP_CHUNK // g)  # rows gathered at once: a few MB, reused from cache
        for s in range(0, starts.size, step):
            idx = groups.order[starts[s : s + step, None] + np.arange(g)]  # (groups, g) rows
            xg = _take(xn, idx, "positives")
            sims = _group_products(xg)
            if not rules.pos_diffby:  # every other row of the group, ascending: no mask, no search
                others = np.flatnonzero(~np.eye(g, dtype=bool)).reshape(g, g - 1) % g
                packed[idx.ravel(), : g - 1] = sims[:, np.arange(g)[:, None], others].reshape(-1, g - 1)
                n_pos[idx] = g - 1
                continue
            valid = ~np.eye(g, dtype=bool)[None].repeat(idx.shape[0], axis=0)
            for c in rules.pos_diffby:
                cg = codes[c][idx]
                valid &= cg[:, :, None] != cg[:, None, :]
            cnt = valid.sum(axis=2)
            mi, a, b = np.nonzero(valid)  # row-major: partners of one row are contiguous, ascending
            flat = cnt.ravel()
            slot = np.arange(mi.size) - np.repeat(np.cumsum(flat) - flat, flat)
            packed[idx[mi, a], slot] = sims[mi, a, b]
            n_pos[idx] = cnt
    return packed, n_pos


def _group_products(xg: np.ndarray) -> np.ndarray:
    """``einsum("mgd,mhd->mgh", xg, xg)`` (diagonal NaN) with the same bits, faster for small groups.

    For groups of up to 8 rows each unordered pair's product is taken once with ``einsum("md,md->m")``
    (the same per-pair summation over the contiguous features; x.y and y.x are the same bits) and
    mirrored: 6 products of a group of 4 instead of 16. Measured, 256 groups of 4 x 384 features:
    0.71 -> 0.30 ms; bit-equality is checked in the tests.
    """
    m, g, _ = xg.shape
    if g > 8:
        sims = np.einsum("mgd,mhd->mgh", xg, xg)
        sims[:, np.arange(g), np.arange(g)] = np.nan
        return sims
    sims = np.empty((m, g, g))
    for a in range(g):
        sims[:, a, a] = np.nan
        for b in range(a + 1, g):
            sims[:, a, b] = sims[:, b, a] = np.einsum("md,md->m", xg[:, a], xg[:, b])
    return sims


def _positive_similarities(xn: np.ndarray, q: np.ndarray, cols: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Similarities of each query to its positives, packed left in a (queries, max positives) array.

    Padded with NaN. Sparse positives (a few replicates among many candidates) are gathered pair by
    pair; dense ones use a matrix product.
    """
    n_pos = pos.sum(axis=1)
    kmax = int(n_pos.max())
    packed = np.full((len(q), kmax), np.nan)
    qi, cj = np.nonzero(pos)  # row-major: pairs of one query are contiguous
    slot = np.arange(qi.size) - np.repeat(np.cumsum(n_pos) - n_pos, n_pos)
    if pos.mean() >= _GATHER_DENSITY:
        packed[qi, slot] = kernels.cosine_block(xn[q], xn[cols])[qi, cj]
        return packed
    for s in range(0, qi.size, _GATHER_CHUNK):
        a, b, k = qi[s : s + _GATHER_CHUNK], cj[s : s + _GATHER_CHUNK], slot[s : s + _GATHER_CHUNK]
        packed[a, k] = np.einsum("ij,ij->i", xn[q[a]], xn[cols[b]])
    return packed


class _ThreadPolicy:
    """BLAS threads for the block products, changed only when a block's product size calls for it.

    The products of one run are usually all small (plate-restricted negatives: 256 queries x 38
    controls) or all large (every control): the thread limit is set per product size where it is
    known, and threadpoolctl is called again only when the decision changes (a limit costs ~1 ms).
    Measured on 2 cores: a 256 x 384 x 38 product takes 0.17 ms on one thread and 1.8 ms on two.
    """

    _UNSET = object()

    def __init__(self) -> None:
        self.limit: object = self._UNSET
        self._stack: contextlib.ExitStack | None = None

    def set(self, flops: float) -> None:
        limit = threads_for(flops)
        if limit == self.limit:
            return
        self.close()
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(blas_threads(limit))
        self.limit = limit

    def close(self) -> None:
        if self._stack is not None:
            self._stack.close()
        self._stack, self.limit = None, self._UNSET


def _score_block(
    xn: np.ndarray,
    pos: np.ndarray | tuple[np.ndarray, np.ndarray],
    neg: np.ndarray,
    q: np.ndarray,
    pos_cols: np.ndarray | None,
    neg_cols: np.ndarray,
    cache: dict,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """AP, positive and negative counts and the all-tied flag of the block queries `q`.

    ``pos`` is the (queries × `pos_cols`) positive mask, or the queries' rows of
    :func:`_grouped_positives` ``(packed, n_pos)`` (then `pos_cols` is None).

    ``cache`` keeps the gathered negative columns of the previous block: consecutive blocks usually
    rank against the same controls, and re-gathering a (controls × features) matrix per block was a
    quarter of the run time on the all-DMSO recipe.
    """
    grouped = pos_cols is None
    n_pos = pos[1] if grouped else pos.sum(axis=1)
    n_neg = neg.sum(axis=1)
    ap = np.full(len(q), np.nan)
    tied = np.zeros(len(q), dtype=bool)
    has = (n_pos > 0) & (n_neg > 0)
    if has.any():
        neg_h = neg[has]
        # negatives: one matrix product over the columns that hold any (often the same controls)
        idx = np.flatnonzero(neg_h.any(axis=0))
        used = neg_cols[idx]
        if cache.get("cols") is None or not np.array_equal(cache["cols"], used):
            cache["cols"], cache["x"] = used, _take(xn, used)
        if "threads" in cache:
            dense = not grouped and pos.mean() >= _GATHER_DENSITY
            product = max(used.size, pos_cols.size if dense else 0)
            cache["threads"].set(2.0 * int(has.sum()) * product * xn.shape[1])
        neg_sims = kernels.cosine_block(_take(xn, q[has], "queries"), cache["x"])
        mask = neg_h[:, idx]
        if not mask.all():
            neg_sims[~mask] = -np.inf
        if grouped:  # trimmed to the block's widest list: the AP kernel and its sums see the same shape
            pos_sims = pos[0][has, : int(n_pos[has].max())]
        else:
            pos_sims = _positive_similarities(xn, q[has], pos_cols, pos[has])
        ap[has] = kernels.ap_from_similarities(pos_sims, neg_sims)
        tied[has] = kernels.all_tied(pos_sims, neg_sims)
        ap[tied] = np.nan
    # a query with positives but no negatives has a trivial list: AP 1 in copairs
    ap[(n_pos > 0) & (n_neg == 0)] = 1.0
    return ap, n_pos, n_neg, tied


def _rows(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``x[idx]``, as a view when `idx` (any shape) lists consecutive rows in order.

    No copy then, and the same bits in the products that read it (the same C-contiguous rows; checked
    in the tests). Queries sorted by their rule keys are often such runs (replicate wells stored
    together), and copying 2.7k rows x 384 features took ~1 ms of the 3k-well AP step.
    """
    flat = idx.ravel()
    if flat.size and int(flat[-1]) - int(flat[0]) == flat.size - 1 and (np.diff(flat) == 1).all():
        return x[int(flat[0]) : int(flat[0]) + flat.size].reshape(*idx.shape, *x.shape[1:])
    return x[idx]


def _take(xn: np.ndarray | kernels.UnitRows, idx: np.ndarray, scratch: str | None = None) -> np.ndarray:
    """Rows `idx` of the unit rows; :class:`kernels.UnitRows` divides them now.

    With `scratch`, into the buffer of that name: valid until the next take of that name.
    """
    return xn.take(idx, scratch) if isinstance(xn, kernels.UnitRows) else _rows(xn, idx)


def _all_negatives(codes: dict[str, np.ndarray], q: np.ndarray, cols: np.ndarray, rules: PairRules) -> bool:
    """True when every row of `cols` is a negative partner of every query of `q`.

    That is when the pair mask of :func:`_pair_mask` would be all true: the queries and the columns
    hold one and the same value of every ``neg_sameby`` column and no common value of any
    ``neg_diffby`` column (nor a common row). O(queries + columns) per call, against a mask of
    queries x columns, and the per-query negative counts come for free (the column count).
    """
    if q.size == 0 or cols.size == 0:
        return True
    for c in rules.neg_sameby:
        v = codes[c][q[0]]
        if (codes[c][q] != v).any() or (codes[c][cols] != v).any():
            return False
    for c in rules.neg_diffby:
        qc = codes[c][q]
        v = qc[0]
        if (qc == v).all():  # the usual case (a control recipe: every query's reference is -1)
            if (codes[c][cols] == v).any():
                return False
            continue
        lut = np.zeros(int(max(qc.max(), codes[c][cols].max())) + 1, dtype=bool)
        lut[qc] = True
        if lut[codes[c][cols]].any():
            return False
    if not rules.neg_diffby:  # no value keeps a query from being its own candidate: check the rows
        lut = np.zeros(int(max(q.max(), cols.max())) + 1, dtype=bool)
        lut[q] = True
        if lut[cols].any():
            return False
    return True


def _rank_grouped(
    xn: np.ndarray,
    codes: dict[str, np.ndarray],
    rules: PairRules,
    grouped: tuple[np.ndarray, np.ndarray],
    neg_groups: _Groups | None,
    order: np.ndarray,
    out: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    cache: dict,
    advance: Callable[[int], None] | None,
) -> None:
    """:func:`rank_profiles` when positives come from :func:`_grouped_positives` (queries = rows).

    Blocks of 256 queries in the sorted order (and their sub-blocks) as before; each (sub-)block is
    split into its queries with positives and those without, and each part gets its own negative
    candidates. When those candidates are negatives of every query of the part
    (:func:`_all_negatives`), no pair mask is built. The matrix product of a part with positives is the
    one the block would have made (the same query rows, against the columns that hold a negative of any
    of them, in ascending order), and its positives are trimmed to the same width, so AP is the same to
    the bit.

    Why: with a control recipe the queries of a block are compound wells whose negatives are the same
    controls, and the controls (no positives) need only a count. The masks (queries x every candidate
    of the mixed block: 256 x 768 rows of two plates) and the candidates of mixed blocks were the
    largest cost beside the products with plate-restricted negatives (cProfile, 100k wells: ~0.1 s of
    ~0.6 s) and ~3.8 ms of ~30 ms at 3k wells with all-DMSO negatives.
    """
    ap, n_pos, n_neg, tied = out
    packed, gpos = grouped
    n = xn.shape[0]
    # the sub-block length depends on the candidates of the whole block; it is at least 256 (no
    # split) when the block cannot have more than _CELLS_PER_BLOCK / 256 candidates
    for start in range(0, order.size, 256):
        rows = order[start : start + 256]
        step = rows.size
        # bound on the candidates: every row, or the rows of the block's negative groups
        bound = n if neg_groups is None else int(neg_groups.sizes[neg_groups.groups_of(rows)].sum())
        if bound > _CELLS_PER_BLOCK // 256:
            step = max(
                1, _CELLS_PER_BLOCK // max(1, _negative_candidates(codes, rows, rules, n, neg_groups).size)
            )
        for sub in range(0, rows.size, step):
            q = rows[sub : sub + step]
            has = gpos[q] > 0
            parts = (q,) if has.all() or not has.any() else (q[has], q[~has])
            for part in parts:
                cols = _negative_candidates(codes, part, rules, n, neg_groups)
                if _all_negatives(codes, part, cols, rules):
                    _score_all_negatives(xn, grouped, part, cols, out, cache)
                    continue
                neg = _pair_mask(codes, part, cols, rules.neg_sameby, rules.neg_diffby)
                pos = (packed[part], gpos[part])
                ap[part], n_pos[part], n_neg[part], tied[part] = _score_block(
                    xn, pos, neg, part, None, cols, cache
                )
        if advance is not None:
            advance(rows.size)


def _score_all_negatives(
    xn: np.ndarray,
    grouped: tuple[np.ndarray, np.ndarray],
    q: np.ndarray,
    cols: np.ndarray,
    out: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    cache: dict,
) -> None:
    """:func:`_score_block` for queries `q` whose negatives are exactly `cols` (no mask to build).

    The same product (every query of `q` against `cols`), positives width and kernels as there.
    """
    ap, n_pos, n_neg, tied = out
    packed, gpos = grouped
    k = gpos[q]
    n_pos[q] = k
    n_neg[q] = cols.size
    if not k.any():  # queries without positives: counts only
        return
    if cols.size == 0:  # a query with positives but no negatives has a trivial list: AP 1 in copairs
        ap[q] = 1.0
        return
    if cache.get("cols") is None or not np.array_equal(cache["cols"], cols):
        cache["cols"], cache["x"] = cols, _take(xn, cols)
    if "threads" in cache:
        cache["threads"].set(2.0 * q.size * cols.size * xn.shape[1])
    neg_sims = kernels.cosine_block(_take(xn, q, "queries"), cache["x"])
    pos_sims = packed[q, : int(k.max())]
    res = kernels.ap_from_similarities(pos_sims, neg_sims)
    t = kernels.all_tied(pos_sims, neg_sims)
    res[t] = np.nan
    ap[q], tied[q] = res, t


def rank_profiles(
    xn: np.ndarray,
    codes: dict[str, np.ndarray],
    rules: PairRules,
    *,
    labels: tuple[np.ndarray, np.ndarray, str | None] | None = None,
    advance: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """AP, number of positive partners and of all partners for every query.

    A query is a row, or with `labels` = ``(membership, label_of_query, neg_mode)`` a (row, label)
    pair as in copairs' multilabel mAP: ``membership`` is a (rows × labels) boolean matrix, positives
    must also carry the query's label, and negatives share no label with the query row
    (``neg_mode="diff"``), share one (``"same"``) or are not constrained by labels (None).

    `xn` holds unit-norm rows. Queries are sorted by their rule keys so that a block of neighbouring
    queries shares few candidate partners. Per block, negatives get one matrix product over the columns
    that hold any and positives are gathered pairwise when sparse (memory bounded by
    ``_CELLS_PER_BLOCK``); AP is then computed for the whole block at once.

    Returns ``(query_rows, query_labels, ap, n_pos, n_total, tied)``; query_labels is -1 without
    labels; ``tied`` marks queries whose candidates all have the same similarity (AP NaN).
    """
    n = xn.shape[0]
    if labels is None:
        q_rows, q_labels = np.arange(n), np.full(n, -1)
    else:
        membership, _, _ = labels
        q_rows, q_labels = np.nonzero(membership)
    nq = q_rows.size
    ap = np.full(nq, np.nan)
    n_pos = np.zeros(nq, dtype=np.int64)
    n_neg = np.zeros(nq, dtype=np.int64)
    tied = np.zeros(nq, dtype=bool)
    cache: dict = {"threads": _ThreadPolicy()}
    sort_cols = [*rules.neg_sameby, *rules.pos_sameby, *rules.neg_diffby, *rules.pos_diffby]
    keys = [codes[c][q_rows] for c in reversed(sort_cols)] + ([q_labels] if labels is not None else [])
    order = np.lexsort(keys) if keys else np.arange(nq)
    block = 256
    # replicate-sized positive groups: every positive similarity at once, before the blocks
    grouped = _grouped_positives(xn, codes, rules) if labels is None and rules.pos_sameby else None
    # negatives restricted to a group (plate): a block's candidates are its groups' rows, not a scan
    neg_groups = _Groups(codes, rules.neg_sameby, n) if grouped is not None and rules.neg_sameby else None
    if grouped is not None:
        with contextlib.closing(cache["threads"]):
            _rank_grouped(
                xn, codes, rules, grouped, neg_groups, order, (ap, n_pos, n_neg, tied), cache, advance
            )
        return q_rows, q_labels, ap, n_pos, n_pos + n_neg, tied
    xn = kernels.dense(xn)  # the general path reads rows in many ways: one normalized matrix
    with contextlib.closing(cache["threads"]):  # the thread limit ends with the loop
        for start in range(0, nq, block):
            vq = order[start : start + block]
            rows = q_rows[vq]
            pos_cand = _candidates(codes, rows, rules.pos_sameby, rules.pos_diffby, n)
            if labels is not None:
                pos_cand &= labels[0][:, np.unique(q_labels[vq])].any(axis=1)
            pos_cols = np.flatnonzero(pos_cand)
            neg_cols = np.flatnonzero(_candidates(codes, rows, rules.neg_sameby, rules.neg_diffby, n))
            step = max(1, _CELLS_PER_BLOCK // max(1, pos_cols.size + neg_cols.size))
            for sub in range(0, vq.size, step):
                v, q = vq[sub : sub + step], rows[sub : sub + step]
                pos = _pair_mask(codes, q, pos_cols, rules.pos_sameby, rules.pos_diffby)
                neg = _pair_mask(codes, q, neg_cols, rules.neg_sameby, rules.neg_diffby)
                if labels is not None:
                    membership, _, neg_mode = labels
                    pos &= membership[pos_cols][:, q_labels[v]].T
                    if neg_mode is not None:
                        m = membership.astype(np.float32)
                        shared = (m[q] @ m[neg_cols].T) > 0
                        neg &= ~shared if neg_mode == "diff" else shared
                ap[v], n_pos[v], n_neg[v], tied[v] = _score_block(xn, pos, neg, q, pos_cols, neg_cols, cache)
            if advance is not None:
                advance(vq.size)
    return q_rows, q_labels, ap, n_pos, n_pos + n_neg, tied
