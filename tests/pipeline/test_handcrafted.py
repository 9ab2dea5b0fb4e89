"""The handcrafted (CellProfiler-like) per-field features against numpy written out, scikit-image's GLCM on
a hand-made crop, and the simulator's planted nuclear-size phenotype."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lcd_pipeline.handcrafted import field_features, handcrafted_profiles


def _field(seed=0):
    rng = np.random.default_rng(seed)
    image = rng.uniform(100, 200, (3, 48, 48))
    labels = np.zeros((48, 48), np.int32)
    yy, xx = np.mgrid[:48, :48]
    for k, (cy, cx, r) in enumerate([(10, 10, 4), (30, 35, 6), (38, 12, 3)], start=1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = k
    cells = labels > 0
    cells[5:20, 5:20] = True
    return image, labels, cells


def test_features_equal_numpy_per_nucleus_medians():
    image, labels, cells = _field()
    f = field_features(image, labels, cells)
    ids = [1, 2, 3]
    areas = [int((labels == k).sum()) for k in ids]
    assert f["Nuclei_AreaShape_Area"] == np.median(areas)
    assert f["Image_Count_Nuclei"] == 3
    assert f["Image_AreaOccupied_Cells"] == pytest.approx(cells.mean())
    assert f["Image_AreaOccupied_Nuclei"] == pytest.approx((labels > 0).mean())
    for p in range(3):
        means = [image[p][labels == k].mean() for k in ids]
        stds = [image[p][labels == k].std() for k in ids]
        maxes = [image[p][labels == k].max() for k in ids]
        assert f[f"Nuclei_Intensity_MeanIntensity_Plane{p}"] == pytest.approx(np.median(means))
        assert f[f"Nuclei_Intensity_StdIntensity_Plane{p}"] == pytest.approx(np.median(stds))
        assert f[f"Nuclei_Intensity_MaxIntensity_Plane{p}"] == pytest.approx(np.median(maxes))


def test_texture_is_skimage_glcm_inside_the_nucleus():
    from skimage.feature import graycomatrix, graycoprops

    image, labels, cells = _field(1)
    f = field_features(image[:1], labels, cells)
    values = []
    for k in (1, 2, 3):
        ys, xs = np.nonzero(labels == k)
        box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        mask, crop = labels[box] == k, image[0][box]
        lo, hi = crop[mask].min(), crop[mask].max()
        q = np.zeros(crop.shape, np.uint8)
        q[mask] = 1 + np.minimum(((crop[mask] - lo) / (hi - lo) * 16).astype(int), 15)
        g = graycomatrix(q, [1], [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4], levels=17, symmetric=True)[1:, 1:]
        g = g / g.sum(axis=(0, 1), keepdims=True)
        values.append(graycoprops(g, "contrast").mean())
    assert f["Nuclei_Texture_Contrast_Plane0"] == pytest.approx(np.median(values))


def test_no_nucleus_gives_undefined_shape_not_zero():
    image, _, cells = _field()
    f = field_features(image, np.zeros((48, 48), np.int32), cells)
    assert f["Image_Count_Nuclei"] == 0 and np.isnan(f["Nuclei_AreaShape_Area"])


def test_planted_nuclear_size_is_recovered_from_the_pixels(tmp_path):
    """Simulator truth: topoisomerase compounds enlarge nuclei (nuclear_contrast +1.0 in the design)."""
    import lcd_embed
    from lcd_pipeline.simulate import SimulationConfig, simulate_plate

    cfg = SimulationConfig(
        seed=2, n_replicas=1, moas=("topoisomerase",), compounds_per_moa=2, n_inert=1, doses=(10.0,),
        timepoint_hours=(48.0,), n_dmso=4, fovs_per_well=2, image_size=64, plate_rows=4, plate_columns=6,
    )  # fmt: skip
    plate = simulate_plate(tmp_path / "p", cfg, progress=False)
    nuclei = plate.truth("nuclei")
    groups = {k: g for k, g in nuclei.groupby(["plate", "well", "fov"])}
    yy, xx = np.mgrid[:64, :64] + 0.5

    def truth_masks(image, row):
        labels = np.zeros((64, 64), np.int32)
        for k, n in enumerate(groups[(row["plate"], row["well"], int(row["fov"]))].itertuples(), start=1):
            labels[(yy - n.y) ** 2 + (xx - n.x) ** 2 < n.radius**2] = k
        return labels, None

    man = lcd_embed.manifest_from_opera(plate.image_dirs, plate.plate_map)
    prof = handcrafted_profiles(man, segment=truth_masks)
    area = pd.Series(
        np.asarray(prof[:, "Nuclei_AreaShape_Area"].X).ravel(), index=prof.obs["compound"].to_numpy()
    )
    truth = nuclei.groupby(
        nuclei["well"].map(plate.truth("fields").drop_duplicates("well").set_index("well")["compound"])
    )["radius"].median()
    strong = plate.truth("conditions").query("strength > 0.5")["compound"]
    assert len(strong)
    for c in strong:
        assert area[c].median() > area["DMSO"].median()  # larger nuclei measured where they were planted
        assert truth[c] > truth["DMSO"]
    assert prof.uns["handcrafted"]["fields_without_nuclei"] == 0
