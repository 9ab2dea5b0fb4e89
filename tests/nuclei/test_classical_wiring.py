"""The classical counter wired into DiscoveryParams, count_nuclei (with and without a model) and the
stain calibration (calibrate_counter, calibrate_nuclei, `lcd-nuclei calibrate`, count applying it)."""

import json

import numpy as np
import pandas as pd
import pytest
import tifffile
from lcd_core import ConfigError, InputError
from lcd_nuclei import (
    DiscoveryParams,
    calibrate_counter,
    candidate_grid,
    cell_area,
    choose_candidate,
    classical_field,
    count_nuclei,
    discover_field,
    read_calibration,
    write_calibration,
)
from lcd_nuclei.cli import app
from scipy import ndimage as ndi
from typer.testing import CliRunner

K = 2 * np.pi / 0.55  # tie_phase's default wavenumber (wavelength 0.55)


def defocus_field(centres, shape=(128, 128), seed=0, amp=5.0, s=3.0, noise=10.0):
    """Three planes at z = -1, 0, +1 of transparent nuclei (Gaussian phase bumps) under a lamp ramp.

    Linearised transport of intensity (the convention of lcd_nuclei.tie): I(z) = I0 (1 - z lap(phi) / k),
    so the in-focus plane shows only the lamp and the noise; the nuclei appear out of focus.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    phi = np.zeros(shape)
    for cy, cx in centres:
        phi += amp * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    i0 = 1000 * (1 + 0.1 * xx / shape[1])
    planes = np.stack([i0 * (1 - z * ndi.laplace(phi) / K) for z in (-1.0, 0.0, 1.0)])
    return planes + rng.normal(scale=noise, size=planes.shape)


def stain_field(centres, shape=(128, 128), seed=0, s=3.5):
    """A nuclear stain of the same nuclei (bright discs on a dark background)."""
    rng = np.random.default_rng(seed + 100)
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    stain = np.full(shape, 100.0)
    for cy, cx in centres:
        stain += 2000 * ((yy - cy) ** 2 + (xx - cx) ** 2 <= s * s * 2)
    return ndi.gaussian_filter(stain, 1) + rng.normal(scale=5, size=shape)


GRID = [(y, x) for y in (20, 62, 104) for x in (20, 62, 104)]


def centres_for(n, seed):
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(GRID), size=n, replace=False)
    return [(GRID[i][0] + int(rng.integers(-4, 5)), GRID[i][1] + int(rng.integers(-4, 5))) for i in picked]


@pytest.mark.parametrize(("channel", "expected"), [("tie", 9), ("defocus", 9), ("grey", 0)])
def test_defocus_channels_see_transparent_nuclei_the_in_focus_plane_does_not(channel, expected):
    planes = defocus_field(GRID)
    params = DiscoveryParams(channel=channel, polarity="auto", diameter=10)
    out = classical_field(planes, params=params)
    assert out["nuclei_count"] == expected
    if expected:
        assert len({int(out["labels"][c]) for c in GRID} - {0}) == len(GRID)  # one label per nucleus
    assert out["grey"].dtype == np.uint8 and out["grey"].shape == planes.shape[1:]


def test_params_validation_and_lists():
    p = DiscoveryParams(defocus=[-3.6, 0, 3.6], channel_planes=[0, 1, 2], channel="tie", polarity="auto")
    assert p.defocus == (-3.6, 0, 3.6) and p.channel_planes == (0, 1, 2)
    assert p.as_dict()["defocus"] == [-3.6, 0, 3.6]
    assert p.channel_options()["highpass"] == 4 * 12.0
    assert DiscoveryParams().nuclei_step == "classical"
    for bad, match in (
        ({"nuclei_step": "kmeans", "polarity": "auto"}, "polarity"),
        ({"nuclei_step": "kmeans", "channel": "tie"}, "classical"),
        ({"channel": "phase"}, "channel"),
        ({"diameter": 1}, "diameter"),
        ({"floor": float("nan")}, "floor"),
        ({"threshold_method": "li"}, "threshold_method"),
        ({"floor_unit": "sd"}, "floor_unit"),
        ({"highpass": 0}, "highpass"),
        ({"cell_window": 0.5}, "cell_window"),
        ({"cell_floor": 0}, "cell_floor"),
        ({"cell_floor": float("nan")}, "cell_floor"),
    ):
        with pytest.raises(ConfigError, match=match):
            DiscoveryParams(**bad)


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    """12 fields of 3-plane TIFFs (0-9 nuclei) with a stain image each: manifest.csv, truth counts."""
    folder = tmp_path_factory.mktemp("defocus_plate")
    rows = []
    for i in range(12):
        n = [0, 3, 9, 5, 1, 7, 2, 8, 4, 6, 9, 3][i]
        centres = centres_for(n, seed=i)
        tifffile.imwrite(
            folder / f"f{i}.tif", defocus_field(centres, seed=i).astype(np.float32), photometric="minisblack"
        )
        tifffile.imwrite(folder / f"f{i}_stain.tif", stain_field(centres, seed=i).astype(np.float32))
        rows.append(
            {"well": f"A{i + 1:02d}", "fov": 1, "path": f"f{i}.tif", "stain": f"f{i}_stain.tif", "n": n}
        )
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder, np.array([r["n"] for r in rows])


def test_count_without_a_model(plate):
    folder, truth = plate
    adata = count_nuclei(
        folder / "manifest.csv",
        params={"channel": "tie", "polarity": "auto", "diameter": 10},
        calibration=None,
        progress=False,
    )
    np.testing.assert_array_equal(adata.obs["nuclei_count"].to_numpy(), truth)
    # 3-plane fields: the confluency is lcd_nuclei.cell_area's on each field's planes (its quality is
    # tested in test_cellarea.py; these smooth untextured bumps are no cell body to it)
    assert list(adata.var_names) == ["nuclei_count", "confluency"]
    assert "outside_cells_dropped" not in adata.obs
    expected = [cell_area(tifffile.imread(folder / f"f{i}.tif")).mean() for i in range(len(truth))]
    np.testing.assert_array_equal(adata.obs["confluency"].to_numpy(), expected)
    assert adata.uns["lcd_nuclei"]["confluency"] == {"method": "cell_area", "window": 3.0, "floor": 8.0}
    assert (
        "no model" in adata.uns["lcd_nuclei"]["model"]["name"]
        or "none" in adata.uns["lcd_nuclei"]["model"]["name"]
    )
    assert adata.uns["lcd_nuclei"]["calibration"] == {"source": "none"}
    with pytest.raises(InputError, match="needs a model"):
        count_nuclei(folder / "manifest.csv", params={"nuclei_step": "kmeans"}, progress=False)


def test_calibration_picks_the_polarity_the_stain_supports(plate):
    """The default polarity (dark) finds no nucleus in the TIE phase of these fields; five stained fields
    choose a setting that counts them, and the choice equals a brute-force argmax of Lin's CCC over the
    candidates, each counted independently by classical_field."""
    folder, truth = plate
    images = [tifffile.imread(folder / f"f{i}.tif") for i in range(5)]
    stains = [tifffile.imread(folder / f"f{i}_stain.tif") for i in range(5)]
    base = DiscoveryParams(channel="tie", diameter=10)
    assert [classical_field(img, params=base)["nuclei_count"] for img in images] == [0] * 5
    candidates = candidate_grid(base, n_planes=3)[:36]  # tie x polarity x diameter x 4 floors (otsu)
    result = calibrate_counter(images, stains, params=base, candidates=candidates)
    assert result["evidence"]["reference_counts"] == truth[:5].tolist()  # the stain reference is exact here
    from dataclasses import replace

    counts = np.array(
        [
            [classical_field(img, params=replace(base, **c))["nuclei_count"] for img in images]
            for c in candidates
        ]
    )
    ref = truth[:5].astype(float)

    def ccc(x):
        return 2 * np.cov(x, ref, bias=True)[0, 1] / (x.var() + ref.var() + (x.mean() - ref.mean()) ** 2)

    scores = np.array([ccc(c.astype(float)) if c.std() > 0 else -np.inf for c in counts])
    assert result["params"] == candidates[int(np.argmax(scores))]
    assert result["params"] == candidates[choose_candidate(counts, ref, criterion="ccc")]
    assert result["params"]["polarity"] in ("auto", "bright")
    assert result["evidence"]["leave_one_out"]["n"] == 5
    chosen = replace(base, **result["params"])
    held_out = [
        classical_field(tifffile.imread(folder / f"f{i}.tif"), params=chosen)["nuclei_count"]
        for i in range(5, 12)
    ]
    np.testing.assert_array_equal(held_out, truth[5:])


def test_cli_calibrate_then_count_applies_it(plate, tmp_path):
    folder, truth = plate
    runner = CliRunner()
    manifest = folder / "manifest.csv"
    result = runner.invoke(
        app,
        [
            "calibrate",
            str(manifest),
            "--stain-key",
            "stain",
            "--out",
            str(tmp_path),
            "--rows",
            "0,1,2,3,4",
            "--diameter",
            "10",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = read_calibration(tmp_path)
    assert doc["evidence"]["manifest_rows"] == [0, 1, 2, 3, 4] and doc["evidence"]["n_fields"] == 5
    assert doc["params"]["polarity"] in ("auto", "bright") and doc["evidence"]["criterion"] == "ccc"
    out = tmp_path / "fov.h5ad"
    result = runner.invoke(app, ["count", str(manifest), "--out", str(out), "--calibration", str(tmp_path)])
    assert result.exit_code == 0, result.output
    import anndata as ad

    adata = ad.read_h5ad(out)
    assert adata.uns["lcd_nuclei"]["calibration"]["source"].endswith("nuclei_calibration.json")
    for key, value in doc["params"].items():
        got = adata.uns["lcd_nuclei"]["params"][key]
        assert (got == pytest.approx(value)) if isinstance(value, float) else got == value
    # the calibration chose its diameter among 10 x (1, 0.75, 1.5) and counts the held-out fields
    np.testing.assert_array_equal(adata.obs["nuclei_count"].to_numpy()[5:], truth[5:])
    # an option given on the command line wins over the calibration's
    result = runner.invoke(
        app, ["count", str(manifest), "--out", str(out), "--calibration", str(tmp_path), "--polarity", "dark"]
    )
    assert result.exit_code == 0, result.output
    assert ad.read_h5ad(out).uns["lcd_nuclei"]["params"]["polarity"] == "dark"
    # --calibration none: nothing applied
    result = runner.invoke(app, ["count", str(manifest), "--out", str(out), "--calibration", "none"])
    assert result.exit_code == 0, result.output
    assert ad.read_h5ad(out).uns["lcd_nuclei"]["calibration"] == {"source": "none"}


def test_bad_calibrations(plate, tmp_path):
    folder, _ = plate
    manifest = folder / "manifest.csv"
    with pytest.raises(InputError, match=r"no nuclei_calibration\.json"):
        count_nuclei(manifest, calibration=tmp_path, progress=False)
    write_calibration(tmp_path, {"polarty": "bright"})
    with pytest.raises(InputError, match="polarty"):
        count_nuclei(manifest, calibration=tmp_path, progress=False)
    runner = CliRunner()
    result = runner.invoke(app, ["calibrate", str(manifest), "--stain-key", "dapi", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "'dapi' not found" in result.output
    result = runner.invoke(app, ["calibrate", str(manifest), "--stain-key", "stain"])
    assert result.exit_code == 2 and "--out" in result.output


def test_classical_inside_the_vit_cell_area(tiny_vit, dsb_cases):
    """With a model, the classical objects kept are those of classical_field whose centre lies in the
    ViT's cell area; the others are counted in outside_cells_dropped."""
    model, cfg, _ = tiny_vit
    image, ref = dsb_cases[0][2], dsb_cases[0][3]
    params = DiscoveryParams(diameter=16)
    alone = classical_field(image, params=params)
    inside = discover_field(image, model, cfg, params=params)
    assert inside["nuclei_count"] + inside["outside_cells_dropped"] == alone["nuclei_count"]
    kept = np.unique(alone["labels"][inside["labels"] > 0])
    assert len(kept) == inside["nuclei_count"]  # each kept object is one whole classical object
    for k in kept[:20]:
        cy, cx = np.rint(ndi.center_of_mass(alone["labels"] == k)).astype(int)
        assert inside["cell_mask"][cy, cx]
    everywhere = discover_field(image, model, cfg, params=DiscoveryParams(diameter=16, inside_cells=False))
    assert everywhere["nuclei_count"] == alone["nuclei_count"] and everywhere["outside_cells_dropped"] == 0
    assert ref.max() > 0
    json.dumps(params.as_dict())  # recordable


