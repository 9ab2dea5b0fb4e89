"""The lcd-metrics command line through typer's CliRunner."""

import lcd_metrics as lm
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("typer")
from lcd_metrics import cli
from typer.testing import CliRunner

runner = CliRunner()


def test_map_on_lincs_plate(lincs_path, tmp_path):
    out = tmp_path / "map.parquet"
    ap_out = tmp_path / "ap.csv"
    args = [
        "map",
        str(lincs_path),
        "-o",
        str(out),
        "--pos-sameby",
        "Metadata_broad_sample",
        "--neg-diffby",
        "Metadata_broad_sample",
    ]
    r = runner.invoke(cli.app, [*args, "--null-size", "200", "--ap-out", str(ap_out)])
    assert r.exit_code == 0, r.output
    table = pd.read_parquet(out)
    assert {"Metadata_broad_sample", "mean_average_precision", "p_value", "corrected_p_value"} <= set(
        table.columns
    )
    assert len(table) == 59 and len(pd.read_csv(ap_out)) == 384


def test_map_multilabel_moa_strings_match_copairs(lincs, tmp_path):
    """`--multilabel-col` on LINCS MoA strings ('a|b') gives copairs' multilabel AP and mAP."""
    import warnings

    from copairs.map import mean_average_precision as copairs_map
    from copairs.map import multilabel

    df = lincs[lincs["Metadata_broad_sample"].ne("DMSO")].dropna(subset=["Metadata_moa"])
    df = df.reset_index(drop=True)
    path = tmp_path / "treated.csv"
    df.to_csv(path, index=False)
    out, ap_out = tmp_path / "map.csv", tmp_path / "ap.csv"
    r = runner.invoke(
        cli.app,
        [
            "map", str(path), "-o", str(out), "--ap-out", str(ap_out),
            "--pos-sameby", "Metadata_moa", "--pos-diffby", "Metadata_broad_sample",
            "--neg-diffby", "Metadata_moa", "--multilabel-col", "Metadata_moa", "--null-size", "1000",
        ],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    meta = df.filter(regex="^Metadata").assign(Metadata_moa=df["Metadata_moa"].str.split("|"))
    feats = df.drop(columns=df.filter(regex="^Metadata").columns).to_numpy()
    rules = dict(
        pos_sameby=["Metadata_moa"],
        pos_diffby=["Metadata_broad_sample"],
        neg_sameby=[],
        neg_diffby=["Metadata_moa"],
        multilabel_col="Metadata_moa",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = multilabel.average_precision(meta, feats, progress_bar=False, **rules)
        their_map = copairs_map(theirs, ["Metadata_moa"], null_size=1000, threshold=0.05, seed=0)
    ours = pd.read_csv(ap_out)
    assert any("|" in m for m in df["Metadata_moa"])  # the case is really multilabel
    assert len(ours) == len(theirs) > 50
    both = theirs.merge(ours, on=["Metadata_Well", "Metadata_moa"], suffixes=("_c", "_l"))
    assert len(both) == len(ours)
    np.testing.assert_allclose(both["average_precision_c"], both["average_precision_l"], atol=1e-6)
    mm = their_map.merge(pd.read_csv(out), on="Metadata_moa")
    assert len(mm) == len(their_map)
    np.testing.assert_allclose(mm["mean_average_precision_x"], mm["mean_average_precision_y"], atol=1e-6)


def test_map_es_with_plots_and_cell_count(make_screen, tmp_path):
    obs, X = make_screen(n_compounds=2, effect={0: 1.0})
    df = pd.concat(
        [obs, pd.DataFrame(X, index=obs.index, columns=[f"f{i}" for i in range(X.shape[1])])], axis=1
    )
    df["nuclei_count"] = np.random.default_rng(0).poisson(100, len(df))
    src = tmp_path / "wells.csv"
    df.to_csv(src, index=False)
    out, plots = tmp_path / "act.parquet", tmp_path / "figs"
    r = runner.invoke(
        cli.app,
        ["map-es", str(src), "-o", str(out), "--features", "^f", "--n-draws", "100", "--plot", str(plots)],
    )
    assert r.exit_code == 0, r.output
    table = pd.read_parquet(out)
    assert len(table) == 4 and table["map_es"].notna().all()
    assert (plots / "sensitivity.png").stat().st_size > 0
    assert (plots / "ap_vs_null_cmp0.png").stat().st_size > 0
    r = runner.invoke(cli.app, ["cell-count", str(src), "-o", str(tmp_path / "cc.csv")])
    assert r.exit_code == 0, r.output
    assert len(pd.read_csv(tmp_path / "cc.csv")) == 4
    r = runner.invoke(
        cli.app,
        ["inhibition", str(src), "--measurement-keys", "plate,timepoint", "-o", str(tmp_path / "inh.csv")],
    )
    assert r.exit_code == 0, r.output
    inh = pd.read_csv(tmp_path / "inh.csv")
    assert len(inh) == len(df) and (inh["status"] == "ok").all()
    np.testing.assert_allclose(inh["inhibition"], lm.inhibition(df)["inhibition"])


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["map-es", "{src}", "-o", "{out}", "--replica-key", "batch"], "column 'batch' not found"),
        (["map-es", "{src}", "-o", "{out}", "--control", "compound == 'nope'"], "no control rows match"),
        (
            ["map", "{missing}", "-o", "{out}", "--pos-sameby", "a", "--neg-diffby", "a"],
            "nope.csv: profiles table not found",
        ),
        (["cell-count", "{src}", "-o", "{out}"], "column 'nuclei_count' not found"),
        (["inhibition", "{src}", "-o", "{out}", "--count-key", "cells"], "column 'cells' not found"),
        (["map-es", "{src}", "-o", "{tmp}/x.xlsx"], "unknown table format"),
    ],
)
def test_bad_input_exits_2_with_one_line(make_screen, tmp_path, args, needle):
    obs, X = make_screen(n_compounds=1)
    df = pd.concat(
        [obs, pd.DataFrame(X, index=obs.index, columns=[f"Cells_{i}" for i in range(X.shape[1])])], axis=1
    )
    src = tmp_path / "wells.csv"
    df.to_csv(src, index=False)
    fill = {
        "src": str(src),
        "out": str(tmp_path / "o.parquet"),
        "missing": str(tmp_path / "nope.csv"),
        "tmp": str(tmp_path),
    }
    r = runner.invoke(cli.app, [a.format(**fill) for a in args])
    assert r.exit_code == 2
    lines = [ln for ln in r.output.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]


