"""Tile stores (lcd_core.tiles): parts + field table + metadata, chunked reading, plain-parquet readability."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from lcd_core import (
    FileFormatError,
    InputError,
    check_tile_store_path,
    finish_tile_store,
    is_tile_store,
    open_tiles,
    part_name,
    read_tile_part,
    read_tiles,
    write_tile_part,
)

pytest.importorskip("pyarrow")


def make_store(tmp_path, *, n_fields=9, n_features=6, seed=0, bounds=(0, 4, 9)):
    """A store written part by part; returns it with the arrays it must hold (the oracle)."""
    rng = np.random.default_rng(seed)
    fields = pd.DataFrame(
        {
            "plate": [f"P{i % 2}" for i in range(n_fields)],
            "well": [f"A{i // 3:02d}" for i in range(n_fields)],
            "fov": [i % 3 for i in range(n_fields)],
            "path": [f"/img/f{i}.tif" for i in range(n_fields)],
        }
    )
    counts = rng.integers(0, 5, n_fields)
    counts[0] = 3
    rows = np.repeat(np.arange(n_fields), counts)
    tiles = np.concatenate([np.arange(c) for c in counts])
    X = rng.standard_normal((len(rows), n_features)).astype(np.float32)
    names = [f"emb_{j}" for j in range(n_features)]
    shards = tmp_path / "e.parquet.shards"
    shards.mkdir()
    n_parts = len(bounds) - 1
    for k in range(n_parts):
        m = (rows >= bounds[k]) & (rows < bounds[k + 1])
        ids = {"manifest_row": rows[m], "tile": tiles[m], "tile_y": tiles[m] * 16, "tile_x": tiles[m] * 0 + 5}
        write_tile_part(shards / part_name(k, n_parts), ids, X[m], feature_names=names)
    out = finish_tile_store(
        shards, tmp_path / "e.parquet", fields=fields, feature_names=names, uns={"lcd": {"level": "tile"}}
    )
    return out, fields, rows, tiles, X, counts


def test_store_round_trip_against_the_arrays_written(tmp_path):
    out, fields, rows, tiles, X, counts = make_store(tmp_path)
    assert is_tile_store(out) and not (tmp_path / "e.parquet.shards").exists()
    adata = read_tiles(out)
    np.testing.assert_array_equal(adata.X, X)
    np.testing.assert_array_equal(adata.obs["manifest_row"], rows)
    np.testing.assert_array_equal(adata.obs["tile_y"], tiles * 16)
    # field metadata joined per tile, as the in-memory tile AnnData has it
    assert adata.obs["path"].tolist() == fields["path"].iloc[rows].tolist()
    assert adata.obs_names[0] == "0-0" and adata.uns["lcd"]["level"] == "tile"
    store = open_tiles(out)
    assert store.n_tiles == len(X) and store.n_features == 6
    np.testing.assert_array_equal(store.tiles_per_field(), counts)
    meta = json.loads((out / "_lcd.json").read_text())
    assert [p["n_tiles"] for p in meta["parts"]] == [int(counts[:4].sum()), int(counts[4:].sum())]


def test_chunks_never_exceed_the_chunk_size_and_cover_every_tile_in_order(tmp_path):
    out, _, rows, _, X, _ = make_store(tmp_path)
    got_rows, got_X = [], []
    for ids, chunk in open_tiles(out).iter_chunks(chunk_tiles=2):
        assert 1 <= len(chunk) <= 2 and chunk.dtype == np.float32 and chunk.flags["C_CONTIGUOUS"]
        got_rows.append(ids["manifest_row"])
        got_X.append(chunk)
    np.testing.assert_array_equal(np.concatenate(got_rows), rows)
    np.testing.assert_array_equal(np.concatenate(got_X), X)


def test_plain_parquet_readers_see_the_tile_table(tmp_path):
    """pandas/pyarrow read the folder as one dataset (files starting with '_' are skipped)."""
    out, fields, rows, _, X, _ = make_store(tmp_path)
    table = pd.read_parquet(out).sort_values(["manifest_row", "tile"], kind="stable")
    assert list(table.columns[:4]) == ["manifest_row", "tile", "tile_y", "tile_x"]
    np.testing.assert_array_equal(table.filter(like="emb_").to_numpy(), X)
    joined = table.merge(pd.read_parquet(out / "_fields.parquet"), on="manifest_row")
    assert joined["path"].tolist() == fields["path"].iloc[rows].tolist()


def test_part_round_trip_and_empty_part(tmp_path):
    ids = {c: np.zeros(0, np.int64) for c in ("manifest_row", "tile", "tile_y", "tile_x")}
    path = write_tile_part(
        tmp_path / "p.parquet", ids, np.zeros((0, 3), np.float32), feature_names=["a", "b", "c"]
    )
    got_ids, got_X = read_tile_part(path)
    assert got_X.shape == (0, 3) and len(got_ids["tile"]) == 0


def test_bad_stores_are_one_line_errors(tmp_path):
    out, *_ = make_store(tmp_path)
    with pytest.raises(InputError, match="tile store not found"):
        open_tiles(tmp_path / "nope.parquet")
    unfinished = tmp_path / "u.parquet"
    unfinished.mkdir()
    with pytest.raises(InputError, match="not a finished tile store"):
        open_tiles(unfinished)
    (out / "part-00001-of-00002.parquet").unlink()
    with pytest.raises(
        FileFormatError, match=r"part-00001-of-00002\.parquet listed in _lcd\.json is missing"
    ):
        open_tiles(out)
    with pytest.raises(InputError, match=r"<name>\.parquet"):
        check_tile_store_path(tmp_path / "x.h5ad")
    with pytest.raises(InputError, match="features must be"):
        write_tile_part(tmp_path / "q.parquet", ids_of(2), np.zeros((2, 2)), feature_names=["a"])


def ids_of(n):
    return {c: np.arange(n) for c in ("manifest_row", "tile", "tile_y", "tile_x")}


def test_damaged_part_names_the_file(tmp_path):
    out, *_ = make_store(tmp_path)
    part = out / "part-00000-of-00002.parquet"
    part.write_bytes(part.read_bytes()[:100])
    with pytest.raises(FileFormatError, match=r"part-00000-of-00002\.parquet"):
        read_tiles(out)
