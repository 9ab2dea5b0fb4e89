"""Stage fingerprints: a changed config value re-runs exactly the stages that depend on it.

The expected re-run sets below are written by hand from what each stage computes (the oracle is the
pipeline's data flow as a scientist reads it in the engine's docstring), not taken from the engine.
"""

from __future__ import annotations

import copy
import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from lcd_core import ConfigError
from lcd_pipeline.config import resolve
from lcd_pipeline.engine import STATE_FILE, plan, run_pipeline

IMAGE_STAGES = [
    "simulate",
    "manifest",
    "train",
    "embed",
    "normalize",
    "wells",
    "nuclei",
    "activity",
    "moa",
    "attention",
    "report",
]


def _config(tmp_path, **extra):
    return {
        "results": str(tmp_path / "res"),
        "preset": "quick",
        "input": {"simulate": {"preset": "demo"}},
        **extra,
    }


def _pretend_done(cfg):
    """Create every planned output and record its fingerprint, as a finished run would."""
    root = tmp_root = __import__("pathlib").Path(cfg["results"])
    tmp_root.mkdir(parents=True, exist_ok=True)
    with open(root / STATE_FILE, "a") as fh:
        for p in plan(cfg):
            for out in p.stage.outputs:
                path = root / out
                if "." in path.name:
                    path.write_text("x")
                else:
                    path.mkdir(exist_ok=True)
            fh.write(
                json.dumps(
                    {"stage": p.stage.name, "status": "ran", "fingerprint": p.fingerprint, "parts": p.parts},
                    default=str,
                )
                + "\n"
            )


def _runs(cfg):
    return [p.stage.name for p in plan(cfg) if p.run]


CHANGES = [
    # (dotted key, new value, stages that must re-run)
    ("metrics.threshold", 0.5, ["activity", "moa", "attention", "report"]),
    ("metrics.n_draws", 300, ["activity", "moa", "attention", "report"]),
    ("moa.n_folds", 4, ["moa", "report"]),
    ("attention.n_fields", 3, ["attention", "report"]),
    ("norm.null_size", 100, ["normalize", "wells", "activity", "moa", "attention", "report"]),
    ("norm.use", "harmony", ["wells", "activity", "moa", "attention", "report"]),
    ("nuclei.fields_per_well", 1, ["nuclei", "activity", "moa", "attention", "report"]),
    ("embed.batch_size", 32, ["embed", "normalize", "wells", "activity", "moa", "attention", "report"]),
    (
        "ssl.lr",
        1e-4,
        ["train", "embed", "normalize", "wells", "nuclei", "activity", "moa", "attention", "report"],
    ),
    ("control", "compound == 'PBS'", ["normalize", "wells", "activity", "moa", "attention", "report"]),
    ("seed", 1, ["train", "embed", "normalize", "wells", "nuclei", "activity", "moa", "attention", "report"]),
    ("input.simulate.seed", 7, IMAGE_STAGES),
]


@pytest.mark.parametrize(("key", "value", "expected"), CHANGES, ids=[c[0] for c in CHANGES])
def test_a_changed_value_reruns_exactly_its_dependents(tmp_path, key, value, expected):
    raw = _config(tmp_path)
    cfg = resolve(raw)
    _pretend_done(cfg)
    assert _runs(cfg) == []  # nothing changed: everything is skipped
    changed = copy.deepcopy(raw)
    target = changed
    *parents, leaf = key.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = value
    if key == "norm.use":
        changed["norm"]["methods"] = ["none", "mad", "harmony", "fastmnn", "mad_harmony_fov"]
    new = resolve(changed)
    assert _runs(new) == [s for s in IMAGE_STAGES if s in expected]
    first = next(p for p in plan(new) if p.run)
    if key not in ("seed", "input.simulate.seed", "control"):
        assert key.split(".")[-1] in first.reason  # the dry run names the changed key


def _leaves(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict) and v:
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


#: Config keys that must not change any output, and why.
NO_EFFECT = {
    "results": "names the folder itself",
    "threads": "results do not depend on the thread count",
    "preset": "its values are resolved into the sections, which are fingerprinted",
    "checkpoint": "null here: a change makes training disappear (tested separately)",
}


def test_every_config_value_is_read_by_some_stage(tmp_path):
    cfg = resolve(_config(tmp_path))
    base = {p.stage.name: p.fingerprint for p in plan(cfg)}
    for key, value in _leaves(cfg):
        if key.split(".")[0] in NO_EFFECT or key.startswith("input.simulate."):
            continue
        changed = copy.deepcopy(cfg)
        target = changed
        *parents, leaf = key.split(".")
        for part in parents:
            target = target[part]
        target[leaf] = _perturb(value)
        now = {p.stage.name: p.fingerprint for p in plan(changed)}
        assert now != base, f"changing {key} changes no stage's fingerprint"


def _perturb(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, list):
        return [*value, "x"]
    if value is None:
        return 1
    if isinstance(value, dict):
        return {**value, "x": 1}
    raise AssertionError(type(value))


def test_no_checkpoint_and_no_preset_is_refused_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"no checkpoint and no preset: .*preset: paper.*preset: quick"):
        resolve({"results": str(tmp_path), "input": {"manifest": "m.csv"}})
    cfg = resolve({"results": str(tmp_path), "input": {"manifest": "m.csv"}, "preset": "paper"})
    assert cfg["ssl"]["variant"] == "pa+dino+barlow+xb" and cfg["ssl"]["model"] == "vit_small_patch16_224"
    assert cfg["ssl"]["epochs"] == 60 and cfg["ssl"]["lr"] == 1e-3 and cfg["ssl"]["n_local_crops"] == 6
    assert cfg["metrics"]["n_draws"] == 1000 and cfg["moa"]["n_folds"] == 5
    # starting from embeddings needs no model
    assert resolve({"results": str(tmp_path), "input": {"embeddings": "t.h5ad"}})["preset"] is None