def test_main_without_typer_prints_install_hint(monkeypatch, capsys):
    import sys

    from lcd_metrics.__main__ import main

    monkeypatch.setitem(sys.modules, "typer", None)  # importing typer now fails
    monkeypatch.delitem(sys.modules, "lcd_metrics.cli")
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 1
    assert "pip install 'lcd-metrics[cli]'" in capsys.readouterr().err


def test_list_options_repeat_or_comma_and_python_m(make_screen, tmp_path):
    """`--opt a --opt b` and `--opt a,b` are the same list; `python -m lcd_metrics` is the same CLI."""
    import subprocess
    import sys

    obs, X = make_screen(n_compounds=2, doses=(1.0,))
    df = pd.concat(
        [obs, pd.DataFrame(X, index=obs.index, columns=[f"Cells_{i}" for i in range(X.shape[1])])], axis=1
    )
    src = tmp_path / "wells.csv"
    df.to_csv(src, index=False)
    base = ["map", str(src), "--neg-diffby", "compound", "--null-size", "50"]
    r1 = runner.invoke(
        cli.app, [*base, "--pos-sameby", "compound", "--pos-sameby", "dose", "-o", str(tmp_path / "a.csv")]
    )
    r2 = runner.invoke(cli.app, [*base, "--pos-sameby", "compound,dose", "-o", str(tmp_path / "b.csv")])
    assert r1.exit_code == 0 and r2.exit_code == 0, (r1.output, r2.output)
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    assert list(a.columns[:2]) == ["compound", "dose"]
    pd.testing.assert_frame_equal(a, b)
    run = subprocess.run([sys.executable, "-m", "lcd_metrics", "--version"], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.startswith("lcd-metrics 0.3.0")


def test_map_es_design_only_on_pycytominer_parquet(tmp_path, make_paper):
    """A pycytominer parquet (Metadata_* columns, CellProfiler features): the design report is printed,
    nothing is drawn, exit 0; the same keys then score it, and the table matches the API's."""
    obs, X = make_paper(n_compounds=2)
    meta = obs.rename(columns=lambda c: f"Metadata_{c}").reset_index(drop=True)
    feats = pd.DataFrame(X, columns=[f"Cells_AreaShape_{i}" for i in range(X.shape[1])])
    src = tmp_path / "plates.parquet"
    pd.concat([meta, feats], axis=1).to_parquet(src)
    keys = [
        "--compound-key", "Metadata_compound", "--replica-key", "Metadata_replica",
        "--plate-key", "Metadata_plate", "--timepoint-key", "Metadata_timepoint",
        "--dose-key", "Metadata_dose", "--control", "Metadata_compound == 'DMSO'",
    ]  # fmt: skip
    r = runner.invoke(cli.app, ["map-es", str(src), "--design-only", *keys])
    assert r.exit_code == 0, r.output
    assert "mAP-ES design: 8 compound × condition rows" in r.output
    assert "other_plate" in r.output and "other_replica" in r.output
    assert not list(tmp_path.glob("*.csv"))  # nothing written without -o
    r = runner.invoke(
        cli.app, ["map-es", str(src), "--design-only", *keys, "--n-neg", "40", "-o", str(tmp_path / "d.csv")]
    )
    assert r.exit_code == 0, r.output
    assert (
        "rows will not be ok" in r.output and "only 32 control wells on a query plate (design 40)" in r.output
    )
    report = pd.read_csv(tmp_path / "d.csv")
    assert (report["status"] == "partial").all()
    out = tmp_path / "act.parquet"
    r = runner.invoke(cli.app, ["map-es", str(src), *keys, "--n-draws", "200", "-o", str(out)])
    assert r.exit_code == 0, r.output
    api = lm.map_es(
        src,
        compound_key="Metadata_compound",
        replica_key="Metadata_replica",
        plate_key="Metadata_plate",
        timepoint_key="Metadata_timepoint",
        dose_key="Metadata_dose",
        control="Metadata_compound == 'DMSO'",
        n_draws=200,
    )
    pd.testing.assert_frame_equal(pd.read_parquet(out), api)
    assert (api["status"] == "ok").all()
