"""aggregate_tiles streams a tile store in chunks: it must equal the in-memory aggregate and a pandas oracle,
for any chunk size, and its memory must not grow with the number of tiles."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest
from lcd_core import finish_tile_store, part_name, read_tiles, write_tile_part
from lcd_norm import InputError, aggregate, aggregate_tiles

pytest.importorskip("pyarrow")


def build_store(tmp_path, *, n_fields=48, tiles_per_field=None, n_features=7, seed=0, shuffle_fields=True):
    """A store whose wells are not consecutive in manifest order (so groups span chunks and parts),
    with some fields that failed (no tiles)."""
    rng = np.random.default_rng(seed)
    fields = pd.DataFrame(
        {
            "plate": rng.choice(["P1", "P2"], n_fields),
            "well": rng.choice(["A01", "B02", "C03"], n_fields),
            "fov": rng.integers(0, 3, n_fields),
            "timepoint": rng.integers(0, 2, n_fields),
            "compound": "DMSO",
            "path": [f"/img/{i}.tif" for i in range(n_fields)],
        }
    )
    if not shuffle_fields:
        fields = fields.sort_values(["plate", "well", "fov", "timepoint"]).reset_index(drop=True)
    counts = rng.integers(0, 9, n_fields) if tiles_per_field is None else np.full(n_fields, tiles_per_field)
    rows = np.repeat(np.arange(n_fields), counts)
    tiles = np.concatenate([np.arange(c) for c in counts])
    X = (rng.standard_normal((len(rows), n_features)) * 3).astype(np.float32)
    names = [f"emb_{j}" for j in range(n_features)]
    shards = tmp_path / "t.parquet.shards"
    shards.mkdir(parents=True)
    bounds = np.linspace(0, n_fields, 4).astype(int)
    for k in range(3):
        m = (rows >= bounds[k]) & (rows < bounds[k + 1])
        ids = {"manifest_row": rows[m], "tile": tiles[m], "tile_y": tiles[m] // 3, "tile_x": tiles[m] % 3}
        write_tile_part(shards / part_name(k, 3), ids, X[m], feature_names=names)
    store = finish_tile_store(
        shards,
        tmp_path / "t.parquet",
        fields=fields,
        feature_names=names,
        uns={"lcd": {"level": "tile"}},
        var={"block": [-1] * n_features},
    )
    return store, fields, rows, X


def pandas_oracle(fields, rows, X, keys, func):
    """groupby on the full per-tile table: the straightforward answer."""
    frame = fields.iloc[rows][keys].reset_index(drop=True)
    feats = pd.DataFrame(X.astype(np.float64))
    grouped = feats.groupby([frame[k] for k in keys], sort=True)
    return (grouped.median() if func == "median" else grouped.mean()).to_numpy()


@pytest.mark.parametrize("by", ["fov", "well", ["plate", "timepoint"]])
@pytest.mark.parametrize("chunk_tiles", [1, 5, 10_000])
def test_median_equals_in_memory_aggregate_and_pandas(tmp_path, by, chunk_tiles):
    store, fields, rows, X = build_store(tmp_path)
    got = aggregate_tiles(store, by=by, chunk_tiles=chunk_tiles)
    ref = aggregate(read_tiles(store), by=by)
    pd.testing.assert_frame_equal(got.obs, ref.obs)
    np.testing.assert_array_equal(got.X, ref.X)  # bit-identical median
    keys = got.uns["aggregate"]["params"]["by"]
    oracle = pandas_oracle(fields, rows, X, keys, "median")
    np.testing.assert_array_equal(got.X, oracle.astype(np.float32))
    assert got.var_names.tolist() == ref.var_names.tolist() and got.var["block"].tolist() == [-1] * 7
    assert got.uns["lcd"]["level"] == ref.uns["lcd"]["level"]
    assert (
        got.uns["aggregate"]["params"]["dropped_columns"] == ref.uns["aggregate"]["params"]["dropped_columns"]
    )


@pytest.mark.parametrize("chunk_tiles", [3, 10_000])
def test_mean_matches_to_float32_rounding(tmp_path, chunk_tiles):
    store, fields, rows, X = build_store(tmp_path, seed=1)
    got = aggregate_tiles(store, by="fov", func="mean", chunk_tiles=chunk_tiles)
    ref = aggregate(read_tiles(store), by="fov", func="mean")
    pd.testing.assert_frame_equal(got.obs, ref.obs)
    oracle = pandas_oracle(fields, rows, X, ["plate", "well", "fov", "timepoint"], "mean")
    np.testing.assert_allclose(got.X, oracle, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got.X, ref.X, rtol=1e-6, atol=1e-6)


def test_constant_tile_ids_are_kept_like_the_in_memory_route(tmp_path):
    """One tile per field: tile/tile_y/tile_x are constant within every group and stay in obs."""
    store, *_ = build_store(tmp_path, tiles_per_field=1, shuffle_fields=False)
    got = aggregate_tiles(store, by="fov", chunk_tiles=4)
    ref = aggregate(read_tiles(store), by="fov")
    assert {"tile", "tile_y", "tile_x"} <= set(got.obs.columns)
    pd.testing.assert_frame_equal(got.obs, ref.obs)


def test_fields_in_order_are_never_buffered_beyond_one_chunk_boundary(tmp_path):
    store, *_ = build_store(tmp_path, tiles_per_field=8, shuffle_fields=False, n_fields=60)
    got = aggregate_tiles(store, by=["manifest_row"], chunk_tiles=20)
    # a field of 8 tiles cut by a chunk boundary waits; at most one field is open at a time
    assert got.uns["aggregate"]["params"]["max_buffered_tiles"] <= 8


def peak_bytes(store, chunk_tiles):
    tracemalloc.start()
    aggregate_tiles(store, by="fov", chunk_tiles=chunk_tiles)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_memory_does_not_grow_with_the_tiles(tmp_path):
    """Same fields, 8x the tiles per field: the numpy peak stays within one chunk's worth."""
    small, *_ = build_store(
        tmp_path / "a", n_fields=40, tiles_per_field=16, n_features=64, shuffle_fields=False
    )
    big, *_ = build_store(
        tmp_path / "b", n_fields=40, tiles_per_field=128, n_features=64, shuffle_fields=False
    )
    chunk = 256
    p_small, p_big = peak_bytes(small, chunk), peak_bytes(big, chunk)
    # tiles grow 8x (5,120 x 64 float32 = 1.3 MB in all); the peak may differ by a few chunks' worth
    chunk_bytes = chunk * 64 * 8
    assert p_big < p_small + 4 * chunk_bytes, (p_small, p_big)


