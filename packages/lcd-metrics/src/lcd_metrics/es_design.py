"""The mAP-ES design: where each compound × condition finds its positives and negatives, before any draw.

The rule of the LCD paper, applied per compound × condition (a *group*):

- **positives** come from the group's wells in *other replicas* when the group spans two or more
  replicas (``pos_rule = "other_replica"``); a group imaged in a single replica (the paper's low-dose
  sets) takes them from its wells on *other plates* of that replica, i.e. other randomization layouts
  (``pos_rule = "other_plate"``); a group on one plate of one replica has none and fails;
- **negatives** are always the control wells of the query's plate at the query's timepoint;
- the **null** of a group follows its rule: control queries at the group's timepoint with control
  positives from other replicas (``other_replica``), or, for ``other_plate``, control queries of the
  group's replica with control positives from its other plates; negatives are the other controls of
  the query's plate.

A plate is a physical plate: the same plate name in two replicas is refused, unless
``plate_scope="replica"`` says plate names repeat per replica (the plate is then replica + plate).

Rows are put in a canonical order first (:func:`canonical_order`), so that draws, and every result,
do not depend on how the input rows were sorted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from lcd_core import InputError, describe_group

from .design import Design, build_design

POS_RULES = ("other_replica", "other_plate")
PLATE_SCOPES = ("screen", "replica")

#: Columns of the design report (after the compound and condition columns).
DESIGN_COLUMNS = (
    "status",
    "reason",
    "pos_rule",
    "n_wells",
    "n_replicas",
    "n_plates",
    "pos_available",
    "neg_available",
    "null_controls",
)


def sort_codes(values: pd.Series) -> np.ndarray:
    """Integer codes that sort like the values (missing values: -1); mixed types sort as text."""
    try:
        codes = pd.factorize(values, sort=True)[0]
    except TypeError:  # e.g. numbers and strings in one object column
        codes = pd.factorize(values.astype(str).where(values.notna()), sort=True)[0]
    return codes.astype(np.int64)


def canonical_order(key_codes: Sequence[np.ndarray], X: np.ndarray | None = None) -> np.ndarray:
    """Row order by the key codes (first = most significant), then by the bytes of each feature row.

    Rows equal in every key and in every feature byte are interchangeable, so any computation that
    runs over rows in this order gives the same result whatever the input's row order.

    Parameters
    ----------
    key_codes
        Integer codes per row, most significant first (:func:`sort_codes`).
    X
        Features; rows equal in every key are ordered by their bytes.
    """
    keys = list(key_codes)
    if X is not None and len(X):
        rows = np.ascontiguousarray(X)
        as_bytes = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
        keys.append(np.unique(as_bytes, return_inverse=True)[1].ravel())
    n = len(keys[0]) if keys else (0 if X is None else len(X))
    if not keys:
        return np.arange(n)
    return np.lexsort(keys[::-1])  # lexsort sorts by its last key first


def plate_identity(
    obs: pd.DataFrame, replica_key: str, plate_key: str, plate_scope: str, source: str
) -> tuple[np.ndarray, np.ndarray]:
    """Replica and plate codes; refuse a plate name shared by replicas unless ``plate_scope="replica"``.

    Parameters
    ----------
    obs
        Metadata (every row needs a replica and a plate).
    replica_key, plate_key
        Columns.
    plate_scope
        ``"screen"``: plate names are unique in the screen; ``"replica"``: they repeat per replica.
    source
        Named in messages.
    """
    replica = sort_codes(obs[replica_key])
    plate = sort_codes(obs[plate_key])
    if plate_scope == "replica":
        combined = replica * (int(plate.max()) + 1) + plate
        return replica, np.unique(combined, return_inverse=True)[1].ravel().astype(np.int64)
    pairs = np.unique(np.stack([plate, replica], axis=1), axis=0)
    names, counts = np.unique(pairs[:, 0], return_counts=True)
    if (counts > 1).any():
        bad = int(names[counts > 1][0])
        first = np.flatnonzero(plate == bad)[0]
        reps = pd.unique(obs[replica_key].iloc[np.flatnonzero(plate == bad)])
        shown = ", ".join(repr(r.item() if isinstance(r, np.generic) else r) for r in reps[:4])
        raise InputError(
            f"{source}: plate {obs[plate_key].iloc[first]!r} appears in replicas {shown} "
            f"({int((counts > 1).sum())} plate names repeat across replicas); plate names must be unique "
            "across replicas, or pass plate_scope='replica' if they repeat per replica"
        )
    return replica, plate


class Measurements:
    """Control rows per plate × timepoint, in row order."""

    def __init__(self, plate: np.ndarray, time_code: np.ndarray, is_control: np.ndarray):
        ctrl = np.flatnonzero(is_control)
        self.n_times = int(time_code.max()) + 1
        key = plate[ctrl] * self.n_times + time_code[ctrl]
        order = np.argsort(key, kind="stable")
        self.ctrl, key = ctrl[order], key[order]
        uniq, start, count = np.unique(key, return_index=True, return_counts=True)
        self.lookup = {int(u): (int(s), int(c)) for u, s, c in zip(uniq, start, count, strict=True)}

    def pool(self, plate: int, time: int) -> np.ndarray:
        """Control rows of one plate at one timepoint."""
        s, c = self.lookup.get(plate * self.n_times + time, (0, 0))
        return self.ctrl[s : s + c]


@dataclass
class Layout:
    """A screen ready for drawing: codes per row and the treated groups."""

    design: Design
    replica: np.ndarray
    plate: np.ndarray
    meas: Measurements
    replica_values: list


@dataclass
class GroupPlan:
    """Where one compound × condition draws from, and what it lacks."""

    key: tuple
    rows: np.ndarray
    time: int
    rule: str | None
    #: (wells × wells) positives of each query well among the group's wells
    pos: np.ndarray | None = None
    usable: np.ndarray | None = None
    plates: np.ndarray | None = None
    pools: list[np.ndarray] = field(default_factory=list)
    plate_slot: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    failed: str | None = None

    @property
    def null_key(self) -> tuple[int, str, int] | None:
        """``(timepoint, rule, replica)`` of the null this group is compared with (replica -1: any)."""
        if self.rule is None:
            return None
        rep = int(self.info["replica_code"]) if self.rule == "other_plate" else -1
        return (self.time, self.rule, rep)


@dataclass
class NullPlan:
    """Control queries of one null, with the ranges their positives are drawn from."""

    key: tuple[int, str, int]
    #: control rows of the timepoint (and replica), sorted by replica then plate
    ctrl: np.ndarray
    queries: np.ndarray | None = None  # positions into ctrl of usable queries
    #: per query: positives are ctrl[lo:hi] minus ctrl[hole_lo:hole_hi]
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None
    hole_lo: np.ndarray | None = None
    hole_hi: np.ndarray | None = None
    #: per query: negatives are the other controls of its plate, ctrl[plate_lo:plate_hi] minus itself
    plate_lo: np.ndarray | None = None
    plate_hi: np.ndarray | None = None
    reasons: list[str] = field(default_factory=list)
    failed: str | None = None


def build_layout(
    obs: pd.DataFrame,
    source: str,
    *,
    compound_key: str,
    replica_key: str,
    plate_key: str,
    timepoint_key: str | None,
    condition_keys: tuple[str, ...],
    control: str,
    plate_scope: str,
) -> Layout:
    """Check the design columns, codes per row and the treated groups (rows in the given order).

    Parameters
    ----------
    obs
        Metadata, one row per well (already in canonical order when draws follow).
    source
        Named in messages.
    compound_key, replica_key, plate_key, timepoint_key, condition_keys, control, plate_scope
        As in :func:`lcd_metrics.map_es`.
    """
    d = build_design(
        obs,
        source,
        compound_key=compound_key,
        condition_keys=condition_keys,
        timepoint_key=timepoint_key,
        control=control,
        extra_keys=(replica_key, plate_key),
    )
    replica, plate = plate_identity(obs, replica_key, plate_key, plate_scope, source)
    first = np.unique(replica, return_index=True)[1]  # one row per replica code, in code order
    values = list(obs[replica_key].iloc[first])
    return Layout(d, replica, plate, Measurements(plate, d.time_code, d.is_control), values)


def plan_group(layout: Layout, key: tuple, rows: np.ndarray, n_pos: int, n_neg: int) -> GroupPlan:
    """Positives, negatives and shortfalls of one group (no random draw).

    Parameters
    ----------
    layout
        The screen.
    key
        The group's (compound, *conditions) values.
    rows
        The group's rows.
    n_pos, n_neg
        Design: positives and negatives per draw.
    """
    t = int(layout.design.time_code[rows[0]])
    rep, plate = layout.replica[rows], layout.plate[rows]
    n_rep, n_plates = int(np.unique(rep).size), int(np.unique(plate).size)
    rule = "other_replica" if n_rep >= 2 else ("other_plate" if n_plates >= 2 else None)
    info = {
        "pos_rule": rule or "",
        "n_wells": int(rows.size),
        "n_replicas": n_rep,
        "n_plates": n_plates,
        "pos_available": 0,
        "neg_available": 0,
        "replica_code": int(rep[0]),
    }
    plan = GroupPlan(key, rows, t, rule, info=info)
    if rule is None:
        plan.failed = (
            f"all {rows.size} wells on one plate of one replica: no positives from another replica or plate"
        )
        return plan
    plan.pos = (
        (rep[:, None] != rep[None, :]) if rule == "other_replica" else (plate[:, None] != plate[None, :])
    )
    n_other = plan.pos.sum(axis=1)
    plan.plates = np.unique(plate)
    plan.pools = [layout.meas.pool(int(p), t) for p in plan.plates]
    plan.plate_slot = np.searchsorted(plan.plates, plate)
    neg_size = np.array([len(p) for p in plan.pools])[plan.plate_slot]
    plan.usable = (n_other > 0) & (neg_size > 0)
    if not plan.usable.any():
        plan.failed = "no well has control wells on its plate at this timepoint"
        return plan
    if (~plan.usable).any():
        plan.reasons.append(
            f"{int((~plan.usable).sum())} of {rows.size} wells unusable as queries (no controls on their plate)"
        )
    info["pos_available"] = int(n_other[plan.usable].min())
    info["neg_available"] = int(neg_size[plan.usable].min())
    where = "other replicas" if rule == "other_replica" else "other plates of its replica"
    if info["pos_available"] < n_pos:
        plan.reasons.append(f"only {info['pos_available']} positive wells in {where} (design {n_pos})")
    if info["neg_available"] < n_neg:
        plan.reasons.append(f"only {info['neg_available']} control wells on a query plate (design {n_neg})")
    return plan


def _ranges(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and stop of the run each element belongs to, for sorted codes."""
    change = np.flatnonzero(np.diff(codes)) + 1
    starts = np.r_[0, change]
    stops = np.r_[change, codes.size]
    run = np.repeat(np.arange(starts.size), stops - starts)
    return starts[run], stops[run]


