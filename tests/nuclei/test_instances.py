"""Instances: exact counts on synthetic discs, blank images, wrong dimensions."""

import numpy as np
import pytest
from lcd_nuclei.instances import drop_large_objects, instance_stats, segment_instances


def discs(shape, centres, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    mask = np.zeros(shape, dtype=bool)
    for cy, cx in centres:
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    return mask


def test_touching_disc_pairs_and_chains_counted_exactly():
    # pairs overlapping by 4 px, a chain of three, and isolated discs: 2 + 2 + 3 + 2 = 9 nuclei
    centres = [(20, 20), (20, 36), (60, 20), (76, 20), (110, 20), (110, 36), (110, 52), (20, 90), (70, 90)]
    labels = segment_instances(discs((140, 120), centres, 10), min_distance=5)
    assert labels.max() == 9
    assert len(np.unique(labels)) == 10
    # every centre falls in a different label
    assert len({labels[c] for c in centres}) == 9


def test_random_disc_grid_count():
    rng = np.random.default_rng(0)
    centres = [
        (25 + 30 * i + rng.integers(-3, 4), 25 + 30 * j + rng.integers(-3, 4))
        for i in range(6)
        for j in range(6)
    ]
    mask = discs((200, 200), centres, 12)  # neighbours overlap or touch
    assert segment_instances(mask, min_distance=6).max() == 36


def test_small_objects_and_holes():
    mask = discs((60, 60), [(30, 30)], 12)
    mask[28:33, 28:33] = False  # a hole: filled, still one nucleus
    mask[2:4, 2:4] = True  # 4-px speck: removed
    labels = segment_instances(mask, min_area=20)
    assert labels.max() == 1
    stats = instance_stats(labels)
    assert stats["nuclei_count"] == 1
    assert stats["mean_nucleus_area"] == discs((60, 60), [(30, 30)], 12).sum()


def test_blank_image_gives_zero():
    labels = segment_instances(np.zeros((50, 50)))
    assert labels.max() == 0
    stats = instance_stats(labels)
    assert stats["nuclei_count"] == 0 and np.isnan(stats["mean_nucleus_area"])


def test_soft_mask_thresholded():
    soft = discs((40, 40), [(20, 20)], 8) * 0.8
    assert segment_instances(soft, threshold=0.5).max() == 1
    assert segment_instances(soft, threshold=0.9).max() == 0


def test_wrong_dimensions():
    with pytest.raises(ValueError, match="2-D"):
        segment_instances(np.zeros((2, 10, 10)))
    with pytest.raises(ValueError, match="2-D"):
        instance_stats(np.zeros(10, dtype=int))


def test_drop_large_objects_matches_a_naive_loop():
    labels = np.zeros((120, 160), np.int32)
    yy, xx = np.mgrid[:120, :160]
    radii = [4, 5, 5, 6, 4, 5, 14, 5, 11, 6]  # two blobs far above the median area
    for k, r in enumerate(radii):
        cy, cx = 15 + 30 * (k // 5), 16 + 30 * (k % 5)
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 3 * k + 2  # ids with gaps
    for ratio in (2.0, 4.0, 8.0, np.inf):
        out, dropped = drop_large_objects(labels, ratio)
        ids = [i for i in np.unique(labels) if i]
        areas = {i: (labels == i).sum() for i in ids}
        median = np.median(list(areas.values()))
        kept = [i for i in ids if areas[i] <= ratio * median]  # naive: one object at a time
        assert dropped == len(ids) - len(kept)
        assert sorted(np.unique(out[out > 0])) == list(range(1, len(kept) + 1))
        np.testing.assert_array_equal(out > 0, np.isin(labels, kept))
    assert drop_large_objects(labels, 4.0)[1] == 2 and drop_large_objects(labels, np.inf)[1] == 0
    assert drop_large_objects(np.zeros((8, 8), np.int32), 4.0)[1] == 0
    with pytest.raises(ValueError, match="max_area_ratio"):
        drop_large_objects(labels, 1.0)
    with pytest.raises(ValueError, match="max_area_ratio"):
        drop_large_objects(labels, float("nan"))
