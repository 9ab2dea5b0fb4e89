"""Census of lcd-nuclei: ``count`` and ``evaluate``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from census import Case, params, run_case, status_table

PACKAGE = "lcd-nuclei"
COUNT = "count {%s} --model {ckpt} -o {out}/counts.h5ad --device cpu"
EVAL = "evaluate {labels_dir} {%s} --reference-column reference -o {out}/eval.csv"
PICKLE_MARKER = Path("/tmp/lcd-census-pickle-ran")


def _counts(out):
    from lcd_core import read_h5ad

    return read_h5ad(out / "counts.h5ad")


def _counted(n=8):
    def check(out, result):
        adata = _counts(out)
        assert adata.n_obs == n and (adata.obs["nuclei_count"] >= 0).all(), adata.obs

    return check


def _empty_meta_written(out, result):
    """An all-empty metadata column is stored (as missing), not a crash of the h5ad writer."""
    adata = _counts(out)
    assert adata.n_obs == 8 and adata.obs["moa"].isna().all()


def _unicode_counted(out, result):
    adata = _counts(out)
    assert "化合物-α" in set(adata.obs["compound"].astype(str))


def _skipped(row, text):
    def check(out, result):
        adata = _counts(out)
        assert row not in set(adata.obs["manifest_row"]) and adata.n_obs == 7, adata.obs
        failures = adata.uns["lcd_nuclei"]["failures"]
        rows = [int(r) for r in failures["manifest_row"]]
        assert rows == [row] and text in str(failures["error"][0]), failures

    return check


def _inhibition_written(out, result):
    table = status_table(out / "inh.csv", values=("inhibition",))
    assert len(table) == 4, table  # 2 plates x 2 wells


CASES = [
    Case("count-missing", "missing-path", COUNT % "missing", names=("no_such_file.csv",)),
    Case("count-empty", "empty", COUNT % "empty_csv", names=("empty.csv",)),
    Case("count-header", "header-only", COUNT % "manifest_header", names=("manifest.csv", "no rows")),
    Case("count-no_path", "missing-column", COUNT % "manifest_no_path", names=("manifest.csv", "path")),
    Case("count-missing_image", "missing-path", COUNT % "manifest_missing_image", names=("gone.tif",)),
    Case("count-trunc_tiff", "truncated", COUNT % "manifest_trunc_tiff", names=("field3.tif",)),
    Case("count-bits_tiff", "corrupted", COUNT % "manifest_bits_tiff", names=("field3.tif",)),
    Case("count-nan_pixel", "nonfinite", COUNT % "manifest_nan_pixel", names=("field1.tif", "NaN")),
    Case(
        "count-nan_pixel_skip",
        "nonfinite",
        COUNT % "manifest_nan_pixel" + " --on-error skip",
        expect="status",
        check=_skipped(1, "NaN"),
    ),
    Case("count-huge_pixels", "huge-values", COUNT % "manifest_huge_pixels", names=("field1.tif",)),
    Case("count-zero_field", "constant", COUNT % "manifest_zero_field", expect="works", check=_counted()),
    # without a model the confluency comes from the planes' defocus contrast, undefined on an all-zero
    # field (a lamp or camera failure, not a field without cells): named, not counted as 0 % confluent
    Case(
        "count-zero_field-no_model",
        "constant",
        "count {manifest_zero_field} -o {out}/counts.h5ad",
        names=("field1.tif", "median intensity"),
    ),
    Case(
        "count-empty_meta",
        "missing-column",
        COUNT % "manifest_empty_meta",
        expect="works",
        check=_empty_meta_written,
    ),
    Case("count-unicode", "unicode", COUNT % "manifest_unicode", expect="works", check=_unicode_counted),
    Case("count-dup_image", "duplicates", COUNT % "manifest_dup_image", names=("manifest.csv", "row 4")),
    Case("count-two_planes", "duplicates", COUNT % "manifest_two_planes", names=("field5.tif",)),
    Case("count-small_field", "out-of-range", COUNT % "manifest_small_field", names=("field5.tif",)),
    Case(
        "count-ckpt_trunc",
        "truncated",
        "count {manifest} --model {ckpt_trunc} -o {out}/c.h5ad --device cpu",
        names=("ckpt_trunc", "not an lcd checkpoint"),
    ),
    Case(
        "count-ckpt_foreign",
        "foreign-checkpoint",
        "count {manifest} --model {ckpt_foreign} -o {out}/c.h5ad --device cpu",
        names=("ckpt_foreign", "not an lcd checkpoint"),
    ),
    Case(
        "count-weights_pickle",
        "code-checkpoint",
        "count {manifest} --model vit_tiny_patch16_224 --weights {weights_pickle} -o {out}/c.h5ad --device cpu",
        names=("evil_weights.pth", "not an lcd checkpoint"),
    ),
    Case("count-tau", "out-of-range", COUNT % "manifest" + " --tau 5", names=("tau",)),
    Case("count-n_clusters", "out-of-range", COUNT % "manifest" + " --n-clusters 1", names=("n_clusters",)),
    Case("count-polarity", "out-of-range", COUNT % "manifest" + " --polarity grey", names=("grey",)),
    Case("count-min_area", "out-of-range", COUNT % "manifest" + " --min-area -4", names=("min_area",)),
    Case("count-sigma", "out-of-range", COUNT % "manifest" + " --sigma-spatial 0", names=("sigma_spatial",)),
    Case("count-out_csv", "wrong-format", "count {manifest} --model {ckpt} -o {out}/c.csv", names=("c.csv",)),
    Case(
        "count-inhibition_xlsx",
        "wrong-format",
        COUNT % "manifest" + " --inhibition {out}/inh.xlsx",
        names=("inh.xlsx",),
    ),
    Case(
        "count-inhibition",
        "no-controls",
        COUNT % "manifest" + " --inhibition {out}/inh.csv",
        expect="works",
        check=_inhibition_written,
    ),
    Case(
        "count-inhibition_control",
        "missing-column",
        COUNT % "manifest" + " --inhibition {out}/inh.csv --control is_control",
        names=("is_control",),
    ),
    # ------------------------------------------------------------------ calibrate
    Case(
        "calibrate-missing",
        "missing-path",
        "calibrate {missing} --stain-key stain -o {out}",
        names=("no_such_file.csv",),
    ),
    Case(
        "calibrate-no_stain_column",
        "missing-column",
        "calibrate {manifest} --stain-key hoechst -o {out}",
        names=("hoechst",),
    ),
    Case(
        "calibrate-missing_stain_image",
        "missing-path",
        "calibrate {eval_manifest_gone} --stain-key reference -o {out}",
        names=("gone_mask.tif",),
    ),
    # ------------------------------------------------------------------ evaluate
    Case(
        "evaluate-missing_dir",
        "missing-path",
        "evaluate {missing} {eval_manifest} --reference-column reference",
        names=("no_such_file.csv",),
    ),
    Case(
        "evaluate-column",
        "missing-column",
        "evaluate {labels_dir} {eval_manifest} --reference-column truth",
        names=("'truth'",),
    ),
    Case(
        "evaluate-reference",
        "out-of-range",
        EVAL % "eval_manifest" + " --reference masks2",
        names=("masks2",),
    ),
    Case(
        "evaluate-float_labels",
        "corrupted",
        "evaluate {float_labels_dir} {eval_manifest} --reference-column reference",
        names=("row0_labels.tif",),
    ),
    Case("evaluate-missing_reference", "missing-path", EVAL % "eval_manifest_gone", names=("gone_mask.tif",)),
    Case(
        "evaluate-xlsx",
        "wrong-format",
        "evaluate {labels_dir} {eval_manifest} --reference-column reference -o {out}/e.xlsx",
        names=("e.xlsx",),
    ),
]


@pytest.fixture(scope="module")
def app():
    from lcd_nuclei.cli import app

    return app


@pytest.mark.parametrize("case", params(CASES))
def test_cli(case, app, corpus, tmp_path):
    PICKLE_MARKER.unlink(missing_ok=True)
    run_case(case, app, corpus, tmp_path)
    assert not PICKLE_MARKER.exists(), "a pickled object was unpickled (code ran)"


def test_corpus_labels_are_real(corpus):
    """The evaluation corpus uses the DSB reference masks (not made-up labels)."""
    import tifffile

    labels = tifffile.imread(Path(corpus["labels_dir"]) / "row0_labels.tif")
    assert labels.max() > 5 and np.unique(labels).size > 5
    assert pd.read_csv(corpus["eval_manifest"])["reference"].str.endswith("_mask.tif").all()


# ---------------------------------------------------------------------------------- Python API


def _params_tau(f, out):
    from lcd_nuclei import DiscoveryParams

    return DiscoveryParams(tau=float("nan"))


def _count_skip(f, out):
    from lcd_nuclei import count_nuclei

    return count_nuclei(f["manifest_small_field"], f["ckpt"], on_error="skip", device="cpu", progress=False)


def _small_skipped(out, adata):
    assert 5 not in set(adata.obs["manifest_row"]) and adata.n_obs == 7
    failures = adata.uns["lcd_nuclei"]["failures"]
    assert list(failures["manifest_row"]) == ["5"] and "field5.tif" in failures["error"][0], failures


API_CASES = [
    Case("api-params_tau_nan", "out-of-range", _params_tau, names=("tau",)),
    Case("api-count_small_skip", "out-of-range", _count_skip, expect="status", check=_small_skipped),
]


@pytest.mark.parametrize("case", params(API_CASES))
def test_api(case, corpus, tmp_path):
    run_case(case, None, corpus, tmp_path)
