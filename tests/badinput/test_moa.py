"""Census of lcd-moa: ``cv``, ``fit``, ``predict``, ``compare``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from census import Case, params, run_case, status_table

PACKAGE = "lcd-moa"
CV = "cv {%s} -o {out}/cv --activity {activity_csv} --n-folds 2 --no-plot"
FIT = "fit {%s} -o {out}/model --activity {activity_csv}"
PREDICT = "predict {screen_csv} --model {%s} -o {out}/pred --no-plot"
COMPARE = "compare {%s} {predictions_parquet} -o {out}/mcnemar.csv"
PICKLE_MARKER = Path("/tmp/lcd-census-pickle-ran")


def _cv_ok(out, result):
    conditions = status_table(out / "cv" / "conditions.parquet", statuses=("ok", "skipped"))
    assert (conditions["status"] == "ok").any(), conditions
    predictions = pd.read_parquet(out / "cv" / "predictions.parquet")
    assert len(predictions) > 0


def _cv_unicode(out, result):
    _cv_ok(out, result)
    predictions = pd.read_parquet(out / "cv" / "predictions.parquet")
    assert {"ß-Lapachon", "化合物-1"} <= set(predictions["compound"]), set(predictions["compound"])


def _no_pickle_ran(out, result):
    assert not PICKLE_MARKER.exists(), "an object in model.npz was unpickled"


CASES = [
    # ------------------------------------------------------------------ cv: files
    Case("cv-missing", "missing-path", CV % "missing", names=("no_such_file.csv",)),
    Case("cv-folder", "directory", CV % "folder_h5ad", names=("a_folder.h5ad",)),
    Case("cv-csv_as_h5ad", "wrong-format", CV % "csv_named_h5ad", names=("csv_text.h5ad",)),
    Case("cv-empty_h5ad", "empty", CV % "empty_h5ad", names=("empty.h5ad",)),
    Case("cv-trunc_h5ad", "truncated", CV % "trunc_h5ad", names=("truncated.h5ad",)),
    Case("cv-flipped_h5ad", "corrupted", CV % "flipped_h5ad", names=("flipped.h5ad",)),
    Case("cv-header_csv", "header-only", CV % "header_csv", names=("header_only.csv", "no rows")),
    Case("cv-header_h5ad", "header-only", CV % "header_h5ad", names=("header_only.h5ad", "no rows")),
    Case(
        "cv-activity_missing",
        "missing-path",
        "cv {screen_csv} -o {out}/cv --activity {missing} --n-folds 2 --no-plot",
        names=("no_such_file.csv",),
    ),
    Case(
        "cv-activity_empty",
        "empty",
        "cv {screen_csv} -o {out}/cv --activity {empty_csv} --n-folds 2 --no-plot",
        names=("empty.csv",),
    ),
    Case(
        "cv-activity_columns",
        "missing-column",
        "cv {screen_csv} -o {out}/cv --activity {counts_csv} --n-folds 2 --no-plot",
        names=("counts.csv", "active"),
    ),
    # ------------------------------------------------------------------ cv: values
    Case("cv-moa_key", "missing-column", CV % "screen_csv" + " --moa-key MoA", names=("'MoA'",)),
    Case("cv-nan", "nonfinite", CV % "nan_csv", names=("nan.csv", "'5'")),
    Case("cv-dup_columns", "duplicates", CV % "dup_columns_csv", names=("dup_columns.csv",)),
    Case("cv-empty_moa", "missing-column", CV % "empty_moa_csv", names=("no labeled compound",)),
    Case("cv-no_controls", "no-controls", CV % "no_dmso_csv", names=("no_dmso.csv", "DMSO")),
    Case(
        "cv-unicode",
        "unicode",
        "cv {unicode_csv} -o {out}/cv --n-folds 2 --no-plot",
        expect="works",
        check=_cv_unicode,
    ),
    Case("cv-constant", "constant", CV % "constant_csv", expect="works", check=_cv_ok),
    Case(
        "cv-timepoint_text",
        "join-mismatch",
        "cv {screen_csv} -o {out}/cv --activity {activity_tp_text_csv} --n-folds 2 --no-plot",
        names=("activity_tp_text.csv", "timepoint", "24h"),
    ),
    Case(
        "cv-dose_off",
        "join-mismatch",
        "cv {screen_csv} -o {out}/cv --activity {activity_dose_off_csv} --n-folds 2 --no-plot",
        names=("activity_dose_off.csv", "dose", "1.0000001", "nearly equals"),
    ),
    Case(
        "cv-activity_dup",
        "duplicates",
        "cv {screen_csv} -o {out}/cv --activity {activity_dup_csv} --n-folds 2 --no-plot",
        names=("activity_dup.csv", "duplicated"),
    ),
    # ------------------------------------------------------------------ cv: options
    Case("cv-n_folds_1", "out-of-range", CV % "screen_csv" + " --n-folds 1", names=("n_folds",)),
    Case("cv-n_folds_5", "out-of-range", CV % "screen_csv" + " --n-folds 5", names=("n_folds=5",)),
    Case("cv-max_iter_0", "out-of-range", CV % "screen_csv" + " --max-iter 0", names=("max_iter",)),
    Case("cv-C_negative", "out-of-range", CV % "screen_csv" + " --C -1", names=("C",)),
    Case("cv-weights", "out-of-range", CV % "screen_csv" + " --weights median", names=("weights", "median")),
    Case("cv-top_k_0", "out-of-range", CV % "screen_csv" + " --top-k 0", names=("top_k",)),
    Case("cv-dose_order", "config-type", CV % "screen_csv" + " --dose-order big", names=("--dose-order",)),
    Case(
        "cv-condition_typo",
        "missing-column",
        CV % "screen_csv" + " --condition-keys timepoint,dos",
        names=("'dos'",),
    ),
    # ------------------------------------------------------------------ fit / predict
    Case(
        "fit-out_is_file",
        "directory",
        "fit {screen_csv} -o {activity_csv} --activity {activity_csv}",
        names=("activity.csv",),
    ),
    Case("fit-header_parquet", "header-only", FIT % "header_parquet", names=("header_only.parquet",)),
    Case("predict-model_missing", "missing-path", PREDICT % "missing", names=("no_such_file.csv",)),
    Case("predict-model_trunc_npz", "truncated", PREDICT % "moa_model_trunc_npz", names=("model.npz",)),
    Case("predict-model_no_json", "missing-path", PREDICT % "moa_model_no_json", names=("model.json",)),
    Case("predict-model_bad_json", "corrupted", PREDICT % "moa_model_bad_json", names=("model.json",)),
    Case(
        "predict-model_foreign",
        "foreign-checkpoint",
        PREDICT % "moa_model_foreign",
        names=("model.json", "format"),
    ),
    Case(
        "predict-model_no_features",
        "corrupted",
        PREDICT % "moa_model_no_features",
        names=("model.json", "feature_names"),
    ),
    Case(
        "predict-model_bad_spec",
        "config-type",
        PREDICT % "moa_model_bad_spec",
        names=("model.json", "colour"),
    ),
    Case(
        "predict-model_pickle",
        "code-checkpoint",
        PREDICT % "moa_model_pickle_npz",
        names=("model.npz",),
    ),
    Case(
        "predict-use_rep",
        "missing-column",
        "predict {screen_h5ad} --model {moa_model} -o {out}/pred --no-plot --use-rep X_pca",
        names=("X_pca",),
    ),
    Case(
        "predict-missing_features",
        "missing-column",
        "predict {fewer_features_csv} --model {moa_model} -o {out}/pred --no-plot",
        names=("fewer_features.csv", "Cells_"),
    ),
    # ------------------------------------------------------------------ compare
    Case("compare-missing", "missing-path", COMPARE % "missing", names=("no_such_file.csv",)),
    Case("compare-empty", "empty", COMPARE % "empty_parquet", names=("empty.parquet",)),
    Case("compare-columns", "missing-column", COMPARE % "screen_csv", names=("screen.csv",)),
    Case(
        "compare-method",
        "missing-column",
        "compare {predictions_parquet} {predictions_parquet} --method-a nothing",
        names=("nothing",),
    ),
    Case(
        "compare-xlsx_out",
        "wrong-format",
        "compare {predictions_parquet} {predictions_parquet} -o {out}/m.xlsx",
        names=("m.xlsx",),
    ),
]


@pytest.fixture(scope="module")
def app():
    from lcd_moa.cli import app

    return app


@pytest.mark.parametrize("case", params(CASES))
def test_cli(case, app, corpus, tmp_path):
    PICKLE_MARKER.unlink(missing_ok=True)
    run_case(case, app, corpus, tmp_path)
    assert not PICKLE_MARKER.exists(), "a pickled object was unpickled (code ran)"


# ---------------------------------------------------------------------------------- Python API


def _cv_frame_tp_text(f, out):
    from lcd_moa import cross_validate

    return cross_validate(pd.read_csv(f["screen_csv"]), f["activity_tp_text_csv"], n_folds=2)


def _load_trunc(f, out):
    from lcd_moa import MoAModel

    return MoAModel.load(f["moa_model_trunc_npz"])


def _spec_typo(f, out):
    from lcd_moa import MoASpec

    return MoASpec.from_dict({"compund_key": "compound"}, section="moa")


def _predict_other_features(f, out):
    from lcd_moa import MoAModel, predict_moa

    return predict_moa(MoAModel.load(f["moa_model"]), f["fewer_features_csv"])


API_CASES = [
    Case("api-cv_timepoint_text", "join-mismatch", _cv_frame_tp_text, names=("activity_tp_text.csv", "24h")),
    Case("api-model_trunc", "truncated", _load_trunc, names=("model.npz",)),
    Case("api-spec_typo", "config-type", _spec_typo, names=("compund_key",)),
    Case("api-predict_features", "missing-column", _predict_other_features, names=("fewer_features.csv",)),
]


@pytest.mark.parametrize("case", params(API_CASES))
def test_api(case, corpus, tmp_path):
    PICKLE_MARKER.unlink(missing_ok=True)
    run_case(case, None, corpus, tmp_path)
