"""Validation shared by every step: keys, feature matrices and control selection.

One place for the data contract's input rules (docs/data-model.md), so every public function fails the
same way: a one-line :class:`InputError` naming the column, group or rows at fault.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from lcd_norm._errors import DEFAULT_CONTROL, InputError

__all__ = ["DEFAULT_CONTROL", "InputError"]  # re-exported for the modules that import them from here


def as_key_list(keys: str | Sequence[str]) -> list[str]:
    """A key or a sequence of keys as a list of column names."""
    if isinstance(keys, str):
        return [keys]
    return list(keys)


def check_keys(obs: pd.DataFrame, keys: str | Sequence[str], *, what: str = "obs") -> list[str]:
    """Return ``keys`` as a list; raise naming the first missing column and listing what exists."""
    keys = as_key_list(keys)
    missing = [k for k in keys if k not in obs.columns]
    if missing:
        shown = ", ".join(map(repr, list(obs.columns)[:30]))
        more = " ..." if obs.shape[1] > 30 else ""
        raise InputError(f"column {missing[0]!r} not found in {what}; available columns: {shown}{more}")
    for k in keys:
        if obs[k].isna().any():
            rows = list(obs.index[obs[k].isna().to_numpy()][:5])
            raise InputError(
                f"column {k!r} has {int(obs[k].isna().sum())} missing values (first rows: {rows})"
            )
    return keys


def feature_source(layer: str | None, use_rep: str | None) -> str:
    """Human-readable name of where features come from, for messages and provenance."""
    if layer is not None and use_rep is not None:
        raise InputError("give either layer= or use_rep=, not both")
    if layer is not None:
        return f"layers[{layer!r}]"
    if use_rep is not None:
        return f"obsm[{use_rep!r}]"
    return "X"


def get_features(adata: AnnData, *, layer: str | None = None, use_rep: str | None = None) -> np.ndarray:
    """The feature matrix as a dense float array (float32 stays float32), checked finite.

    Raises :class:`InputError` giving the count and first row ids of NaN/inf values.
    """
    source = feature_source(layer, use_rep)
    if layer is not None:
        if layer not in adata.layers:
            raise InputError(f"layer {layer!r} not found; available layers: {list(adata.layers.keys())}")
        mat = adata.layers[layer]
    elif use_rep is not None:
        if use_rep not in adata.obsm:
            raise InputError(f"obsm key {use_rep!r} not found; available: {list(adata.obsm.keys())}")
        mat = adata.obsm[use_rep]
    else:
        mat = adata.X
    if mat is None:
        raise InputError(f"{source} is empty: the AnnData has no feature matrix")
    if hasattr(mat, "toarray"):
        mat = mat.toarray()
    mat = np.asarray(mat)
    if mat.ndim != 2 or mat.shape[0] != adata.n_obs:
        raise InputError(f"{source} has shape {mat.shape}; expected ({adata.n_obs}, n_features)")
    if mat.shape[1] == 0:
        raise InputError(f"{source} has no feature columns")
    if not np.issubdtype(mat.dtype, np.floating):
        if not np.issubdtype(mat.dtype, np.number):
            raise InputError(f"{source} is not numeric (dtype {mat.dtype})")
        mat = mat.astype(np.float64)
    check_finite(mat, adata.obs_names, source)
    return mat


def check_finite(mat: np.ndarray, row_ids: Sequence, source: str) -> None:
    """Raise naming the count and first row ids of non-finite values in ``mat``."""
    bad_rows = ~np.isfinite(mat).all(axis=1)
    if bad_rows.any():
        n_bad = int((~np.isfinite(mat)).sum())
        first = [str(row_ids[i]) for i in np.flatnonzero(bad_rows)[:5]]
        raise InputError(
            f"{source} has {n_bad} NaN/inf values in {int(bad_rows.sum())} rows (first rows: {first}); "
            "remove or impute them first"
        )


def control_mask(obs: pd.DataFrame, control: str) -> np.ndarray:
    """Boolean mask of negative-control rows.

    ``control`` is the name of a boolean ``obs`` column, or a pandas query string evaluated on ``obs``
    (column names with spaces in backticks), e.g. ``"compound == 'DMSO'"``.
    """
    if control in obs.columns:
        col = obs[control]
        if not pd.api.types.is_bool_dtype(col):
            raise InputError(f"control column {control!r} must be boolean (dtype is {col.dtype})")
        return col.to_numpy(dtype=bool)
    try:
        mask = obs.eval(control)
    except Exception as exc:  # pandas raises many types for a bad expression
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"control query {control!r} failed on obs: {msg}") from None
    if not isinstance(mask, pd.Series) or not pd.api.types.is_bool_dtype(mask):
        raise InputError(f"control query {control!r} does not give one True/False per row")
    return mask.to_numpy(dtype=bool)


def group_codes(obs: pd.DataFrame, keys: Sequence[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Integer group code per row for the combination of ``keys`` and one row of key values per group."""
    keys = list(keys)
    if not keys:
        return np.zeros(len(obs), dtype=np.int64), pd.DataFrame(index=[0])
    frame = obs[keys].reset_index(drop=True)
    grouped = frame.groupby(keys, sort=True, observed=True, dropna=False)
    codes = grouped.ngroup().to_numpy(dtype=np.int64)
    levels = grouped.size().reset_index()[keys]
    return codes, levels


def describe_group(keys: Sequence[str], values: Sequence) -> str:
    """``plate='P1', timepoint=24`` for error messages."""
    plain = [v.item() if isinstance(v, np.generic) else v for v in values]
    return ", ".join(f"{k}={v!r}" for k, v in zip(keys, plain, strict=True))


def jsonable(value):
    """Plain JSON-able version of a parameter value (tuples to lists, numpy scalars to Python)."""
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        # h5ad cannot store None: an unset option is simply left out of the provenance
        return {str(k): jsonable(v) for k, v in value.items() if v is not None}
    if isinstance(value, np.generic):
        return value.item()
    return value