def plan_null(layout: Layout, key: tuple[int, str, int], n_pos: int, n_neg: int) -> NullPlan:
    """Control queries of the null ``key = (timepoint, rule, replica)`` and where they draw from.

    Parameters
    ----------
    layout
        The screen.
    key
        ``(timepoint code, pos_rule, replica code or -1)``.
    n_pos, n_neg
        Design: positives and negatives per draw.
    """
    t, rule, rep = key
    d = layout.design
    sel = d.is_control & (d.time_code == t)
    if rule == "other_plate":
        sel &= layout.replica == rep
    ctrl = np.flatnonzero(sel)
    # sorted by replica, then plate: "other replicas" and "other plates" are a range minus a sub-range
    ctrl = ctrl[np.lexsort((layout.plate[ctrl], layout.replica[ctrl]))]
    plan = NullPlan(key, ctrl)
    if ctrl.size == 0:
        plan.failed = "no control wells at this timepoint" + (
            " in this replica" if rule == "other_plate" else ""
        )
        return plan
    rep_lo, rep_hi = _ranges(layout.replica[ctrl])
    plate_codes = layout.plate[ctrl]
    pl_lo, pl_hi = _ranges(layout.replica[ctrl] * (int(plate_codes.max()) + 1) + plate_codes)
    if rule == "other_replica":
        lo, hi, hole_lo, hole_hi = np.zeros_like(rep_lo), np.full_like(rep_hi, ctrl.size), rep_lo, rep_hi
        where = "other replicas"
    else:
        lo, hi, hole_lo, hole_hi = rep_lo, rep_hi, pl_lo, pl_hi
        where = "other plates of the replica"
    n_pos_avail = (hi - lo) - (hole_hi - hole_lo)
    n_neg_avail = pl_hi - pl_lo - 1  # minus the query itself
    usable = (n_pos_avail > 0) & (n_neg_avail > 0)
    if not usable.any():
        why = (
            "controls of a single replica"
            if rule == "other_replica" and (n_pos_avail == 0).all()
            else "controls on a single plate"
            if (n_pos_avail == 0).all()
            else "no plate with two or more controls"
        )
        plan.failed = f"null cannot be drawn: {why}"
        return plan
    q = np.flatnonzero(usable)
    plan.queries = q
    plan.lo, plan.hi, plan.hole_lo, plan.hole_hi = lo[q], hi[q], hole_lo[q], hole_hi[q]
    plan.plate_lo, plan.plate_hi = pl_lo[q], pl_hi[q]
    if int(n_pos_avail[q].min()) < n_pos:
        plan.reasons.append(
            f"null: only {int(n_pos_avail[q].min())} control positives in {where} (design {n_pos})"
        )
    if int(n_neg_avail[q].min()) < n_neg:
        plan.reasons.append(
            f"null: only {int(n_neg_avail[q].min())} other controls on a plate (design {n_neg})"
        )
    return plan


