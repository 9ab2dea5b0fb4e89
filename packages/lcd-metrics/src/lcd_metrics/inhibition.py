"""Percent inhibition of a count (nuclei, confluency) against the controls of its measurement.

``inhibition = 100 · (control_mean − value) / control_mean`` per plate × timepoint (the
``measurement_keys``). With ``well_key`` the fields of a well are averaged first and the control mean
is the mean of the control wells' means, so a well imaged in more fields does not weigh more.

Per-row and per-group problems do not raise: a measurement without controls, a control mean of 0,
a control with a missing count, or a missing/negative count of the row itself give
``status = "failed"`` and a ``reason``; ``inhibition`` is then NaN, never NaN with ``status = "ok"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from lcd_core import (
    DEFAULT_CONTROL,
    MEASUREMENT_KEYS,
    InputError,
    as_list,
    check_keys,
    control_mask,
    describe_group,
    group_codes,
)

from ._counts import count_values, obs_of

INHIBITION_COLUMNS = ("control_mean", "inhibition", "status", "reason")


def _invalid_reason(values: np.ndarray, count_key: str) -> np.ndarray:
    """Why each count cannot be used (``""`` when it can): missing, not finite or negative."""
    reason = np.full(values.shape, "", dtype=object)
    reason[values < 0] = f"negative {count_key}"
    reason[np.isinf(values)] = f"infinite {count_key}"
    reason[np.isnan(values)] = f"missing {count_key}"
    return reason


def _wells(
    obs: pd.DataFrame,
    values: np.ndarray,
    is_control: np.ndarray,
    keys: list[str],
    well_key: str,
    count_key: str,
    source: str,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """One row per well: key columns, ``is_control``, the mean and number of fields; and their reasons."""
    codes, levels = group_codes(obs, [*keys, well_key])
    n = len(levels)
    n_fields = np.bincount(codes, minlength=n)
    n_control = np.bincount(codes, weights=is_control.astype(np.float64), minlength=n)
    mixed = (n_control > 0) & (n_control < n_fields)
    if mixed.any():
        first = describe_group([*keys, well_key], levels.iloc[int(np.flatnonzero(mixed)[0])].tolist())
        raise InputError(
            f"{source}: {int(mixed.sum())} wells have both control and non-control fields (first: {first}); "
            "a well is one treatment: fix the metadata"
        )
    row_reason = _invalid_reason(values, count_key)
    n_bad = np.bincount(codes, weights=(row_reason != "").astype(np.float64), minlength=n).astype(int)
    with np.errstate(invalid="ignore"):
        mean = np.bincount(codes, weights=np.where(row_reason == "", values, 0.0), minlength=n) / n_fields
    # a well with an unusable field is failed, not averaged over the fields that remain
    reason = np.where(
        n_bad > 0,
        [
            f"{b} of {f} fields have a missing or negative {count_key}"
            for b, f in zip(n_bad, n_fields, strict=True)
        ],
        "",
    ).astype(object)
    frame = levels.reset_index(drop=True)
    frame["is_control"] = n_control > 0
    frame[f"{count_key}_mean"] = np.where(n_bad > 0, np.nan, mean)
    frame["n_fields"] = n_fields
    return frame, frame[f"{count_key}_mean"].to_numpy(), frame["is_control"].to_numpy(), reason


def inhibition(
    data: Any,
    *,
    count_key: str = "nuclei_count",
    measurement_keys: str | Sequence[str] = MEASUREMENT_KEYS,
    well_key: str | None = None,
    control: str = DEFAULT_CONTROL,
) -> pd.DataFrame:
    """Percent inhibition of ``count_key`` against the control mean of each measurement.

    Parameters
    ----------
    data
        An AnnData (its ``obs`` is used), a DataFrame or a path (``.h5ad`` or a table); not modified.
    count_key
        Column with the values (``nuclei_count``, ``confluency`` ...).
    measurement_keys
        Columns of one measurement (plate imaged at one timepoint); ``("plate",)`` without a
        timepoint column.
    well_key
        Average the fields of each well first (one output row per well); ``None``: one output row
        per input row.
    control
        Negative controls: a pandas query on the metadata or a boolean column
        (:func:`lcd_core.control_mask`).

    Returns
    -------
    pandas.DataFrame
        Without ``well_key``: one row per input row (same index) with the measurement keys,
        ``is_control``, ``count_key``, ``control_mean``, ``inhibition``, ``status``, ``reason``. With
        ``well_key``: one row per well (sorted by the keys) with the measurement keys, ``well_key``,
        ``is_control``, ``<count_key>_mean``, ``n_fields`` and the same four result columns.
        ``status`` is ``"ok"`` or ``"failed"`` (``reason`` says why; ``inhibition`` is then NaN).

    Raises
    ------
    InputError
        A missing or non-numeric column, a missing key value, no control row at all, or a well with
        both control and non-control fields.
    """
    obs, source = obs_of(data)
    keys = check_keys(obs, as_list(measurement_keys), source=source)
    if well_key is not None:
        check_keys(obs, [well_key], source=source)
    values = count_values(obs, count_key, source)
    is_control = control_mask(obs, control, source=source)
    if well_key is None:
        table = obs[keys].copy()
        table["is_control"] = is_control
        table[count_key] = values
        reason = _invalid_reason(values, count_key)
    else:
        table, values, is_control, reason = _wells(obs, values, is_control, keys, well_key, count_key, source)
    usable = reason == ""
    codes, levels = group_codes(table, keys)
    n_groups = len(levels)
    ctrl = is_control & usable
    n_ctrl = np.bincount(codes[ctrl], minlength=n_groups)
    n_bad_ctrl = np.bincount(codes[is_control & ~usable], minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        control_mean = np.bincount(codes[ctrl], weights=values[ctrl], minlength=n_groups) / n_ctrl
    unit = "wells" if well_key is not None else "rows"
    group_reason = np.full(n_groups, "", dtype=object)
    for g in np.flatnonzero((n_ctrl == 0) | (n_bad_ctrl > 0) | (control_mean == 0)):
        name = describe_group(keys, levels.iloc[g].tolist())
        if n_bad_ctrl[g] > 0:  # a control mean over the controls that remain would hide the gap
            group_reason[g] = f"{n_bad_ctrl[g]} control {unit} of {name} have no usable {count_key}"
        elif n_ctrl[g] == 0:
            group_reason[g] = f"no control {unit} ({control}) in {name}"
        else:
            group_reason[g] = f"control mean of {name} is 0"
    group_ok = group_reason == ""
    control_mean = np.where(group_ok, control_mean, np.nan)
    row_ok = usable & group_ok[codes]
    mean = control_mean[codes]
    with np.errstate(invalid="ignore", divide="ignore"):
        result = 100.0 * (mean - values) / mean
    table["control_mean"] = mean
    table["inhibition"] = np.where(row_ok, result, np.nan)
    table["status"] = np.where(row_ok, "ok", "failed")
    # the row's own problem first; else its measurement's
    table["reason"] = np.where(reason != "", reason, group_reason[codes])
    return table
