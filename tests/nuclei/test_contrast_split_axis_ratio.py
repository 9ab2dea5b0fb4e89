"""0.4.0's contrast split and axis-ratio prior: closed-form Gaussian clumps, moment oracles, real DSB images."""

import json

import numpy as np
import pandas as pd
import pytest
import tifffile
from lcd_core import ConfigError, InputError
from lcd_nuclei import (
    DiscoveryParams,
    axis_ratio_filter,
    classical_nuclei,
    evaluate_fields,
    split_at_extrema,
    split_touching,
)
from lcd_nuclei.cli import app
from typer.testing import CliRunner

SHAPE = (64, 64)


def clump(centres, *, amplitude=100.0, sigma=3.0):
    """Background 220 minus a Gaussian spot per nucleus (noise-free), and the spots' sum."""
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    spots = sum(amplitude * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2)) for cy, cx in centres)
    return 220.0 - spots, spots


CLUMP = [(28, 28), (28, 36), (36, 28), (36, 36)]  # four spots 8 px apart: one round blob


def seam_depth(spots):
    """Closed form of the split criterion, read off the surface itself (no h-maxima): how far the
    dimmest centre rises above the seam between two neighbours (the midpoint of two spots)."""
    centre = spots[28, 28]
    seam = spots[28, 32]
    return centre - seam


def test_a_clump_splits_into_its_spots_only_when_the_seams_are_deeper_than_depth():
    _, spots = clump(CLUMP)
    mask = spots > 20  # the union: one object
    labels = np.asarray(mask, np.int32)
    contrast = seam_depth(spots)
    assert contrast > 5  # the construction has a real seam
    split = split_at_extrema(labels, spots, depth=0.5 * contrast)
    assert split.max() == 4
    assert {split[c] for c in CLUMP} == {1, 2, 3, 4}  # one spot per object
    assert split_at_extrema(labels, spots, depth=1.5 * contrast).max() == 1
    # the shape split sees one round blob: why the contrast split exists
    assert split_touching(mask, depth=1.5).max() == 1


def test_texture_shallower_than_depth_keeps_one_nucleus_and_objects_never_merge():
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    disc = (yy - 20) ** 2 + (xx - 20) ** 2 <= 10**2
    texture = 3.0 * np.sin(xx / 1.5) * np.sin(yy / 1.5)  # chromatin-like ripples, at most 6 deep
    _, other = clump([(48, 48)])
    surface = np.where(disc, 100.0 + texture, 0.0) + other
    labels = disc.astype(np.int32) + 2 * (other > 20)
    split = split_at_extrema(labels, surface, depth=10.0)
    assert split.max() == 2  # textured nucleus whole, the other nucleus its own object
    assert len(np.unique(split[disc])) == 1 and len(np.unique(split[other > 20])) == 1
    assert split_at_extrema(labels, surface, depth=1.0).max() > 5  # a shallow depth cuts the texture


def test_split_at_extrema_refuses_bad_input():
    labels = np.ones((5, 5), np.int32)
    with pytest.raises(InputError, match="depth"):
        split_at_extrema(labels, np.zeros((5, 5)), depth=0)
    with pytest.raises(InputError, match="shape"):
        split_at_extrema(labels, np.zeros((5, 6)), depth=1)
    with pytest.raises(InputError, match="NaN"):
        split_at_extrema(labels, np.full((5, 5), np.nan), depth=1)
    assert split_at_extrema(np.zeros((5, 5), np.int32), np.zeros((5, 5)), depth=1).max() == 0


def moment_ratio(mask):
    """Oracle: minor / major axis of the ellipse of the same second moments, from the pixel covariance."""
    coords = np.argwhere(mask).astype(float)
    eig = np.linalg.eigvalsh(np.cov(coords.T, bias=True))
    return float(np.sqrt(eig[0] / eig[1]))


@pytest.mark.parametrize("threshold", [0.25, 0.45, 0.65, 0.85])
def test_axis_ratio_filter_keeps_exactly_the_objects_at_least_that_round(threshold):
    from skimage.draw import ellipse

    labels = np.zeros((200, 200), np.int32)
    axes = [(10, 10), (12, 8), (15, 6), (20, 4), (18, 2.5)]  # semi-axes: ratios 1 to 0.14
    for k, (a, b) in enumerate(axes):
        rr, cc = ellipse(40 * k + 20, 100, b, a, shape=labels.shape)
        labels[rr, cc] = k + 1
    ratios = [moment_ratio(labels == k + 1) for k in range(len(axes))]
    kept = axis_ratio_filter(labels, min_ratio=threshold)
    expected = [k + 1 for k, r in enumerate(ratios) if r >= threshold]
    assert kept.max() == len(expected)
    for k in range(len(axes)):
        assert (kept[labels == k + 1] > 0).all() == (k + 1 in expected)
    assert (axis_ratio_filter(labels, min_ratio=0.0) == labels).all()  # 0 = off