def plan_all(layout: Layout, n_pos: int, n_neg: int) -> tuple[list[GroupPlan], dict[tuple, NullPlan]]:
    """Plans of every group and of every null they need.

    Parameters
    ----------
    layout
        The screen.
    n_pos, n_neg
        Design: positives and negatives per draw.
    """
    d = layout.design
    groups = [
        plan_group(layout, key, rows, n_pos, n_neg)
        for key, rows in zip(d.group_keys, d.group_rows, strict=True)
    ]
    nulls = {}
    for g in groups:
        k = g.null_key
        if k is not None and k not in nulls:
            nulls[k] = plan_null(layout, k, n_pos, n_neg)
    return groups, nulls


def group_status(group: GroupPlan, null: NullPlan | None) -> tuple[str, list[str]]:
    """``(status, reasons)`` of a group from its plan and its null's plan."""
    if group.failed is not None:
        return "failed", [group.failed, *group.reasons]
    if null is None or null.failed is not None:
        return "failed", [*group.reasons, null.failed if null is not None else "no null"]
    reasons = [*group.reasons, *null.reasons]
    return ("partial" if reasons else "ok"), reasons


def null_label(layout: Layout, key: tuple[int, str, int], timepoint_key: str | None) -> str:
    """``timepoint='24h', other_plate, replica='R1'``: names a null in tables and figures."""
    t, rule, rep = key
    parts = []
    if timepoint_key is not None:
        parts.append(describe_group([timepoint_key], layout.design.time_values[t]))
    parts.append(rule)
    if rep >= 0:
        parts.append(describe_group(["replica"], layout.replica_values[rep]))
    return ", ".join(parts)


