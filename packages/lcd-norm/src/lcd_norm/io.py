"""Reading profiles into AnnData and writing results atomically.

Accepts what the data contract allows (docs/data-model.md): an AnnData, an ``.h5ad`` file, or a table in
pycytominer layout (pandas DataFrame, ``.csv``/``.csv.gz``/``.tsv`` or ``.parquet``). A table is turned into
an AnnData once, here, so every computation has one code path.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

from lcd_norm._data import InputError

CELLPROFILER_PREFIXES = ("Cells_", "Cytoplasm_", "Nuclei_", "Image_")


def _read_table(path: Path) -> pd.DataFrame:
    name = path.name.lower()
    if name.endswith(".parquet"):
        return pd.read_parquet(path)
    if name.endswith((".tsv", ".tsv.gz", ".txt", ".txt.gz")):
        return pd.read_csv(path, sep="\t")
    if name.endswith((".csv", ".csv.gz")):
        return pd.read_csv(path)
    raise InputError(f"{path}: unknown file type; use .h5ad, .parquet, .csv(.gz) or .tsv(.gz)")


def select_feature_columns(frame: pd.DataFrame, features: str | Sequence[str] | None = None) -> list[str]:
    """Feature columns of a pycytominer-layout table, by the contract's rules (in this order).

    1. ``features``: an explicit list of columns, or a regex matched against column names;
    2. else, when any column starts with ``Metadata_``, every other column (all must be numeric);
    3. else the CellProfiler compartments ``Cells_``, ``Cytoplasm_``, ``Nuclei_``, ``Image_``;
    4. else an error listing the columns.
    """
    columns = [str(c) for c in frame.columns]
    if isinstance(features, str):
        pattern = re.compile(features)
        chosen = [c for c in columns if pattern.search(c)]
        if not chosen:
            raise InputError(f"features regex {features!r} matches no column; columns: {columns[:20]}")
    elif features is not None:
        chosen = [str(c) for c in features]
        missing = [c for c in chosen if c not in columns]
        if missing:
            raise InputError(f"feature column {missing[0]!r} not found; columns: {columns[:20]}")
    elif any(c.startswith("Metadata_") for c in columns):
        chosen = [c for c in columns if not c.startswith("Metadata_")]
    else:
        chosen = [c for c in columns if c.startswith(CELLPROFILER_PREFIXES)]
        if not chosen:
            raise InputError(
                f"cannot tell features from metadata in columns {columns[:20]}: pass features= "
                "(a list or a regex)"
            )
    for c in chosen:
        if not pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]):
            raise InputError(f"feature column {c!r} is not numeric (dtype {frame[c].dtype}); pass features=")
    if not chosen:
        raise InputError("no feature columns selected")
    return chosen


def table_to_anndata(frame: pd.DataFrame, features: str | Sequence[str] | None = None) -> AnnData:
    """AnnData from a pycytominer-layout table: features to ``X``, every other column to ``obs`` unchanged."""
    frame = frame.copy()
    frame.columns = [str(c) for c in frame.columns]
    feats = select_feature_columns(frame, features)
    meta = [c for c in frame.columns if c not in set(feats)]
    X = frame[feats].to_numpy()
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float64)
    obs = frame[meta].reset_index(drop=True)
    obs.index = obs.index.astype(str)
    var = pd.DataFrame(index=pd.Index(feats, dtype=str))
    return AnnData(X=X, obs=obs, var=var)


def read_profiles(
    source: AnnData | pd.DataFrame | str | os.PathLike, *, features: str | Sequence[str] | None = None
) -> AnnData:
    """Load profiles as an AnnData.

    Parameters
    ----------
    source
        An AnnData (returned as is), a DataFrame in pycytominer layout, or a path to ``.h5ad``,
        ``.parquet``, ``.csv``/``.csv.gz`` or ``.tsv``.
    features
        For tables only: feature columns (list) or a regex; default: the contract's inference rules.
    """
    if isinstance(source, AnnData):
        return source
    if isinstance(source, pd.DataFrame):
        return table_to_anndata(source, features)
    path = Path(source)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.suffix.lower() == ".h5ad":
        import anndata

        try:
            return anndata.read_h5ad(path)
        except Exception as exc:
            raise InputError(f"{path}: cannot read as .h5ad ({type(exc).__name__}: {exc})") from None
    try:
        frame = _read_table(path)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: cannot read table ({type(exc).__name__}: {exc})") from None
    try:
        return table_to_anndata(frame, features)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None


def _atomic(path: Path, write) -> Path:
    """Write through a temp file in the destination folder, then rename (no half-written outputs)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # keep the real suffixes so writers that infer format or compression from the name do so correctly
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp.", suffix="".join(path.suffixes), dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_h5ad(adata: AnnData, path: str | os.PathLike) -> Path:
    """Write ``adata`` to ``path`` (.h5ad) atomically."""
    return _atomic(Path(path), lambda tmp: adata.write_h5ad(tmp))


def write_table(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a table atomically as parquet (``.parquet``) or CSV (anything else)."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        return _atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))
    return _atomic(path, lambda tmp: frame.to_csv(tmp, index=False))
