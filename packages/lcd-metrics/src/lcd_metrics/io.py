"""Loading profiles (AnnData, DataFrame, CSV, parquet) into one form, validation, atomic table writes.

Every public function of the package calls :func:`load_profiles` first, so an AnnData and a
pycytominer-layout table go through the same code path afterwards (docs/data-model.md).
"""

from __future__ import annotations

import importlib.util
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError

COMPARTMENT_PREFIXES = ("Cells_", "Cytoplasm_", "Nuclei_", "Image_")
TABLE_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".parquet", ".pq")


@dataclass
class Profiles:
    """Profiles after loading: metadata, a float64 feature matrix and where they came from."""

    obs: pd.DataFrame
    X: np.ndarray
    source: str

    def row_ids(self, mask: np.ndarray, limit: int = 3) -> str:
        """The first `limit` row ids where `mask` is true, for error messages."""
        return row_ids(self.obs, mask, limit)


def row_ids(obs: pd.DataFrame, mask: np.ndarray, limit: int = 3) -> str:
    """The first `limit` row ids (index values) where `mask` is true, quoted, for error messages."""
    return ", ".join(repr(str(i)) for i in obs.index[np.asarray(mask)][:limit])


def _need_parquet_engine(path: Path) -> None:
    if importlib.util.find_spec("pyarrow") is None and importlib.util.find_spec("fastparquet") is None:
        raise InputError(
            f"{path}: reading/writing parquet needs pyarrow; install it with `pip install lcd-metrics[cli]` "
            "(or `pip install pyarrow`), or use CSV"
        )


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in (".csv.gz", ".tsv.gz"):
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV(.gz), TSV or parquet table; one-line :class:`InputError` when it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    suffix = _suffix(path)
    try:
        if suffix in (".parquet", ".pq"):
            _need_parquet_engine(path)
            return pd.read_parquet(path)
        if suffix in (".csv", ".csv.gz"):
            return pd.read_csv(path)
        if suffix in (".tsv", ".tsv.gz"):
            return pd.read_csv(path, sep="\t")
    except InputError:
        raise
    except Exception as exc:  # parser errors become one actionable line
        raise InputError(f"{path}: cannot read table ({type(exc).__name__}: {exc})".splitlines()[0]) from exc
    raise InputError(f"{path}: unknown table format {suffix!r}; use .csv, .csv.gz, .tsv or .parquet")


def read_data(path: str | os.PathLike) -> Any:
    """Read profiles from .h5ad / .zarr (AnnData) or a table file (DataFrame)."""
    path = Path(path)
    suffix = _suffix(path)
    if suffix in (".h5ad", ".zarr"):
        import anndata as ad

        if not path.exists():
            raise InputError(f"{path}: file not found")
        try:
            return ad.read_h5ad(path) if suffix == ".h5ad" else ad.read_zarr(path)
        except Exception as exc:
            raise InputError(
                f"{path}: cannot read AnnData ({type(exc).__name__}: {exc})".splitlines()[0]
            ) from exc
    return read_table(path)


