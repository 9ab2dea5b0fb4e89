"""Crop geometry, plane choice and determinism of the multi-crop augmentations."""

import numpy as np
import torch
from lcd_ssl.augment import MultiCrop, gaussian_blur, random_resized_box


def _field(planes=5, size=80):
    # plane p is constant p: a crop's values tell which plane it came from
    return np.stack([np.full((size, size), float(p), np.float32) for p in range(planes)])


def _mc(**kw):
    base = dict(
        global_size=32,
        local_size=16,
        global_scale=(0.4, 1.0),
        local_scale=(0.05, 0.4),
        n_local=4,
        window_size=None,
        in_chans=1,
        plane_agnostic=True,
    )
    base.update(kw)
    return MultiCrop(**base)


def test_crop_shapes_and_determinism():
    mc = _mc()
    a = mc(_field(), _field(), seed=7)
    b = mc(_field(), _field(), seed=7)
    c = mc(_field(), _field(), seed=8)
    assert [t.shape for t in a] == [(1, 32, 32)] * 2 + [(1, 16, 16)] * 4
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert any(not torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_plane_agnostic_crops_draw_planes_uniformly(monkeypatch):
    import lcd_ssl.augment as aug

    monkeypatch.setattr(aug, "brightness_contrast", lambda img, rng: img)  # keep plane values readable
    mc = _mc(n_local=0)
    planes = []
    for seed in range(250):
        for crop in mc(_field(), _field(), seed):
            value = round(float(crop.flatten()[0]))
            # one plane per crop, never a mixture or a blur (resampling a constant leaves float rounding)
            assert torch.allclose(crop, torch.full_like(crop, value), atol=1e-5)
            planes.append(value)
    counts = np.bincount(planes, minlength=5)
    assert counts.sum() == 500 and counts.min() > 60 and counts.max() < 140  # ~100 each


def test_stacked_planes_are_channels_without_plane_choice():
    mc = _mc(in_chans=3, plane_agnostic=False, n_local=2)
    field = np.random.default_rng(0).random((3, 64, 64)).astype(np.float32)
    crops = mc(field, field, seed=1)
    assert all(c.shape[0] == 3 for c in crops)


def test_random_resized_box_respects_scale_bounds():
    rng = np.random.default_rng(0)
    for _ in range(200):
        top, left, h, w = random_resized_box(rng, 100, 120, (0.2, 0.5))
        assert 0 <= top and top + h <= 100 and 0 <= left and left + w <= 120
        assert 0.2 * 12000 * 0.9 <= h * w <= 0.5 * 12000 * 1.1


def test_gaussian_blur_preserves_mean_and_smooths():
    img = torch.zeros(1, 21, 21)
    img[0, 10, 10] = 1.0
    out = gaussian_blur(img, 1.5)
    assert abs(float(out.sum()) - 1.0) < 1e-5
    assert float(out.max()) < 0.2


def test_spatial_std_equals_numpy_on_small_regions():
    from lcd_ssl.augment import spatial_std

    region = np.random.default_rng(3).random((2, 40, 50)).astype(np.float32)
    # small regions are not subsampled: the per-plane std, averaged over planes
    assert abs(spatial_std(region) - float(np.mean([region[p].std() for p in range(2)]))) < 1e-6


def _sparse_field():
    # flat background with four bright 6x6 squares: most small crops see only background
    field = np.zeros((1, 128, 128), np.float32)
    for y, x in ((20, 30), (90, 40), (50, 100), (100, 110)):
        field[0, y : y + 6, x : x + 6] = 1.0
    return field


def _flat_crop_fraction(mc):
    flat = total = 0
    for seed in range(60):
        for crop in mc(_sparse_field(), _sparse_field(), seed)[2:]:
            flat += float(crop.std()) < 1e-6
            total += 1
    return flat / total


def test_content_aware_crops_avoid_flat_background(monkeypatch):
    import lcd_ssl.augment as aug

    monkeypatch.setattr(aug, "brightness_contrast", lambda img, rng: img)
    plain = _mc(n_local=4, local_scale=(0.01, 0.05))
    aware = _mc(n_local=4, local_scale=(0.01, 0.05), min_std_fraction=0.5)
    assert _flat_crop_fraction(plain) > 0.5  # most random small crops are background only
    assert _flat_crop_fraction(aware) < 0.1  # redrawn until they hold a square (10 draws at most)
    a, b = aware(_sparse_field(), _sparse_field(), 5), aware(_sparse_field(), _sparse_field(), 5)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))  # still a function of the seed


def _textured(planes=3, size=64, seed=0):
    return np.random.default_rng(seed).random((planes, size, size)).astype(np.float32)


def test_blur_off_gives_the_blurred_runs_crops_without_blur(monkeypatch):
    """Oracle: the default (blurred) crops with gaussian_blur replaced by the identity."""
    import lcd_ssl.augment as aug

    field = _textured()
    off = _mc(in_chans=3, plane_agnostic=False, blur=False)(field, field, seed=3)
    default = _mc(in_chans=3, plane_agnostic=False)(field, field, seed=3)
    calls = []
    monkeypatch.setattr(aug, "gaussian_blur", lambda img, sigma: calls.append(sigma) or img)
    unblurred = _mc(in_chans=3, plane_agnostic=False)(field, field, seed=3)
    assert calls, "seed 3 should blur at least the first global crop (p = 1)"
    assert all(torch.equal(x, y) for x, y in zip(off, unblurred, strict=True))
    # and the blur really was on by default: the first global crop (blur p = 1) differs
    assert not torch.equal(off[0], default[0])


def test_blur_default_follows_the_variant_and_can_be_forced_on_plane_agnostic_crops():
    field = _textured()
    for seed in range(3):
        # default non-PA == blur=True; default PA == blur=False (bit-identical to lcd-ssl 0.2.0)
        a = _mc(in_chans=3, plane_agnostic=False)(field, field, seed)
        b = _mc(in_chans=3, plane_agnostic=False, blur=True)(field, field, seed)
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
        c = _mc(plane_agnostic=True)(field, field, seed)
        d = _mc(plane_agnostic=True, blur=False)(field, field, seed)
        assert all(torch.equal(x, y) for x, y in zip(c, d, strict=True))
    pa_blur = _mc(plane_agnostic=True, blur=True, n_local=0)(field, field, 0)
    pa = _mc(plane_agnostic=True, n_local=0)(field, field, 0)
    # the first global crop is always blurred (p = 1): smoother than the same plane unblurred
    assert float(pa_blur[0].diff(dim=-1).abs().mean()) < float(pa[0].diff(dim=-1).abs().mean())


def test_train_config_blur_option():
    from lcd_ssl import ConfigError, TrainConfig

    assert TrainConfig(variant="dino").use_blur
    assert not TrainConfig(variant="pa+dino+barlow+xb").use_blur
    assert not TrainConfig(variant="dino", blur=False).use_blur
    assert TrainConfig(variant="pa+dino+barlow+xb", blur=True).use_blur
    import pytest

    with pytest.raises(ConfigError, match="blur"):
        TrainConfig(blur="no").validate()
