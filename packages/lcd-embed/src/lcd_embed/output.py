"""AnnData outputs: obs built from manifest rows + tile coordinates, atomic .h5ad / .zarr writes."""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError

SUFFIXES = (".h5ad", ".zarr")


def check_output_path(path: str | os.PathLike) -> Path:
    """An output path must end in .h5ad or .zarr."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise InputError(f"output {path} must end in .h5ad or .zarr")
    return path


def tile_obs(
    manifest: pd.DataFrame, rows: np.ndarray, coords: np.ndarray, tile_index: np.ndarray
) -> pd.DataFrame:
    """obs for tiles: the manifest row's columns (unchanged names), then ``manifest_row, tile, tile_y, tile_x``."""
    obs = manifest.iloc[rows].reset_index(drop=True).copy()
    obs["manifest_row"] = np.asarray(rows, dtype=np.int64)
    obs["tile"] = np.asarray(tile_index, dtype=np.int64)
    obs["tile_y"] = np.asarray(coords[:, 0], dtype=np.int64) if len(coords) else np.zeros(0, np.int64)
    obs["tile_x"] = np.asarray(coords[:, 1], dtype=np.int64) if len(coords) else np.zeros(0, np.int64)
    obs.index = pd.Index(
        [f"{r}-{t}" for r, t in zip(obs["manifest_row"], obs["tile"], strict=True)], dtype=object
    )
    return plain_strings(obs)


def plain_strings(df: pd.DataFrame) -> pd.DataFrame:
    """String columns as categoricals with Python-object categories, string index as object.

    anndata turns string columns into categoricals when writing; under pandas 3 their categories
    would be Arrow-backed strings, which anndata 0.12 cannot write. Doing the conversion here, with
    object categories, gives the same file under pandas 2 and 3.
    """
    for c in df.columns:
        col = df[c]
        if isinstance(col.dtype, pd.CategoricalDtype):
            cats = col.cat.categories
            if pd.api.types.is_string_dtype(cats.dtype):
                df[c] = col.cat.rename_categories(pd.Index(cats.astype(object), dtype=object))
        elif (
            pd.api.types.is_string_dtype(col.dtype)
            and col.map(lambda v: isinstance(v, str) or v is None or v != v).all()
        ):
            values = col.astype(object).where(col.notna(), None)
            cats = pd.Index(sorted({v for v in values if v is not None}), dtype=object)
            df[c] = pd.Categorical(values, categories=cats)
    if pd.api.types.is_string_dtype(df.index.dtype):
        df.index = pd.Index(df.index.astype(object), dtype=object)
    return df


def jsonable(value: Any) -> Any:
    """Plain values for ``uns`` (h5ad cannot store None; tuples become lists)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def failures_frame(failures: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(failures, columns=["manifest_row", "path", "error"])


def failures_uns(failures: list[dict]) -> dict[str, np.ndarray]:
    """Failures as a dict of equal-length arrays (storable in h5ad/zarr ``uns``)."""
    df = failures_frame(failures)
    return {
        "manifest_row": df["manifest_row"].to_numpy(dtype=np.int64),
        "path": df["path"].astype(str).to_numpy(dtype=object),
        "error": df["error"].astype(str).to_numpy(dtype=object),
    }


def write_adata(adata, path: str | os.PathLike) -> Path:
    """Write an AnnData atomically: a temp file/folder in the same folder, then rename over ``path``."""
    path = check_output_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    target = tmp / path.name
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*zarr v2.*")  # anndata's format-version notice
            if path.suffix == ".h5ad":
                adata.write_h5ad(target)
            else:
                adata.write_zarr(target)
        if path.is_dir():  # a previous .zarr: move it aside first, a folder cannot be replaced in one step
            old = tmp / "previous"
            os.replace(path, old)
        os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def read_adata(path: str | os.PathLike):
    import anndata as ad

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"AnnData not found: {path}")
    return ad.read_h5ad(path) if path.suffix == ".h5ad" else ad.read_zarr(path)


def failures_csv(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(f"{out.stem}.failures.csv")


def build_tile_adata(df: pd.DataFrame, parts: list[tuple[dict, list]], meta: dict, dim: int):
    """One AnnData from (arrays, failures) parts in manifest order; the only place tile AnnData is built."""
    import anndata as ad

    X = np.concatenate([p[0]["X"] for p in parts]).astype(np.float32, copy=False)
    rows = np.concatenate([p[0]["rows"] for p in parts])
    tiles = np.concatenate([p[0]["tiles"] for p in parts])
    coords = np.concatenate([p[0]["coords"] for p in parts]).reshape(-1, 2)
    failures = [f for p in parts for f in p[1]]
    if len(X) == 0:
        raise InputError(
            f"no field could be embedded ({len(failures)} failed; first: {failures[0]['error'] if failures else '-'})"
        )
    if not np.all(np.isfinite(X)):
        bad = np.where(~np.isfinite(X).all(axis=1))[0]
        raise InputError(
            f"the model produced non-finite features for {len(bad)} tiles (first: manifest row {rows[bad[0]]})"
        )
    obs = tile_obs(df, rows, coords, tiles)
    var_block, var_pool = _var_layout(meta["pooling"], meta["n_last_blocks"], dim)
    var = pd.DataFrame(
        {"block": var_block, "pool": var_pool}, index=pd.Index([f"emb_{i}" for i in range(dim)], dtype=object)
    )
    adata = ad.AnnData(X=X, obs=obs, var=plain_strings(var))
    adata.uns["lcd_embed"] = jsonable({**meta, "failures": None})
    adata.uns["lcd_embed"]["failures"] = failures_uns(failures)
    adata.uns["lcd"] = {"level": "tile"}
    return adata


def _var_layout(pooling: str, n_last: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    pools = ["cls", "mean"] if pooling == "cls+mean" else [pooling]
    width = dim // (n_last * len(pools))
    block = np.repeat(np.arange(-n_last, 0), len(pools) * width)
    pool = np.tile(np.repeat(pools, width), n_last)
    return block.astype(np.int64), pool.astype(object)
