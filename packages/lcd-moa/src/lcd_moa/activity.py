"""The activity table: which compound is active at which condition.

lcd-metrics' ``map_es`` output, or any compound × condition table with a boolean column, read and put
on the profiles' key names.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from lcd_core import InputError, read_table

from lcd_moa.spec import MoASpec

Activity = pd.DataFrame | str | os.PathLike | None

_TRUE = ("true", "1", "1.0")
_FALSE = ("false", "0", "0.0")


def load_activity(activity: Activity) -> pd.DataFrame | None:
    """An activity table from a DataFrame or a file (``None``: no activity filter).

    Parameters
    ----------
    activity
        A DataFrame, a csv/tsv/parquet path, or ``None``.
    """
    if activity is None:
        return None
    if isinstance(activity, pd.DataFrame):
        return activity
    table = read_table(activity, what="activity table")
    table.attrs["source"] = str(activity)  # named in errors about its columns and rows
    return table


def normalize_values(values: pd.Series) -> pd.Series:
    """Canonical condition values so that 24, 24.0 and "24" (or 0.62 written twice) match.

    Numeric-looking columns become floats rounded to 10 significant digits, others strings; missing
    values stay missing.

    Parameters
    ----------
    values
        One condition column.
    """
    numeric = pd.to_numeric(values, errors="coerce")
    if values.notna().sum() == numeric.notna().sum():
        return numeric.map(lambda v: v if pd.isna(v) else float(f"{v:.10g}")).astype(object)
    return values.map(lambda v: v if pd.isna(v) else str(v)).astype(object)


def normalize_activity(activity: pd.DataFrame, spec: MoASpec) -> pd.DataFrame:
    """An activity table on the profiles' key names with a boolean ``active`` column.

    Parameters
    ----------
    activity
        One row per compound × condition with the boolean ``spec.active_key`` column. Rows whose value
        is missing (``map_es`` rows with status ``failed``) count as inactive.
    spec
        Key names; ``spec.activity_keys`` names ``(compound, *condition_keys)`` in this table.

    Returns
    -------
    pandas.DataFrame
        ``compound``, the condition keys (profile names, normalized values), ``active`` (bool) and
        ``activity_note``.
    """
    source = activity.attrs.get("source", "activity table")
    keys = [spec.compound_key, *spec.condition_keys]
    named = list(spec.activity_keys) if spec.activity_keys is not None else keys
    missing = [c for c in [*named, spec.active_key] if c not in activity.columns]
    if missing:
        shown = ", ".join(str(c) for c in activity.columns[:20])
        raise InputError(
            f"{source}: column(s) {missing} not found (columns: {shown}); name the compound and condition "
            "columns with activity_keys (--activity-keys) and the activity column with active_key"
        )
    out = pd.DataFrame({k: activity[s].to_numpy() for k, s in zip(keys, named, strict=True)})
    for k in spec.condition_keys:
        out[k] = normalize_values(out[k])
    out = out.rename(columns={spec.compound_key: "compound"})
    out["compound"] = out["compound"].astype(str)
    raw = activity[spec.active_key]
    if pd.api.types.is_bool_dtype(raw) and not raw.isna().any():
        active = raw.to_numpy(dtype=bool)
        note = np.where(active, "", "inactive")
    else:
        as_text = raw.map(lambda v: v if pd.isna(v) else str(v).strip().lower())
        valid = as_text.isna() | as_text.isin([*_TRUE, *_FALSE])
        if not valid.all():
            first = int(np.flatnonzero(~valid.to_numpy())[0])
            raise InputError(
                f"{source}: column {spec.active_key!r} must be boolean; row {first} holds {raw.iloc[first]!r}"
            )
        active = as_text.isin(_TRUE).to_numpy()
        note = np.where(
            active, "", np.where(as_text.isna(), "activity missing (e.g. map_es error status)", "inactive")
        )
    out["active"] = active
    out["activity_note"] = note
    dup = out.duplicated(["compound", *spec.condition_keys])
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        values = out.iloc[row][["compound", *spec.condition_keys]].to_dict()
        raise InputError(f"{source}: duplicated compound × condition rows, first at row {row}: {values}")
    return out
