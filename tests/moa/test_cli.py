"""The lcd-moa command through typer's CliRunner."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lcd_moa import cli, cross_validate
from typer.testing import CliRunner

runner = CliRunner()


@pytest.fixture
def files(screen, activity, tmp_path):
    adata = screen(n_moa=3, n_per_moa=5, seed=20)
    adata.write_h5ad(tmp_path / "profiles.h5ad")
    activity(adata, 3.0).to_parquet(tmp_path / "activity.parquet")
    return adata, tmp_path


def test_cv_writes_tables_and_figures_equal_to_api(files, activity):
    adata, tmp = files
    res = runner.invoke(
        cli.app,
        [
            "cv",
            str(tmp / "profiles.h5ad"),
            "--activity",
            str(tmp / "activity.parquet"),
            "--out",
            str(tmp / "cv"),
            "--seed",
            "3",
        ],
    )
    assert res.exit_code == 0, res.output
    for name in (
        "metrics",
        "predictions",
        "condition_probs",
        "compounds",
        "conditions",
        "fits",
        "folds",
        "confusion",
        "polypharmacology",
    ):
        assert (tmp / "cv" / f"{name}.parquet").is_file(), name
    for fig in ("metrics_by_dose.png", "confusion.png", "polypharmacology.png"):
        assert (tmp / "cv" / "figures" / fig).stat().st_size > 1000
    api = cross_validate(adata, activity(adata, 3.0), seed=3)
    got = pd.read_parquet(tmp / "cv" / "metrics.parquet")
    np.testing.assert_allclose(got["accuracy"], api.metrics["accuracy"])
    assert not list(tmp.glob("cv/.*.tmp"))  # atomic writes leave no temp files


def _compare(run_a, run_b, *options):
    """``lcd-moa compare`` on the predictions.parquet of two run folders."""
    return runner.invoke(
        cli.app, ["compare", str(run_a / "predictions.parquet"), str(run_b / "predictions.parquet"), *options]
    )


def test_cv_reuse_folds_and_compare(files):
    _, tmp = files
    common = [str(tmp / "profiles.h5ad"), "--activity", str(tmp / "activity.parquet"), "--no-plot"]
    assert runner.invoke(cli.app, ["cv", *common, "--out", str(tmp / "a")]).exit_code == 0
    res = runner.invoke(
        cli.app,
        [
            "cv",
            *common,
            "--out",
            str(tmp / "b"),
            "--folds",
            str(tmp / "a" / "folds.parquet"),
            "--weights",
            "wells",
            "--dose-order",
            "3,10",
        ],
    )
    assert res.exit_code == 0, res.output
    res = _compare(tmp / "a", tmp / "b", "--out", str(tmp / "mcnemar.csv"))
    assert res.exit_code == 0, res.output
    assert "McNemar exact p" in res.output
    table = pd.read_csv(tmp / "mcnemar.csv")
    assert table.loc[0, "n_compounds"] == 15
    same = _compare(tmp / "a", tmp / "a", "--method-a", "single_3", "--method-b", "single_10")
    assert same.exit_code == 0 and "single_3 vs single_10" in same.output
    other = runner.invoke(cli.app, ["cv", *common, "--out", str(tmp / "c"), "--seed", "99"])
    assert other.exit_code == 0
    res = _compare(tmp / "a", tmp / "c")
    assert res.exit_code == 2 and "fold assignments differ" in res.output


def test_fit_predict_on_pycytominer_csv(screen, activity, tmp_path):
    adata = screen(n_moa=3, n_per_moa=5, seed=21)
    table = pd.concat(
        [
            adata.obs.add_prefix("Metadata_").reset_index(drop=True),
            pd.DataFrame(adata.X, columns=[f"Cells_f{i}" for i in range(adata.n_vars)]),
        ],
        axis=1,
    )
    train = table[~table["Metadata_compound"].str.endswith("_4")]
    test = table[table["Metadata_compound"].str.endswith("_4") | (table["Metadata_compound"] == "DMSO")]
    train.to_csv(tmp_path / "train.csv.gz", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    act = activity(adata, 3.0).rename(
        columns=lambda c: f"Metadata_{c}" if c in ("compound", "timepoint", "dose") else c
    )
    act.to_csv(tmp_path / "act.csv", index=False)
    keys = [
        "--compound-key",
        "Metadata_compound",
        "--moa-key",
        "Metadata_moa",
        "--condition-keys",
        "Metadata_timepoint",
        "--condition-keys",
        "Metadata_dose",
        "--control",
        "Metadata_compound == 'DMSO'",
    ]
    res = runner.invoke(
        cli.app,
        [
            "fit",
            str(tmp_path / "train.csv.gz"),
            "--out",
            str(tmp_path / "m"),
            "--activity",
            str(tmp_path / "act.csv"),
            *keys,
        ],
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        cli.app,
        [
            "predict",
            str(tmp_path / "test.csv"),
            "--model",
            str(tmp_path / "m"),
            "--activity",
            str(tmp_path / "act.csv"),
            "--out",
            str(tmp_path / "p"),
        ],
    )
    assert res.exit_code == 0, res.output
    pred = pd.read_parquet(tmp_path / "p" / "predictions.parquet")
    assert set(pred["compound"]) == {"cpd_0_4", "cpd_1_4", "cpd_2_4"}


def test_bad_input_exits_2_with_one_line(files, tmp_path):
    _, tmp = files
    res = runner.invoke(cli.app, ["cv", str(tmp / "missing.h5ad"), "--out", str(tmp / "x")])
    assert res.exit_code == 2 and "missing.h5ad: profiles file not found" in res.output
    res = runner.invoke(
        cli.app, ["cv", str(tmp / "profiles.h5ad"), "--out", str(tmp / "x"), "--moa-key", "mechanism"]
    )
    assert res.exit_code == 2 and "profiles.h5ad: column 'mechanism' not found" in res.output
    assert len(res.output.strip().splitlines()) == 1
    pd.DataFrame({"cpd": ["a"], "active": [True]}).to_csv(tmp / "act.csv", index=False)
    res = runner.invoke(
        cli.app,
        ["cv", str(tmp / "profiles.h5ad"), "--out", str(tmp / "x"), "--activity", str(tmp / "act.csv")],
    )
    assert (
        res.exit_code == 2 and "act.csv: column(s) ['compound', 'timepoint', 'dose'] not found" in res.output
    )
    res = runner.invoke(
        cli.app, ["cv", str(tmp / "profiles.h5ad"), "--out", str(tmp / "x"), "--dose-order", "high"]
    )
    assert res.exit_code == 2 and "--dose-order" in res.output
    res = runner.invoke(
        cli.app,
        ["predict", str(tmp / "profiles.h5ad"), "--model", str(tmp / "nomodel"), "--out", str(tmp / "x")],
    )
    assert res.exit_code == 2 and "nomodel: model folder not found" in res.output


def test_script_without_typer_prints_install_hint(monkeypatch, capsys):
    """The lcd-moa script (lcd_moa.__main__:main) says how to install the CLI extra when typer is missing."""
    import sys

    from lcd_moa.__main__ import main

    monkeypatch.setitem(sys.modules, "typer", None)  # `import typer` now fails as if not installed
    monkeypatch.delitem(sys.modules, "lcd_moa.cli", raising=False)
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 1
    assert "pip install 'lcd-moa[cli]'" in capsys.readouterr().err


def test_version_quiet_and_python_m():
    import subprocess
    import sys

    res = runner.invoke(cli.app, ["--version"])
    assert res.exit_code == 0 and res.output.startswith("lcd-moa 0.3")
    out = subprocess.run(
        [sys.executable, "-m", "lcd_moa", "cv", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--condition-keys" in out and "--out" in out


def test_options_default_to_the_api_and_lists_have_one_syntax(files, activity):
    """No option given: the API defaults. Given options override only themselves; a list may be repeated
    or comma-separated."""
    adata, tmp = files
    base = [str(tmp / "profiles.h5ad"), "--activity", str(tmp / "activity.parquet"), "--no-plot"]
    assert runner.invoke(cli.app, ["-q", "cv", *base, "-o", str(tmp / "d")]).exit_code == 0
    api = cross_validate(adata, activity(adata, 3.0))
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp / "d" / "predictions.parquet"), api.predictions, check_dtype=False
    )
    given = ["--weights", "wells", "--C", "0.5", "--condition-keys", "timepoint,dose", "--seed", "2"]
    assert runner.invoke(cli.app, ["cv", *base, "-o", str(tmp / "g"), *given]).exit_code == 0
    api = cross_validate(adata, activity(adata, 3.0), probe={"weights": "wells", "C": 0.5}, seed=2)
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp / "g" / "predictions.parquet"), api.predictions, check_dtype=False
    )
    repeated = ["--condition-keys", "timepoint", "--condition-keys", "dose"]
    res = runner.invoke(cli.app, ["cv", *base, "-o", str(tmp / "r"), *given[:4], *repeated, "--seed", "2"])
    assert res.exit_code == 0, res.output
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp / "r" / "predictions.parquet"), pd.read_parquet(tmp / "g" / "predictions.parquet")
    )
    params = __import__("json").loads((tmp / "g" / "params.json").read_text())
    assert params["params"]["probe"]["C"] == 0.5 and params["final_method"] == "incremental_2"


def _one_line_error(res, *fragments):
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_bad_input_missing_column_empty_group_and_bad_options(files, tmp_path):
    _, tmp = files
    cv_args = [str(tmp / "profiles.h5ad"), "--activity", str(tmp / "activity.parquet"), "-o", str(tmp / "x")]
    _one_line_error(
        runner.invoke(cli.app, ["cv", *cv_args, "--compound-key", "cpd"]), "column 'cpd' not found"
    )
    _one_line_error(
        runner.invoke(cli.app, ["cv", *cv_args, "--condition-keys", "timepoint,plate"]),
        "profiles.h5ad: column 'plate' not found",
    )
    # an empty activity table (header only): no compound is active anywhere, the run has nothing to fit
    pd.DataFrame(columns=["compound", "timepoint", "dose", "active"]).to_csv(tmp / "empty.csv", index=False)
    empty = [str(tmp / "profiles.h5ad"), "--activity", str(tmp / "empty.csv"), "-o", str(tmp / "y")]
    _one_line_error(runner.invoke(cli.app, ["cv", *empty]), "no labeled compound is active at any condition")
    assert not (tmp / "y").exists()
    # a header-only profiles table
    pd.DataFrame(columns=["Metadata_compound", "Cells_a"]).to_csv(tmp / "none.csv", index=False)
    _one_line_error(
        runner.invoke(cli.app, ["cv", str(tmp / "none.csv"), "-o", str(tmp / "z")]), "none.csv", "no rows"
    )
    _one_line_error(runner.invoke(cli.app, ["cv", *cv_args, "--weights", "votes"]), "ProbeSpec.weights")
    _one_line_error(
        runner.invoke(cli.app, ["cv", *cv_args, "--n-folds", "1"]), "n_folds must be an integer >= 2"
    )
    _one_line_error(
        runner.invoke(cli.app, ["cv", *cv_args, "--dose-key", "well"]), "dose_key: 'well' must be one of"
    )
    _one_line_error(
        runner.invoke(cli.app, ["cv", *cv_args, "--folds", str(tmp / "activity.parquet")]),
        "activity.parquet: needs columns 'compound' and 'fold'",
    )
    (tmp / "a.csv").write_text("x")
    _one_line_error(
        runner.invoke(
            cli.app, ["compare", str(tmp / "a.csv"), str(tmp / "a.csv"), "-o", str(tmp / "t.xlsx")]
        ),
        "t.xlsx: unknown table format",
    )


def test_corrupt_model_file_is_named(files, tmp_path):
    _, tmp = files
    fit = [
        "fit",
        str(tmp / "profiles.h5ad"),
        "--activity",
        str(tmp / "activity.parquet"),
        "-o",
        str(tmp / "m"),
    ]
    assert runner.invoke(cli.app, fit).exit_code == 0
    (tmp / "m" / "model.npz").write_bytes(b"not a zip")
    predict = ["predict", str(tmp / "profiles.h5ad"), "--model", str(tmp / "m"), "-o", str(tmp / "p")]
    _one_line_error(runner.invoke(cli.app, predict), str(tmp / "m" / "model.npz"), "is not a valid .npz file")
    (tmp / "m" / "model.json").write_text("{}")
    _one_line_error(runner.invoke(cli.app, predict), str(tmp / "m" / "model.json"), "unknown model format")


def test_a_bug_is_not_reported_as_bad_input(files, monkeypatch):
    """Only InputError (and missing paths) become `error: ...` with exit 2; a KeyError from our own code
    keeps its traceback (0.1.0 turned ValueError/KeyError/TypeError into exit 2)."""
    import lcd_moa

    _, tmp = files

    def broken(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(lcd_moa, "cross_validate", broken)
    res = runner.invoke(cli.app, ["cv", str(tmp / "profiles.h5ad"), "-o", str(tmp / "x"), "--no-plot"])
    assert res.exit_code == 1 and isinstance(res.exception, KeyError)