def design_table(
    layout: Layout,
    groups: list[GroupPlan],
    nulls: dict[tuple, NullPlan],
    compound_key: str,
    condition_keys: Sequence[str],
) -> pd.DataFrame:
    """One row per compound × condition: the planned status, reason and what the design found.

    Parameters
    ----------
    layout
        The screen.
    groups, nulls
        Plans from :func:`plan_all`.
    compound_key, condition_keys
        Key columns of the rows.
    """
    records = []
    for g in groups:
        null = nulls.get(g.null_key) if g.null_key is not None else None
        status, reasons = group_status(g, null)
        rec = dict(zip((compound_key, *condition_keys), g.key, strict=True))
        rec.update({k: v for k, v in g.info.items() if k != "replica_code"})
        rec["status"], rec["reason"] = status, "; ".join(reasons)
        rec["null_controls"] = 0 if null is None or null.queries is None else int(null.queries.size)
        records.append(rec)
    table = pd.DataFrame.from_records(records, columns=[compound_key, *condition_keys, *DESIGN_COLUMNS])
    return table.astype({c: np.int64 for c in DESIGN_COLUMNS[3:]})


def condition_summary(table: pd.DataFrame, condition_keys: Sequence[str]) -> pd.DataFrame:
    """Per condition: compounds, replicas and plates seen, fewest positives/negatives, and status counts.

    Parameters
    ----------
    table
        A design report (:func:`design_table`) or an activity table.
    condition_keys
        Condition columns.
    """
    cond = list(condition_keys)
    frame = table.assign(_one=1)
    groups = frame.groupby(cond, sort=True, dropna=False) if cond else [((), frame)]
    rows = []
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        scored = g[g["status"] != "failed"]
        rows.append(
            {
                **dict(zip(cond, key, strict=True)),
                "n_compounds": len(g),
                "pos_rule": ", ".join(sorted(set(g["pos_rule"]) - {""})) or "-",
                "max_replicas": int(g["n_replicas"].max()),
                "max_plates": int(g["n_plates"].max()),
                "min_pos_available": int(scored["pos_available"].min()) if len(scored) else 0,
                "min_neg_available": int(scored["neg_available"].min()) if len(scored) else 0,
                "ok": int((g["status"] == "ok").sum()),
                "partial": int((g["status"] == "partial").sum()),
                "failed": int((g["status"] == "failed").sum()),
            }
        )
    return pd.DataFrame(rows)