def test_new_options_refuse_bad_values_in_the_counter_and_the_params():
    image, _ = clump(CLUMP)
    for bad in (-1.0, float("nan"), True, "5"):
        with pytest.raises(InputError, match="split_contrast"):
            classical_nuclei(image, split_contrast=bad)
        with pytest.raises(ConfigError, match="split_contrast"):
            DiscoveryParams(split_contrast=bad)
    for bad in (1.0, -0.1, float("nan"), True):
        with pytest.raises(InputError, match="min_axis_ratio"):
            classical_nuclei(image, min_axis_ratio=bad)
        with pytest.raises(ConfigError, match="min_axis_ratio"):
            DiscoveryParams(min_axis_ratio=bad)
    with pytest.raises(InputError, match="min_ratio"):
        axis_ratio_filter(np.ones((4, 4), np.int32), min_ratio=1.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_counter_splits_a_noisy_clump_at_the_seam_depth_in_noise_sds(seed):
    """Through classical_nuclei: depth in SDs of the smoothed noise; oracle = the closed-form seam.

    Four Gaussian nuclei (sigma 2.5 px, 12 px apart) with diameter 30: markers 15 px apart see one
    blob. The seam depth of the noise-free image smoothed at sigma 30 / 8, over the SD of white
    noise (SD 2) smoothed the same way (2 / (2 sqrt(pi) sigma)), says where the split must happen.
    """
    from scipy import ndimage as ndi

    yy, xx = np.mgrid[:96, :96]
    centres = [(42, 42), (42, 54), (54, 42), (54, 54)]
    clean = 220.0 - sum(60 * np.exp(-((yy - a) ** 2 + (xx - b) ** 2) / (2 * 2.5**2)) for a, b in centres)
    sigma = 30 / 8
    smooth = ndi.gaussian_filter(clean, sigma)
    seam_sds = (smooth[42, 48] - smooth[42, 42]) / (2.0 / (2 * np.sqrt(np.pi) * sigma))
    assert seam_sds > 10
    rng = np.random.default_rng(seed)
    image = clean + rng.normal(scale=2.0, size=clean.shape)
    opts = {"diameter": 30.0, "polarity": "dark", "floor": 6.0, "min_area_fraction": 0.05, "seed": seed}
    assert classical_nuclei(image, **opts)["nuclei_count"] == 1
    assert classical_nuclei(image, split_contrast=seam_sds / 2, **opts)["nuclei_count"] == 4
    assert classical_nuclei(image, split_contrast=seam_sds * 2, **opts)["nuclei_count"] == 1
    flat = 220.0 + rng.normal(scale=2.0, size=clean.shape)  # noise alone: nothing to split, nothing found
    assert classical_nuclei(flat, split_contrast=5.0, **opts)["nuclei_count"] == 0


@pytest.fixture(scope="module")
def dsb_manifest(shared_data, tmp_path_factory):
    """The 8 DSB brightfield images as a user's plate: one manifest row per image, masks beside."""
    folder = shared_data / "images" / "dsb2018_brightfield"
    paths = sorted(folder.glob("*_image.tif"))
    assert len(paths) == 8, folder
    rows = [
        {"plate": "DSB", "well": f"A{k + 1:02d}", "fov": 0, "compound": "DMSO", "path": str(p),
         "masks": str(p).replace("_image.tif", "_nuclei_labels.tif")}
        for k, p in enumerate(paths)
    ]  # fmt: skip
    manifest = tmp_path_factory.mktemp("dsb") / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest, [tifffile.imread(r["masks"]) for r in rows]


def test_dsb_recipe_through_the_cli(dsb_manifest, tmp_path):
    """The recipe the leave-one-image-out choice settles on (README "Quality", DSB): regression guard.

    The honest number is the benchmark's held-out one (every image counted with options chosen on
    the other 7); this fixes the options, chosen with these same 8 images, so it only guards them.
    """
    manifest, refs = dsb_manifest
    labels, h5ad = tmp_path / "labels", tmp_path / "fov.h5ad"
    recipe = ("--diameter", "12", "--polarity", "auto", "--class-prior", "multiotsu")
    new = ("--split-contrast", "10", "--min-axis-ratio", "0.4")
    runner = CliRunner()
    result = runner.invoke(
        app, ["count", str(manifest), "--out", str(h5ad), *recipe, *new, "--labels-dir", str(labels)]
    )
    assert result.exit_code == 0, result.output
    import anndata as ad

    recorded = ad.read_h5ad(h5ad).uns
    assert '"split_contrast": 10.0' in json.dumps(recorded, default=str)
    pred = [tifffile.imread(labels / f"row{k}_labels.tif") for k in range(len(refs))]
    _, summary = evaluate_fields(pred, refs, reference="masks")
    # measured 2026-12-02: r 0.96, CCC 0.95, errors [16, 1, 5, -12, 6, -1, -2, -1]; without the options 0.81
    assert summary["pearson_r"] >= 0.9
    assert summary["ccc"] >= 0.85
    # the same recipe without the two options: the merged clumps and the thin objects are back
    without = [
        classical_nuclei(img, diameter=12, polarity="auto", class_prior="multiotsu")["labels"]
        for img in (tifffile.imread(p) for p in pd.read_csv(manifest)["path"])
    ]
    assert evaluate_fields(without, refs, reference="masks")[1]["pearson_r"] <= summary["pearson_r"] - 0.1
