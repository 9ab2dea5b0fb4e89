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
    obs.index = [f"{r}-{t}" for r, t in zip(obs["manifest_row"], obs["tile"], strict=True)]
    return obs


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