# ------------------------------------------------------------------------------- a real run, re-run


def _fov_profiles(path):
    """FOV-level profiles of a small 2-replica screen with two MoAs that move two feature blocks."""
    rng = np.random.default_rng(0)
    rows = []
    compounds = {"a1": "m1", "a2": "m1", "a3": "m1", "b1": "m2", "b2": "m2", "b3": "m2"}
    for rep in ("r1", "r2"):
        plate = f"P{rep}"
        wells = [("DMSO", 0.0, "DMSO")] * 12 + [(c, d, m) for c, m in compounds.items() for d in (1.0, 10.0)]
        for i, (comp, dose, moa) in enumerate(wells):
            for fov in range(2):
                rows.append(
                    {
                        "replica": rep,
                        "plate": plate,
                        "well": f"W{i:02d}",
                        "fov": fov,
                        "timepoint": 24,
                        "compound": comp,
                        "dose": dose,
                        "moa": moa,
                    }
                )
    obs = pd.DataFrame(rows)
    X = rng.normal(size=(len(obs), 16))
    for j, m in enumerate(("m1", "m2")):
        hit = (obs["moa"] == m).to_numpy()
        X[hit, j * 4 : (j + 1) * 4] += 3.0 * (obs.loc[hit, "dose"].to_numpy()[:, None] / 10.0)
    X += (obs["replica"] == "r2").to_numpy()[:, None] * 0.5
    obs.index = [str(i) for i in range(len(obs))]
    adata = ad.AnnData(X=X.astype(np.float32), obs=obs)
    adata.uns["lcd"] = {"level": "fov"}
    adata.write_h5ad(path)


@pytest.mark.slow
def test_rerun_after_a_change_updates_exactly_the_dependent_outputs(tmp_path):
    _fov_profiles(tmp_path / "fov.h5ad")
    raw = {
        "results": str(tmp_path / "res"),
        "input": {"embeddings": str(tmp_path / "fov.h5ad")},
        "norm": {"methods": ["none", "mad"], "use": "mad", "null_size": 50},
        "metrics": {"n_draws": 50, "threshold": 0.8},
        "moa": {"n_folds": 3},
    }
    logs: list[str] = []
    run_pipeline(resolve(raw), log=logs.append)
    first = pd.read_parquet(tmp_path / "res" / "activity.parquet")
    raw["metrics"]["threshold"] = 0.5
    dry: list[str] = []
    run_pipeline(resolve(raw), log=dry.append, dry_run=True)
    assert [line.split(":")[0] for line in dry] == [
        "[skip] normalize",
        "[skip] wells",
        "[run ] activity",
        "[run ] moa",
        "[run ] report",
    ]
    assert "metrics.threshold: 0.8 -> 0.5" in dry[2]
    logs = []
    run_pipeline(resolve(raw), log=logs.append)
    ran = [line.split(":")[0].removeprefix("[run ] ") for line in logs if line.startswith("[run ]")]
    assert ran == ["activity", "moa", "report"]
    second = pd.read_parquet(tmp_path / "res" / "activity.parquet")
    ok = second["status"] != "failed"
    np.testing.assert_array_equal(second.loc[ok, "active"], second.loc[ok, "map_es"] >= 0.5)
    assert second["active"].sum() >= first["active"].sum()
    made = json.loads((tmp_path / "res" / "config.json").read_text())["stages"]
    assert made["activity"]["reads"]["metrics"]["threshold"] == 0.5
    assert made["normalize"]["reads"]["norm.null_size"] == 50


# --------------------------------------------------------------------------- config checked up front

TYPOS = [
    ("ssl", {"lrr": 1e-3}, "ssl.lrr: unknown option; did you mean 'lr'?"),
    ("embed", {"batch_sise": 8}, "embed.batch_sise: unknown option; did you mean 'batch_size'?"),
    ("norm", {"method": ["mad"]}, "norm.method: unknown option; did you mean 'methods'?"),
    ("metrics", {"n_draw": 10}, "metrics.n_draw: unknown option; did you mean 'n_draws'?"),
    ("moa", {"n_fold": 3}, "moa.n_fold: unknown option; did you mean 'n_folds'?"),
    ("attention", {"n_field": 1}, "attention.n_field: unknown option; did you mean 'n_fields'?"),
    (
        "nuclei",
        {"fields_per_wel": 1},
        "nuclei.fields_per_wel: unknown option; did you mean 'fields_per_well'?",
    ),
    ("metrics", {"n_draws": "200"}, "metrics.n_draws: expected int, got str '200'"),
    ("seed", "0", "seed: expected int, got str '0'"),
    ("ssl", {"epochs": 1.5}, "ssl.epochs: expected int, got float 1.5"),
    ("preset", "papr", "preset: 'papr' is not one of ['paper', 'quick']"),
]


@pytest.mark.parametrize(
    ("section", "value", "message"), TYPOS, ids=[f"{t[0]}-{i}" for i, t in enumerate(TYPOS)]
)
def test_a_mistyped_key_is_one_line_exit_2_before_any_stage(tmp_path, section, value, message):
    import yaml
    from lcd_pipeline.cli import app
    from typer.testing import CliRunner

    raw = {"results": "res", "preset": "quick", "input": {"simulate": {"preset": "demo"}}, section: value}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    res = CliRunner().invoke(app, ["run", str(path)])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], res.output
    assert not (tmp_path / "res").exists()  # nothing ran
