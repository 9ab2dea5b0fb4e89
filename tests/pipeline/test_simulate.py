"""The synthetic plate: determinism, layout, ground truth against the rendered pixels, manifest path."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import tifffile
from lcd_pipeline.cli import app
from lcd_pipeline.simulate import SimulationConfig, opera_name, simulate_plate
from typer.testing import CliRunner

SMALL = dict(
    n_replicas=2,
    moas=("tubulin", "hdac"),
    compounds_per_moa=2,
    n_inert=1,
    doses=(0.1, 10.0),
    timepoint_hours=(8.0, 48.0),
    n_dmso=4,
    fovs_per_well=2,
    image_size=64,
    plate_rows=4,
    plate_columns=6,
)


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    return simulate_plate(
        tmp_path_factory.mktemp("sim") / "plate", SimulationConfig(seed=3, **SMALL), progress=False
    )


def _digest(root) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in (".tiff", ".csv", ".json")
    }


def test_same_seed_same_files_other_seed_other_pixels(plate, tmp_path):
    again = simulate_plate(
        tmp_path / "again", SimulationConfig(seed=3, **SMALL), batch_size=5, progress=False
    )
    assert _digest(again.root) == _digest(plate.root)  # batch size does not change a pixel either
    for name in ("conditions", "fields", "nuclei"):
        pd.testing.assert_frame_equal(again.truth(name), plate.truth(name))
    other = simulate_plate(tmp_path / "other", SimulationConfig(seed=4, **SMALL), progress=False)
    a, b = _digest(plate.root), _digest(other.root)
    assert sum(a[k] != b.get(k) for k in a if k.endswith(".tiff")) > 0.9 * sum(k.endswith(".tiff") for k in a)


def test_layout_counts(plate):
    cfg = SimulationConfig(seed=3, **SMALL)
    pm = pd.read_csv(plate.plate_map)
    n_compounds = 2 * 2 + 1
    assert len(pm) == cfg.n_replicas * (n_compounds * 2 + 4)
    assert (pm.groupby("plate")["compound"].apply(lambda s: (s == "DMSO").sum()) == 4).all()
    assert not pm.duplicated(["plate", "well"]).any()
    assert set(pm.loc[pm.compound.str.startswith("inert"), "moa"].fillna("")) == {""}
    for p in pm["plate"].unique():
        files = list((plate.root / "images" / p).glob("*.tiff"))
        assert len(files) == (pm["plate"] == p).sum() * 2 * 2 * 3  # wells × fovs × timepoints × planes
    first = pm.iloc[0]
    row, col = ord(first.well[0]) - 64, int(first.well[1:])
    img = tifffile.imread(plate.root / "images" / first.plate / opera_name(row, col, 2, 3, 1, 2))
    assert img.shape == (64, 64) and img.dtype == np.uint16
    assert json.loads((plate.root / "simulation.json").read_text())["seed"] == 3


def test_truth_activity_follows_dose_and_time(plate):
    cond = plate.truth("conditions")
    inert = cond[cond.compound.str.startswith("inert")]
    assert not inert["active"].any() and (inert["strength"] == 0).all()
    moa = cond[~cond.compound.str.startswith("inert")].set_index(["compound", "timepoint", "dose"])[
        "strength"
    ]
    for c in moa.index.get_level_values(0).unique():
        s = moa.loc[c].unstack("dose")
        assert (np.diff(s.to_numpy(), axis=0) > 0).all() and (np.diff(s.to_numpy(), axis=1) > 0).all()


def test_nuclei_truth_matches_the_stain_image(plate):
    """Every true nucleus sits on a bright blob of the reference stain image, and the blob count matches."""
    from scipy import ndimage

    fields = plate.truth("fields")
    nuclei = plate.truth("nuclei")
    keys = ["plate", "well", "fov", "timepoint"]
    counts = nuclei.groupby(keys).size()
    for f in fields.sample(12, random_state=0).itertuples(index=False):
        stain = tifffile.imread(
            plate.root / "truth" / "stain" / f.plate / opera_name(f.row, f.column, f.fov, 1, 2, f.timepoint)
        )
        mask = stain > 0.3 * 20000
        labels, n_blobs = ndimage.label(mask)
        expected = counts.get((f.plate, f.well, f.fov, f.timepoint), 0)
        assert f.nuclei_count == expected
        mine = (
            nuclei.set_index(keys).loc[[(f.plate, f.well, f.fov, f.timepoint)]]
            if expected
            else nuclei.iloc[:0]
        )
        at_centre = labels[np.clip(mine["y"].astype(int), 0, 63), np.clip(mine["x"].astype(int), 0, 63)]
        assert (at_centre > 0).all()
        assert len(set(at_centre)) == expected == n_blobs  # one blob per nucleus, none extra


def test_nuclei_are_darker_in_focus_and_planes_differ(plate):
    f = plate.truth("fields").query("compound == 'DMSO'").iloc[0]
    nuc = plate.truth("nuclei").query(
        "plate == @f.plate and well == @f.well and fov == @f.fov and timepoint == @f.timepoint"
    )
    planes = np.stack([
        tifffile.imread(plate.root / "images" / f.plate / opera_name(f.row, f.column, f.fov, z, 1, f.timepoint)).astype(float)
        for z in (1, 2, 3)
    ])  # fmt: skip
    yy, xx = nuc["y"].astype(int).to_numpy(), nuc["x"].astype(int).to_numpy()
    mid = planes[1]
    assert mid[yy, xx].mean() < np.median(mid)  # nuclei absorb: darker than the typical pixel in focus
    # defocus differs: the planes are not copies, and the outer planes carry more contrast (halos)
    assert np.abs(planes[0] - planes[2]).mean() > 0.01 * planes.mean()
    assert min(planes[0].std(), planes[2].std()) > planes[1].std()


def test_strong_compounds_lose_cells(plate):
    fields = plate.truth("fields")
    late = fields[fields.timepoint == 2]
    dmso = late.loc[late.compound == "DMSO", "nuclei_count"].mean()
    strong = late.loc[late["effect_count_loss"] > 0.4, "nuclei_count"]
    assert len(strong) > 0 and strong.mean() < 0.85 * dmso


def test_manifest_from_opera(plate):
    from lcd_embed import manifest_from_opera, read_manifest

    man = manifest_from_opera(plate.image_dirs, plate.plate_map)
    fields = plate.truth("fields")
    assert len(man) == len(fields)
    assert [c for c in man.columns if c.startswith("path_z")] == ["path_z0", "path_z1", "path_z2"]
    merged = man.merge(fields, on=["plate", "well", "fov", "timepoint"], suffixes=("", "_truth"))
    assert len(merged) == len(fields)
    assert (merged["compound"] == merged["compound_truth"]).all()
    man.to_csv(plate.root / "manifest.csv", index=False)
    assert len(read_manifest(plate.root / "manifest.csv")) == len(fields)


def test_cli_simulate_and_bad_input(tmp_path):
    runner = CliRunner()
    out = tmp_path / "p"
    res = runner.invoke(app, ["simulate", str(out), "--replicas", "2", "--image-size", "48", "--seed", "1"])
    assert res.exit_code == 0, res.output
    assert (out / "platemap.csv").is_file()
    again = runner.invoke(app, ["simulate", str(out)])
    assert again.exit_code == 2 and "exists" in again.output
    bad = runner.invoke(app, ["simulate", str(tmp_path / "q"), "--preset", "huge"])
    assert bad.exit_code == 2 and "unknown preset" in bad.output
