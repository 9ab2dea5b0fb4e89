"""Checking metadata keys and naming groups in messages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError


def as_list(keys: str | Sequence[str] | None) -> list[str]:
    """A key, a sequence of keys or ``None`` as a list of column names.

    Parameters
    ----------
    keys
        A column name, several, or ``None``.
    """
    if keys is None:
        return []
    if isinstance(keys, str):
        return [keys]
    return [str(k) for k in keys]


def check_keys(
    obs: pd.DataFrame,
    keys: str | Sequence[str] | None,
    *,
    source: str = "obs",
    allow_missing: bool = False,
) -> list[str]:
    """Return ``keys`` as a list after checking each is a column of ``obs`` without missing values.

    Missing values in a grouping column would silently drop rows from groups, so they are refused
    (``allow_missing=True`` for columns where missing means "not applicable", e.g. ``moa``).

    Parameters
    ----------
    obs
        Metadata, one row per profile.
    keys
        Column names that must exist.
    source
        Named in messages (a file path).
    allow_missing
        Accept missing values in the columns.
    """
    keys = as_list(keys)
    cols = [str(c) for c in obs.columns]
    for key in keys:
        if key not in obs.columns:
            shown = ", ".join(cols[:25]) + (f" ... ({len(cols)} in all)" if len(cols) > 25 else "")
            raise InputError(f"{source}: column {key!r} not found; available columns: {shown}")
    if not allow_missing:
        for key in keys:
            missing = obs[key].isna().to_numpy()
            if missing.any():
                first = ", ".join(repr(str(i)) for i in obs.index[missing][:3])
                raise InputError(
                    f"{source}: column {key!r} has {int(missing.sum())} missing values (first rows: {first})"
                )
    return keys


def describe_group(keys: Sequence[str], values: Sequence[Any] | Any) -> str:
    """``plate='P1', timepoint=24`` for messages and ``reason`` columns.

    Parameters
    ----------
    keys
        Column names.
    values
        The group's value of each column.
    """
    if not isinstance(values, tuple | list):
        values = (values,)
    plain = [v.item() if isinstance(v, np.generic) else v for v in values]
    return ", ".join(f"{k}={v!r}" for k, v in zip(keys, plain, strict=True))


def group_codes(obs: pd.DataFrame, keys: Sequence[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Integer group code per row for the combination of ``keys`` (sorted), and the key values per group.

    Parameters
    ----------
    obs
        Metadata.
    keys
        Columns defining the groups (empty: one group).
    """
    keys = list(keys)
    if not keys:
        return np.zeros(len(obs), dtype=np.int64), pd.DataFrame(index=[0])
    frame = obs[keys].reset_index(drop=True)
    grouped = frame.groupby(keys, sort=True, observed=True, dropna=False)
    codes = grouped.ngroup().to_numpy(dtype=np.int64)
    levels = grouped.size().reset_index()[keys]
    return codes, levels