def check_output_path(path: str | os.PathLike) -> Path:
    """Refuse an output path whose format cannot be written, before any work is done."""
    path = Path(path)
    suffix = _suffix(path)
    if suffix not in TABLE_SUFFIXES:
        raise InputError(f"{path}: unknown output format {suffix!r}; use .parquet or .csv")
    if suffix in (".parquet", ".pq"):
        _need_parquet_engine(path)
    return path


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write `df` to CSV or parquet (by suffix) atomically: temp file in the same folder, then rename."""
    path = check_output_path(path)
    suffix = _suffix(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if suffix in (".parquet", ".pq"):
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False, sep="\t" if suffix.startswith(".tsv") else ",")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _feature_columns(df: pd.DataFrame, features: Sequence[str] | str | None, source: str) -> list[str]:
    cols = [str(c) for c in df.columns]
    if features is not None:
        if isinstance(features, str):
            chosen = [c for c in cols if re.search(features, c)]
            if not chosen:
                raise InputError(f"{source}: no column matches features regex {features!r}")
            return chosen
        missing = [f for f in features if f not in df.columns]
        if missing:
            raise InputError(f"{source}: feature column {missing[0]!r} not found ({len(missing)} missing)")
        return list(features)
    if any(c.startswith("Metadata_") for c in cols):
        return [c for c in cols if not c.startswith("Metadata_")]
    chosen = [c for c in cols if c.startswith(COMPARTMENT_PREFIXES)]
    if chosen:
        return chosen
    raise InputError(
        f"{source}: cannot tell features from metadata (no Metadata_ or Cells_/Cytoplasm_/Nuclei_/Image_ "
        f"columns); pass features=[...] or a regex. Columns: {', '.join(cols[:12])}{' ...' if len(cols) > 12 else ''}"
    )


def _from_frame(df: pd.DataFrame, features: Sequence[str] | str | None, source: str) -> Profiles:
    feats = _feature_columns(df, features, source)
    for c in feats:
        if not pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c]):
            raise InputError(
                f"{source}: feature column {c!r} is not numeric (dtype {df[c].dtype}); "
                "move it to a Metadata_ column or pass features=[...]"
            )
    obs = df.drop(columns=feats)
    X = df[feats].to_numpy(dtype=np.float64)
    return Profiles(obs=obs, X=X, source=source)


def _from_anndata(adata: Any, layer: str | None, use_rep: str | None, source: str) -> Profiles:
    if layer is not None and use_rep is not None:
        raise InputError(f"{source}: pass layer= or use_rep=, not both")
    if layer is not None:
        if layer not in adata.layers:
            raise InputError(f"{source}: layer {layer!r} not found; layers: {list(adata.layers.keys())}")
        X = adata.layers[layer]
    elif use_rep is not None:
        if use_rep not in adata.obsm:
            raise InputError(f"{source}: obsm key {use_rep!r} not found; obsm: {list(adata.obsm.keys())}")
        X = adata.obsm[use_rep]
    else:
        X = adata.X
    if hasattr(X, "toarray"):
        X = X.toarray()
    X = np.asarray(X)
    if not np.issubdtype(X.dtype, np.number):
        raise InputError(f"{source}: features have dtype {X.dtype}; expected float")
    obs = adata.obs.copy()
    return Profiles(obs=obs, X=np.asarray(X, dtype=np.float64), source=source)


def load_profiles(
    data: Any,
    *,
    features: Sequence[str] | str | None = None,
    layer: str | None = None,
    use_rep: str | None = None,
) -> Profiles:
    """Turn an AnnData, a pycytominer-layout DataFrame, or a path to either into :class:`Profiles`.

    Parameters
    ----------
    data
        AnnData; DataFrame; or path to .h5ad/.zarr/.csv(.gz)/.parquet. Inputs are never modified.
    features
        For tables: explicit feature columns or a regex. Default: every non-``Metadata_`` column when
        any ``Metadata_`` column exists, else CellProfiler compartment columns (docs/data-model.md).
    layer, use_rep
        For AnnData: read features from ``layers[layer]`` or ``obsm[use_rep]`` instead of ``X``.
    """
    source = "input"
    if isinstance(data, str | os.PathLike):
        source = str(data)
        data = read_data(data)
    if isinstance(data, pd.DataFrame):
        if layer is not None or use_rep is not None:
            raise InputError(f"{source}: layer=/use_rep= apply to AnnData input, not to a table")
        prof = _from_frame(data, features, "DataFrame" if source == "input" else source)
    elif hasattr(data, "obs") and hasattr(data, "X"):
        prof = _from_anndata(data, layer, use_rep, "AnnData" if source == "input" else source)
    else:
        raise InputError(
            f"unsupported input type {type(data).__name__}; pass an AnnData, a DataFrame or a file path"
        )
    if prof.X.ndim != 2 or prof.X.shape[1] == 0:
        raise InputError(f"{prof.source}: no feature columns found")
    return prof


def check_columns(obs: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    """Raise naming the first missing column and listing the available ones."""
    for col in columns:
        if col not in obs.columns:
            avail = [str(c) for c in obs.columns]
            shown = ", ".join(avail[:25]) + (f" ... ({len(avail)} in all)" if len(avail) > 25 else "")
            raise InputError(f"{source}: column {col!r} not found; available columns: {shown}")


def check_metadata_complete(prof: Profiles, columns: Sequence[str]) -> None:
    """Missing values in a grouping column would silently drop rows from groups: refuse them."""
    for col in columns:
        bad = prof.obs[col].isna().to_numpy()
        if bad.any():
            raise InputError(
                f"{prof.source}: column {col!r} has {int(bad.sum())} missing values (first rows: {prof.row_ids(bad)})"
            )


def check_features(prof: Profiles, rows: np.ndarray | None = None, *, need_norm: bool = True) -> None:
    """Refuse NaN/inf features and (for cosine similarity) zero-norm profiles, naming the rows.

    `rows` restricts the check to the rows that take part in the computation (boolean mask).
    """
    X = prof.X if rows is None else prof.X[rows]
    ids_mask_base = np.ones(len(prof.obs), bool) if rows is None else np.asarray(rows, bool)
    finite = np.isfinite(X)
    if not finite.all():
        bad_rows = ~finite.all(axis=1)
        full = np.zeros(len(prof.obs), bool)
        full[np.flatnonzero(ids_mask_base)[bad_rows]] = True
        raise InputError(
            f"{prof.source}: features contain {int((~finite).sum())} NaN/inf values in {int(bad_rows.sum())} rows "
            f"(first: {prof.row_ids(full)}); impute or drop them first"
        )
    if need_norm:
        zero = np.einsum("ij,ij->i", X, X) == 0  # no (rows x features) temporary
        if zero.any():
            full = np.zeros(len(prof.obs), bool)
            full[np.flatnonzero(ids_mask_base)[zero]] = True
            raise InputError(
                f"{prof.source}: {int(zero.sum())} profiles have zero norm (first: {prof.row_ids(full)}); "
                "cosine similarity is undefined for them, drop them"
            )


def control_mask(obs: pd.DataFrame, control: str, source: str) -> np.ndarray:
    """Boolean mask of negative-control rows: `control` is a bool column name or a pandas query string."""
    if control in obs.columns:
        col = obs[control]
        if not pd.api.types.is_bool_dtype(col):
            raise InputError(f"{source}: control column {control!r} must be boolean, has dtype {col.dtype}")
        mask = col.to_numpy(dtype=bool)
    else:
        try:
            mask = obs.eval(control)
        except Exception as exc:
            avail = ", ".join(str(c) for c in list(obs.columns)[:25])
            raise InputError(
                f"{source}: cannot evaluate control query {control!r} ({type(exc).__name__}: {exc}); "
                f"quote names with spaces in backticks; columns: {avail}".splitlines()[0]
            ) from exc
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != (len(obs),):
            raise InputError(f"{source}: control query {control!r} does not give one True/False per row")
    if not mask.any():
        raise InputError(f"{source}: no control rows match {control!r}")
    return mask
