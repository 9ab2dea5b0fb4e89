"""The `lcd` command: package apps mounted from the `lcd.cli` entry points, robust to broken ones."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import EntryPoint, entry_points

import numpy as np
import pandas as pd
import pytest
from lcd_pipeline import cli, mount
from typer.testing import CliRunner

runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(cli.app, list(args), terminal_width=200)


def test_help_lists_every_registered_package():
    result = _invoke("--help")
    assert result.exit_code == 0, result.output
    names = {ep.name for ep in entry_points(group="lcd.cli")}
    assert {"metrics", "norm", "moa", "embed", "ssl"} <= names
    for name in names:
        assert f" {name} " in result.output
    assert "simulate" in result.output


def test_help_imports_no_heavy_library():
    # `lcd --help` must not load pandas/anndata/torch/sklearn (the mounted apps are loaded on use)
    code = (
        "import sys; from typer.testing import CliRunner; from lcd_pipeline.cli import app;"
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output;"
        "print(sorted(m for m in ('pandas', 'anndata', 'torch', 'sklearn', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("metrics", "--help"), "map-es"),
        (("norm", "compare", "--help"), "Table 1"),
        (("moa", "--help"), "Usage"),
    ],
)
def test_mounted_package_help(args, expected):
    result = _invoke(*args)
    assert result.exit_code == 0, result.output
    assert expected in result.output


def _naive_ap(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-profile AP (copairs rules): rank the other profiles by cosine similarity, positives = same label."""
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = unit @ unit.T
    ap = []
    for i in range(len(x)):
        others = np.array([j for j in range(len(x)) if j != i])
        order = others[np.argsort(-sim[i, others], kind="stable")]
        hits = labels[order] == labels[i]
        ranks = np.flatnonzero(hits) + 1
        ap.append(np.mean(np.arange(1, len(ranks) + 1) / ranks))
    return np.array(ap)


def test_metrics_map_runs_through_lcd(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for compound in ("a", "b", "c"):
        centre = rng.normal(size=4)
        for k in range(4):
            feats = centre + 0.8 * rng.normal(size=4)
            rows.append(
                {
                    "Metadata_compound": compound,
                    "Metadata_rep": f"r{k}",
                    **{f"f{j}": v for j, v in enumerate(feats)},
                }
            )
    table = pd.DataFrame(rows)
    table.to_csv(tmp_path / "x.csv", index=False)
    result = _invoke(
        "metrics", "map", str(tmp_path / "x.csv"), "-o", str(tmp_path / "map.csv"),
        "--pos-sameby", "Metadata_compound", "--neg-diffby", "Metadata_compound",
        "--ap-out", str(tmp_path / "ap.csv"), "--null-size", "100",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    ap = pd.read_csv(tmp_path / "ap.csv").set_index(["Metadata_compound", "Metadata_rep"])
    expected = _naive_ap(table[[f"f{j}" for j in range(4)]].to_numpy(), table["Metadata_compound"].to_numpy())
    got = ap.loc[
        list(zip(table["Metadata_compound"], table["Metadata_rep"], strict=True)), "average_precision"
    ]
    np.testing.assert_allclose(got.to_numpy(), expected, rtol=1e-9)
    group = pd.read_csv(tmp_path / "map.csv").set_index("Metadata_compound")["mean_average_precision"]
    np.testing.assert_allclose(group.loc[["a", "b", "c"]], expected.reshape(3, 4).mean(axis=1), rtol=1e-9)


@pytest.fixture
def broken_plugins(monkeypatch, tmp_path):
    """Two extra plugins: one whose module does not exist, one whose app is None (missing CLI extra)."""
    (tmp_path / "lcd_noextra_cli.py").write_text("app = None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    real = mount.discover

    def discover():
        plugins = real()
        for name, value in (("ghost", "lcd_ghost_missing.cli:app"), ("noextra", "lcd_noextra_cli:app")):
            ep = EntryPoint(name, value, mount.GROUP)
            plugins[name] = mount.Plugin(name, ep, "", mount._module_problem(value.split(":")[0]))
        return plugins

    monkeypatch.setattr(cli, "discover", discover)


def test_broken_app_is_reported_not_fatal(broken_plugins):
    result = _invoke("--help")
    assert result.exit_code == 0, result.output
    assert "UNAVAILABLE (package lcd_ghost_missing is not installed)" in result.output
    ghost = _invoke("ghost", "--help")
    assert ghost.exit_code == 1
    assert "`lcd ghost` is unavailable" in ghost.output and "ModuleNotFoundError" in ghost.output
    noextra = _invoke("noextra", "run")
    assert noextra.exit_code == 1
    assert "[cli] extra" in noextra.output
    assert _invoke("metrics", "--help").exit_code == 0  # the others still work
