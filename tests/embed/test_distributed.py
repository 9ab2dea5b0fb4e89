"""Scale-out: 2-process gloo torchrun == 1 process; finished shards are skipped on a re-run."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tifffile
from lcd_core import read_h5ad
from lcd_embed import InputError, embed, save_checkpoint


@pytest.fixture
def plate(tmp_path, rng, tiny_vit):
    rows = []
    for i in range(7):
        p = tmp_path / f"f{i}.tif"
        tifffile.imwrite(p, rng.integers(0, 4000, (3, 64, 48), dtype=np.uint16), photometric="minisblack")
        rows.append({"plate": "P1", "well": f"B{i + 1:02d}", "fov": i % 2, "dose": float(i), "path": str(p)})
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    model, config = tiny_vit(in_chans=3, seed=11)
    ckpt = save_checkpoint(model, tmp_path / "ckpt", config)
    return tmp_path / "manifest.csv", ckpt


def test_torchrun_two_processes_equal_one(plate, tmp_path):
    manifest, ckpt = plate
    # the same shards and batches as the 2-process run (conftest: one torch thread, as OMP_NUM_THREADS=1
    # there): each tile goes through the model in the same batch, so the features are bit-identical
    embed(
        manifest, ckpt, out=tmp_path / "one.h5ad", num_workers=0, shard_size=2, batch_size=3, progress=False
    )
    single = read_h5ad(tmp_path / "one.h5ad")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "lcd_embed",
        "embed",
        str(manifest),
        "--model",
        str(ckpt),
        "--out",
        str(tmp_path / "two.h5ad"),
        "--workers",
        "0",
        "--shard-size",
        "2",
        "--batch-size",
        "3",
        "--no-progress",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    two = read_h5ad(tmp_path / "two.h5ad")
    assert two.obs_names.tolist() == single.obs_names.tolist()
    pd.testing.assert_frame_equal(two.obs.astype(str), single.obs.astype(str))
    np.testing.assert_array_equal(two.X, single.X)
    assert not (tmp_path / "two.h5ad.shards").exists()
    # another batch size regroups the tiles: the features agree to float rounding only
    other = embed(manifest, ckpt, num_workers=0, shard_size=2, batch_size=64, progress=False)
    np.testing.assert_allclose(other.X, single.X, rtol=1e-5, atol=1e-5)


def test_resume_skips_finished_shards(plate, tmp_path):
    manifest, ckpt = plate
    out = tmp_path / "emb.h5ad"
    first = embed(manifest, ckpt, out=out, num_workers=0, shard_size=3, keep_shards=True, progress=False)
    shards = sorted((tmp_path / "emb.h5ad.shards").glob("*part-*"))
    assert [s.name for s in shards if s.suffix == ".json"] == [
        f"_part-{k:05d}-of-00003.json" for k in range(3)
    ]
    # simulate a crash: shard 1 never finished, no merged output
    for s in shards:
        if "part-00001" in s.name:
            s.unlink()
    out.unlink()
    before = {s.name: s.stat().st_mtime_ns for s in shards if s.exists()}
    second = embed(manifest, ckpt, out=out, num_workers=0, shard_size=3, keep_shards=True, progress=False)
    after = {s.name: s.stat().st_mtime_ns for s in (tmp_path / "emb.h5ad.shards").glob("*part-*")}
    assert {k: after[k] for k in before} == before  # finished shards untouched
    assert "part-00001-of-00003.parquet" in after  # the missing one was redone
    np.testing.assert_array_equal(second.X, first.X)
    # other settings must not silently reuse those shards
    with pytest.raises(InputError, match="different run"):
        embed(manifest, ckpt, out=out, num_workers=0, shard_size=3, pooling="mean", progress=False)


def test_tile_store_output_equals_the_h5ad_output(plate, tmp_path):
    """A .parquet output is the same tiles as the in-memory AnnData, stored in shards (no merge)."""
    from lcd_core import TileStore, open_tiles, read_tiles

    manifest, ckpt = plate
    h5 = embed(manifest, ckpt, out=tmp_path / "e.h5ad", num_workers=0, shard_size=3, progress=False)
    store = embed(manifest, ckpt, out=tmp_path / "e.parquet", num_workers=0, shard_size=3, progress=False)
    assert isinstance(store, TileStore) and store.n_tiles == h5.n_obs
    assert not (tmp_path / "e.parquet.shards").exists()
    assert sorted(p.name for p in (tmp_path / "e.parquet").iterdir()) == [
        "_fields.parquet",
        "_lcd.json",
        *[f"part-{k:05d}-of-00003.parquet" for k in range(3)],
    ]  # resume markers folded into _lcd.json
    tiles = read_tiles(tmp_path / "e.parquet")
    np.testing.assert_array_equal(tiles.X, h5.X)
    pd.testing.assert_frame_equal(tiles.obs.astype(str), h5.obs.astype(str))
    assert tiles.var["pool"].tolist() == h5.var["pool"].tolist()
    assert tiles.uns["lcd_embed"]["pooling"] == "cls" and tiles.uns["lcd"]["level"] == "tile"
    assert open_tiles(tmp_path / "e.parquet").tiles_per_field().tolist() == (
        h5.obs["manifest_row"].value_counts().sort_index().tolist()
    )


def test_torchrun_two_processes_write_the_same_tile_store(plate, tmp_path):
    from lcd_core import read_tiles

    manifest, ckpt = plate
    embed(
        manifest,
        ckpt,
        out=tmp_path / "one.parquet",
        num_workers=0,
        shard_size=2,
        batch_size=3,
        progress=False,
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += [
        "-m",
        "lcd_embed",
        "embed",
        str(manifest),
        "--model",
        str(ckpt),
        "--out",
        str(tmp_path / "two.parquet"),
    ]
    cmd += ["--workers", "0", "--shard-size", "2", "--batch-size", "3", "--no-progress"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    one, two = read_tiles(tmp_path / "one.parquet"), read_tiles(tmp_path / "two.parquet")
    pd.testing.assert_frame_equal(two.obs.astype(str), one.obs.astype(str))
    np.testing.assert_array_equal(two.X, one.X)  # same shards, same batches, one thread each


def test_tile_store_resumes_per_shard(plate, tmp_path):
    """A run killed after some shards: the re-run redoes only the missing shard, then finishes the store."""
    from lcd_core import read_tiles

    manifest, ckpt = plate
    out = tmp_path / "s.parquet"
    first = read_tiles(embed(manifest, ckpt, out=out, num_workers=0, shard_size=3, progress=False).path)
    # rebuild the state of a killed run: shards 0 and 2 finished, no store yet
    shards = tmp_path / "s.parquet.shards"
    embed(
        manifest, ckpt, out=tmp_path / "s.h5ad", num_workers=0, shard_size=3, keep_shards=True, progress=False
    )
    (tmp_path / "s.h5ad.shards").rename(shards)
    for f in shards.glob("*part-00001-*"):
        f.unlink()
    import shutil

    shutil.rmtree(out)
    before = {f.name: f.stat().st_mtime_ns for f in shards.glob("part-*")}
    embed(manifest, ckpt, out=out, num_workers=0, shard_size=3, progress=False)
    after = {f.name: f.stat().st_mtime_ns for f in out.glob("part-*")}
    assert {k: after[k] for k in before} == before  # finished shards were renamed into place, not redone
    assert "part-00001-of-00003.parquet" in after
    np.testing.assert_array_equal(read_tiles(out).X, first.X)
