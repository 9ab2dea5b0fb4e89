"""Census of lcd-pipeline: ``lcd run`` configs, ``lcd simulate``, ``lcd init``, ``lcd report``, ``lcd demo``.

Configs are written per case into ``{work}`` with ``results`` in ``{out}``: a config error must be
refused before any stage runs, so nothing may appear in ``{out}``. Errors of a stage (a damaged input
file) are named the same way; their results folder is in ``{work}``.
"""

from __future__ import annotations

import copy

import pytest
import yaml
from census import Case, params, run_case

PACKAGE = "lcd-pipeline"
RUN = "run {work}/config.yaml"

BASE = {"preset": "quick", "input": {"simulate": {"preset": "demo"}}}


def config(
    changes: dict | None = None, *, drop: tuple[str, ...] = (), results: str = "out", raw: str | None = None
):
    """``prepare`` writing ``{work}/config.yaml``: the quick simulated run changed by ``changes``."""

    def prepare(inputs, work):
        path = work / "config.yaml"
        if raw is not None:
            path.write_text(raw)
            return []
        cfg = {**copy.deepcopy(BASE), "results": str((inputs.out if results == "out" else work) / "results")}
        for key in drop:
            cfg.pop(key, None)
        for key, value in (changes or {}).items():
            if callable(value):
                value = value(inputs)
            target = cfg
            *parents, leaf = key.split(".")
            for part in parents:
                target = target.setdefault(part, {})
            target[leaf] = value
        path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
        return []

    return prepare


def embeddings(name: str):
    return {"input": lambda inputs: {"embeddings": inputs[name]}}


