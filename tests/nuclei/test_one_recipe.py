"""One field, one lcd-ssl checkpoint with a non-trivial recipe, four consumers, identical model input.

The checkpoint is trained and exported by lcd-ssl with planes (0, 2), per-plane 2/98 percentiles,
clipping, downscale 2 and per-channel mean/std (0.4, 0.6) / (0.2, 0.3). Then the field (a 3-plane
crop of the real ISL phase z-stack) goes through lcd-embed's ``embed`` and ``field_attention_maps``,
lcd-ssl's field reader and lcd-nuclei's ``discover_field``: the tensors reaching the ViT (captured at
its patch embedding) are identical, the ssl reader's field is ``field_input``'s, and both equal an
independent numpy computation of the recipe. Nothing about the recipe is passed to any consumer.
"""

import json

import numpy as np
import pandas as pd
import pytest
import tifffile
import torch

NORMALIZATION = {"method": "percentile", "low": 2.0, "high": 98.0, "per_plane": True, "clip": True}
MEAN, STD = [0.4, 0.6], [0.2, 0.3]


@pytest.fixture(scope="module")
def exported(shared_data, tmp_path_factory):
    """(manifest path, raw field, checkpoint folder, TrainConfig) of a 2-step lcd-ssl run on the field."""
    import lcd_embed as le
    from lcd_ssl import TrainConfig, export_backbone, train

    folder = shared_data / "images" / "isl_phase_zstack_dapi"
    stack = np.stack([le.read_field([folder / f"phase_z{z:02d}.png"])[0] for z in (4, 6, 8)])
    raw = stack[:, 384:640, 256:512].astype(np.uint16)  # 256 x 256 -> 128 x 128 after downscale 2
    out = tmp_path_factory.mktemp("one_recipe")
    tifffile.imwrite(out / "field.tif", raw, photometric="minisblack")
    manifest = out / "manifest.csv"
    pd.DataFrame(
        {"plate": ["P1"], "well": ["C03"], "fov": [1], "compound": ["DMSO"], "path": ["field.tif"]}
    ).to_csv(manifest, index=False)
    config = TrainConfig(
        model="vit_tiny_patch16_224",
        model_kwargs={"depth": 2, "embed_dim": 64, "num_heads": 2, "patch_size": 8},
        planes=[0, 2],
        downscale=2,
        normalization={**NORMALIZATION, "mean": MEAN, "std": STD},
        out_dim=32,
        hidden_dim=32,
        bottleneck_dim=16,
        global_crop_size=32,
        local_crop_size=16,
        n_local_crops=2,
        window_size=None,
        batch_size=2,
        epochs=1,
        steps_per_epoch=2,
        warmup_epochs=0.5,
        precision="fp32",
        device="cpu",
        progress=False,
    )
    run = train(str(manifest), config, out / "run")
    return manifest, raw.astype(np.float32), export_backbone(run, out / "ckpt"), config


def naive_recipe(raw):
    """The recipe written out in float64: planes 0, 2; per-plane percentiles, clip; 2x2 mean; 32-px tiles."""
    x = raw[[0, 2]].astype(np.float64)
    for p in range(2):
        lo, hi = np.percentile(x[p], [2, 98])
        x[p] = np.clip((x[p] - lo) / (hi - lo), 0, 1)
    field = x.reshape(2, 128, 2, 128, 2).mean((2, 4))
    tiles = [
        (field[:, y : y + 32, xx : xx + 32] - np.reshape(MEAN, (2, 1, 1))) / np.reshape(STD, (2, 1, 1))
        for y in range(0, 128, 32)
        for xx in range(0, 128, 32)
    ]
    return field, np.stack(tiles)


