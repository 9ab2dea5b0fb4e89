"""Tiny-model helpers for lcd-ssl tests: synthetic brightfield-like fields and a tiny ViT config."""

import numpy as np
import pandas as pd
import pytest
import torch
from lcd_ssl import InMemoryImages, TrainConfig

TINY_VIT = {"depth": 2, "embed_dim": 64, "num_heads": 2, "patch_size": 8}


@pytest.fixture(autouse=True)
def _few_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def synthetic_fields(n: int, *, size: int = 96, planes: int = 3, seed: int = 0) -> np.ndarray:
    """Grey fields with dark/bright blobs of 4 sizes on a textured background; planes blur differently."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = np.empty((n, planes, size, size), np.float32)
    for i in range(n):
        kind = i % 4
        img = np.full((planes, size, size), 1000.0, np.float32)
        for _ in range(int(rng.integers(4, 12))):
            cy, cx = rng.uniform(0, size, 2)
            d = np.hypot(yy - cy, xx - cx)
            for z in range(planes):
                img[z] += (400 if kind % 2 else -400) * np.exp(-((d / ((3 + 3 * kind) * (1 + 0.3 * z))) ** 2))
        out[i] = img + rng.normal(0, 30, img.shape)
    return out


def synthetic_obs(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "replica": np.repeat(["R1", "R2"], n // 2),
            "compound": np.tile(["DMSO", "a", "b", "c"], n // 4),
            "dose": np.tile([0.0, 1.0, 1.0, 1.0], n // 4),
            "timepoint": 24,
        }
    )


@pytest.fixture(scope="session")
def tiny_images() -> InMemoryImages:
    return InMemoryImages(synthetic_fields(16), synthetic_obs(16))


def _tiny_config(**changes) -> TrainConfig:
    base = dict(
        model="vit_tiny_patch16_224",
        model_kwargs=dict(TINY_VIT),
        out_dim=128,
        hidden_dim=96,
        bottleneck_dim=32,
        global_crop_size=32,
        local_crop_size=16,
        n_local_crops=2,
        window_size=64,
        batch_size=8,
        epochs=2,
        steps_per_epoch=4,
        warmup_epochs=0.5,
        checkpoint_every=3,
        precision="fp32",
        progress=False,
    )
    base.update(changes)
    return TrainConfig(**base)


@pytest.fixture(scope="session")
def tiny_config():
    """Factory of tiny-ViT TrainConfigs (32/16 px crops, 8 steps); keyword arguments override."""
    return _tiny_config
