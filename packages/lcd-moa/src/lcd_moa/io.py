"""Reading profiles into AnnData and writing results atomically.

Profiles arrive as an AnnData (in memory or ``.h5ad``) or as a pycytominer-layout table (DataFrame,
CSV(.gz) or parquet). Tables are turned into AnnData with the feature rule of docs/data-model.md, so
everything after loading follows one code path.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

COMPARTMENTS = ("Cells_", "Cytoplasm_", "Nuclei_", "Image_")
Profiles = ad.AnnData | pd.DataFrame | str | os.PathLike


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV(.gz), TSV or parquet table; the error names the file when it is missing or unknown."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    name = path.name.lower()
    if name.endswith(".parquet") or name.endswith(".pq"):
        try:
            return pd.read_parquet(path)
        except ImportError as err:  # pyarrow is in the [cli] extra
            raise ImportError(f"{path}: reading parquet needs pyarrow (pip install lcd-moa[cli])") from err
    if name.endswith((".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz")):
        return pd.read_csv(path)
    if name.endswith((".tsv", ".tsv.gz", ".txt")):
        return pd.read_csv(path, sep="\t")
    raise ValueError(f"{path}: unknown table format (expected .parquet, .csv[.gz] or .tsv)")


def table_to_anndata(table: pd.DataFrame, features: Sequence[str] | str | None = None) -> ad.AnnData:
    """Split a pycytominer-layout table into features (``X``) and metadata (``obs``, names unchanged).

    Parameters
    ----------
    table
        One row per profile.
    features
        A list of feature columns, or a regex selecting them. When omitted: every non-``Metadata_``
        column if any column starts with ``Metadata_``; else the CellProfiler compartments
        (``Cells_``, ``Cytoplasm_``, ``Nuclei_``, ``Image_``).
    """
    columns = [str(c) for c in table.columns]
    if features is not None and not isinstance(features, str):
        missing = [f for f in features if f not in table.columns]
        if missing:
            raise KeyError(f"feature columns not found: {missing[:5]} (table has {len(columns)} columns)")
        feats = list(features)
    elif isinstance(features, str):
        pattern = re.compile(features)
        feats = [c for c in columns if pattern.search(c)]
        if not feats:
            raise ValueError(f"features regex {features!r} matches no column; columns: {columns[:10]}...")
    elif any(c.startswith("Metadata_") for c in columns):
        feats = [c for c in columns if not c.startswith("Metadata_")]
    else:
        feats = [c for c in columns if c.startswith(COMPARTMENTS)]
        if not feats:
            raise ValueError(
                f"cannot tell features from metadata in columns {columns[:10]}...: pass features= "
                "(a list or a regex such as '^Cells_')"
            )
    for f in feats:
        if not pd.api.types.is_numeric_dtype(table[f]) or pd.api.types.is_bool_dtype(table[f]):
            raise TypeError(f"feature column {f!r} is not numeric (dtype {table[f].dtype}); pass features=")
    meta = [c for c in table.columns if c not in set(feats)]
    obs = table[meta].copy()
    # object-dtype names: anndata's h5ad writer refuses pandas 3's Arrow-backed string index
    obs.index = pd.Index([str(i) for i in range(len(table))], dtype=object)
    X = table[feats].to_numpy(dtype=np.float64, copy=True)
    return ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=pd.Index([str(f) for f in feats], dtype=object)))


def read_profiles(data: Profiles, features: Sequence[str] | str | None = None) -> ad.AnnData:
    """Return profiles as AnnData: an AnnData is returned as is, a table or file is converted."""
    if isinstance(data, ad.AnnData):
        return data
    if isinstance(data, pd.DataFrame):
        return table_to_anndata(data, features)
    path = Path(data)
    if path.name.lower().endswith(".h5ad"):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: file not found")
        adata = ad.read_h5ad(path)
    else:
        adata = table_to_anndata(read_table(path), features)
    adata.uns["lcd_moa_source"] = str(path)  # our own copy: lets errors name the file
    return adata


def feature_matrix(adata: ad.AnnData, layer: str | None = None, use_rep: str | None = None) -> np.ndarray:
    """Features as a float64 array from ``X``, ``layers[layer]`` or ``obsm[use_rep]``; NaN/inf is an error."""
    if layer is not None and use_rep is not None:
        raise ValueError("pass layer= or use_rep=, not both")
    if layer is not None:
        if layer not in adata.layers:
            raise KeyError(f"layer {layer!r} not found; layers: {list(adata.layers)}")
        X = adata.layers[layer]
        where = f"layers[{layer!r}]"
    elif use_rep is not None:
        if use_rep not in adata.obsm:
            raise KeyError(f"obsm entry {use_rep!r} not found; obsm: {list(adata.obsm)}")
        X = adata.obsm[use_rep]
        where = f"obsm[{use_rep!r}]"
    else:
        X = adata.X
        where = "X"
    if X is None:
        raise ValueError("the AnnData has no X: pass layer= or use_rep=")
    if hasattr(X, "toarray"):
        X = X.toarray()
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"{where} must be 2-D, got shape {X.shape}")
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        rows = list(adata.obs_names[bad][:5])
        raise ValueError(f"{where} has {int(bad.sum())} rows with NaN/inf features, first row ids: {rows}")
    return X


def feature_names(adata: ad.AnnData, use_rep: str | None = None) -> list[str]:
    """Names of the feature columns (``var_names``, or ``use_rep_0..`` for an obsm matrix)."""
    if use_rep is not None:
        return [f"{use_rep}_{i}" for i in range(np.asarray(adata.obsm[use_rep]).shape[1])]
    return [str(v) for v in adata.var_names]


def _atomic(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Write through a temporary file in the destination folder, then rename over the target."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_table(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a table atomically as parquet (``.parquet``) or CSV (anything else)."""
    if str(path).lower().endswith(".parquet"):
        try:
            import pyarrow  # noqa: F401
        except ImportError as err:
            raise ImportError("writing parquet needs pyarrow (pip install lcd-moa[cli])") from err
        return _atomic(path, lambda tmp: table.to_parquet(tmp, index=False))
    return _atomic(path, lambda tmp: table.to_csv(tmp, index=False))


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write a JSON document atomically."""
    return _atomic(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, sort_keys=True)))


def write_npz(arrays: dict[str, np.ndarray], path: str | os.PathLike) -> Path:
    """Write numeric arrays atomically to an ``.npz`` (read back with ``allow_pickle=False``)."""

    def _write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    return _atomic(path, _write)


def save_figure(fig: Any, path: str | os.PathLike) -> Path:
    """Save a matplotlib figure atomically (format from the suffix)."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    return _atomic(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=120, bbox_inches="tight"))