@pytest.mark.parametrize(
    "options",
    [
        {"class_prior": "multiotsu", "split_depth": 0.5},
        {"split_contrast": 50.0, "min_axis_ratio": 0.3},  # a contrast split deeper than any seam here
    ],
)
def test_the_counter_options_reach_the_counter(monkeypatch, options):
    """DiscoveryParams carries the counter's 0.4.0 options (off by default) to classical_nuclei."""
    import lcd_nuclei.classical as cl

    seen = {}
    real = cl.classical_nuclei

    def spy(channel, **kwargs):
        seen.update(kwargs)
        return real(channel, **kwargs)

    monkeypatch.setattr(cl, "classical_nuclei", spy)
    defaults = DiscoveryParams()
    assert defaults.class_prior == "none"
    assert defaults.split_depth == defaults.split_contrast == defaults.min_axis_ratio == 0.0
    params = DiscoveryParams(channel="tie", polarity="auto", diameter=10, **options)
    out = classical_field(defocus_field(GRID, seed=3), params=params)
    for key, value in options.items():
        assert seen[key] == value and params.as_dict()[key] == value
    assert out["nuclei_count"] == 9  # nine isolated round nuclei: no option removes or splits one
    for bad, match in (({"class_prior": "otsu"}, "class_prior"), ({"split_depth": -1}, "split_depth")):
        with pytest.raises(ConfigError, match=match):
            DiscoveryParams(**bad)