def test_four_consumers_give_identical_model_input(exported, tmp_path):
    import lcd_embed as le
    import timm.data
    from lcd_nuclei import discover_field
    from lcd_ssl.data import FieldReader, ManifestImages

    manifest, raw, checkpoint, config = exported
    model, model_config = le.load_backbone(checkpoint, device="cpu")
    recipe = le.resolve_input_config(model_config)
    # the export recorded everything the run used
    saved = json.loads((checkpoint / "config.json").read_text())["preprocessing"]
    assert saved == {
        "planes": [0, 2],
        "downscale": 2,
        "in_chans": 2,
        "mean": MEAN,
        "std": STD,
        **NORMALIZATION,
    }
    data = timm.data.resolve_data_config({}, model=model)
    assert data["input_size"] == (2, 32, 32) and data["mean"] == tuple(MEAN) and data["std"] == tuple(STD)

    tiles, coords = le.model_input(raw, recipe)
    field, naive_tiles = naive_recipe(raw)
    np.testing.assert_allclose(tiles, naive_tiles, rtol=1e-5, atol=1e-5)
    assert tiles.shape == (16, 2, 32, 32) and coords.max() == 192  # field pixels: 3 tiles x 32 x 2

    seen = []
    handle = model.patch_embed.register_forward_pre_hook(
        lambda m, args: seen.append(args[0].detach().clone())
    )
    try:
        adata = le.embed(str(manifest), (model, model_config), num_workers=0, progress=False, device="cpu")
        embed_in = seen.pop()
        le.field_attention_maps(str(manifest), (model, model_config), tmp_path / "att", device="cpu")
        attention_in = seen.pop()
        discover_field(raw, model, model_config)
        nuclei_in = torch.cat(seen)
    finally:
        handle.remove()
    expected = torch.from_numpy(tiles)
    for name, got in (("embed", embed_in), ("attention", attention_in), ("nuclei", nuclei_in)):
        assert torch.equal(got, expected), name
    np.testing.assert_array_equal(adata.obs[["tile_y", "tile_x"]].to_numpy(), coords)

    # lcd-ssl's reader: the normalized field it crops from is field_input's, and the naive one
    reader = FieldReader(ManifestImages(str(manifest)), config.input_config(), cache=False)
    ssl_field = reader(0)
    np.testing.assert_array_equal(ssl_field, le.field_input(raw, recipe))
    np.testing.assert_allclose(ssl_field, field, rtol=1e-5, atol=1e-6)
    # ... and the trainer standardizes crops with the mean/std the export recorded
    assert config.input_config(2).channel_stats(2)[0].ravel().tolist() == pytest.approx(MEAN)


def test_embedding_needs_no_recipe_by_hand(exported, tmp_path):
    """lcd-embed 0.1 ignored the planes and downscale lcd-ssl trained with ("pass the same factor by
    hand"); now a checkpoint path and nothing else gives the model the input it was trained on."""
    import lcd_embed as le

    manifest, raw, checkpoint, _ = exported
    adata = le.embed(
        manifest, checkpoint, out=tmp_path / "tiles.h5ad", num_workers=0, progress=False, device="cpu"
    )
    pre = adata.uns["lcd_embed"]["preprocessing"]
    assert pre["planes"] == [0, 2] and pre["downscale"] == 2 and pre["per_plane"] and pre["clip"]
    assert pre["mean"] == MEAN and pre["std"] == STD
    model, _ = le.load_backbone(checkpoint, device="cpu")
    _, naive_tiles = naive_recipe(raw)
    with torch.no_grad():
        expected = le.tile_features(model, torch.from_numpy(naive_tiles.astype(np.float32))).numpy()
    np.testing.assert_allclose(adata.X, expected, rtol=1e-4, atol=1e-4)
    # an lcd-ssl 0.1 export (normalization + lcd_ssl.planes/downscale, no preprocessing block) means the same
    legacy = tmp_path / "legacy_ckpt"
    legacy.mkdir()
    (legacy / "model.safetensors").write_bytes((checkpoint / "model.safetensors").read_bytes())
    cfg = json.loads((checkpoint / "config.json").read_text())
    block = cfg.pop("preprocessing")
    cfg["normalization"] = {
        k: block[k] for k in ("method", "low", "high", "per_plane", "clip", "mean", "std")
    }
    cfg["lcd_ssl"].update(planes=block["planes"], downscale=block["downscale"])
    (legacy / "config.json").write_text(json.dumps(cfg))
    again = le.embed(manifest, legacy, num_workers=0, progress=False, device="cpu")
    np.testing.assert_array_equal(again.X, adata.X)
