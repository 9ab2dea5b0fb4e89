"""The cell-count activity baseline of the LCD paper.

Counts (nuclei per well or field of view, e.g. ``obs["nuclei_count"]`` written by lcd-nuclei) are
z-transformed per plate × timepoint against that measurement's control wells (mean and SD). Per compound
× condition the median z over all replicate wells gets a percentile bootstrap 95 % confidence interval
(Efron & Tibshirani 1993; :func:`scipy.stats.bootstrap`); the compound is active (cytotoxic or cytostatic) when the upper bound < 0.
Percent inhibition is :func:`lcd_metrics.inhibition`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from lcd_core import DEFAULT_CONTROL, InputError, group_codes

from ._counts import count_values, obs_of
from ._options import check_int, check_real, check_seed
from .design import build_design, resolve_conditions

CELL_COUNT_COLUMNS = ("status", "reason", "active", "median_z", "ci_low", "ci_high", "n_wells", "n_boot")


def _measurement_stats(
    obs: pd.DataFrame, values: np.ndarray, is_control: np.ndarray, keys: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Control mean, SD (ddof=1) and count of each row's plate × timepoint."""
    meas, levels = group_codes(obs, keys)
    n_meas = len(levels)
    cm = meas[is_control]
    cnt = np.bincount(cm, minlength=n_meas).astype(np.float64)
    s1 = np.bincount(cm, weights=values[is_control], minlength=n_meas)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / cnt
        dev = values[is_control] - mean[cm]
        sd = np.sqrt(np.bincount(cm, weights=dev * dev, minlength=n_meas) / (cnt - 1))
    return mean[meas], sd[meas], cnt[meas]


def cell_count_activity(
    data: Any,
    *,
    count_key: str = "nuclei_count",
    compound_key: str = "compound",
    plate_key: str = "plate",
    timepoint_key: str | None = "timepoint",
    dose_key: str | None = "dose",
    condition_keys: Sequence[str] | None = None,
    control: str = DEFAULT_CONTROL,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Cell-count activity per compound × condition (the paper's baseline).

    Parameters
    ----------
    data
        AnnData (counts in ``obs``), DataFrame or a path, one row per well or field of view.
    count_key
        Column with the counts.
    compound_key, plate_key, timepoint_key, dose_key, condition_keys, control
        As in :func:`lcd_metrics.map_es`; z-scores use the controls of each plate × timepoint.
    n_boot, ci, seed
        Bootstrap resamples, confidence level and seed (one generator per group, seeded by
        (seed, group number): reproducible whatever the thread count).

    Returns
    -------
    pandas.DataFrame
        One row per compound × condition: the key columns, ``status``, ``reason``, ``active``
        (``ci_high < 0``), ``median_z``, ``ci_low``, ``ci_high``, ``n_wells``, ``n_boot``.
    """
    from scipy.stats import bootstrap  # scipy.stats takes ~1 s to import: only when counts are scored

    n_boot = check_int("n_boot", n_boot, minimum=1)
    ci = check_real("ci", ci, low=0.0, high=1.0, low_open=True, high_open=True)
    seed = check_seed(seed)
    obs, source = obs_of(data)
    values = count_values(obs, count_key, source)
    bad = ~np.isfinite(values)
    if bad.any():  # a z-score of a missing count is not a number: refuse rather than drop the well
        first = ", ".join(repr(str(i)) for i in obs.index[bad][:3])
        raise InputError(
            f"{source}: count column {count_key!r} has {int(bad.sum())} NaN/inf values (first rows: {first})"
        )
    negative = values < 0
    if (
        negative.any()
    ):  # a count below zero is a broken upstream step: its z-score would look like a phenotype
        first = ", ".join(repr(str(i)) for i in obs.index[negative][:3])
        raise InputError(
            f"{source}: count column {count_key!r} has {int(negative.sum())} negative values (first rows: {first})"
        )
    conds = resolve_conditions(timepoint_key, dose_key, condition_keys)
    d = build_design(
        obs,
        source,
        compound_key=compound_key,
        condition_keys=conds,
        timepoint_key=timepoint_key,
        control=control,
        extra_keys=(plate_key,),
    )
    meas_keys = [plate_key] + ([timepoint_key] if timepoint_key else [])
    mean, sd, n_ctrl = _measurement_stats(obs, values, d.is_control, meas_keys)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (values - mean) / sd
    usable = (n_ctrl >= 2) & (sd > 0)
    records = []
    for gi, (key, rows) in enumerate(zip(d.group_keys, d.group_rows, strict=True)):
        rec = dict(zip((compound_key, *conds), key, strict=True))
        ok_rows = rows[usable[rows]]
        reasons = []
        if ok_rows.size < rows.size:
            reasons.append(
                f"{rows.size - ok_rows.size} of {rows.size} wells on plates with fewer than 2 controls or control SD 0"
            )
        rec.update(n_wells=int(ok_rows.size), n_boot=n_boot)
        if ok_rows.size == 0:
            rec.update(
                status="failed",
                reason="; ".join(reasons),
                active=False,
                median_z=np.nan,
                ci_low=np.nan,
                ci_high=np.nan,
                n_boot=0,
            )
            records.append(rec)
            continue
        zs = z[ok_rows]
        rng = np.random.default_rng([seed, 2, gi])
        if zs.size >= 2:
            # scipy's percentile bootstrap: the same numbers as the hand-written resampling it replaced
            # (same generator, tested); ~0.8 ms per group against 0.3 ms, kept for one implementation
            res = bootstrap(
                (zs,),
                np.median,
                n_resamples=n_boot,
                method="percentile",
                confidence_level=ci,
                rng=rng,
                vectorized=True,
            )
            lo, hi = res.confidence_interval.low, res.confidence_interval.high
        else:  # one well: every resample is that well
            lo = hi = float(zs[0])
        if zs.size < 3:
            reasons.append(f"only {zs.size} wells: the bootstrap interval is degenerate")
        rec.update(
            status="partial" if reasons else "ok",
            reason="; ".join(reasons),
            active=bool(hi < 0),
            median_z=float(np.median(zs)),
            ci_low=float(lo),
            ci_high=float(hi),
        )
        records.append(rec)
    table = pd.DataFrame.from_records(records)
    table = table[[compound_key, *conds, *CELL_COUNT_COLUMNS]]
    table.attrs["lcd_metrics"] = {"compound_key": compound_key, "condition_keys": list(conds)}
    return table
