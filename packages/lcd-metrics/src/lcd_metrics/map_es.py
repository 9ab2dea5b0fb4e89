"""mAP effect size (mAP-ES) of the LCD paper: resampled AP of each compound × condition against a null.

For each compound × condition, ``n_draws`` ranked lists are scored by AP. One draw: a query well of
the group, ``n_pos`` positive wells of the group and ``n_neg`` negative-control wells of the query's
plate at its timepoint, sampled without replacement; where the positives come from is the paper's
rule (:mod:`lcd_metrics.es_design`: other replicas, else other plates of the replica). The null is the
same draw with control wells. mAP-ES is Cohen's d (pooled SD) of the group's AP samples against the
null's; a group is active when mAP-ES >= threshold (0.8, Cohen's "large" effect). AP uses copairs' tie
rule (:mod:`.kernels`); a draw whose candidates all tie has no AP (see :func:`kernels.all_tied`).

Reproducibility: rows are put in a canonical order before any draw, and every group and null has its
own generator seeded by the seed and what the group is (:func:`._draws.seed_words`), so a result
depends neither on the input's row order, nor on the thread count, nor on which other groups exist.
Draws run in chunks of fixed size: memory does not grow with ``n_draws``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from lcd_core import (
    DEFAULT_CONTROL,
    InputError,
    blas_threads,
    check_finite,
    check_keys,
    control_mask,
    threads_for,
    track,
)

from . import kernels
from ._draws import sample_k, seed_words
from ._options import check_choice, check_int, check_real, check_seed
from ._profiles import check_nonzero, profiles
from .design import resolve_conditions
from .es_design import (
    PLATE_SCOPES,
    GroupPlan,
    Layout,
    NullPlan,
    build_layout,
    canonical_order,
    design_table,
    group_status,
    null_label,
    plan_all,
    sort_codes,
)

ACTIVITY_COLUMNS = (
    "status",
    "reason",
    "pos_rule",
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

#: draws per chunk of a group (arrays of chunk × n_neg numbers: memory flat in n_draws)
_GROUP_CHUNK = 4096
#: draws per chunk of a null (gathers chunk × n_pos feature rows)
_NULL_CHUNK = 1024


def check_design_options(n_pos: Any, n_neg: Any, plate_scope: Any) -> tuple[int, int]:
    """Range checks shared by :func:`map_es`, :func:`map_es_design` and :func:`design_power`."""
    check_choice("plate_scope", plate_scope, PLATE_SCOPES)
    return check_int("n_pos", n_pos, minimum=1), check_int("n_neg", n_neg, minimum=1)


def prepare(
    data: Any,
    *,
    compound_key: str,
    replica_key: str,
    plate_key: str,
    timepoint_key: str | None,
    dose_key: str | None,
    condition_keys: Sequence[str] | None,
    control: str,
    plate_scope: str,
    features: Any,
    layer: str | None,
    use_rep: str | None,
    with_features: bool = True,
) -> tuple[Layout, np.ndarray | None, tuple[str, ...], str]:
    """Load profiles, put rows in canonical order, check the design; unit-norm features in that order.

    Parameters
    ----------
    data
        Profiles (any accepted input).
    compound_key, replica_key, plate_key, timepoint_key, dose_key, condition_keys, control, plate_scope
        As in :func:`map_es`.
    features, layer, use_rep
        Where features are read from.
    with_features
        Also check and normalize the features (False for a design report).

    Returns
    -------
    tuple
        ``(layout, xn, condition_keys, source)``; ``xn`` is None without features.
    """
    obs, X, source, where = profiles(data, features=features, layer=layer, use_rep=use_rep)
    conds = resolve_conditions(timepoint_key, dose_key, condition_keys)
    keys = [k for k in (timepoint_key, replica_key, plate_key, compound_key, *conds) if k is not None]
    keys = check_keys(obs, list(dict.fromkeys(keys)), source=source, allow_missing=True)
    xn = None
    if with_features:
        check_finite(X, obs.index, where)
        check_nonzero(X, obs.index, where)
        # the control role is part of a row's identity (a control may share every key with a well)
        codes = [sort_codes(obs[k]) for k in keys[:3]]
        codes.append(control_mask(obs, control, source=source).astype(np.int64))
        codes += [sort_codes(obs[k]) for k in keys[3:]]
        order = canonical_order(codes, X)
        obs = obs.iloc[order]
        xn = kernels.l2_normalize(X[order])
    layout = build_layout(
        obs,
        source,
        compound_key=compound_key,
        replica_key=replica_key,
        plate_key=plate_key,
        timepoint_key=timepoint_key,
        condition_keys=conds,
        control=control,
        plate_scope=plate_scope,
    )
    return layout, xn, conds, source


def _ap_of_draws(pos: np.ndarray, pos_ok: np.ndarray, neg: np.ndarray, neg_ok: np.ndarray) -> np.ndarray:
    """AP per draw; NaN for a draw whose candidates all tie (no ranking to score)."""
    pos = np.where(pos_ok, pos, np.nan)
    neg = np.where(neg_ok, neg, -np.inf)
    ap = kernels.ap_from_similarities(pos, neg)
    ap[kernels.all_tied(pos, neg)] = np.nan
    return ap


def group_samples(
    g: GroupPlan, xn: np.ndarray, n_draws: int, n_pos: int, n_neg: int, seed: int
) -> np.ndarray:
    """AP of ``n_draws`` draws of one group (NaN where a draw's candidates all tie).

    Parameters
    ----------
    g
        The group's plan (not failed).
    xn
        Unit-norm features in canonical row order.
    n_draws, n_pos, n_neg
        Design.
    seed
        Seed; the group's generator is seeded by the seed and the group's key.
    """
    rng = np.random.default_rng(seed_words(seed, "group", *g.key))
    rows = g.rows
    sizes = np.array([len(p) for p in g.pools])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    neg_size = sizes[g.plate_slot]
    n_other = g.pos.sum(axis=1)
    # positives of each query as a padded table: draw an index among a query's own candidates
    pos_table = np.zeros((rows.size, max(1, int(n_other.max()))), dtype=np.int64)
    qi, cj = np.nonzero(g.pos)
    pos_table[qi, np.arange(qi.size) - np.repeat(np.cumsum(n_other) - n_other, n_other)] = cj
    sims_pos = xn[rows] @ xn[rows].T
    sims_neg = xn[rows] @ xn[np.concatenate(g.pools)].T
    cand = np.flatnonzero(g.usable)
    out = np.empty(n_draws)
    for start in range(0, n_draws, _GROUP_CHUNK):
        m = min(_GROUP_CHUNK, n_draws - start)
        q = cand[rng.integers(cand.size, size=m)]
        p_idx, p_ok = sample_k(rng, n_other[q], n_pos)
        n_idx, n_ok = sample_k(rng, neg_size[q], n_neg)
        pos = sims_pos[q[:, None], pos_table[q[:, None], p_idx]]
        neg = sims_neg[q[:, None], offsets[g.plate_slot[q]][:, None] + n_idx]
        out[start : start + m] = _ap_of_draws(pos, p_ok, neg, n_ok)
    return out


def null_samples(
    plan: NullPlan, xn: np.ndarray, label: str, n_draws: int, n_pos: int, n_neg: int, seed: int
) -> np.ndarray:
    """AP of ``n_draws`` draws with control queries (NaN where a draw's candidates all tie).

    Parameters
    ----------
    plan
        The null's plan (not failed).
    xn
        Unit-norm features in canonical row order.
    label
        The null's name (seeds its generator).
    n_draws, n_pos, n_neg
        Design.
    seed
        Seed.
    """
    rng = np.random.default_rng(seed_words(seed, "null", label))
    ctrl = plan.ctrl
    xc = xn[ctrl]
    n_pos_avail = (plan.hi - plan.lo) - (plan.hole_hi - plan.hole_lo)
    n_neg_avail = plan.plate_hi - plan.plate_lo - 1
    # similarities among the controls of each plate (negatives never leave the query's plate)
    runs = np.unique(plan.plate_lo)
    run_stop = plan.plate_hi[np.searchsorted(plan.plate_lo, runs)] if runs.size else runs
    gram = {int(a): xc[a:b] @ xc[a:b].T for a, b in zip(runs, run_stop, strict=True)}
    out = np.empty(n_draws)
    nq = plan.queries.size
    for start in range(0, n_draws, _NULL_CHUNK):
        m = min(_NULL_CHUNK, n_draws - start)
        pick = rng.integers(nq, size=m)
        q = plan.queries[pick]
        p_idx, p_ok = sample_k(rng, n_pos_avail[pick], n_pos)
        pos_at = plan.lo[pick][:, None] + p_idx  # skip the hole: the query's replica or plate
        pos_at += (pos_at >= plan.hole_lo[pick][:, None]) * (plan.hole_hi - plan.hole_lo)[pick][:, None]
        pos = np.einsum("df,dkf->dk", xc[q], xc[np.where(p_ok, pos_at, q[:, None])])
        n_idx, n_ok = sample_k(rng, n_neg_avail[pick], n_neg)
        lo = plan.plate_lo[pick]
        neg_at = lo[:, None] + n_idx
        neg_at += neg_at >= q[:, None]  # skip the query itself
        neg = np.empty((m, n_neg))
        for a in np.unique(lo):  # per plate: a lookup in that plate's control Gram matrix
            sel = lo == a
            neg[sel] = gram[int(a)][(q[sel] - a)[:, None], np.where(n_ok[sel], neg_at[sel] - a, 0)]
        out[start : start + m] = _ap_of_draws(pos, p_ok, neg, n_ok)
    return out


def _summarize(ap: np.ndarray, null: np.ndarray, threshold: float) -> tuple[dict[str, Any], list[str]]:
    """Effect size and AP summary of one group from its AP samples and its null's (NaN = tied draw)."""
    nan = float("nan")
    reasons = []
    tied, tied_null = int(np.isnan(ap).sum()), int(np.isnan(null).sum())
    if tied:
        reasons.append(f"{tied} of {ap.size} draws: every candidate has the same similarity (no AP)")
    if tied_null:
        reasons.append(f"null: {tied_null} of {null.size} draws: every candidate has the same similarity")
    a, b = ap[~np.isnan(ap)], null[~np.isnan(null)]
    out = {
        "null_mean": float(b.mean()) if b.size else nan,
        "null_sd": float(b.std(ddof=1)) if b.size > 1 else nan,
        "n_draws": int(a.size),
        "active": False,
        "map_es": nan,
        "map_mean": nan,
        "map_ci_low": nan,
        "map_ci_high": nan,
    }
    if a.size < 2 or b.size < 2:
        return out, [*reasons, "fewer than 2 draws with an AP: no effect size"]
    es = kernels.cohens_d(a, b)
    lo, hi = np.quantile(a, [0.025, 0.975])
    out.update(map_mean=float(a.mean()), map_ci_low=float(lo), map_ci_high=float(hi))
    if not np.isfinite(es):  # zero spread in both: Cohen's d is not a number
        return out, [*reasons, "the AP samples and the null have zero spread: no effect size"]
    out.update(map_es=es, active=bool(es >= threshold))
    return out, reasons


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
    plate_scope: str = "screen",
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
        Well-level (or FOV-level) profiles: AnnData, a pycytominer-layout DataFrame or a path
        (.h5ad, .csv(.gz), .tsv, .parquet; ``Metadata_*`` columns are metadata).
    compound_key, replica_key, plate_key, timepoint_key, dose_key
        Column names. `replica_key` is the experimental replica (a batch column for Cell Painting).
        `timepoint_key=None`: a single timepoint; `dose_key=None`: conditions without dose.
    condition_keys
        Columns defining a condition; default ``(timepoint_key, dose_key)``. Must include the timepoint.
    control
        Negative controls: pandas query on the metadata or name of a boolean column.
    plate_scope
        ``"screen"`` (default): a plate name is one physical plate, and a name found in two replicas is
        refused; ``"replica"``: plate names repeat per replica, the plate is replica + plate.
    n_draws, n_pos, n_neg
        Draws per compound × condition (and per null), positives and negatives per draw.
    threshold
        mAP-ES at or above which a compound × condition is active (a finite number).
    seed
        Seed (non-negative integer).
    strict
        Refuse (raise :class:`InputError`) when any group cannot meet the design; by default the
        design uses what exists and the row's ``status``/``reason`` say so.
    features, layer, use_rep
        Where features are read from (:func:`lcd_core.load_profiles`, :func:`lcd_core.get_rep`).
    progress
        Rich progress bar over groups.
    return_samples
        Also return the AP samples: a long table with the group keys, ``null`` (the null's name),
        ``kind`` (compound / null) and ``ap``.

    Returns
    -------
    pandas.DataFrame or tuple of pandas.DataFrame
        One row per compound × condition with the key columns and :data:`ACTIVITY_COLUMNS`: ``status``
        (ok / partial / failed), ``reason`` (empty when ok), ``pos_rule`` (``other_replica``,
        ``other_plate``, or empty when no rule applies), ``active``, ``map_es``, ``map_mean``,
        ``map_ci_low``/``map_ci_high`` (2.5/97.5 % quantiles of the AP samples), ``null_mean``,
        ``null_sd``, ``n_draws`` (draws with an AP), ``n_wells``, ``n_replicas``, ``n_plates``,
        ``pos_available`` (fewest positives a query has) and ``neg_available`` (fewest controls on a
        query's plate). The design report (:func:`map_es_design`) is in ``table.attrs["lcd_metrics"]``.
        With ``return_samples`` also the AP samples.
    """
    n_pos, n_neg = check_design_options(n_pos, n_neg, plate_scope)
    n_draws = check_int("n_draws", n_draws, minimum=2)
    threshold = check_real("threshold", threshold)
    seed = check_seed(seed)
    layout, xn, conds, _ = prepare(
        data,
        compound_key=compound_key,
        replica_key=replica_key,
        plate_key=plate_key,
        timepoint_key=timepoint_key,
        dose_key=dose_key,
        condition_keys=condition_keys,
        control=control,
        plate_scope=plate_scope,
        features=features,
        layer=layer,
        use_rep=use_rep,
    )
    groups, nulls = plan_all(layout, n_pos, n_neg)
    report = design_table(layout, groups, nulls, compound_key, conds)
    labels = {k: null_label(layout, k, timepoint_key) for k in nulls}
    d = xn.shape[1]
    # the biggest product of the loop: a group's wells x the controls of its plates (small: one thread)
    flops = max((2.0 * g.rows.size * sum(len(p) for p in g.pools) * d for g in groups), default=0.0)
    null_ap: dict[tuple, np.ndarray] = {}
    records, samples = [], []
    with blas_threads(threads_for(flops)):
        for key, plan in nulls.items():
            if plan.failed is None:
                null_ap[key] = null_samples(plan, xn, labels[key], n_draws, n_pos, n_neg, seed)
        for g in track(groups, "mAP-ES", enabled=progress, unit="groups"):
            null_plan = nulls.get(g.null_key) if g.null_key is not None else None
            status, reasons = group_status(g, null_plan)
            rec = dict(zip((compound_key, *conds), g.key, strict=True))
            rec.update({k: v for k, v in g.info.items() if k != "replica_code"})
            ap = None
            if status != "failed":
                ap = group_samples(g, xn, n_draws, n_pos, n_neg, seed)
                summary, more = _summarize(ap, null_ap[g.null_key], threshold)
                rec.update(summary)
                reasons = [*reasons, *more]
                if np.isnan(summary["map_es"]):
                    status = "failed"
                elif more:
                    status = "partial"
            else:
                rec.update(_summarize(np.empty(0), np.empty(0), threshold)[0])
                rec["null_mean"], rec["null_sd"] = _null_stats(null_ap.get(g.null_key))
            rec["status"], rec["reason"] = status, "; ".join(reasons)
            records.append(rec)
            if return_samples and ap is not None:
                keys = dict(zip((compound_key, *conds), g.key, strict=True))
                samples.append(
                    pd.DataFrame(
                        {
                            **{k: [v] * ap.size for k, v in keys.items()},
                            "null": labels[g.null_key],
                            "kind": "compound",
                            "ap": ap,
                        }
                    )
                )
    table = pd.DataFrame.from_records(records, columns=[compound_key, *conds, *ACTIVITY_COLUMNS])
    table = table[[compound_key, *conds, *ACTIVITY_COLUMNS]]
    table.attrs["lcd_metrics"] = {
        "compound_key": compound_key,
        "condition_keys": list(conds),
        "threshold": threshold,
        "design": report.to_dict(orient="list"),
    }
    if strict:
        bad = table["status"] != "ok"
        if bad.any():
            first = table.loc[bad].iloc[0]
            label = ", ".join(f"{k}={first[k]!r}" for k in (compound_key, *conds))
            raise InputError(
                f"strict=True: {int(bad.sum())} compound × condition groups cannot meet the design; "
                f"first ({label}): {first['reason']}"
            )
    if not return_samples:
        return table
    for key, ap in null_ap.items():
        frame = {compound_key: [None] * ap.size}
        if timepoint_key is not None:
            frame[timepoint_key] = [layout.design.time_values[key[0]]] * ap.size
        samples.append(pd.DataFrame({**frame, "null": labels[key], "kind": "null", "ap": ap}))
    columns = [compound_key, *conds, "null", "kind", "ap"]
    long = pd.concat(samples, ignore_index=True) if samples else pd.DataFrame(columns=columns)
    return table, long.reindex(columns=columns)


def _null_stats(null: np.ndarray | None) -> tuple[float, float]:
    if null is None:
        return float("nan"), float("nan")
    b = null[~np.isnan(null)]
    return (float(b.mean()) if b.size else float("nan")), (
        float(b.std(ddof=1)) if b.size > 1 else float("nan")
    )
