"""Stain reference with a size prior: hand counts on the shared ISL DAPI image; synthetic debris."""

import numpy as np
import pytest
from lcd_core import InputError
from lcd_nuclei import reference_from_stain
from lcd_nuclei.stain import estimate_diameter, nuclei_from_stain, stain_threshold

# Counted by eye (2026-12-02) on 256-px fields of dapi.png (field (i, j) = rows 256 i.., columns
# 256 j..), rendered at 3x with 32-px grid lines, contrast stretched between the image's 50th and
# 99.9th percentiles. Counted: every compact bright object of nucleus size (~15-30 px across),
# nuclei cut by the field's border included, a lobed blob counted as as many nuclei as it has
# lobes separated by a darker line; not counted: diffuse dim haze (out-of-focus stain, cytoplasm)
# and dots under ~6 px.
#   (1, 0): no nucleus, only haze (the old reference finds 26 objects there).
#   (1, 1): one round bright nucleus near (310, 460) (full-image coordinates); dim smear beside it.
#   (2, 3): one round nucleus in the middle and two cut by the left border.
#   (3, 3): a nucleus cut by the top-left corner, two above one another at the left, one elongated
#           below them, a lobed cluster of four in the middle, one at the bottom: 9.
#   (2, 2): two stacked at the left, one beside them, a chain of three at the top, two at the right
#           border, one in the lower middle and a clump of four at the bottom right: 13 (12-15).
#   (3, 0): four down the left column of the clump, four down its right column, a small very bright
#           one at the top, three in the clump at the bottom: 12 (10-13).
HAND_COUNTS = {(1, 0): 0, (1, 1): 1, (2, 3): 3, (3, 3): 9, (2, 2): 13, (3, 0): 12}
UNAMBIGUOUS = [(1, 0), (1, 1), (2, 3)]


@pytest.fixture(scope="module")
def dapi(shared_data):
    import lcd_embed as le

    return le.read_field([str(shared_data / "images" / "isl_phase_zstack_dapi" / "dapi.png")])[0]


def field(image, i, j):
    return image[i * 256 : (i + 1) * 256, j * 256 : (j + 1) * 256]


def test_hand_counts_on_the_shared_dapi_image(dapi):
    threshold = stain_threshold(dapi)  # one threshold for the whole image, as for a plate's fields
    counts = {f: int(nuclei_from_stain(field(dapi, *f), threshold=threshold).max()) for f in HAND_COUNTS}
    for f in UNAMBIGUOUS:
        assert counts[f] == HAND_COUNTS[f], (f, counts[f])
    total, hand = sum(counts.values()), sum(HAND_COUNTS.values())
    # clumps are under-split (31 of 38 when this was written): within 25 % of the hand count
    assert abs(total - hand) <= 0.25 * hand, (counts, total)
    # the per-field Otsu reference of 0.2.0 is far off on the same fields (75 when written)
    old = sum(int(reference_from_stain(field(dapi, *f)).max()) for f in HAND_COUNTS)
    assert abs(old - hand) > 0.5 * hand


def test_estimated_diameter_is_a_nucleus_not_a_clump(dapi):
    from scipy import ndimage as ndi
    from skimage.filters import gaussian

    mask = gaussian(dapi, sigma=1.0, preserve_range=True) > stain_threshold(dapi)
    diameter = estimate_diameter(mask)
    assert 15 <= diameter <= 30  # nuclei are ~15-30 px across in this image (by eye)
    # the median equivalent diameter of the components, which counts clumps as one, is larger
    labels, _n = ndi.label(mask)
    sizes = np.bincount(labels.ravel())[1:]
    assert np.median(2 * np.sqrt(sizes[sizes >= 20] / np.pi)) > diameter


def discs(shape, centres, radii):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = np.zeros(shape)
    for (cy, cx), r in zip(centres, radii, strict=True):
        img += (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
    return img


def test_debris_is_dropped_and_touching_nuclei_split():
    rng = np.random.default_rng(0)
    nuclei = [(30, 30), (30, 50), (80, 80), (120, 40), (130, 130)]  # (30,30)-(30,50) touch
    debris = [(60, 140), (100, 100), (15, 120)]
    img = 100 + 900 * discs((160, 160), nuclei, [10] * 5) + 900 * discs((160, 160), debris, [2] * 3)
    img = img + rng.normal(scale=10, size=img.shape)
    labels = nuclei_from_stain(img)
    assert labels.max() == 5
    assert all(labels[d] == 0 for d in debris)
    assert labels[30, 30] != labels[30, 50]
    # the same with the diameter given instead of estimated
    assert nuclei_from_stain(img, diameter=20).max() == 5


def test_empty_field_with_shared_threshold_is_empty():
    rng = np.random.default_rng(1)
    haze = 100 + 20 * rng.normal(size=(128, 128))
    assert nuclei_from_stain(haze, threshold=1000.0).max() == 0
    assert nuclei_from_stain(np.full((16, 16), 5.0)).max() == 0


def test_bad_inputs():
    with pytest.raises(InputError, match="2-D"):
        nuclei_from_stain(np.ones((2, 4, 4)))
    with pytest.raises(InputError, match="diameter"):
        nuclei_from_stain(np.ones((8, 8)), diameter=1)
    with pytest.raises(InputError, match="constant"):
        stain_threshold(np.ones((8, 8)))
    with pytest.raises(InputError, match="at least one"):
        stain_threshold([])