CASES = [
    # ------------------------------------------------------------------ compare / ablate
    Case("compare-missing", "missing-path", "compare a={missing} -o {out}/cmp", names=("no_such_file.csv",)),
    Case(
        "compare-header", "header-only", "compare a={manifest_header} -o {out}/cmp", names=("manifest.csv",)
    ),
    Case("ablate-variant", "out-of-range", "ablate -o {out}/abl --variants nosuch", names=("nosuch",)),
    Case(
        "ablate-steps", "out-of-range", "ablate -o {out}/abl --steps-per-epoch 0", names=("steps_per_epoch",)
    ),
    Case("ablate-n_draws", "out-of-range", "ablate -o {out}/abl --n-draws 1", names=("n_draws",)),
    # ------------------------------------------------------------------ the config file
    Case("run-config_missing", "missing-path", "run {missing}", names=("no_such_file.csv",)),
    Case("run-config_folder", "directory", "run {folder_csv}", names=("a_folder.csv", "folder")),
    Case(
        "run-yaml_syntax", "corrupted", RUN, names=("config.yaml", "YAML"), prepare=config(raw="seed: [0\n")
    ),
    Case(
        "run-yaml_list",
        "config-type",
        RUN,
        names=("config.yaml", "mapping"),
        prepare=config(raw="- 1\n- 2\n"),
    ),
    Case("run-empty_yaml", "empty", RUN, names=("config.yaml", "input"), prepare=config(raw="")),
    # ------------------------------------------------------------------ types and keys
    Case(
        "run-n_draws_text",
        "config-type",
        RUN,
        names=("metrics.n_draws", "'200'"),
        prepare=config({"metrics.n_draws": "200"}),
    ),
    Case("run-seed_text", "config-type", RUN, names=("seed", "'0'"), prepare=config({"seed": "0"})),
    Case("run-threads_text", "config-type", RUN, names=("threads",), prepare=config({"threads": "two"})),
    Case(
        "run-unknown_top", "config-type", RUN, names=("metric",), prepare=config({"metric": {"n_draws": 10}})
    ),
    Case("run-ssl_unknown", "config-type", RUN, names=("ssl.epochz",), prepare=config({"ssl.epochz": 3})),
    Case(
        "run-ssl_model_kwargs",
        "config-type",
        RUN,
        names=("ssl.model_kwargs", "depthh"),
        prepare=config({"ssl.model_kwargs": {"depthh": 2}}),
    ),
    Case(
        "run-embed_preprocessing",
        "config-type",
        RUN,
        names=("embed.preprocessing", "plnes"),
        prepare=config({"embed.preprocessing": {"plnes": [0]}}),
    ),
    Case(
        "run-norm_unknown", "config-type", RUN, names=("norm.method",), prepare=config({"norm.method": "mad"})
    ),
    Case(
        "run-norm_methods",
        "config-type",
        RUN,
        names=("combat",),
        prepare=config({"norm.methods": ["none", "combat"]}),
    ),
    Case(
        "run-norm_use",
        "config-type",
        RUN,
        names=("norm.use",),
        prepare=config({"norm.use": "harmony", "norm.methods": ["none", "mad"]}),
    ),
    Case("run-moa_unknown", "config-type", RUN, names=("moa.nfolds",), prepare=config({"moa.nfolds": 3})),
    Case("run-moa_type", "config-type", RUN, names=("moa.n_folds",), prepare=config({"moa.n_folds": "3"})),
    Case(
        "run-nuclei_type",
        "config-type",
        RUN,
        names=("nuclei.fields_per_well",),
        prepare=config({"nuclei.fields_per_well": "all"}),
    ),
    Case(
        "run-attention_unknown",
        "config-type",
        RUN,
        names=("attention.fields",),
        prepare=config({"attention.fields": 2}),
    ),
    Case("run-section_list", "config-type", RUN, names=("metrics",), prepare=config({"metrics": [1, 2]})),
    Case("run-preset", "config-type", RUN, names=("preset", "fast"), prepare=config({"preset": "fast"})),
    Case("run-input_two", "config-type", RUN, names=("input",), prepare=config({"input.manifest": "m.csv"})),
    Case("run-input_none", "config-type", RUN, names=("input",), prepare=config(drop=("input",))),
    Case(
        "run-simulate_unknown",
        "config-type",
        RUN,
        names=("input.simulate", "replicaz"),
        prepare=config({"input.simulate.replicaz": 2}),
    ),
    Case(
        "run-opera_unknown",
        "config-type",
        RUN,
        names=("input.opera.chanel",),
        prepare=config({"input": {"opera": {"image_dirs": ["x"], "chanel": 1}}}),
    ),
    # ------------------------------------------------------------------ out-of-range values
    Case("run-n_draws_0", "out-of-range", RUN, names=("n_draws",), prepare=config({"metrics.n_draws": 0})),
    Case("run-n_folds_1", "out-of-range", RUN, names=("n_folds",), prepare=config({"moa.n_folds": 1})),
    Case("run-threads_0", "out-of-range", RUN, names=("threads",), prepare=config({"threads": 0})),
    Case("run-seed_negative", "out-of-range", RUN, names=("seed",), prepare=config({"seed": -1})),
    Case(
        "run-null_size", "out-of-range", RUN, names=("norm.null_size",), prepare=config({"norm.null_size": 0})
    ),
    Case(
        "run-fields_per_well",
        "out-of-range",
        RUN,
        names=("nuclei.fields_per_well",),
        prepare=config({"nuclei.fields_per_well": 0}),
    ),
    # ------------------------------------------------------------------ paths in the config
    Case(
        "run-manifest_missing",
        "missing-path",
        RUN,
        names=("gone.csv",),
        prepare=config({"input": {"manifest": "gone.csv"}}),
    ),
    Case(
        "run-checkpoint_missing",
        "missing-path",
        RUN,
        names=("no_model",),
        prepare=config({"checkpoint": "no_model"}),
    ),
    Case(
        "run-checkpoint_foreign",
        "foreign-checkpoint",
        RUN,
        names=("ckpt_foreign", "not an lcd checkpoint"),
        prepare=config(
            {
                "checkpoint": lambda inputs: inputs["ckpt_foreign"],
                "input": lambda inputs: {"manifest": inputs["manifest"]},
            }
        ),
    ),
    Case(
        "run-embeddings_missing",
        "missing-path",
        RUN,
        names=("no_such_file.h5ad",),
        prepare=config(embeddings("missing_h5ad")),
    ),
    Case(
        "run-embeddings_csv",
        "wrong-format",
        RUN,
        names=("csv_text.h5ad",),
        prepare=config(embeddings("csv_named_h5ad"), results="work"),
    ),
    Case(
        "run-embeddings_trunc",
        "truncated",
        RUN,
        names=("truncated.h5ad",),
        prepare=config(embeddings("trunc_h5ad"), results="work"),
    ),
    Case(
        "run-embeddings_flipped",
        "corrupted",
        RUN,
        names=("flipped.h5ad",),
        prepare=config(embeddings("flipped_h5ad"), results="work"),
    ),
    Case(
        "run-results_is_file",
        "directory",
        RUN,
        names=("results",),
        prepare=config({"results": lambda inputs: inputs["screen_csv"]}),
    ),
    Case(
        "run-stop_after",
        "out-of-range",
        RUN + " --stop-after embedding",
        names=("embedding",),
        prepare=config(),
    ),
    # ------------------------------------------------------------------ other commands
    Case("simulate-preset", "out-of-range", "simulate {out}/sim --preset huge", names=("huge",)),
    Case("simulate-image_size", "out-of-range", "simulate {out}/sim --image-size 8", names=("image_size",)),
    Case("simulate-exists", "directory", "simulate {folder_csv}", names=("a_folder.csv",)),
    Case(
        "init-opera_missing",
        "missing-path",
        "init {out}/c.yaml --from-opera {missing}",
        names=("no_such_file.csv",),
    ),
    Case(
        "init-opera_empty",
        "missing-path",
        "init {out}/c.yaml --from-opera {folder_csv}",
        names=("a_folder.csv",),
    ),
    Case("init-exists", "directory", "init {screen_csv} --from-opera {folder_csv}", names=("screen.csv",)),
    Case(
        "init-preset",
        "out-of-range",
        "init {out}/c.yaml --from-opera {folder_csv} --preset fast",
        names=("fast",),
    ),
    Case("report-missing", "missing-path", "report {missing}", names=("no_such_file.csv",)),
    Case("report-not_results", "missing-path", "report {folder_csv}", names=("a_folder.csv",)),
    Case(
        "demo-stop_after", "out-of-range", "demo -o {out}/demo --stop-after embedding", names=("embedding",)
    ),
]


