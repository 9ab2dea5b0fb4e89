"""The tile AnnData of ``embed``: obs from manifest rows + tile coordinates, failures, the var layout.

Writing and reading are lcd-core's (``write_h5ad`` / ``read_h5ad``: atomic, storable metadata).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from lcd_core import InputError, to_jsonable

ANNDATA_SUFFIXES = (".h5ad", ".zarr")


def check_anndata_path(path: str | os.PathLike) -> Path:
    """Refuse an output that is not ``.h5ad`` / ``.zarr`` before any work is done.

    Parameters
    ----------
    path
        The output path.
    """
    path = Path(path)
    if path.suffix.lower() not in ANNDATA_SUFFIXES:
        raise InputError(f"{path}: an AnnData output must end in .h5ad or .zarr")
    return path


def tile_obs(
    manifest: pd.DataFrame, rows: np.ndarray, coords: np.ndarray, tile_index: np.ndarray
) -> pd.DataFrame:
    """The obs of tiles: the manifest row's columns (unchanged names), then ``manifest_row, tile, tile_y, tile_x``.

    Parameters
    ----------
    manifest
        The manifest.
    rows
        Manifest row of each tile.
    coords
        (T, 2) top-left (y, x) of each tile in field pixels.
    tile_index
        Index of each tile within its field.
    """
    obs = manifest.iloc[rows].reset_index(drop=True).copy()
    obs["manifest_row"] = np.asarray(rows, dtype=np.int64)
    obs["tile"] = np.asarray(tile_index, dtype=np.int64)
    obs["tile_y"] = np.asarray(coords[:, 0], dtype=np.int64) if len(coords) else np.zeros(0, np.int64)
    obs["tile_x"] = np.asarray(coords[:, 1], dtype=np.int64) if len(coords) else np.zeros(0, np.int64)
    obs.index = pd.Index(
        [f"{r}-{t}" for r, t in zip(obs["manifest_row"], obs["tile"], strict=True)], dtype=object
    )
    return obs


def failures_uns(failures: list[dict]) -> dict[str, np.ndarray]:
    """Failures as a dict of equal-length arrays (storable in h5ad/zarr ``uns``).

    Parameters
    ----------
    failures
        ``{"manifest_row", "path", "error"}`` records.
    """
    df = pd.DataFrame(failures, columns=["manifest_row", "path", "error"])
    return {
        "manifest_row": df["manifest_row"].to_numpy(dtype=np.int64),
        "path": df["path"].astype(str).to_numpy(dtype=object),
        "error": df["error"].astype(str).to_numpy(dtype=object),
    }


def failures_csv(out: str | os.PathLike) -> Path:
    """``<out stem>.failures.csv`` beside an embedding output.

    Parameters
    ----------
    out
        The ``.h5ad`` / ``.zarr`` output.
    """
    out = Path(out)
    return out.with_name(f"{out.stem}.failures.csv")


def build_tile_adata(df: pd.DataFrame, parts: list[tuple[dict, list]], meta: dict, dim: int):
    """One AnnData from (arrays, failures) parts in manifest order; the only place tile AnnData is built.

    Parameters
    ----------
    df
        The manifest.
    parts
        Per shard: ``{"X", "rows", "tiles", "coords"}`` arrays and failure records.
    meta
        ``uns["lcd_embed"]`` entries (model, preprocessing, pooling, ...).
    dim
        Feature dimension.
    """
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
    adata = ad.AnnData(X=X, obs=obs, var=var)
    adata.uns["lcd_embed"] = to_jsonable(meta)
    adata.uns["lcd_embed"]["failures"] = failures_uns(failures)
    adata.uns["lcd"] = {"level": "tile"}
    return adata


def _var_layout(pooling: str, n_last: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    pools = ["cls", "mean"] if pooling == "cls+mean" else [pooling]
    width = dim // (n_last * len(pools))
    block = np.repeat(np.arange(-n_last, 0), len(pools) * width)
    pool = np.tile(np.repeat(pools, width), n_last)
    return block.astype(np.int64), pool.astype(object)
