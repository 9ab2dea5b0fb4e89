"""mAP effect size (mAP-ES) of the LCD paper and sensitivity curves.

For each compound × condition, ``n_draws`` resampled ranked lists are scored by AP. One draw: a query
well of the compound; ``n_pos`` positive wells of the same compound and condition from plates of *other*
experimental replicas (the strongest batch difference); ``n_neg`` negative-control wells from the query's
own plate at the same timepoint (the weakest). The null of a timepoint is the same draw with a control
query, control positives from other replicas and controls from the query's plate. mAP-ES is Cohen's d
(pooled SD) of the compound's AP samples against the null samples; a compound is active when
mAP-ES >= threshold (0.8, Cohen's "large" effect). AP uses copairs' tie rule (see :mod:`.kernels`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from lcd_core import DEFAULT_CONTROL, InputError, check_finite, track

from . import kernels
from ._profiles import check_nonzero, profiles
from .design import Design, build_design, resolve_conditions

ACTIVITY_COLUMNS = (
    "status",
    "reason",
    "active",
    "map_es",
    "map_mean",
    "map_ci_low",
    "map_ci_high",
    "null_mean",
    "null_sd",
    "n_draws",
    "n_wells",
    "n_replicas",
    "n_plates",
    "pos_available",
    "neg_available",
)

_DRAW_CHUNK = 256  # draws per chunk when similarities are gathered on the fly (null)


def _draw_without_replacement(
    rng: np.random.Generator, eligible: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of `eligible` (draws × candidates), up to `k` eligible columns drawn without replacement.

    Returns (columns, valid) of shape (draws, k); rows with fewer than k eligible columns get all of
    them and `valid` False in the rest.
    """
    keys = rng.random(eligible.shape)
    keys[~eligible] = np.inf
    k_eff = min(k, eligible.shape[1])
    if k_eff < eligible.shape[1]:
        part = np.argpartition(keys, k_eff - 1, axis=1)[:, :k_eff]
    else:
        part = np.broadcast_to(np.arange(k_eff), (eligible.shape[0], k_eff)).copy()
    valid = np.isfinite(np.take_along_axis(keys, part, axis=1))
    if k_eff < k:
        pad = k - k_eff
        part = np.concatenate([part, np.zeros((part.shape[0], pad), dtype=part.dtype)], axis=1)
        valid = np.concatenate([valid, np.zeros((valid.shape[0], pad), dtype=bool)], axis=1)
    return part, valid


def _ap_from_draws(
    pos_sims: np.ndarray, pos_valid: np.ndarray, neg_sims: np.ndarray, neg_valid: np.ndarray
) -> np.ndarray:
    return kernels.ap_from_similarities(
        np.where(pos_valid, pos_sims, np.nan), np.where(neg_valid, neg_sims, -np.inf)
    )


class _Measurements:
    """Control wells per plate × timepoint, as padded index pools."""

    def __init__(self, plate_code: np.ndarray, time_code: np.ndarray, is_control: np.ndarray):
        ctrl = np.flatnonzero(is_control)
        key = plate_code[ctrl] * (time_code.max() + 1) + time_code[ctrl]
        order = np.argsort(key, kind="stable")
        ctrl, key = ctrl[order], key[order]
        self.n_times = int(time_code.max()) + 1
        uniq, start, count = np.unique(key, return_index=True, return_counts=True)
        self.lookup = {int(u): (int(s), int(c)) for u, s, c in zip(uniq, start, count, strict=True)}
        self.ctrl = ctrl

    def pool(self, plate: int, time: int) -> np.ndarray:
        s, c = self.lookup.get(plate * self.n_times + time, (0, 0))
        return self.ctrl[s : s + c]


def _query_pools(
    rows: np.ndarray, t: int, replica: np.ndarray, plate: np.ndarray, meas: _Measurements
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], np.ndarray]:
    """Where the queries ``rows`` (at timepoint ``t``) find their positives and negatives.

    Returns the other-replica mask among ``rows`` (positive candidates) and its row counts, the
    control pool of each plate the rows are on (negative candidates), and each row's plate slot
    into those pools.
    """
    other_rep = replica[rows][:, None] != replica[rows][None, :]
    plates = np.unique(plate[rows])
    pools = [meas.pool(int(p), t) for p in plates]
    return other_rep, other_rep.sum(axis=1), pools, np.searchsorted(plates, plate[rows])


