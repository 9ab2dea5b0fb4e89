"""Fixtures for lcd-embed tests: a tiny random ViT and small images written by the tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

TINY = {"depth": 2, "embed_dim": 64, "num_heads": 2, "img_size": 32}


@pytest.fixture
def tiny_vit():
    """Factory: a tiny random timm ViT (patch 16) with the given input channels, seeded."""
    from lcd_embed import load_backbone

    def make(in_chans: int = 3, seed: int = 0, **kw):
        torch.manual_seed(seed)
        return load_backbone("vit_tiny_patch16_224", in_chans=in_chans, device="cpu", **{**TINY, **kw})

    return make


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _write_opera_plate(folder, wells, fields=2, planes=3, timepoints=(1, 2), channels=(1,), size=40, seed=0):
    """Opera-style files r{row}c{col}f{field}p{plane}-ch{ch}sk{t}fk1fl1.tiff; returns {name: array}."""
    import tifffile

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for r, c in wells:
        for f in range(1, fields + 1):
            for p in range(1, planes + 1):
                for ch in channels:
                    for t in timepoints:
                        name = f"r{r:02d}c{c:02d}f{f:02d}p{p:02d}-ch{ch}sk{t}fk1fl1.tiff"
                        a = rng.integers(0, 4096, size=(size, size), dtype=np.uint16)
                        tifffile.imwrite(folder / name, a)
                        written[name] = a
    return written


@pytest.fixture
def write_opera_plate():
    """Writes an Opera Phenix / Harmony-style export (see _write_opera_plate)."""
    return _write_opera_plate
