"""Census of lcd-ssl: ``train`` (new runs and resumed ones) and ``export``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from census import Case, params, run_case

PACKAGE = "lcd-ssl"
TRAIN = "train {manifest} -o {out}/run --config {ssl_tiny_json}"
CONFIG = "train {manifest} -o {out}/run --config {%s}"
RESUME = "train {manifest} -o {work}/run --config {ssl_tiny_json}"
EXPORT = "export {%s} -o {out}/ckpt"
PICKLE_MARKER = Path("/tmp/lcd-census-pickle-ran")


def _copy_run(name):
    """Put the corpus run folder ``name`` in {work}/run; its checkpoint must survive the refusal."""

    def prepare(inputs, work):
        shutil.copytree(inputs.path(name), work / "run")
        return [work / "run" / "checkpoint.pt"]

    return prepare


def _trained(out, result):
    assert (out / "run" / "checkpoint.pt").is_file() and (out / "run" / "metrics.jsonl").is_file()


CASES = [
    # ------------------------------------------------------------------ the manifest
    Case(
        "train-missing", "missing-path", TRAIN.replace("{manifest}", "{missing}"), names=("no_such_file.csv",)
    ),
    Case("train-empty", "empty", TRAIN.replace("{manifest}", "{empty_csv}"), names=("empty.csv",)),
    Case("train-header", "header-only", TRAIN.replace("{manifest}", "{manifest_header}"), names=("no rows",)),
    Case(
        "train-nan_pixel",
        "nonfinite",
        TRAIN.replace("{manifest}", "{manifest_nan_pixel}"),
        names=("field1.tif", "NaN"),
    ),
    Case(
        "train-trunc_tiff",
        "truncated",
        TRAIN.replace("{manifest}", "{manifest_trunc_tiff}"),
        names=("field3.tif",),
    ),
    Case(
        "train-missing_image",
        "missing-path",
        TRAIN.replace("{manifest}", "{manifest_missing_image}"),
        names=("gone.tif",),
    ),
    Case(
        "train-unicode",
        "unicode",
        TRAIN.replace("{manifest}", "{manifest_unicode}"),
        expect="works",
        check=_trained,
    ),
    Case(
        "train-empty_meta",
        "missing-column",
        TRAIN.replace("{manifest}", "{manifest_empty_meta}"),
        expect="works",
        check=_trained,
    ),
    # ------------------------------------------------------------------ the config
    Case("train-config_missing", "missing-path", CONFIG % "missing", names=("no_such_file.csv",)),
    Case("train-config_types", "config-type", CONFIG % "ssl_types_json", names=("epochs", "int")),
    Case("train-config_unknown", "config-type", CONFIG % "ssl_unknown_json", names=("epochz",)),
    Case("train-config_model_kwargs", "config-type", CONFIG % "ssl_model_kwargs_json", names=("depthh",)),
    Case("train-config_list", "config-type", CONFIG % "ssl_list_json", names=("ssl_list.json",)),
    Case("train-config_not_json", "corrupted", CONFIG % "ssl_not_json", names=("ssl_not.json", "JSON")),
    Case("train-config_lr", "out-of-range", CONFIG % "ssl_nan_lr_json", names=("lr",)),
    Case(
        "train-set_type",
        "config-type",
        TRAIN + """ --set '{{"n_local_crops":"two"}}'""",
        names=("n_local_crops",),
    ),
    Case("train-set_json", "config-type", TRAIN + " --set {{oops", names=("--set",)),
    Case(
        "train-set_batch_chunks",
        "out-of-range",
        TRAIN + """ --set '{{"batch_chunks":3}}'""",
        names=("batch_chunks",),
    ),
    Case("train-variant", "out-of-range", TRAIN + " --variant simclr", names=("simclr",)),
    Case("train-model", "missing-path", TRAIN + " --model resnet50", names=("resnet50",)),
    Case("train-planes", "out-of-range", TRAIN + " --planes 0,5", names=("5",)),
    Case("train-batch_size", "out-of-range", TRAIN + " --batch-size 0", names=("batch_size",)),
    Case("train-crop", "out-of-range", TRAIN + " --global-crop-size 12", names=("crop",)),
    # ------------------------------------------------------------------ resuming a run folder
    Case(
        "train-resume_plain",
        "foreign-checkpoint",
        RESUME,
        names=("checkpoint.pt", "not an lcd checkpoint"),
        prepare=_copy_run("ssl_run_plain"),
    ),
    Case(
        "train-resume_trunc",
        "truncated",
        RESUME,
        names=("checkpoint.pt", "not an lcd checkpoint"),
        prepare=_copy_run("ssl_run_trunc"),
    ),
    Case(
        "train-resume_code",
        "code-checkpoint",
        RESUME,
        names=("checkpoint.pt", "not an lcd checkpoint"),
        prepare=_copy_run("ssl_run_code"),
    ),
    Case(
        "train-resume_foreign",
        "foreign-checkpoint",
        RESUME,
        names=("checkpoint.pt", "dinov2"),
        prepare=_copy_run("ssl_run_foreign"),
    ),
    Case(
        "train-resume_empty",
        "empty",
        RESUME,
        names=("checkpoint.pt", "not an lcd checkpoint"),
        prepare=_copy_run("ssl_run_empty"),
    ),
    Case(
        "train-resume_other_config",
        "config-type",
        RESUME + " --lr 0.5",
        names=("checkpoint.pt", "lr"),
        prepare=_copy_run("ssl_run"),
    ),
    # ------------------------------------------------------------------ export
    Case("export-missing", "missing-path", EXPORT % "missing", names=("no_such_file.csv",)),
    Case("export-no_checkpoint", "missing-path", EXPORT % "folder_csv", names=("a_folder.csv",)),
    Case(
        "export-code",
        "code-checkpoint",
        EXPORT % "ssl_run_code",
        names=("checkpoint.pt", "not an lcd checkpoint"),
    ),
    Case(
        "export-trunc",
        "truncated",
        EXPORT % "ssl_run_trunc",
        names=("checkpoint.pt", "not an lcd checkpoint"),
    ),
    Case("export-plain", "foreign-checkpoint", EXPORT % "ssl_run_plain", names=("checkpoint.pt",)),
    Case("export-which", "out-of-range", EXPORT % "ssl_run" + " --which ema", names=("ema",)),
]


@pytest.fixture(scope="module")
def app():
    from lcd_ssl.cli import app

    return app


@pytest.mark.parametrize("case", params(CASES))
def test_cli(case, app, corpus, tmp_path):
    PICKLE_MARKER.unlink(missing_ok=True)
    run_case(case, app, corpus, tmp_path)
    assert not PICKLE_MARKER.exists(), "a pickled object was unpickled (code ran)"


# ---------------------------------------------------------------------------------- Python API


def _crop_patch(f, out):
    from lcd_ssl import TrainConfig

    return TrainConfig(model_kwargs={"patch_size": 8}, global_crop_size=36, local_crop_size=16).validate()


def _load_code_state(f, out):
    from lcd_ssl.checkpoint import load_state

    return load_state(f.path("ssl_run_code") / "checkpoint.pt")


def _from_dict_unknown(f, out):
    from lcd_ssl import TrainConfig

    return TrainConfig.from_dict({"epochs": 1, "lr_max": 0.1})


def _threads(f, out):
    from lcd_ssl import TrainConfig

    return TrainConfig(threads=0).validate()


API_CASES = [
    Case("api-crop_patch", "out-of-range", _crop_patch, names=("global_crop_size", "patch size 8")),
    Case(
        "api-load_code_state",
        "code-checkpoint",
        _load_code_state,
        names=("checkpoint.pt", "not an lcd checkpoint"),
    ),
    Case("api-from_dict_unknown", "config-type", _from_dict_unknown, names=("lr_max",)),
    Case("api-threads", "out-of-range", _threads, names=("threads",)),
]


@pytest.mark.parametrize("case", params(API_CASES))
def test_api(case, corpus, tmp_path):
    PICKLE_MARKER.unlink(missing_ok=True)
    run_case(case, None, corpus, tmp_path)
    assert not PICKLE_MARKER.exists()