@pytest.fixture(scope="module")
def app():
    from lcd_pipeline.cli import app

    return app


@pytest.mark.parametrize("case", params(CASES))
def test_cli(case, app, corpus, tmp_path):
    run_case(case, app, corpus, tmp_path)


# ---------------------------------------------------------------------------------- Python API


def _resolve(changes):
    def call(f, out):
        from lcd_pipeline.config import resolve

        return resolve({**copy.deepcopy(BASE), "results": str(out / "results"), **changes})

    return call


def _run_missing_manifest(f, out):
    from lcd_pipeline.config import resolve
    from lcd_pipeline.engine import run_pipeline

    cfg = resolve({"results": str(out / "results"), "preset": "quick", "input": {"manifest": f["missing"]}})
    return run_pipeline(cfg, log=lambda line: None)


API_CASES = [
    Case(
        "api-resolve_crop",
        "out-of-range",
        _resolve({"ssl": {"global_crop_size": 50}}),
        names=("ssl.global_crop_size",),
    ),
    Case("api-resolve_threads", "out-of-range", _resolve({"ssl": {"threads": 0}}), names=("ssl.threads",)),
    Case(
        "api-resolve_batch_chunks",
        "out-of-range",
        _resolve({"ssl": {"batch_chunks": 3}}),
        names=("ssl.batch_chunks",),
    ),
    Case(
        "api-run_missing_manifest",
        "missing-path",
        _run_missing_manifest,
        names=("input.manifest", "no_such_file.csv"),
    ),
]


@pytest.mark.parametrize("case", params(API_CASES))
def test_api(case, corpus, tmp_path):
    run_case(case, None, corpus, tmp_path)
