"""Design sensitivity: how mAP-ES power changes with ``n_pos``, ``n_neg`` and the number of draws.

A lab planning replicas asks: with my plates, my controls and my noise, how often would a compound of
a given effect be called active if I had ``n_pos`` replicate wells per query, ``n_neg`` controls per
plate and ``n_draws`` draws? :func:`design_power` answers by resampling the screen's own controls.

One simulated compound (per timepoint, per grid cell, ``n_sim`` times):

- its wells follow the paper's rule (:mod:`lcd_metrics.es_design`): with controls in two or more
  replicas, ``ceil(n_pos / (R - 1))`` wells in each of the R replicas (other-replica positives);
  otherwise that many wells on each plate of the single replica (other-plate positives); each well
  on a random plate of its replica;
- each well is a control well of its plate, drawn without replacement and removed from that plate's
  negatives, plus ``effect × s × u``: ``u`` a random unit direction (one per compound, the same in
  every well: a reproducible phenotype) and ``s`` the median distance of a control well to its
  plate's control mean (so ``effect = 1`` is a shift as large as typical control noise);
- its mAP-ES is computed with the grid cell's design against the null of the real controls
  (:func:`lcd_metrics.map_es`'s draws), and the compound is active when mAP-ES >= threshold.

``power`` is the fraction of simulated compounds called active; at ``effect = 0`` it is the false
positive rate of the design.
"""

from __future__ import annotations

import itertools
import math
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
)
from lcd_core import progress as bar

from . import kernels
from ._draws import seed_words
from ._options import check_choice, check_int, check_real, check_seed
from ._profiles import check_nonzero, profiles
from .design import Design
from .es_design import (
    PLATE_SCOPES,
    GroupPlan,
    Layout,
    Measurements,
    canonical_order,
    plan_null,
    plate_identity,
    sort_codes,
)
from .map_es import group_samples, null_samples

POWER_COLUMNS = (
    "pos_rule",
    "n_pos",
    "n_neg",
    "n_draws",
    "effect",
    "n_wells",
    "n_sim",
    "power",
    "map_es_median",
    "map_es_q05",
    "map_es_q95",
    "status",
    "reason",
)


def _grid(name: str, values: Any, check) -> list:
    values = [values] if np.isscalar(values) else list(values)
    if not values:
        raise InputError(f"{name}: give at least one value")
    return sorted({check(name, v) for v in values})


