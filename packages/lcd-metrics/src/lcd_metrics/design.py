"""Shared handling of the experimental design: key names, conditions, controls, groups."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from lcd_core import InputError, check_keys, control_mask


@dataclass
class Design:
    """Resolved design of a screen: which rows are controls and how treated rows group."""

    compound_key: str
    condition_keys: tuple[str, ...]
    timepoint_key: str | None
    is_control: np.ndarray
    #: time index of every row (0 when there is no timepoint column)
    time_code: np.ndarray
    time_values: list
    #: treated groups: keys (compound, *conditions) and the row indices of each group
    group_keys: list[tuple]
    group_rows: list[np.ndarray]


def resolve_conditions(
    timepoint_key: str | None, dose_key: str | None, condition_keys: Sequence[str] | None
) -> tuple[str, ...]:
    """Default condition = (timepoint, dose), skipping keys set to None.

    Parameters
    ----------
    timepoint_key, dose_key
        Timepoint and dose columns (``None``: absent).
    condition_keys
        Explicit condition columns, or ``None`` for the default.
    """
    if condition_keys is None:
        return tuple(k for k in (timepoint_key, dose_key) if k is not None)
    return (condition_keys,) if isinstance(condition_keys, str) else tuple(condition_keys)


def build_design(
    obs: pd.DataFrame,
    source: str,
    *,
    compound_key: str,
    condition_keys: tuple[str, ...],
    timepoint_key: str | None,
    control: str,
    extra_keys: Sequence[str] = (),
) -> Design:
    """Check the columns, find controls, group treated rows by compound × condition (sorted keys).

    Parameters
    ----------
    obs
        Metadata, one row per well.
    source
        Named in messages.
    compound_key, condition_keys, timepoint_key
        Compound, condition and timepoint columns.
    control
        Control selector (:func:`lcd_core.control_mask`).
    extra_keys
        Further columns every row needs (replica, plate).
    """
    needed = [compound_key, *condition_keys, *extra_keys] + ([timepoint_key] if timepoint_key else [])
    check_keys(obs, list(dict.fromkeys(needed)), source=source, allow_missing=True)
    if timepoint_key is not None and timepoint_key not in condition_keys:
        raise InputError(
            f"condition_keys {list(condition_keys)} must include the timepoint key {timepoint_key!r}"
        )
    is_control = control_mask(obs, control, source=source)
    # every row needs the measurement keys; treated rows also their compound and condition
    check_keys(obs, [*extra_keys, *([timepoint_key] if timepoint_key else [])], source=source)
    treated = ~is_control
    for col in [compound_key, *condition_keys]:
        bad = obs[col].isna().to_numpy() & treated
        if bad.any():
            first = ", ".join(repr(str(i)) for i in obs.index[bad][:3])
            raise InputError(
                f"{source}: column {col!r} is missing in {int(bad.sum())} treated rows (first: {first})"
            )
    if timepoint_key is None:
        time_code = np.zeros(len(obs), dtype=np.int64)
        time_values: list = [None]
    else:
        codes, uniq = pd.factorize(obs[timepoint_key], sort=True)
        time_code, time_values = codes.astype(np.int64), list(uniq)
    keys_cols = [compound_key, *condition_keys]
    treated_idx = np.flatnonzero(treated)
    if treated_idx.size == 0:
        raise InputError(f"{source}: every row is a control ({control!r}); there is no compound to score")
    sub = obs.iloc[treated_idx][keys_cols]
    grouped = sub.groupby(keys_cols, sort=True, observed=True, dropna=False).indices
    group_keys = list(grouped.keys())
    group_keys = [k if isinstance(k, tuple) else (k,) for k in group_keys]
    group_rows = [treated_idx[v] for v in grouped.values()]
    return Design(
        compound_key,
        condition_keys,
        timepoint_key,
        is_control,
        time_code,
        time_values,
        group_keys,
        group_rows,
    )
