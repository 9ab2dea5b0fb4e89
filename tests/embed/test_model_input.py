"""The one model-input recipe: model_input against a naive numpy pipeline on real pixels, the recipe a
checkpoint records (and older checkpoints' meaning of it), timm's data config, and lcd-embed's two
consumers (embed, field_attention_maps) feeding the model exactly model_input's tiles."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile
import torch
from lcd_core import ConfigError, InputError
from lcd_embed import (
    InputConfig,
    embed,
    field_attention_maps,
    field_input,
    load_backbone,
    model_input,
    read_field,
    resolve_device,
    resolve_input_config,
    save_checkpoint,
)

RECIPE = {
    "planes": [2, 0],
    "method": "percentile",
    "low": 2.0,
    "high": 98.0,
    "per_plane": True,
    "clip": True,
    "downscale": 2,
    "mean": [0.4, 0.6],
    "std": [0.2, 0.3],
}


def naive_model_input(raw, *, planes, low, high, down, tile, stride, mean, std, shift):
    """Independent oracle in float64: np.percentile per plane, clip, reshape block mean, slicing loops."""
    x = raw[list(planes)].astype(np.float64)
    for p in range(len(x)):
        lo, hi = np.percentile(x[p], [low, high])
        x[p] = np.clip((x[p] - lo) / (hi - lo), 0, 1)
    c, h, w = x.shape
    x = x[:, : h // down * down, : w // down * down].reshape(c, h // down, down, w // down, down).mean((2, 4))

    def starts(size):
        s = list(range(0, size - tile + 1, stride))
        if shift and s[-1] + tile < size:
            s.append(size - tile)
        return s

    tiles, coords = [], []
    for y in starts(x.shape[1]):
        for xx in starts(x.shape[2]):
            t = x[:, y : y + tile, xx : xx + tile]
            tiles.append((t - np.reshape(mean, (-1, 1, 1))) / np.reshape(std, (-1, 1, 1)))
            coords.append((y * down, xx * down))
    return np.stack(tiles), np.array(coords)


@pytest.fixture(scope="module")
def isl_field(shared_data, tmp_path_factory):
    """A 3-plane crop of the real ISL phase-contrast z-stack (uint16), as one multi-page TIFF and a manifest."""
    folder = shared_data / "images" / "isl_phase_zstack_dapi"
    stack = np.stack([read_field([folder / f"phase_z{z:02d}.png"])[0] for z in (4, 6, 8)])
    crop = stack[:, 300:428, 500:620].astype(np.uint16)  # 128 x 120: not a multiple of the tiles
    out = tmp_path_factory.mktemp("isl")
    tifffile.imwrite(out / "field.tif", crop, photometric="minisblack")
    manifest = pd.DataFrame(
        {"plate": ["P1"], "well": ["B02"], "fov": [1], "compound": ["DMSO"], "path": [str(out / "field.tif")]}
    )
    return crop, manifest


@pytest.fixture
def recipe_model(tiny_vit, tmp_path):
    """A tiny 2-channel ViT saved with a non-trivial recipe (planes 2,0; per-plane, clipped, downscale 2)."""
    model, config = tiny_vit(in_chans=2, seed=21)
    folder = save_checkpoint(model, tmp_path / "ckpt", {**config, "preprocessing": RECIPE})
    return load_backbone(folder, device="cpu"), folder


def test_model_input_matches_naive_pipeline_on_real_pixels(isl_field):
    raw, _ = isl_field
    recipe = InputConfig(**RECIPE, in_chans=2, tile_size=32, stride=24, edge="shift")
    tiles, coords = model_input(raw, recipe)
    expected, exp_coords = naive_model_input(
        raw,
        planes=(2, 0),
        low=2,
        high=98,
        down=2,
        tile=32,
        stride=24,
        mean=(0.4, 0.6),
        std=(0.2, 0.3),
        shift=True,
    )
    assert tiles.dtype == np.float32 and tiles.shape == expected.shape == (9, 2, 32, 32)
    np.testing.assert_allclose(tiles, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(coords, exp_coords)
    # the field the ssl reader crops from is the same pixels before channel matching and tiling
    field = field_input(raw, recipe)
    assert field.shape == (2, 64, 60)
    mean, std = (np.array(v, np.float32).reshape(2, 1, 1) for v in ((0.4, 0.6), (0.2, 0.3)))
    np.testing.assert_array_equal(tiles[0], (field[:, :32, :32] - mean) / std)
    # planes already selected at read time (per-plane files skipped) give the same tiles
    again, _ = model_input(raw[[2, 0]], recipe, planes_selected=True)
    np.testing.assert_array_equal(again, tiles)
    with pytest.raises(InputError, match="plane 2 requested but image has 2 planes"):
        model_input(raw[:2], recipe)
    # a single plane is repeated to the model's channels
    one, _ = model_input(raw, recipe.replace(planes=(1,)))
    np.testing.assert_allclose(one[:, 0] * 0.2 + 0.4, one[:, 1] * 0.3 + 0.6, rtol=1e-5, atol=1e-6)


def test_recipe_checks_and_overrides():
    config = {"in_chans": 2, "img_size": 32, "preprocessing": {**RECIPE, "in_chans": 2}}
    recipe = resolve_input_config(config)
    assert (recipe.planes, recipe.downscale, recipe.tile_size, recipe.stride) == ((2, 0), 2, 32, 32)
    assert recipe.mean == (0.4, 0.6) and recipe.per_plane and recipe.clip
    # None means "not given": the recorded value stays; a given one replaces it
    assert resolve_input_config(config, downscale=None, planes=None) == recipe
    assert resolve_input_config(config, downscale=1, stride=16).downscale == 1
    for bad, match in (
        ({"downscal": 2}, r"preprocessing\.downscal: unknown option"),
        ({"in_chans": 3}, "the model takes 2 input channels"),
        ({"low": 99.0}, "low < high"),
        ({"downscale": 1.5}, r"preprocessing\.downscale: expected an integer"),
        ({"std": [0.0, 1.0]}, "std: must be positive"),
        ({"mean": [0.1, 0.2, 0.3]}, "3 values but the model has 2 input channels"),
        ({"edge": "wrap"}, r"preprocessing\.edge"),
    ):
        with pytest.raises(ConfigError, match=match):
            resolve_input_config(config, **bad)
    with pytest.raises(ConfigError, match="unknown preprocessing key 'gamma'"):
        resolve_input_config({"preprocessing": {"gamma": 2}})


def test_older_checkpoints_keep_their_meaning():
    """lcd-embed 0.1 wrote ``normalization``; lcd-ssl 0.1 also recorded the training planes/downscale."""
    legacy = {
        "in_chans": 2,
        "img_size": 32,
        "normalization": {k: v for k, v in RECIPE.items() if k not in ("planes", "downscale")},
        "lcd_ssl": {"variant": "dino", "planes": [2, 0], "downscale": 2},
    }
    new = {"in_chans": 2, "img_size": 32, "preprocessing": RECIPE}
    assert resolve_input_config(legacy) == resolve_input_config(new)
    plain = resolve_input_config(
        {"in_chans": 3, "img_size": 224, "normalization": {"mean": [0.5] * 3, "std": [0.5] * 3}}
    )
    assert plain == InputConfig(in_chans=3, tile_size=224, stride=224)


def test_checkpoint_records_the_recipe_and_timm_reads_it(recipe_model):
    import timm.data

    (model, _), folder = recipe_model
    saved = json.loads((folder / "config.json").read_text())
    assert saved["preprocessing"] == {**RECIPE, "in_chans": 2} and "normalization" not in saved
    data = timm.data.resolve_data_config({}, model=model)
    assert data["input_size"] == (2, 32, 32)
    assert data["mean"] == (0.4, 0.6) and data["std"] == (0.2, 0.3)
    assert model.pretrained_cfg["tag"] is None and model.pretrained_cfg["num_classes"] == 0
    assert not model.pretrained_cfg.get("hf_hub_id")


def _capture(model):
    """Record every tensor that enters the ViT (the patch embedding sees all forward paths)."""
    seen = []
    handle = model.patch_embed.register_forward_pre_hook(
        lambda m, args: seen.append(args[0].detach().clone())
    )
    return seen, handle


def test_embed_and_attention_feed_the_model_model_input(recipe_model, isl_field, tmp_path):
    (model, config), _ = recipe_model
    raw, manifest = isl_field
    tiles, coords = model_input(raw, resolve_input_config(config))
    assert tiles.shape == (2, 2, 32, 32)  # 128 x 120 field, downscale 2 -> 64 x 60, 32-px tiles (edge drop)
    seen, handle = _capture(model)
    try:
        adata = embed(manifest, (model, config), num_workers=0, progress=False, device="cpu")
        field_attention_maps(manifest, (model, config), tmp_path / "att", device="cpu")
    finally:
        handle.remove()
    assert len(seen) == 2
    for x in seen:
        assert torch.equal(x, torch.from_numpy(tiles))
    np.testing.assert_array_equal(adata.obs[["tile_y", "tile_x"]].to_numpy(), coords)
    # no recipe option was passed: the recorded planes and downscale were used (and are recorded)
    pre = adata.uns["lcd_embed"]["preprocessing"]
    assert pre["planes"] == [2, 0] and pre["downscale"] == 2 and pre["per_plane"] and pre["clip"]
    z = np.load(tmp_path / "att" / "row0_attention.npz")
    assert int(z["tile_size"]) == 64 and z["field"].shape[1:] == raw.shape[1:]


def test_resolve_device(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") and resolve_device(None) == torch.device("cpu")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="not a device"):
        resolve_device("gpu0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_device("auto") == torch.device("cuda", 1)  # torchrun: this process's GPU
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
