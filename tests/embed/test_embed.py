"""embed(): the AnnData against a hand-written read -> normalize -> tile -> forward pipeline."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
import tifffile
import torch
from lcd_core import read_h5ad
from lcd_embed import InputError, control_stats, embed
from PIL import Image


def manual_features(
    model, config, stack, *, tile, down=1, low=1.0, high=99.0, lohi=None, pool="cls", n_last=1
):
    """Independent oracle: numpy percentiles, reshape block-mean, slicing loops, model blocks by hand."""
    stack = stack.astype(np.float64)
    lo, hi = lohi if lohi is not None else np.percentile(stack, [low, high])
    x = (stack - lo) / (hi - lo)
    if down > 1:
        p, h, w = x.shape
        x = (
            x[:, : h // down * down, : w // down * down]
            .reshape(p, h // down, down, w // down, down)
            .mean((2, 4))
        )
    tiles, coords = [], []
    for y in range(0, x.shape[1] - tile + 1, tile):
        for xx in range(0, x.shape[2] - tile + 1, tile):
            tiles.append(x[:, y : y + tile, xx : xx + tile])
            coords.append((y * down, xx * down))
    t = torch.tensor(np.stack(tiles), dtype=torch.float32)
    mean = torch.tensor(config["preprocessing"]["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(config["preprocessing"]["std"]).view(1, -1, 1, 1)
    t = (t - mean) / std
    with torch.no_grad():
        h = model.norm_pre(model._pos_embed(model.patch_embed(t)))
        outs = []
        for blk in model.blocks:
            h = blk(h)
            outs.append(model.norm(h))
    feats = []
    for o in outs[-n_last:]:
        if pool in ("cls", "cls+mean"):
            feats.append(o[:, 0])
        if pool in ("mean", "cls+mean"):
            feats.append(o[:, 1:].mean(1))
    return torch.cat(feats, -1).numpy(), np.array(coords)


@pytest.fixture
def phase_manifest(shared_data, tmp_path):
    """The real phase-contrast z-stack (3 planes) as one field, and two DSB brightfield fields."""
    isl = shared_data / "images" / "isl_phase_zstack_dapi"
    dsb = sorted((shared_data / "images" / "dsb2018_brightfield").glob("*_image.tif"))[:2]
    zstack = pd.DataFrame(
        {
            "plate": ["isl"],
            "well": ["A01"],
            "fov": [0],
            "compound": ["DMSO"],
            **{f"path_z{i}": [str(isl / f"phase_z{z:02d}.png")] for i, z in enumerate((4, 6, 8))},
        }
    )
    bright = pd.DataFrame(
        {
            "plate": "dsb",
            "well": ["A01", "A02"],
            "fov": 0,
            "compound": ["DMSO", "x"],
            "path": [str(p) for p in dsb],
        }
    )
    return zstack, bright


def test_embed_real_zstack_matches_manual(phase_manifest, tiny_vit, tmp_path):
    zstack, _ = phase_manifest
    model, config = tiny_vit(in_chans=3, seed=5)
    adata = embed(
        zstack, (model, config), preprocessing={"downscale": 8}, batch_size=5, num_workers=0, progress=False
    )
    stack = np.stack([np.asarray(Image.open(p)) for p in zstack.loc[0, ["path_z0", "path_z1", "path_z2"]]])
    expected, coords = manual_features(model, config, stack, tile=32, down=8)
    assert adata.shape == (16, 64) and adata.X.dtype == np.float32
    np.testing.assert_allclose(adata.X, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(adata.obs[["tile_y", "tile_x"]].to_numpy(), coords)
    assert adata.obs["tile"].tolist() == list(range(16))
    assert (adata.obs["compound"] == "DMSO").all() and adata.uns["lcd"]["level"] == "tile"
    assert adata.uns["lcd_embed"]["preprocessing"]["downscale"] == 8


def test_pooling_last_blocks_workers_and_formats(phase_manifest, tiny_vit, tmp_path):
    _, bright = phase_manifest
    model, config = tiny_vit(in_chans=1, seed=6)
    run = functools.partial(
        embed,
        bright,
        (model, config),
        preprocessing={"downscale": 16, "tile_size": 32},
        pooling="cls+mean",
        n_last_blocks=2,
        progress=False,
    )
    a = run(batch_size=3, num_workers=0, out=tmp_path / "a.h5ad")
    stacks = [tifffile.imread(p)[None] for p in bright["path"]]
    expected = np.concatenate(
        [manual_features(model, config, s, tile=32, down=16, pool="cls+mean", n_last=2)[0] for s in stacks]
    )
    np.testing.assert_allclose(a.X, expected, rtol=1e-4, atol=1e-4)
    assert a.shape == (2 * 4, 4 * 64)
    assert a.var["block"].tolist()[:64] == [-2] * 64 and a.var["pool"].tolist()[64:128] == ["mean"] * 64
    # worker processes and the zarr format give the same numbers and metadata
    b = run(batch_size=5, num_workers=2, out=tmp_path / "b.zarr")
    for other in (b, read_h5ad(tmp_path / "a.h5ad"), read_h5ad(tmp_path / "b.zarr")):
        np.testing.assert_allclose(other.X, a.X, rtol=1e-5, atol=1e-5)
        assert other.obs["well"].astype(str).tolist() == a.obs["well"].astype(str).tolist()
    assert not (tmp_path / "a.h5ad.shards").exists()  # merged and cleaned


def test_control_normalization(tmp_path, tiny_vit, rng):
    rows = []
    for plate, gain in (("P1", 1.0), ("P2", 3.0)):
        for well, compound in (("A01", "DMSO"), ("A02", "DMSO"), ("A03", "drug")):
            p = tmp_path / f"{plate}_{well}.tif"
            tifffile.imwrite(p, (rng.gamma(2, 100, (32, 32)) * gain).astype(np.uint16))
            rows.append({"plate": plate, "well": well, "compound": compound, "path": str(p)})
    man = pd.DataFrame(rows)
    stats = control_stats(man, pixels_per_image=10**6)
    for plate in ("P1", "P2"):  # oracle: percentiles of all control pixels of the plate
        ctrl = np.concatenate(
            [tifffile.imread(p).ravel() for p in man.query("plate == @plate and compound == 'DMSO'")["path"]]
        )
        lo, hi = np.percentile(ctrl.astype(np.float64), [1, 99])
        got = stats.set_index("plate").loc[plate]
        assert got["low"] == pytest.approx(lo, rel=1e-6) and got["high"] == pytest.approx(hi, rel=1e-6)
    model, config = tiny_vit(in_chans=1, seed=7)
    a = embed(man, (model, config), preprocessing={"method": "control"}, num_workers=0, progress=False)
    drug = man.index[man["compound"] == "drug"][1]
    st = stats.set_index("plate").loc["P2"]
    expected, _ = manual_features(
        model, config, tifffile.imread(man.loc[drug, "path"])[None], tile=32, lohi=(st["low"], st["high"])
    )
    np.testing.assert_allclose(a.X[a.obs["manifest_row"] == drug], expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(InputError, match="no control images"):
        control_stats(man.assign(compound=np.where(man["plate"] == "P2", "drug", man["compound"])))
