"""Intensity normalization and tiling against naive re-implementations."""

from __future__ import annotations

import numpy as np
import pytest
from lcd_embed import InputError, downscale, normalize_intensity, tile_image


def test_percentile_normalization_matches_formula(rng):
    img = rng.gamma(2.0, 500.0, size=(3, 40, 50))
    out = normalize_intensity(img, low=2.0, high=98.0)
    flat = np.sort(img.ravel())

    # oracle: linear-interpolated percentiles computed by hand
    def pct(q):
        pos = q / 100 * (flat.size - 1)
        lo = int(np.floor(pos))
        return flat[lo] + (flat[min(lo + 1, flat.size - 1)] - flat[lo]) * (pos - lo)

    lo, hi = pct(2.0), pct(98.0)
    np.testing.assert_allclose(out, (img - lo) / (hi - lo), rtol=1e-5, atol=1e-5)
    assert out.dtype == np.float32
    per_plane = normalize_intensity(img, per_plane=True)
    for p in range(3):
        lo_p, hi_p = np.percentile(img[p], [1, 99])
        np.testing.assert_allclose(per_plane[p], (img[p] - lo_p) / (hi_p - lo_p), rtol=1e-5, atol=1e-5)
    clipped = normalize_intensity(img, clip=True)
    assert clipped.min() == 0.0 and clipped.max() == 1.0


def test_control_stats_and_constant_image():
    img = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    out = normalize_intensity(img, stats={"low": [0.0, 9.0], "high": [10.0, 19.0]})
    np.testing.assert_allclose(out[0], img[0] / 10)
    np.testing.assert_allclose(out[1], (img[1] - 9) / 10)
    blank = normalize_intensity(np.full((1, 8, 8), 7.0))
    assert np.all(blank == 0.0)
    with pytest.raises(InputError, match="stats"):
        normalize_intensity(img, method="control")
    with pytest.raises(InputError, match="non-finite"):
        normalize_intensity(np.array([[np.nan, 1.0]]), stats={"low": 0.0, "high": 1.0})


def test_tiles_match_naive_loops(rng):
    img = rng.random((2, 70, 90)).astype(np.float32)
    tiles, coords = tile_image(img, tile_size=32, stride=24)
    expected = [(y, x) for y in range(0, 70 - 32 + 1, 24) for x in range(0, 90 - 32 + 1, 24)]
    assert [tuple(c) for c in coords] == expected
    for t, (y, x) in zip(tiles, expected, strict=True):
        np.testing.assert_array_equal(t, img[:, y : y + 32, x : x + 32])
    # edge="shift" covers every pixel
    tiles, coords = tile_image(img, tile_size=32, edge="shift")
    covered = np.zeros((70, 90), bool)
    for y, x in coords:
        covered[y : y + 32, x : x + 32] = True
    assert covered.all() and coords[:, 0].max() == 70 - 32 and coords[:, 1].max() == 90 - 32
    with pytest.raises(InputError, match="smaller than one 224x224 tile"):
        tile_image(img)


def test_downscale_is_block_mean(rng):
    img = rng.random((1, 9, 8)).astype(np.float32)
    out = downscale(img, 2)
    assert out.shape == (1, 4, 4)
    np.testing.assert_allclose(out[0, 1, 2], img[0, 2:4, 4:6].mean(), rtol=1e-6)
