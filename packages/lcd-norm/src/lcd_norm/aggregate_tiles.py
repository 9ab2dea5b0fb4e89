"""Tiles → fields (or wells) straight from a tile store, one chunk at a time (exact median and mean).

:func:`lcd_norm.aggregate` needs the tiles in memory: 20 M tiles x 384 float32 is 31 GB. A tile store
(``lcd_core.tiles``: parquet parts in manifest order, field metadata once in ``_fields.parquet``) is
read here in chunks. Groups are made on the field table (a tile's group is its field's), so the per-tile
metadata never exists in memory. A group whose tiles all lie in one chunk is reduced as soon as the
chunk is read; a group that spans chunks (a field cut by a chunk boundary, a well whose fields are
not consecutive in the manifest) keeps its tiles in a buffer until its last tile arrives, then is
reduced. The median is therefore exact (no sketch): peak memory is the output table plus one chunk
plus the tiles of groups still open, and groups of a field level (one manifest row each, tiles
consecutive) are open across at most one chunk boundary at a time. ``uns["aggregate"]["params"]``
records the largest buffer seen (``max_buffered_tiles``).

The result equals ``aggregate(read_tiles(store), by=...)``: same groups in the same order, same obs
columns, median bit-identical (both take the middle value, or the mean of the two middle values, in
float64 and round to float32), mean to float32 rounding (float64 sums here; tests/norm/test_aggregate_tiles.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData
from lcd_core import (
    CHUNK_TILES,
    InputError,
    check_keys,
    group_codes,
    open_tiles,
    progress,
    record_params,
)

from .aggregate import constant_columns, level_keys

_TILE_ID_COLUMNS = ("tile", "tile_y", "tile_x")
#: Tiles per float64 median block (8,192 x 384 x 8 B = 25 MB, plus numpy's partition copy).
_BATCH_TILES = 8_192


def aggregate_tiles(
    store: str | os.PathLike,
    by: str | Sequence[str] = "fov",
    *,
    func: Literal["median", "mean"] = "median",
    chunk_tiles: int = CHUNK_TILES,
    plate_key: str = "plate",
    well_key: str = "well",
    fov_key: str = "fov",
    timepoint_key: str = "timepoint",
    level: str | None = None,
    progress: bool = False,
) -> AnnData:
    """Aggregate a tile store to fields (or wells) in chunks: the tiles never need to fit in memory.

    Parameters
    ----------
    store
        A tile store folder (``<name>.parquet``, written by ``lcd-embed embed --out <name>.parquet``).
    by
        ``"fov"`` or ``"well"`` (levels of the data contract, built from the ``*_key`` columns), or a
        list of columns of the store's field table.
    func
        ``"median"`` (exact) or ``"mean"``.
    chunk_tiles
        Tiles read at a time (memory: about ``chunk_tiles x features x 8`` bytes while reading a chunk).
    plate_key, well_key, fov_key, timepoint_key
        Column names used when ``by`` is a level name.
    level
        Level name recorded in ``uns["lcd"]["level"]``; default ``by`` when it is a level name, else
        the group columns joined by ``"+"``.
    progress
        Show a progress bar in tiles per second.

    Returns
    -------
    anndata.AnnData
        As :func:`lcd_norm.aggregate` on the whole store: ``X`` float32, ``obs`` = the group columns,
        every column constant within all groups, ``n_members`` (tiles); groups sorted by their keys;
        ``uns["aggregate"]["params"]`` with ``streamed: True``, ``chunk_tiles`` and ``max_buffered_tiles``.
    """
    if func not in ("median", "mean"):
        raise InputError(f"func must be 'median' or 'mean', not {func!r}")
    tiles = open_tiles(store)
    if isinstance(by, str) and by in ("fov", "well"):
        keys = level_keys(
            by, plate_key=plate_key, well_key=well_key, fov_key=fov_key, timepoint_key=timepoint_key
        )
        level = level or by
    else:
        keys = [by] if isinstance(by, str) else list(by)
        level = level or "+".join(keys)
    if not keys:
        raise InputError("by= needs at least one column")
    fields = tiles.fields()
    keys = check_keys(fields, keys, source=str(tiles.path / "_fields.parquet"))
    per_field = tiles.tiles_per_field()
    start = time.perf_counter()

    # Groups over the fields that have tiles (a failed field has none, as in the in-memory route).
    present = np.flatnonzero(per_field > 0)
    codes_present, _ = group_codes(fields.iloc[present], keys)
    field_group = np.full(len(fields), -1, dtype=np.int64)
    field_group[present] = codes_present
    n_groups = int(codes_present.max()) + 1
    size = np.bincount(codes_present, weights=per_field[present], minlength=n_groups).astype(np.int64)

    reducer = _Reducer(func, n_groups, tiles.n_features, size)
    with progress_bar(progress, tiles.n_tiles) as advance:
        for ids, X in tiles.iter_chunks(chunk_tiles):
            if not np.all(np.isfinite(X)):
                bad = ids["manifest_row"][np.flatnonzero(~np.isfinite(X).all(axis=1))[0]]
                raise InputError(f"{tiles.path}: non-finite features in the tiles of manifest row {bad}")
            reducer.add(field_group[ids["manifest_row"]], X, ids)
            advance(len(X))
    reducer.check_complete()

    obs = _group_obs(fields, present, codes_present, n_groups, reducer)
    var_cols = {k: np.asarray(v) for k, v in tiles.meta.get("var", {}).items()}
    var = pd.DataFrame(var_cols, index=pd.Index(tiles.feature_names, dtype=object))
    out = AnnData(X=reducer.result, obs=obs, var=var)
    out.uns["lcd"] = {"level": level}
    tile_columns = [c for c in fields.columns if c != "manifest_row"]
    all_columns = [*tile_columns, "manifest_row", *_TILE_ID_COLUMNS]
    record_params(
        out,
        "aggregate",
        {
            "by": keys,
            "func": func,
            "features": "X",
            "n_input_rows": tiles.n_tiles,
            "dropped_columns": [c for c in all_columns if c not in obs.columns],
            "streamed": True,
            "store": str(tiles.path),
            "chunk_tiles": int(chunk_tiles),
            "max_buffered_tiles": int(reducer.max_buffered),
            "seconds": round(time.perf_counter() - start, 3),
        },
    )
    return out


def progress_bar(enabled: bool, total: int):
    """lcd-core's bar in tiles per second."""
    return progress(total, "aggregating tiles", enabled=enabled, unit="tiles")


