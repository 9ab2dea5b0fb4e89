"""The outputs of ``embed``: a tile store (``.parquet``) or one tile AnnData; failures, the var layout.

Writing and reading are lcd-core's (``finish_tile_store`` / ``read_tiles``, ``write_h5ad`` /
``read_h5ad``: atomic, storable metadata); the per-tile metadata is ``lcd_core.tile_obs``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from lcd_core import InputError, check_tile_store_path, tile_obs, to_jsonable

ANNDATA_SUFFIXES = (".h5ad", ".zarr")
STORE_SUFFIX = ".parquet"


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


def check_embedding_path(path: str | os.PathLike) -> Path:
    """Refuse an embedding output that is neither a tile store (``.parquet`` folder) nor ``.h5ad`` / ``.zarr``.

    Parameters
    ----------
    path
        The output path.
    """
    path = Path(path)
    if path.suffix == STORE_SUFFIX:
        return check_tile_store_path(path)
    if path.suffix.lower() not in ANNDATA_SUFFIXES:
        raise InputError(
            f"{path}: embeddings go to one AnnData <name>.h5ad or .zarr, "
            "or a tile store <name>.parquet (sharded, any size)"
        )
    return path


def is_store_path(path: str | os.PathLike) -> bool:
    """Whether an embedding output is a tile store (by its suffix).

    Parameters
    ----------
    path
        The output path.
    """
    return Path(path).suffix == STORE_SUFFIX


def feature_names(dim: int) -> list[str]:
    """The feature names of tile embeddings: ``emb_0`` ... ``emb_<dim-1>``.

    Parameters
    ----------
    dim
        Feature dimension.
    """
    return [f"emb_{i}" for i in range(dim)]


def check_finite(arrays: dict[str, np.ndarray]) -> None:
    """Refuse non-finite features before they are written, naming the first manifest row.

    Parameters
    ----------
    arrays
        ``X`` and ``rows`` of a shard.
    """
    X = arrays["X"]
    if not np.all(np.isfinite(X)):
        bad = np.where(~np.isfinite(X).all(axis=1))[0]
        raise InputError(
            f"the model produced non-finite features for {len(bad)} tiles (first: manifest row {arrays['rows'][bad[0]]})"
        )


def var_columns(meta: dict, dim: int) -> dict[str, np.ndarray]:
    """``var`` annotation of the features: the block (-n..-1) and the pooling each comes from.

    Parameters
    ----------
    meta
        ``uns["lcd_embed"]`` (pooling, n_last_blocks).
    dim
        Feature dimension.
    """
    block, pool = _var_layout(meta["pooling"], meta["n_last_blocks"], dim)
    return {"block": block, "pool": pool}


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
    check_finite({"X": X, "rows": rows})
    ids = {"manifest_row": rows, "tile": tiles, "tile_y": coords[:, 0], "tile_x": coords[:, 1]}
    obs = tile_obs(df, ids)
    var = pd.DataFrame(var_columns(meta, dim), index=pd.Index(feature_names(dim), dtype=object))
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