def _null_samples(
    t: int,
    xn: np.ndarray,
    d: Design,
    replica: np.ndarray,
    plate: np.ndarray,
    meas: _Measurements,
    n_draws: int,
    n_pos: int,
    n_neg: int,
    seed: int,
) -> tuple[np.ndarray | None, list[str]]:
    """AP samples of control queries at timepoint `t` and the reasons the design was not met."""
    ctrl = np.flatnonzero(d.is_control & (d.time_code == t))
    reasons: list[str] = []
    if ctrl.size == 0:
        return None, ["no control wells at this timepoint"]
    other_rep, n_other, pools, plate_slot = _query_pools(ctrl, t, replica, plate, meas)
    max_pool = max(len(p) for p in pools)
    pool_mat = np.full((len(pools), max_pool), -1, dtype=np.int64)
    for i, p in enumerate(pools):
        pool_mat[i, : len(p)] = p
    pool_size = np.array([len(p) for p in pools])[plate_slot] - 1  # minus the query itself
    usable = (n_other > 0) & (pool_size > 0)
    if not usable.any():
        why = "controls of a single replica" if (n_other == 0).all() else "no plate with two or more controls"
        return None, [f"null cannot be drawn: {why}"]
    if int(n_other[usable].min()) < n_pos:
        reasons.append(
            f"null: only {int(n_other[usable].min())} control positives in other replicas (design {n_pos})"
        )
    if int(pool_size[usable].min()) < n_neg:
        reasons.append(
            f"null: only {int(pool_size[usable].min())} other controls on a plate (design {n_neg})"
        )
    rng = np.random.default_rng([seed, 0, t])
    cand = np.flatnonzero(usable)
    qi = cand[rng.integers(cand.size, size=n_draws)]
    out = np.empty(n_draws)
    for s in range(0, n_draws, _DRAW_CHUNK):
        q = qi[s : s + _DRAW_CHUNK]
        pos_col, pos_ok = _draw_without_replacement(rng, other_rep[q], n_pos)
        rows = pool_mat[plate_slot[q]]
        pos_idx = np.where(pos_ok, ctrl[pos_col], -2)
        # negatives: controls of the query's plate other than the query and this draw's positives
        neg_elig = (
            (rows >= 0) & (rows != ctrl[q][:, None]) & ~(rows[:, :, None] == pos_idx[:, None, :]).any(axis=2)
        )
        neg_col, neg_ok = _draw_without_replacement(rng, neg_elig, n_neg)
        xq = xn[ctrl[q]]
        pos_s = np.einsum("df,dkf->dk", xq, xn[np.where(pos_ok, ctrl[pos_col], 0)])
        neg_idx = np.take_along_axis(rows, neg_col, axis=1)
        neg_s = np.einsum("df,dkf->dk", xq, xn[np.where(neg_ok, neg_idx, 0)])
        out[s : s + q.size] = _ap_from_draws(pos_s, pos_ok, neg_s, neg_ok)
    return out, reasons


def _group_samples(
    rows: np.ndarray,
    t: int,
    xn: np.ndarray,
    replica: np.ndarray,
    plate: np.ndarray,
    meas: _Measurements,
    n_draws: int,
    n_pos: int,
    n_neg: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray | None, dict[str, Any], list[str]]:
    """AP samples of one compound × condition; its availability counts and unmet-design reasons."""
    info: dict[str, Any] = {
        "n_wells": rows.size,
        "n_replicas": int(np.unique(replica[rows]).size),
        "n_plates": int(np.unique(plate[rows]).size),
        "pos_available": 0,
        "neg_available": 0,
    }
    if info["n_replicas"] < 2:
        return None, info, ["wells of a single replica: no positives from other replicas"]
    other_rep, n_other, pools, plate_slot = _query_pools(rows, t, replica, plate, meas)
    sizes = np.array([len(p) for p in pools])
    neg_size = sizes[plate_slot]
    usable = (n_other > 0) & (neg_size > 0)
    reasons = []
    if not usable.any():
        return None, info, ["no well has controls on its plate at this timepoint"]
    if (~usable).any():
        reasons.append(
            f"{int((~usable).sum())} of {rows.size} wells unusable as queries (no controls on their plate)"
        )
    info["pos_available"] = int(n_other[usable].min())
    info["neg_available"] = int(neg_size[usable].min())
    if info["pos_available"] < n_pos:
        reasons.append(f"only {info['pos_available']} positive wells in other replicas (design {n_pos})")
    if info["neg_available"] < n_neg:
        reasons.append(f"only {info['neg_available']} control wells on a query plate (design {n_neg})")
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    ctrl_cols = np.concatenate(pools)
    sims_pos = xn[rows] @ xn[rows].T
    sims_neg = xn[rows] @ xn[ctrl_cols].T
    cand = np.flatnonzero(usable)
    qi = cand[rng.integers(cand.size, size=n_draws)]
    pos_col, pos_ok = _draw_without_replacement(rng, other_rep[qi], n_pos)
    neg_elig = np.arange(sizes.max())[None, :] < neg_size[qi][:, None]
    neg_col, neg_ok = _draw_without_replacement(rng, neg_elig, n_neg)
    pos_s = np.take_along_axis(sims_pos[qi], pos_col, axis=1)
    neg_s = np.take_along_axis(
        sims_neg[qi], np.where(neg_ok, offsets[plate_slot[qi]][:, None] + neg_col, 0), axis=1
    )
    return _ap_from_draws(pos_s, pos_ok, neg_s, neg_ok), info, reasons


