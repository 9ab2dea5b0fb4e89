"""The lcd-norm command through typer's CliRunner: outputs and exit code 2 on bad input."""

from __future__ import annotations

import subprocess
import sys

import anndata
import lcd_norm
import lcd_norm.cli as cli
import numpy as np
import pandas as pd
import pytest
from lcd_core import write_h5ad
from lcd_norm import mad_harmony_fov
from typer.testing import CliRunner

runner = CliRunner()


@pytest.fixture
def h5ad(tmp_path, profiles):
    return write_h5ad(profiles, tmp_path / "in.h5ad")


def _run(*args):
    return runner.invoke(cli.app, [str(a) for a in args])


def test_each_command_writes_its_result(h5ad, tmp_path):
    out = tmp_path / "out.h5ad"
    result = _run("aggregate", h5ad, "-o", out, "--by", "well")
    assert result.exit_code == 0, result.output
    assert anndata.read_h5ad(out).uns["lcd"]["level"] == "well"
    for cmd, extra, check in [
        ("mad", [], lambda a: "X_mad" in a.obsm),
        (
            "harmony",
            ["--replica-key", "replica", "--fov-key", "fov"],
            lambda a: a.obsm["X_harmony"].shape[0] == a.n_obs,
        ),
        ("fastmnn", ["--n-components", "8"], lambda a: a.obsm["X_mnn"].shape[1] == 8),
        ("mad-harmony-fov", [], lambda a: "X_mad_harmony_fov" in a.obsm),
    ]:
        result = _run(cmd, h5ad, "-o", out, *extra)
        assert result.exit_code == 0, (cmd, result.output)
        assert check(anndata.read_h5ad(out)), cmd
    assert anndata.read_h5ad(h5ad).obsm.keys() == set()  # input untouched


def test_compare_writes_table_and_figure(h5ad, tmp_path):
    table, fig = tmp_path / "cmp.parquet", tmp_path / "cmp.png"
    result = _run("compare", h5ad, "-o", table, "--methods", "none,mad,fastmnn", "--plot", fig)
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(table)
    assert frame["method"].tolist() == ["none", "mad", "fastmnn"] and (frame["status"] == "ok").all()
    assert "fastmnn" in result.output and "mAP" in result.output and fig.stat().st_size > 0


def test_reads_a_pycytominer_csv(tmp_path, lincs_table):
    csv = tmp_path / "lincs.csv"
    lincs_table.to_csv(csv, index=False)
    out = tmp_path / "o.h5ad"
    result = _run(
        "mad", csv, "-o", out, "--measurement-keys", "Metadata_Plate",
        "--control", "Metadata_broad_sample == 'DMSO'",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert np.isfinite(anndata.read_h5ad(out).obsm["X_mad"]).all()


def _one_line_exit_2(result, pattern):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and pattern in lines[0], result.output


def test_bad_input_exits_2_with_one_line(h5ad, tmp_path, profiles):
    out = tmp_path / "o.h5ad"
    _one_line_exit_2(_run("mad", h5ad, "-o", out, "--measurement-keys", "plate,site"), "'site' not found")
    _one_line_exit_2(_run("harmony", h5ad, "-o", out, "--fov-key", "batch"), "'batch' not found")
    profiles.obs["one"] = "x"
    obs = profiles.obs.astype({"compound": str})
    obs.loc[(obs["plate"] == "R0P1") & (obs["compound"] == "DMSO"), "compound"] = "none"
    profiles.obs = obs
    bad = write_h5ad(profiles, tmp_path / "bad.h5ad")
    _one_line_exit_2(_run("harmony", bad, "-o", out, "--fov-key", "one"), "'one' has a single level")
    _one_line_exit_2(_run("mad", bad, "-o", out), "plate='R0P1', timepoint=24 has no control rows")
    X = profiles.X.copy()
    X[2, 1] = np.nan
    profiles.X = X
    nan = write_h5ad(profiles, tmp_path / "nan.h5ad")
    _one_line_exit_2(_run("fastmnn", nan, "-o", out), "1 NaN/inf values in 1 rows (first: '2')")
    _one_line_exit_2(
        _run("mad", tmp_path / "missing.h5ad", "-o", out), "missing.h5ad: profiles file not found"
    )
    _one_line_exit_2(_run("mad", h5ad, "-o", tmp_path / "o.csv"), "cannot write a csv file here")
    assert not out.exists()


def test_main_without_typer_says_how_to_install(monkeypatch, capsys):
    from lcd_norm.__main__ import main

    monkeypatch.setitem(sys.modules, "typer", None)  # importing typer now fails
    monkeypatch.delitem(sys.modules, "lcd_norm.cli")
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    assert "pip install 'lcd-norm[cli]'" in capsys.readouterr().err


def test_defaults_come_from_the_api_and_python_m(h5ad, tmp_path, profiles):
    """A command without options gives what the function gives with its defaults."""
    out = tmp_path / "o.h5ad"
    assert _run("mad-harmony-fov", h5ad, "-o", out).exit_code == 0
    expected = mad_harmony_fov(profiles, copy=True)
    np.testing.assert_allclose(
        anndata.read_h5ad(out).obsm["X_mad_harmony_fov"], expected.obsm["X_mad_harmony_fov"]
    )
    run = subprocess.run([sys.executable, "-m", "lcd_norm", "--version"], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.startswith(f"lcd-norm {lcd_norm.__version__}")


def test_compare_on_well_level_cell_painting(tmp_path, injury_table):
    csv = tmp_path / "injury.csv.gz"
    injury_table.to_csv(csv, index=False)
    table = tmp_path / "cmp.csv"
    result = _run(
        "compare", csv, "-o", table,
        "--replica-key", "Experimental Condition [Experimental Batch]",
        "--compound-key", "injury_type",
        "--measurement-keys", "Plate",
        "--fov-key", "none",
        "--control", "`Control Type` == 'Negative'",
        "--null-size", "50",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(table).set_index("method")
    assert (frame["status"] == "ok").all(), frame["reason"].tolist()
    assert frame.loc["fastmnn", "batch_silhouette"] < frame.loc["none", "batch_silhouette"]
