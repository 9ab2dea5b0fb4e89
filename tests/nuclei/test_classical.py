"""No-ViT counter: exact counts of synthetic nuclei on a shaded, noisy background; empty fields give 0."""

import math

import numpy as np
import pytest
from lcd_core import InputError
from lcd_nuclei.classical import blob_response, classical_nuclei


def field_with_nuclei(centres, radius=6, shape=(160, 200), dark=True, seed=0, noise=2.0):
    """Grey cells-on-light-background image: cytoplasm discs, darker nuclei, an illumination ramp."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = 200.0 + 20 * xx / shape[1]  # lamp gradient across the field
    for cy, cx in centres:
        img -= 25 * ((yy - cy) ** 2 + (xx - cx) ** 2 <= (3 * radius) ** 2)  # cell body
    for cy, cx in centres:
        nucleus = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
        img += (-40 if dark else 40) * nucleus
    return img + rng.normal(scale=noise, size=shape)


CENTRES = [(30, 30), (30, 100), (35, 165), (90, 40), (95, 110), (120, 170), (140, 80)]


@pytest.mark.parametrize("polarity", ["dark", "auto"])
def test_counts_isolated_dark_nuclei_exactly(polarity):
    out = classical_nuclei(field_with_nuclei(CENTRES), diameter=12, polarity=polarity)
    assert out["nuclei_count"] == len(CENTRES)
    assert len({int(out["labels"][c]) for c in CENTRES}) == len(CENTRES)  # each centre its own label
    assert 0 not in {int(out["labels"][c]) for c in CENTRES}


def test_bright_polarity_and_touching_pair():
    # two nuclei whose discs touch (centres one diameter apart) inside one cell, plus two singles
    centres = [(60, 60), (60, 72), (40, 150), (120, 120)]
    img = field_with_nuclei(centres, dark=False)
    out = classical_nuclei(img, diameter=12, polarity="bright")
    assert out["nuclei_count"] == 4
    assert out["labels"][60, 60] != out["labels"][60, 72]


def test_field_without_nuclei_gives_zero():
    rng = np.random.default_rng(5)
    _yy, xx = np.mgrid[:200, :200]
    img = 180 + 15 * np.sin(xx / 60.0) + rng.normal(scale=3, size=(200, 200))  # shading + noise only
    assert classical_nuclei(img, diameter=12, polarity="dark")["nuclei_count"] == 0
    assert classical_nuclei(np.full((64, 64), 7.0), diameter=12)["nuclei_count"] == 0


def test_size_prior_drops_specks_and_blobs():
    img = field_with_nuclei(CENTRES, noise=0.5)
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    img = img - 60 * ((yy - 150) ** 2 + (xx - 20) ** 2 <= 1)  # a 5-pixel speck of debris
    out = classical_nuclei(img, diameter=12, polarity="dark")
    assert out["nuclei_count"] == len(CENTRES)
    assert out["labels"][150, 20] == 0
    min_area = 0.2 * math.pi * 6**2
    areas = np.bincount(out["labels"].ravel())[1:]
    assert areas.min() >= min_area


def test_response_is_robust_z_scored():
    rng = np.random.default_rng(2)
    resp = blob_response(rng.normal(size=(128, 128)), diameter=10)
    assert abs(np.median(resp)) < 1e-9
    assert np.median(np.abs(resp)) == pytest.approx(1 / 1.4826, rel=1e-6)


def test_bad_options():
    img = np.ones((32, 32))
    with pytest.raises(InputError, match="polarity"):
        classical_nuclei(img, polarity="up")
    with pytest.raises(InputError, match="floor"):
        classical_nuclei(img, floor="median")
    with pytest.raises(InputError, match="threshold_method"):
        classical_nuclei(img, threshold_method="li")
    with pytest.raises(InputError, match="diameter"):
        classical_nuclei(img, diameter=1)
    with pytest.raises(InputError, match="NaN"):
        classical_nuclei(np.full((8, 8), np.nan))