def map_es(
    data: Any,
    *,
    compound_key: str = "compound",
    replica_key: str = "replica",
    plate_key: str = "plate",
    timepoint_key: str | None = "timepoint",
    dose_key: str | None = "dose",
    condition_keys: Sequence[str] | None = None,
    control: str = DEFAULT_CONTROL,
    n_draws: int = 1000,
    n_pos: int = 3,
    n_neg: int = 31,
    threshold: float = 0.8,
    seed: int = 0,
    strict: bool = False,
    features: Sequence[str] | str | None = None,
    layer: str | None = None,
    use_rep: str | None = None,
    progress: bool = False,
    return_samples: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """The mAP effect size per compound × condition (the activity table).

    Parameters
    ----------
    data
        Well-level (or FOV-level) profiles: AnnData, pycytominer-layout DataFrame or a path.
    compound_key, replica_key, plate_key, timepoint_key, dose_key
        Column names. `replica_key` is the experimental replica (a batch column for Cell Painting);
        positives come from wells of other replicas, wherever they are. `timepoint_key=None`: a single timepoint;
        `dose_key=None`: conditions without dose.
    condition_keys
        Columns defining a condition; default ``(timepoint_key, dose_key)``. Must include the timepoint.
    control
        Negative controls: pandas query on the metadata or name of a boolean column.
    n_draws, n_pos, n_neg
        Draws per compound × condition (and per timepoint for the null), positives and negatives per draw.
    threshold
        mAP-ES at or above which a compound × condition is active.
    seed
        Seed; each group has its own generator seeded by (seed, group number), so results do not
        depend on thread count or on which other groups exist.
    strict
        Refuse (raise :class:`InputError`) when any group cannot meet the design; by default the
        design uses what exists and the row's ``status``/``reason`` say so.
    features, layer, use_rep
        Where features are read from (:func:`lcd_core.load_profiles`, :func:`lcd_core.get_rep`).
    progress
        Rich progress bar over groups.
    return_samples
        Also return the AP samples (long table: the group keys, ``kind`` = compound/null, ``ap``).

    Returns
    -------
    pandas.DataFrame or tuple of pandas.DataFrame
        One row per compound × condition with the key columns and :data:`ACTIVITY_COLUMNS`: ``status``
        (ok / partial / failed), ``reason`` (empty when ok), ``active``, ``map_es``, ``map_mean``,
        ``map_ci_low``/``map_ci_high`` (2.5/97.5 % quantiles of the AP samples), ``null_mean``,
        ``null_sd``, ``n_draws``, ``n_wells``, ``n_replicas``, ``n_plates``, ``pos_available`` (fewest
        other-replica wells of a query) and ``neg_available`` (fewest controls on a query's plate);
        with ``return_samples`` also the AP samples.
    """
    if n_draws < 2 or n_pos < 1 or n_neg < 1:
        raise InputError(f"need n_draws >= 2, n_pos >= 1, n_neg >= 1 (got {n_draws}, {n_pos}, {n_neg})")
    obs, X, source, where = profiles(data, features=features, layer=layer, use_rep=use_rep)
    conds = resolve_conditions(timepoint_key, dose_key, condition_keys)
    d = build_design(
        obs,
        source,
        compound_key=compound_key,
        condition_keys=conds,
        timepoint_key=timepoint_key,
        control=control,
        extra_keys=(replica_key, plate_key),
    )
    check_finite(X, obs.index, where)
    check_nonzero(X, obs.index, where)
    xn = kernels.l2_normalize(X)
    replica = pd.factorize(obs[replica_key], sort=True)[0]
    plate = pd.factorize(obs[plate_key], sort=True)[0]
    meas = _Measurements(plate, d.time_code, d.is_control)
    t_of_group = [int(d.time_code[r[0]]) for r in d.group_rows]
    nulls = {}
    for t in sorted(set(t_of_group)):
        nulls[t] = _null_samples(t, xn, d, replica, plate, meas, n_draws, n_pos, n_neg, seed)
    records, samples = [], []
    groups = list(zip(d.group_keys, d.group_rows, strict=True))
    for gi, (key, rows) in enumerate(track(groups, "mAP-ES", enabled=progress, unit="groups")):
        t = t_of_group[gi]
        rng = np.random.default_rng([seed, 1, gi])
        null, null_reasons = nulls[t]
        ap, info, reasons = _group_samples(rows, t, xn, replica, plate, meas, n_draws, n_pos, n_neg, rng)
        rec = dict(zip((compound_key, *conds), key, strict=True))
        rec.update(info)
        reasons = [*reasons, *null_reasons]
        if null is None:  # without a null there is no effect size, whatever the compound's samples
            ap = None
        rec.update(_summarize(ap, null, threshold, n_draws))
        rec["status"] = "failed" if ap is None else ("partial" if reasons else "ok")
        rec["reason"] = "; ".join(reasons)
        records.append(rec)
        if return_samples and ap is not None:
            samples.append(
                pd.DataFrame(
                    {
                        **{k: [v] * ap.size for k, v in zip((compound_key, *conds), key, strict=True)},
                        "kind": "compound",
                        "ap": ap,
                    }
                )
            )
    table = pd.DataFrame.from_records(records)
    table = table[[compound_key, *conds, *ACTIVITY_COLUMNS]]
    table.attrs["lcd_metrics"] = {
        "compound_key": compound_key,
        "condition_keys": list(conds),
        "threshold": threshold,
    }
    if strict:
        bad = table["status"] != "ok"
        if bad.any():
            first = table.loc[bad].iloc[0]
            label = ", ".join(f"{k}={first[k]!r}" for k in (compound_key, *conds))
            raise InputError(
                f"strict=True: {int(bad.sum())} compound × condition groups cannot meet the design; first ({label}): {first['reason']}"
            )
    if not return_samples:
        return table
    for t, (null, _) in nulls.items():
        if null is not None:
            frame = {compound_key: [None] * null.size}
            if timepoint_key is not None:
                frame[timepoint_key] = [d.time_values[t]] * null.size
            samples.append(pd.DataFrame({**frame, "kind": "null", "ap": null}))
    return table, pd.concat(samples, ignore_index=True) if samples else pd.DataFrame(
        columns=[compound_key, "kind", "ap"]
    )


def _summarize(
    ap: np.ndarray | None, null: np.ndarray | None, threshold: float, n_draws: int
) -> dict[str, Any]:
    nan = float("nan")
    out = {
        "null_mean": float(null.mean()) if null is not None else nan,
        "null_sd": float(null.std(ddof=1)) if null is not None else nan,
        "n_draws": n_draws if ap is not None else 0,
    }
    if ap is None or null is None:
        out.update(active=False, map_es=nan, map_mean=nan, map_ci_low=nan, map_ci_high=nan)
        return out
    es = kernels.cohens_d(ap, null)
    lo, hi = np.quantile(ap, [0.025, 0.975])
    out.update(
        active=bool(es >= threshold),
        map_es=es,
        map_mean=float(ap.mean()),
        map_ci_low=float(lo),
        map_ci_high=float(hi),
    )
    return out


def sensitivity(
    results: pd.DataFrame,
    thresholds: Sequence[float] | np.ndarray | None = None,
    *,
    condition_keys: Sequence[str] | None = None,
    es_key: str = "map_es",
) -> pd.DataFrame:
    """Fraction of compounds active per condition across mAP-ES thresholds (sensitivity curves).

    Parameters
    ----------
    results
        Activity table from :func:`map_es` (or read back from parquet/CSV).
    thresholds
        mAP-ES thresholds; default ``0, 0.1, ..., 3``.
    condition_keys
        Condition columns; default: from the table's metadata, else the columns between the compound
        column (first) and ``status``.
    es_key
        Column with the effect size.

    Returns
    -------
    pandas.DataFrame
        One row per condition × threshold: the condition columns, ``threshold``, ``n_compounds`` (rows
        not failed), ``n_active`` (``es >= threshold``) and ``fraction_active``.
    """
    if es_key not in results.columns or "status" not in results.columns:
        raise InputError(
            f"results need columns {es_key!r} and 'status' (an activity table from map_es); have {list(results.columns)}"
        )
    if thresholds is None:
        thresholds = np.round(np.arange(0, 3.0001, 0.1), 10)
    thr = np.asarray(thresholds, dtype=np.float64)
    if condition_keys is None:
        meta = results.attrs.get("lcd_metrics", {})
        condition_keys = meta.get("condition_keys") or list(
            results.columns[1 : list(results.columns).index("status")]
        )
    cond = list(condition_keys)
    scored = results.loc[results["status"] != "failed"]
    rows = []
    groups = scored.groupby(cond, sort=True, dropna=False) if cond else [((), scored)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        es = g[es_key].to_numpy(dtype=np.float64)
        n_active = (es[None, :] >= thr[:, None]).sum(axis=1)
        for t, a in zip(thr, n_active, strict=True):
            rows.append(
                {
                    **dict(zip(cond, key, strict=True)),
                    "threshold": float(t),
                    "n_compounds": len(g),
                    "n_active": int(a),
                    "fraction_active": a / len(g) if len(g) else np.nan,
                }
            )
    return pd.DataFrame(rows, columns=[*cond, "threshold", "n_compounds", "n_active", "fraction_active"])
