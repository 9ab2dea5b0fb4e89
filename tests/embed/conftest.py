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
        return load_backbone("vit_tiny_patch16_224", in_chans=in_chans, **{**TINY, **kw})

    return make


@pytest.fixture
def rng():
    return np.random.default_rng(0)
