"""Selecting negative-control rows: one function, one behaviour, used by every package.

``control`` is either the name of a boolean obs column or a pandas query string evaluated on obs
(column names with spaces in backticks), default :data:`lcd_core.DEFAULT_CONTROL`.

- A boolean column may be numpy ``bool`` or pandas ``boolean``; a missing value in it is an error
  (is that row a control or not?). Any other dtype is an error.
- A query follows pandas semantics: a comparison with a missing value is False (a row whose compound
  is missing is not a control).
- No matching row at all is an error (``require=True``); per-group checks (a plate without controls)
  are the caller's, with the group named.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .errors import InputError
from .names import DEFAULT_CONTROL


def _columns_hint(obs: pd.DataFrame, limit: int = 20) -> str:
    cols = [str(c) for c in obs.columns]
    return ", ".join(cols[:limit]) + (f" ... ({len(cols)} in all)" if len(cols) > limit else "")


def control_mask(
    obs: pd.DataFrame, control: str = DEFAULT_CONTROL, *, source: str = "obs", require: bool = True
) -> np.ndarray:
    """Boolean mask of negative-control rows of ``obs``.

    Parameters
    ----------
    obs
        Metadata, one row per profile (an AnnData's ``obs``, a manifest, a table).
    control
        A boolean column name or a pandas query string, e.g. ``"compound == 'DMSO'"``.
    source
        Named in error messages (a file path).
    require
        Raise when no row matches.

    Returns
    -------
    numpy.ndarray
        ``bool``, one value per row.
    """
    if not isinstance(control, str) or not control.strip():
        raise InputError(f"{source}: control must be a column name or a query string, got {control!r}")
    if control in obs.columns:
        col = obs[control]
        if not pd.api.types.is_bool_dtype(col.dtype):
            raise InputError(f"{source}: control column {control!r} must be boolean, has dtype {col.dtype}")
        if col.isna().any():
            raise InputError(
                f"{source}: control column {control!r} has {int(col.isna().sum())} missing values; "
                "mark every row True or False"
            )
        mask = col.to_numpy(dtype=bool)
    else:
        try:
            result = obs.eval(control)
        except Exception as exc:  # pandas raises many types for a bad expression
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(
                f"{source}: cannot evaluate control query {control!r} ({first}); quote names with spaces "
                f"in backticks; columns: {_columns_hint(obs)}"
            ) from None
        if (
            not isinstance(result, pd.Series)
            or not pd.api.types.is_bool_dtype(result.dtype)
            or len(result) != len(obs)
        ):
            raise InputError(f"{source}: control query {control!r} does not give one True/False per row")
        mask = result.fillna(False).to_numpy(dtype=bool)
    if require and not mask.any():
        raise InputError(f"{source}: no control rows match {control!r}")
    return mask


def groups_without_controls(obs: pd.DataFrame, mask: np.ndarray, keys: Sequence[str]) -> list[dict]:
    """The key values of each group of ``obs`` (by ``keys``) that has no control row, for messages.

    Parameters
    ----------
    obs
        Metadata.
    mask
        Control mask (one value per row).
    keys
        Group columns.
    """
    if not keys:
        return [] if np.asarray(mask).any() else [{}]
    frame = obs[list(keys)].reset_index(drop=True).assign(_ctrl=np.asarray(mask, bool))
    has = frame.groupby(list(keys), observed=True, dropna=False, sort=True)["_ctrl"].any()
    missing = has[~has]
    return [dict(zip(keys, k if isinstance(k, tuple) else (k,), strict=True)) for k in missing.index]
