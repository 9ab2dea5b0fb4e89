"""From a real-looking Opera time series to `lcd run`: `lcd init` writes the config, the manifest is right.

Two plates, each imaged at two timepoints exported separately (Harmony restarts ``sk1`` in every
export; ``TimepointID`` counts from 0 in the Index file), with a brightfield and a Hoechst channel.
The expected manifest below is written from that layout by hand.
"""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from lcd_pipeline.cli import app
from typer.testing import CliRunner

runner = CliRunner()


def _images(hour: int) -> list[dict]:
    when = pd.Timestamp("2024-05-01T08:00:00") + pd.Timedelta(hours=hour)
    return [
        {
            "row": 2,
            "col": col,
            "field": 1,
            "plane": plane,
            "ch": ch,
            "time": (when + pd.Timedelta(minutes=col)).isoformat(),
        }
        for col in (3, 4)
        for plane in (1, 2, 3)
        for ch in (1, 2)
    ]


@pytest.fixture
def exports(tmp_path, harmony_export):
    dirs = []
    for plate in ("B0001", "B0002"):
        for hour, stamp in ((0, "2024-05-01T08_00_00"), (24, "2024-05-02T08_00_00")):
            folder = tmp_path / "export" / f"{plate}__{stamp}-Measurement {1 + hour // 24}"
            dirs.append(harmony_export(folder, plate, stamp.replace("_", ":"), _images(hour)))
    return dirs


def test_init_then_run_with_the_paper_preset_builds_the_manifest(tmp_path, exports):
    cfg_path = tmp_path / "screen.yaml"
    res = runner.invoke(app, ["init", str(cfg_path), "--from-opera", ",".join(str(d) for d in exports)])
    assert res.exit_code == 0, res.output
    text = cfg_path.read_text()
    assert "plate B0001: 2 timepoint(s) (0 h, 24 h), 2 wells, 1 fields per well, 3 planes" in text
    assert "channels: 1 Brightfield, 2 Hoechst" in text
    cfg = yaml.safe_load(text)
    assert cfg["preset"] == "paper" and cfg["input"]["opera"]["channel"] == 1  # brightfield chosen by name
    template = tmp_path / "screen_platemap.csv"
    pm = pd.read_csv(template)
    assert pm[["plate", "well"]].values.tolist() == [
        ["B0001", "B03"],
        ["B0001", "B04"],
        ["B0002", "B03"],
        ["B0002", "B04"],
    ]
    pm = pm.assign(
        replica=["r1", "r1", "r2", "r2"],
        compound=["DMSO", "taxol"] * 2,
        dose=[0.0, 1.0] * 2,
        moa=["", "tubulin"] * 2,
    )
    pm.to_csv(template, index=False)

    res = runner.invoke(app, ["run", str(cfg_path), "--stop-after", "manifest"])
    assert res.exit_code == 0, res.output
    results = tmp_path / "results"
    man = pd.read_parquet(results / "manifest.parquet")
    assert len(man) == 2 * 2 * 2  # plates x wells x timepoints (one field each)
    assert sorted(man["timepoint"].unique()) == [1, 2]
    hours = man.groupby("timepoint")["timepoint_h"].unique()
    assert [round(float(h[0]), 2) for h in hours] == [0.0, 24.0]
    assert set(man["channel"]) == {1}
    assert [c for c in man.columns if c.startswith("path_z")] == ["path_z0", "path_z1", "path_z2"]
    assert man.loc[(man["plate"] == "B0002") & (man["well"] == "B04"), "compound"].unique().tolist() == [
        "taxol"
    ]
    assert all("Measurement 2" in p for p in man.loc[man["timepoint"] == 2, "path_z0"])

    # the paper's model and design were resolved from the preset and are what the run records
    dry = runner.invoke(app, ["run", str(cfg_path), "--dry-run"])
    assert dry.exit_code == 0 and "[skip] manifest" in dry.output and "[run ] train" in dry.output
    import json

    made = json.loads((results / "config.json").read_text())
    ssl = made["last_invocation"]["ssl"]
    assert (
        ssl["variant"] == "pa+dino+barlow+xb"
        and ssl["epochs"] == 60
        and ssl["model"] == "vit_small_patch16_224"
    )
    assert made["last_invocation"]["metrics"]["n_draws"] == 1000


def test_run_without_checkpoint_or_preset_refuses_in_one_line(tmp_path, exports):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"input": {"opera": {"image_dirs": [str(d) for d in exports]}}}))
    res = runner.invoke(app, ["run", str(cfg)])
    assert res.exit_code == 2
    assert res.output.count("\n") == 1 and "no checkpoint and no preset" in res.output
    assert "preset: paper" in res.output and "preset: quick" in res.output


def test_init_refuses_to_overwrite(tmp_path, exports):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("x")
    res = runner.invoke(app, ["init", str(cfg), "--from-opera", str(exports[0])])
    assert res.exit_code == 2 and "exists" in res.output
