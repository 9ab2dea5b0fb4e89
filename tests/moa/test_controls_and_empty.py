"""Control wells with a recorded vehicle dose, and runs where no condition or compound is usable."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from lcd_core import InputError
from lcd_moa import cli, cross_validate, fit_moa
from lcd_moa import probe as probe_module
from typer.testing import CliRunner

runner = CliRunner()


def naive_control_count(obs: pd.DataFrame, timepoint) -> int:
    """Control wells a condition should train with: every DMSO well of its timepoint, any dose."""
    return int(((obs["compound"] == "DMSO") & (obs["timepoint"] == timepoint)).sum())


@pytest.mark.parametrize("vehicle_dose", [0.0, 0.1])
def test_controls_with_a_recorded_dose_join_every_dose_of_their_timepoint(
    screen, activity, vehicle_dose, monkeypatch
):
    adata = screen(n_moa=3, n_per_moa=5, timepoints=(24, 48), seed=7)
    # unequal control counts per timepoint, so a wrong match cannot give the right number by chance
    obs = adata.obs
    drop = obs.index[(obs["compound"] == "DMSO") & (obs["timepoint"] == 48)][:3]
    adata = adata[~adata.obs.index.isin(drop)].copy()
    adata.obs.loc[adata.obs["compound"] == "DMSO", "dose"] = vehicle_dose
    obs = adata.obs

    control_rows_in_fit = []
    original_fit = probe_module.fit_probe

    def fit(X, y, **kw):
        control_rows_in_fit.append(int(np.sum(np.asarray(y) == "DMSO")))
        return original_fit(X, y, **kw)

    monkeypatch.setattr(probe_module, "fit_probe", fit)
    result = cross_validate(adata, activity(adata, 1.0), seed=0)

    cond = result.conditions
    assert (cond["status"] == "ok").all(), cond[["status", "reason"]]
    expected = [naive_control_count(obs, t) for t in cond["timepoint"]]
    assert cond["n_control_wells"].tolist() == expected
    assert sorted(set(expected)) == [5, 8]
    fits = result.fits
    assert fits["n_control_wells"].tolist() == [naive_control_count(obs, t) for t in fits["timepoint"]]
    # the probes really were trained with those control wells, one fit per fold × condition
    ok = fits[fits["status"] == "ok"]
    assert sorted(control_rows_in_fit) == sorted(ok["n_control_wells"].tolist())

    # same answer as the layout the package handled before (DMSO without a dose)
    reference = adata.copy()
    reference.obs.loc[reference.obs["compound"] == "DMSO", "dose"] = np.nan
    monkeypatch.setattr(probe_module, "fit_probe", original_fit)
    before = cross_validate(reference, activity(reference, 1.0), seed=0)
    pd.testing.assert_frame_equal(result.predictions, before.predictions)

    model = fit_moa(adata, activity(adata, 1.0))
    assert (model.conditions["status"] == "ok").all()
    assert model.conditions["n_train_compounds"].gt(0).all()


def test_dose_key_not_last_and_controls_of_another_timepoint(screen, activity):
    adata = screen(n_moa=3, n_per_moa=5, timepoints=(24, 48), seed=8)
    adata.obs.loc[adata.obs["compound"] == "DMSO", "dose"] = 0.0
    result = cross_validate(
        adata, activity(adata, 1.0), {"condition_keys": ["dose", "timepoint"], "dose_key": "dose"}, seed=0
    )
    expected = [naive_control_count(adata.obs, t) for t in result.conditions["timepoint"]]
    assert result.conditions["n_control_wells"].tolist() == expected
    # controls are still matched on the timepoint: DMSO imaged only at 72 h serves no condition
    moved = adata.copy()
    moved.obs.loc[moved.obs["compound"] == "DMSO", "timepoint"] = 72
    with pytest.raises(InputError, match=r"no usable condition \(6 skipped: 6 × 'no control wells match"):
        cross_validate(moved, activity(moved, 1.0))
    with pytest.raises(InputError, match=r"no usable condition .*nothing to fit"):
        fit_moa(moved, activity(moved, 1.0))


def test_no_active_compound_raises_one_line_and_cli_exits_2(screen, activity, tmp_path):
    adata = screen(n_moa=3, n_per_moa=5, seed=9)
    inactive = activity(adata, 1000.0)  # no dose reaches the threshold
    assert not inactive["active"].any()
    n_compounds = adata.obs.loc[adata.obs["compound"] != "DMSO", "compound"].nunique()
    message = f"no labeled compound is active at any condition ({n_compounds} compounds: {n_compounds} × 'not active"
    with pytest.raises(InputError, match=re.escape(message)):
        cross_validate(adata, inactive)
    with pytest.raises(InputError, match="nothing to fit"):
        fit_moa(adata, inactive)

    adata.write_h5ad(tmp_path / "profiles.h5ad")
    inactive.to_parquet(tmp_path / "inactive.parquet")
    args = ["cv", str(tmp_path / "profiles.h5ad"), "--activity", str(tmp_path / "inactive.parquet")]
    res = runner.invoke(cli.app, [*args, "--out", str(tmp_path / "cv")])
    assert res.exit_code == 2
    assert res.output.strip().startswith("error: no labeled compound is active")
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "cv").exists()
    res = runner.invoke(cli.app, ["fit", *args[1:], "--out", str(tmp_path / "model")])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1
    # every control at a timepoint without treated wells: all conditions skipped, exit 2 as well
    moved = adata.copy()
    moved.obs.loc[moved.obs["compound"] == "DMSO", "timepoint"] = 72
    moved.write_h5ad(tmp_path / "moved.h5ad")
    activity(moved, 1.0).to_parquet(tmp_path / "act.parquet")
    res = runner.invoke(
        cli.app,
        [
            "cv",
            str(tmp_path / "moved.h5ad"),
            "--activity",
            str(tmp_path / "act.parquet"),
            "--out",
            str(tmp_path / "m"),
        ],
    )
    assert res.exit_code == 2 and "no control wells match this condition" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_nothing_scorable_gives_empty_well_formed_tables_with_reasons(screen, activity, tmp_path):
    """Each compound active at one dose no other compound is active at: no probe ever sees a test one."""
    doses = (1.0, 3.0, 10.0, 30.0)
    adata = screen(n_moa=2, n_per_moa=2, timepoints=(24,), doses=doses, seed=10)
    table = activity(adata, 1.0)
    own_dose = {k: d for k, d in zip(sorted(table["compound"].unique()), doses, strict=True)}
    table["active"] = table["dose"] == table["compound"].map(own_dose)
    result = cross_validate(adata, table, n_folds=2, seed=0)

    assert result.predictions.empty and result.condition_probs.empty
    assert {"compound", "moa", "predicted", "correct", "p_MoA0", "p_MoA1"} <= set(result.predictions.columns)
    assert {"compound", "condition", "p_DMSO"} <= set(result.condition_probs.columns)
    metrics = result.metrics
    assert len(metrics) == 8 and (metrics["n_compounds"] == 0).all()
    assert {"accuracy", "f1_weighted", "f1_macro", "top3_accuracy"} <= set(metrics.columns)
    assert metrics["accuracy"].isna().all()
    comp = result.compounds
    assert (comp["status"] == "not_scored").all()
    assert comp["reason"].str.contains("no probe could be trained").all()
    # per fold, exactly the conditions of the test fold's compounds lack a training compound
    folds = result.folds.set_index("compound")["fold"]
    for f, group in result.fits.groupby("fold"):
        skipped = set(group.loc[group["status"] == "skipped", "dose"])
        assert skipped == {own_dose[k] for k in folds.index[folds == f]}
    result.write(tmp_path / "out")
    assert pd.read_parquet(tmp_path / "out" / "predictions.parquet").empty
