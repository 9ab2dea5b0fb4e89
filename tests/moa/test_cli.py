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
        "--condition-key",
        "Metadata_timepoint",
        "--condition-key",
        "Metadata_dose",
        "--control",
        "Metadata_compound == 'DMSO'",
    ]
    res = runner.invoke(
        cli.app,
        [
            "fit",
            str(tmp_path / "train.csv.gz"),
            "--model",
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
    assert res.exit_code == 2 and "missing.h5ad: file not found" in res.output
    res = runner.invoke(
        cli.app, ["cv", str(tmp / "profiles.h5ad"), "--out", str(tmp / "x"), "--moa-key", "mechanism"]
    )
    assert res.exit_code == 2 and "profiles.h5ad: column(s) ['mechanism'] not found" in res.output
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
    assert res.exit_code == 2 and "model.json: not found" in res.output


def test_main_without_typer_prints_install_hint(monkeypatch, capsys):
    monkeypatch.setattr(cli, "typer", None)
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 1
    assert "install lcd-moa[cli]" in capsys.readouterr().err
