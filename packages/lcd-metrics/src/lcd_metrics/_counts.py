"""Count tables: the metadata of any accepted input and a numeric count column (cell count, inhibition)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from lcd_core import InputError, check_keys, read_h5ad, read_table


def obs_of(data: Any) -> tuple[pd.DataFrame, str]:
    """``(obs, source)`` of an AnnData, a DataFrame or a path (.h5ad/.zarr or a table); nothing is copied.

    Counts live in metadata, so a table needs no feature columns here (unlike
    :func:`lcd_core.load_profiles`).
    """
    if isinstance(data, str | os.PathLike):
        path = Path(data)
        if path.suffix.lower() in (".h5ad", ".zarr"):
            return read_h5ad(path, what="counts file").obs, str(path)
        return read_table(path, what="counts table"), str(path)
    if isinstance(data, pd.DataFrame):
        return data, "DataFrame"
    if hasattr(data, "obs") and isinstance(data.obs, pd.DataFrame):
        return data.obs, "AnnData"
    raise InputError(
        f"unsupported input type {type(data).__name__}; pass an AnnData, a DataFrame or a file path"
    )


def count_values(obs: pd.DataFrame, count_key: str, source: str) -> np.ndarray:
    """The count column as float64 (missing values stay NaN: each caller decides what they mean)."""
    check_keys(obs, [count_key], source=source, allow_missing=True)
    col = obs[count_key]
    if not pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
        raise InputError(f"{source}: count column {count_key!r} is not numeric (dtype {col.dtype})")
    return col.to_numpy(dtype=np.float64, na_value=np.nan)