def test_bad_inputs(tmp_path):
    store, *_ = build_store(tmp_path)
    with pytest.raises(InputError, match="func must be"):
        aggregate_tiles(store, func="max")
    with pytest.raises(InputError, match="nope"):
        aggregate_tiles(store, by=["nope"])
    with pytest.raises(InputError, match="not a finished tile store"):
        (tmp_path / "x.parquet").mkdir()
        aggregate_tiles(tmp_path / "x.parquet")


def test_cli_streams_a_tile_store(tmp_path):
    from lcd_core import read_h5ad
    from lcd_norm.cli import app
    from typer.testing import CliRunner

    store, *_ = build_store(tmp_path)
    res = CliRunner().invoke(
        app, ["aggregate", str(store), "--by", "well", "--chunk-tiles", "5", "-o", str(tmp_path / "w.h5ad")]
    )
    assert res.exit_code == 0, res.output
    got = read_h5ad(tmp_path / "w.h5ad")
    ref = aggregate_tiles(store, by="well")
    np.testing.assert_array_equal(got.X, ref.X)
    assert got.obs["well"].astype(str).tolist() == ref.obs["well"].astype(str).tolist()
    bad = CliRunner().invoke(app, ["aggregate", str(store), "--layer", "x", "-o", str(tmp_path / "v.h5ad")])
    assert bad.exit_code == 2 and "tile store" in bad.output