def _sim_compound(
    layout: Layout,
    xn: np.ndarray,
    ctrl_by_plate: dict[int, np.ndarray],
    plates_by_rep: dict[int, np.ndarray],
    rule: str,
    n_pos: int,
    effect: float,
    scale: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """Unit-norm wells of one simulated compound, their replica and plate codes, the plates' pools."""
    reps = sorted(plates_by_rep)
    if rule == "other_replica":
        per = math.ceil(n_pos / (len(reps) - 1))
        slots = [(r, p) for r in reps for p in rng.choice(plates_by_rep[r], per)]
    else:
        plates = plates_by_rep[reps[0]]
        per = math.ceil(n_pos / (len(plates) - 1))
        slots = [(reps[0], p) for p in plates for _ in range(per)]
    u = rng.normal(size=xn.shape[1])
    u /= np.linalg.norm(u)
    taken: dict[int, list[int]] = {}
    wells = []
    for _, p in slots:
        free = np.setdiff1d(ctrl_by_plate[int(p)], taken.get(int(p), []))
        base = int(rng.choice(free))
        taken.setdefault(int(p), []).append(base)
        wells.append(xn[base] + effect * scale * u)
    x = kernels.l2_normalize(np.array(wells))
    rep = np.array([r for r, _ in slots])
    plate = np.array([p for _, p in slots])
    pools = {int(p): np.setdiff1d(ctrl_by_plate[int(p)], taken.get(int(p), [])) for p in np.unique(plate)}
    return x, rep, plate, [pools[int(p)] for p in np.unique(plate)]


def _noise_scale(xn: np.ndarray, layout: Layout, t: int) -> float:
    """Median distance of a control well (unit norm) to its plate's control mean at timepoint t."""
    d = layout.design
    ctrl = np.flatnonzero(d.is_control & (d.time_code == t))
    plate = layout.plate[ctrl]
    dist = []
    for p in np.unique(plate):
        rows = xn[ctrl[plate == p]]
        if len(rows) > 1:
            dist.append(np.linalg.norm(rows - rows.mean(axis=0), axis=1))
    return float(np.median(np.concatenate(dist))) if dist else float("nan")


def design_power(
    data: Any,
    *,
    replica_key: str = "replica",
    plate_key: str = "plate",
    timepoint_key: str | None = "timepoint",
    control: str = DEFAULT_CONTROL,
    plate_scope: str = "screen",
    n_pos: int | Sequence[int] = (1, 2, 3, 5),
    n_neg: int | Sequence[int] = (8, 16, 31),
    n_draws: int | Sequence[int] = (100, 1000),
    effect: float | Sequence[float] = (0.0, 0.5, 1.0),
    n_sim: int = 20,
    threshold: float = 0.8,
    seed: int = 0,
    features: Sequence[str] | str | None = None,
    layer: str | None = None,
    use_rep: str | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Estimated mAP-ES power per design (``n_pos`` × ``n_neg`` × ``n_draws``) and effect, from the controls.

    Parameters
    ----------
    data
        Profiles with control wells (AnnData, pycytominer-layout DataFrame or a path); treated wells
        are not used.
    replica_key, plate_key, timepoint_key, control, plate_scope
        As in :func:`lcd_metrics.map_es`.
    n_pos, n_neg, n_draws
        Designs to compare (each a value or a list; every combination is simulated).
    effect
        Shifts of the simulated compound, in units of the control noise (see the module notes); 0
        gives the false positive rate.
    n_sim
        Simulated compounds per timepoint, design and effect.
    threshold
        mAP-ES at or above which a simulated compound is active.
    seed
        Seed (non-negative); every grid cell has its own generator.
    features, layer, use_rep
        Where features are read from.
    progress
        Progress bar over grid cells.

    Returns
    -------
    pandas.DataFrame
        One row per timepoint × design × effect: the timepoint, :data:`POWER_COLUMNS` (``power`` =
        fraction of simulated compounds active; ``map_es_median``/``_q05``/``_q95`` of their mAP-ES;
        ``status``/``reason`` say when the screen cannot give the design, e.g. fewer controls on a
        plate than ``n_neg``).
    """
    check_choice("plate_scope", plate_scope, PLATE_SCOPES)
    pos_grid = _grid("n_pos", n_pos, lambda n, v: check_int(n, v, minimum=1))
    neg_grid = _grid("n_neg", n_neg, lambda n, v: check_int(n, v, minimum=1))
    draw_grid = _grid("n_draws", n_draws, lambda n, v: check_int(n, v, minimum=2))
    effects = _grid("effect", effect, lambda n, v: check_real(n, v, low=0.0))
    n_sim = check_int("n_sim", n_sim, minimum=2)
    threshold = check_real("threshold", threshold)
    seed = check_seed(seed)
    layout, xn, source = _controls_layout(
        data, replica_key, plate_key, timepoint_key, control, plate_scope, features, layer, use_rep
    )
    d = layout.design
    cells = list(
        itertools.product(sorted(set(d.time_code[d.is_control].tolist())), pos_grid, neg_grid, draw_grid)
    )
    records = []
    with (
        bar(len(cells) * len(effects), "design power", enabled=progress) as advance,
        blas_threads(threads_for(0)),
    ):
        for t, k, m, n in cells:
            ctrl = np.flatnonzero(d.is_control & (d.time_code == t))
            rep_codes = np.unique(layout.replica[ctrl])
            rule = "other_replica" if rep_codes.size >= 2 else "other_plate"
            base = {"timepoint": d.time_values[t]} if timepoint_key is not None else {}
            plates_by_rep = {
                int(r): np.unique(layout.plate[ctrl[layout.replica[ctrl] == r]]) for r in rep_codes
            }
            ctrl_by_plate = {int(p): ctrl[layout.plate[ctrl] == p] for p in np.unique(layout.plate[ctrl])}
            if rule == "other_plate" and plates_by_rep[int(rep_codes[0])].size < 2:
                for e in effects:
                    records.append(
                        {
                            **base,
                            "pos_rule": "",
                            "n_pos": k,
                            "n_neg": m,
                            "n_draws": n,
                            "effect": e,
                            "n_wells": 0,
                            "n_sim": 0,
                            "status": "failed",
                            "reason": "controls of one replica on one plate: no positives",
                        }
                    )
                    advance()
                continue
            null_key = (t, rule, int(rep_codes[0]) if rule == "other_plate" else -1)
            null_plan = plan_null(layout, null_key, k, m)
            if null_plan.failed is not None:
                raise InputError(f"{source}: {null_plan.failed}")
            null = null_samples(null_plan, xn, f"power {null_key} {k} {m} {n}", n, k, m, seed)
            scale = _noise_scale(xn, layout, t)
            reasons = list(null_plan.reasons)
            smallest = min(len(v) for v in ctrl_by_plate.values())
            for e in effects:
                rng = np.random.default_rng(seed_words(seed, "power", t, k, m, n, e))
                es = np.empty(n_sim)
                n_wells = 0
                for s in range(n_sim):
                    x, rep, plate, pools = _sim_compound(
                        layout, xn, ctrl_by_plate, plates_by_rep, rule, k, e, scale, rng
                    )
                    n_wells = len(x)
                    g = _local_plan(x, rep, plate, pools, rule, (t, k, m, n, e, s))
                    local = np.vstack([x, xn[np.concatenate(pools)]])
                    g.pools = _shift(pools, len(x))
                    ap = group_samples(g, local, n, k, m, seed)
                    ok = ~np.isnan(ap)
                    es[s] = kernels.cohens_d(ap[ok], null[~np.isnan(null)])
                finite = es[np.isfinite(es)]
                rec = {
                    **base,
                    "pos_rule": rule,
                    "n_pos": k,
                    "n_neg": m,
                    "n_draws": n,
                    "effect": e,
                    "n_wells": n_wells,
                    "n_sim": n_sim,
                }
                rec["power"] = float(np.mean(es >= threshold))
                q05, q50, q95 = np.quantile(finite, [0.05, 0.5, 0.95]) if finite.size else (np.nan,) * 3
                rec.update(map_es_median=float(q50), map_es_q05=float(q05), map_es_q95=float(q95))
                why = list(reasons)
                if smallest - 1 < m:
                    why.append(f"only {smallest - 1} controls left on the smallest plate (design {m})")
                rec["status"], rec["reason"] = ("partial" if why else "ok"), "; ".join(why)
                records.append(rec)
                advance()
    cols = (["timepoint"] if timepoint_key is not None else []) + list(POWER_COLUMNS)
    table = pd.DataFrame.from_records(records).reindex(columns=cols)
    if timepoint_key is not None:
        table = table.rename(columns={"timepoint": timepoint_key})
    return table


def _shift(pools: list[np.ndarray], offset: int) -> list[np.ndarray]:
    """Pools as positions in the local matrix (simulated wells first, then the pools' controls)."""
    out, start = [], offset
    for p in pools:
        out.append(np.arange(start, start + len(p)))
        start += len(p)
    return out


def _local_plan(
    x: np.ndarray, rep: np.ndarray, plate: np.ndarray, pools: list[np.ndarray], rule: str, key: tuple
) -> GroupPlan:
    """A group plan over a local matrix: the simulated wells are rows 0..w-1."""
    rows = np.arange(len(x))
    g = GroupPlan(key, rows, int(key[0]), rule)
    g.pos = (rep[:, None] != rep[None, :]) if rule == "other_replica" else (plate[:, None] != plate[None, :])
    g.plates = np.unique(plate)
    g.plate_slot = np.searchsorted(g.plates, plate)
    sizes = np.array([len(p) for p in pools])
    g.usable = (g.pos.sum(axis=1) > 0) & (sizes[g.plate_slot] > 0)
    return g


def _controls_layout(
    data: Any,
    replica_key: str,
    plate_key: str,
    timepoint_key: str | None,
    control: str,
    plate_scope: str,
    features: Any,
    layer: str | None,
    use_rep: str | None,
) -> tuple[Layout, np.ndarray, str]:
    """The screen's controls as a layout in canonical order (treated wells are not needed)."""
    obs, X, source, where = profiles(data, features=features, layer=layer, use_rep=use_rep)
    keys = [k for k in (timepoint_key, replica_key, plate_key) if k is not None]
    check_keys(obs, list(dict.fromkeys(keys)), source=source)
    is_control = control_mask(obs, control, source=source)
    obs, X = obs.loc[is_control], X[is_control]
    check_finite(X, obs.index, where)
    check_nonzero(X, obs.index, where)
    order = canonical_order([sort_codes(obs[k]) for k in dict.fromkeys(keys)], X)
    obs = obs.iloc[order]
    xn = kernels.l2_normalize(X[order])
    replica, plate = plate_identity(obs, replica_key, plate_key, plate_scope, source)
    if timepoint_key is None:
        time_code, time_values = np.zeros(len(obs), dtype=np.int64), [None]
    else:
        codes, uniq = pd.factorize(obs[timepoint_key], sort=True)
        time_code, time_values = codes.astype(np.int64), list(uniq)
    ones = np.ones(len(obs), dtype=bool)
    design = Design("", (), timepoint_key, ones, time_code, time_values, [], [])
    first = np.unique(replica, return_index=True)[1]
    layout = Layout(
        design, replica, plate, Measurements(plate, time_code, ones), list(obs[replica_key].iloc[first])
    )
    return layout, xn, source
