"""Planted batch effects are visible in the pixels; run configs fail with one line naming the key."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile
from lcd_pipeline.cli import app
from lcd_pipeline.config import ConfigError, resolve
from lcd_pipeline.simulate import SimulationConfig, opera_name, simulate_plate
from typer.testing import CliRunner

DESIGN = dict(
    n_replicas=3,
    moas=("tubulin",),
    compounds_per_moa=1,
    n_inert=1,
    doses=(1.0,),
    timepoint_hours=(24.0,),
    n_dmso=6,
    fovs_per_well=1,
    image_size=64,
    plate_rows=4,
    plate_columns=6,
)


def _dmso_background(plate) -> pd.Series:
    """Median grey value of the in-focus plane of every DMSO field, per replica."""
    pm = pd.read_csv(plate.plate_map)
    rows = []
    for r in pm[pm["compound"] == "DMSO"].itertuples(index=False):
        row, col = ord(r.well[0]) - 64, int(r.well[1:])
        img = tifffile.imread(plate.root / "images" / r.plate / opera_name(row, col, 1, 2, 1, 1))
        rows.append((r.replica, float(np.median(img))))
    return pd.DataFrame(rows, columns=["replica", "median"]).groupby("replica")["median"]


def test_replica_effects_show_in_control_pixels_and_vanish_when_off(tmp_path):
    on = simulate_plate(tmp_path / "on", SimulationConfig(seed=5, **DESIGN), progress=False)
    off = simulate_plate(
        tmp_path / "off",
        SimulationConfig(seed=5, replica_effect=0, plate_effect=0, fov_effect=0, **DESIGN),
        progress=False,
    )
    batch = on.truth("batch").groupby("replica")["gain"].first()
    assert batch.std() > 0.02  # the truth table records different gains per replica
    med_on, med_off = _dmso_background(on), _dmso_background(off)
    # between-replica spread of the DMSO background vs within-replica spread (an F-like ratio)
    between_on = med_on.mean().std()
    between_off = med_off.mean().std()
    within = med_on.std().mean()
    assert between_on > 3 * within
    assert between_on > 5 * between_off
    # and the background ranks follow the recorded gain (offsets are small next to gains here)
    assert list(med_on.mean().sort_values().index) == list(batch.sort_values().index)


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="unknown config key"):
        resolve({"input": {"simulate": {}}, "nrom": {}})
    with pytest.raises(ConfigError, match="exactly one of"):
        resolve({"input": {"manifest": "a.csv", "embeddings": "b.h5ad"}})
    with pytest.raises(ConfigError, match=r"norm\.use"):
        resolve(
            {"input": {"simulate": {}}, "preset": "quick", "norm": {"methods": ["none"], "use": "harmony"}}
        )


def test_cli_run_and_report_bad_input_exit_2(tmp_path):
    runner = CliRunner()
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: {simulate: {}}\nunknown_section: 1\n")
    res = runner.invoke(app, ["run", str(bad)])
    assert res.exit_code == 2 and "unknown_section" in res.output
    res = runner.invoke(app, ["run", str(tmp_path / "missing.yaml")])
    assert res.exit_code == 2 and "not found" in res.output
    res = runner.invoke(app, ["report", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "not found" in res.output
