"""A tiny ViT trained by lcd-ssl on the shared DSB 2018 brightfield images, once per test session."""

from pathlib import Path

import numpy as np
import pytest

DSB = ("images", "dsb2018_brightfield")


@pytest.fixture(scope="session")
def dsb_dir(shared_data) -> Path:
    return shared_data.joinpath(*DSB)


@pytest.fixture(scope="session")
def dsb_cases(dsb_dir):
    import tifffile

    cases = []
    for path in sorted(dsb_dir.glob("*_image.tif")):
        labels = path.with_name(path.name.replace("_image.tif", "_nuclei_labels.tif"))
        cases.append((path, labels, tifffile.imread(path).astype(np.float32), tifffile.imread(labels)))
    assert len(cases) == 8
    return cases


@pytest.fixture(scope="session")
def tiny_vit(dsb_cases, tmp_path_factory):
    """(model, config) of a depth-2, 64-dim, patch-8 ViT trained 60 DINO steps on the 8 DSB images (~1 min CPU)."""
    import lcd_embed as le
    import torch
    from lcd_ssl import InMemoryImages, TrainConfig, export_backbone, train

    torch.set_num_threads(2)
    out = tmp_path_factory.mktemp("tiny_vit")
    config = TrainConfig(
        model="vit_tiny_patch16_224",
        model_kwargs={"depth": 2, "embed_dim": 64, "num_heads": 4, "patch_size": 8, "img_size": 64},
        out_dim=256,
        hidden_dim=128,
        bottleneck_dim=64,
        global_crop_size=64,
        local_crop_size=32,
        n_local_crops=2,
        window_size=128,
        batch_size=16,
        epochs=1,
        steps_per_epoch=60,
        warmup_epochs=0.1,
        precision="fp32",
        progress=False,
        seed=0,
    )
    run = train(InMemoryImages([c[2] for c in dsb_cases]), config, out / "run")
    checkpoint = export_backbone(run, out / "checkpoint")
    model, cfg = le.load_backbone(checkpoint, device="cpu")
    return model, cfg, checkpoint