class _Reducer:
    """Per-group median or mean over a stream of (group code, features) chunks.

    Tiles of a group that arrive as one contiguous run covering the whole group are reduced at once
    (batched by run length, one numpy call per length); other runs wait in ``buffers`` until their
    group is complete. Per group it also tracks min/max of the tile ids, so that ``obs`` keeps a tile
    id column exactly when it is constant within every group (as the in-memory route does).
    """

    def __init__(self, func: str, n_groups: int, n_features: int, size: np.ndarray):
        self.func = func
        self.size = size
        self.result = np.zeros((n_groups, n_features), dtype=np.float32)
        self.sums = np.zeros((n_groups, n_features), dtype=np.float64) if func == "mean" else None
        self.seen = np.zeros(n_groups, dtype=np.int64)
        self.buffers: dict[int, list[np.ndarray]] = {}
        self.n_buffered = 0
        self.max_buffered = 0
        big = np.iinfo(np.int64).max
        self.id_min = {c: np.full(n_groups, big, dtype=np.int64) for c in _TILE_ID_COLUMNS}
        self.id_max = {c: np.full(n_groups, -1, dtype=np.int64) for c in _TILE_ID_COLUMNS}

    def add(self, groups: np.ndarray, X: np.ndarray, ids: dict[str, np.ndarray]) -> None:
        """Reduce or buffer one chunk (``groups``: the group code of each tile)."""
        if len(groups) == 0:
            return
        if groups.min() < 0:
            raise InputError("a tile belongs to a field the store lists as having no tiles (damaged store)")
        starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
        lengths = np.diff(np.r_[starts, len(groups)])
        run_groups = groups[starts]
        self._track_ids(run_groups, starts, ids)
        if self.func == "mean":
            np.add.at(self.sums, run_groups, np.add.reduceat(X.astype(np.float64), starts, axis=0))
            self.seen += np.bincount(run_groups, weights=lengths, minlength=len(self.seen)).astype(np.int64)
            return
        whole = (lengths == self.size[run_groups]) & (self.seen[run_groups] == 0)
        for length in np.unique(lengths[whole]):
            pick = np.flatnonzero(whole & (lengths == length))
            per_batch = max(1, _BATCH_TILES // int(length))
            for b in range(0, len(pick), per_batch):  # float64 blocks of at most _BATCH_TILES tiles
                sel = pick[b : b + per_batch]
                block = X[starts[sel][:, None] + np.arange(length)].astype(np.float64)
                self.result[run_groups[sel]] = np.median(block, axis=1).astype(np.float32)
            self.seen[run_groups[pick]] = length
        for g, s, n in zip(run_groups[~whole], starts[~whole], lengths[~whole], strict=True):
            self._buffer(int(g), X[s : s + n])

    def _buffer(self, g: int, rows: np.ndarray) -> None:
        self.buffers.setdefault(g, []).append(rows.copy())
        self.seen[g] += len(rows)
        self.n_buffered += len(rows)
        self.max_buffered = max(self.max_buffered, self.n_buffered)
        if self.seen[g] > self.size[g]:
            raise InputError(f"group {g} has more tiles than its fields list (damaged store)")
        if self.seen[g] == self.size[g]:
            members = np.concatenate(self.buffers.pop(g)).astype(np.float64)
            self.result[g] = np.median(members, axis=0).astype(np.float32)
            self.n_buffered -= len(members)

    def _track_ids(self, run_groups: np.ndarray, starts: np.ndarray, ids: dict[str, np.ndarray]) -> None:
        for c in _TILE_ID_COLUMNS:
            np.minimum.at(self.id_min[c], run_groups, np.minimum.reduceat(ids[c], starts))
            np.maximum.at(self.id_max[c], run_groups, np.maximum.reduceat(ids[c], starts))

    def check_complete(self) -> None:
        """Every group got exactly its tiles; finish the mean."""
        if self.buffers or np.any(self.seen != self.size):
            raise InputError("the store's parts hold fewer tiles than its fields list (damaged store)")
        if self.func == "mean":
            self.result[:] = (self.sums / self.size[:, None]).astype(np.float32)


def _group_obs(
    fields: pd.DataFrame, present: np.ndarray, codes: np.ndarray, n_groups: int, reducer: _Reducer
) -> pd.DataFrame:
    """One row per group: the group's first field's values of every column constant within all groups."""
    frame = fields.iloc[present].reset_index(drop=True)
    kept = constant_columns(frame, codes)
    first_field = pd.Series(np.arange(len(codes))).groupby(codes).first().to_numpy()
    obs = frame.iloc[first_field][kept].reset_index(drop=True)
    # tile id columns: kept where constant in every group, like the in-memory route's constant_columns
    for c in _TILE_ID_COLUMNS:
        if np.array_equal(reducer.id_min[c], reducer.id_max[c]):
            obs[c] = reducer.id_min[c]
    # column order of the in-memory route: field columns, manifest_row, tile, tile_y, tile_x
    order = [c for c in fields.columns if c != "manifest_row"] + ["manifest_row", *_TILE_ID_COLUMNS]
    obs = obs[[c for c in order if c in obs.columns]]
    obs["n_members"] = reducer.size
    obs.index = pd.Index([str(i) for i in range(n_groups)])
    return obs
