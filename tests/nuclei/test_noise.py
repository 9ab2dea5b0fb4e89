"""Noise level from the finest scale (Immerkær): known white noise recovered, content ignored."""

import numpy as np
import pytest
from lcd_core import InputError
from lcd_nuclei import estimate_noise
from scipy import ndimage as ndi


@pytest.mark.parametrize("sigma", [0.5, 3.0, 20.0])
def test_recovers_the_sd_of_white_noise(sigma):
    noise = np.random.default_rng(0).normal(scale=sigma, size=(256, 256))
    assert estimate_noise(noise) == pytest.approx(sigma, rel=0.03)


def test_ignores_smooth_content_and_sparse_edges():
    """A lamp ramp, a quadratic vignette and blurred cells (what a field holds) barely move the estimate;
    the field's own standard deviation is 10x the noise."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:256, :256].astype(float)
    content = 100 + 0.3 * xx + 0.002 * (yy - 128) ** 2
    cells = np.zeros((256, 256))
    cells[tuple(rng.integers(0, 256, size=(2, 40)))] = 1
    content += 3000 * ndi.gaussian_filter(cells, 6)
    image = content + rng.normal(scale=2.0, size=content.shape)
    assert image.std() > 10 * 2.0
    assert estimate_noise(image) == pytest.approx(2.0, rel=0.05)


def test_mean_absolute_version_agrees_on_pure_noise():
    """Immerkær's published estimator (mean |image * M| * sqrt(pi / 2) / 6), written out here, gives
    the same value as the median version on pure noise."""
    noise = np.random.default_rng(2).normal(scale=4.0, size=(200, 300))
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], float)
    filtered = ndi.correlate(noise, kernel)[1:-1, 1:-1]
    immerkaer = np.sqrt(np.pi / 2) * np.abs(filtered).mean() / 6
    assert estimate_noise(noise) == pytest.approx(immerkaer, rel=0.03)


def test_noise_free_images_and_bad_input():
    assert estimate_noise(np.full((16, 16), 7.0)) == 0.0
    yy, xx = np.mgrid[:16, :16]
    assert estimate_noise(3.0 * xx + 2.0 * yy) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(InputError, match="2-D"):
        estimate_noise(np.zeros((3, 8, 8)))
    with pytest.raises(InputError, match="3 x 3"):
        estimate_noise(np.zeros((2, 8)))
    with pytest.raises(InputError, match="NaN"):
        estimate_noise(np.full((8, 8), np.nan))
