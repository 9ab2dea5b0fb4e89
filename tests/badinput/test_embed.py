"""Census of lcd-embed: ``manifest``, ``embed``, ``attention``, ``from-table``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from census import Case, params, run_case

PACKAGE = "lcd-embed"
EMBED = "embed {%s} --model {ckpt} -o {out}/emb.h5ad --workers 0 --device cpu --no-progress"
SKIP = EMBED + " --on-error skip"
ATT = "attention {%s} --model {ckpt} -o {out}/att --device cpu"
TABLE = "from-table {%s} -o {out}/t.h5ad"
PICKLE_MARKER = Path("/tmp/lcd-census-pickle-ran")


def _emb(out):
    from lcd_core import read_h5ad

    return read_h5ad(out / "emb.h5ad")


def _embedded(n_fields=8):
    def check(out, result):
        adata = _emb(out)
        assert adata.obs["manifest_row"].nunique() == n_fields and np.isfinite(adata.X).all(), adata

    return check


def _skipped(row, text):
    """``--on-error skip``: the field is left out and recorded (uns and <out>.failures.csv)."""

    def check(out, result):
        adata = _emb(out)
        assert row not in set(adata.obs["manifest_row"]) and adata.obs["manifest_row"].nunique() == 7
        failures = pd.read_csv(out / "emb.failures.csv")
        assert failures["manifest_row"].tolist() == [row], failures
        assert text in failures["error"].iloc[0], failures["error"].iloc[0]
        assert list(adata.uns["lcd_embed"]["failures"]["manifest_row"]) == [row]

    return check


def _unicode_embedded(out, result):
    adata = _emb(out)
    assert "化合物-α" in set(adata.obs["compound"].astype(str))
    assert np.isfinite(adata.X).all()


def _zero_field_embedded(out, result):
    """An all-black field is a valid (empty) field: embedded, finite, and not every field's twin."""
    adata = _emb(out)
    assert adata.obs["manifest_row"].nunique() == 8 and np.isfinite(adata.X).all()


def _table_ok(out, result):
    from lcd_core import read_h5ad

    adata = read_h5ad(out / "t.h5ad")
    assert adata.n_obs == 320 and np.isfinite(adata.X).all()


def _table_dropped(out, result):
    from lcd_core import read_h5ad

    adata = read_h5ad(out / "t.h5ad")
    assert adata.n_vars == 22 and np.isfinite(adata.X).all(), adata  # the NaN and the inf features dropped


CASES = [
    # ------------------------------------------------------------------ embed: the manifest
    Case("embed-missing", "missing-path", EMBED % "missing", names=("no_such_file.csv",)),
    Case("embed-folder", "directory", EMBED % "manifest_folder", names=("manifest",)),
    Case("embed-empty", "empty", EMBED % "empty_csv", names=("empty.csv",)),
    Case("embed-header", "header-only", EMBED % "manifest_header", names=("manifest.csv", "no rows")),
    Case(
        "embed-no_path_column", "missing-column", EMBED % "manifest_no_path", names=("manifest.csv", "path")
    ),
    Case("embed-xlsx", "wrong-format", EMBED % "xlsx", names=("screen.xlsx",)),
    Case(
        "embed-out_csv",
        "wrong-format",
        "embed {manifest} --model {ckpt} -o {out}/emb.csv --workers 0 --device cpu",
        names=("emb.csv",),
    ),
    Case("embed-dup_image", "duplicates", EMBED % "manifest_dup_image", names=("manifest.csv", "row 4")),
    Case("embed-dup_well", "duplicates", EMBED % "manifest_dup_well", names=("manifest.csv", "row 1")),
    Case(
        "embed-empty_meta", "missing-column", EMBED % "manifest_empty_meta", expect="works", check=_embedded()
    ),
    Case("embed-unicode", "unicode", EMBED % "manifest_unicode", expect="works", check=_unicode_embedded),
    # ------------------------------------------------------------------ embed: the images
    Case("embed-missing_image", "missing-path", EMBED % "manifest_missing_image", names=("gone.tif",)),
    Case("embed-trunc_tiff", "truncated", EMBED % "manifest_trunc_tiff", names=("field3.tif",)),
    Case("embed-bits_tiff", "corrupted", EMBED % "manifest_bits_tiff", names=("field3.tif",)),
    Case("embed-width_tiff", "corrupted", EMBED % "manifest_width_tiff", names=("field3.tif",)),
    Case("embed-nan_pixel", "nonfinite", EMBED % "manifest_nan_pixel", names=("field1.tif", "NaN")),
    Case(
        "embed-nan_pixel_skip",
        "nonfinite",
        SKIP % "manifest_nan_pixel",
        expect="status",
        check=_skipped(1, "NaN"),
    ),
    Case("embed-huge_pixels", "huge-values", EMBED % "manifest_huge_pixels", names=("field1.tif", "float32")),
    Case(
        "embed-zero_field",
        "constant",
        EMBED % "manifest_zero_field",
        expect="works",
        check=_zero_field_embedded,
    ),
    Case("embed-two_planes", "duplicates", EMBED % "manifest_two_planes", names=("field5.tif", "2 planes")),
    Case(
        "embed-two_planes_skip",
        "duplicates",
        SKIP % "manifest_two_planes",
        expect="status",
        check=_skipped(5, "2 planes"),
    ),
    Case("embed-small_field", "out-of-range", EMBED % "manifest_small_field", names=("field5.tif",)),
    # ------------------------------------------------------------------ embed: models
    Case(
        "embed-ckpt_missing",
        "missing-path",
        "embed {manifest} --model {missing} -o {out}/e.h5ad --workers 0 --device cpu",
        names=("no_such_file.csv",),
    ),
    Case(
        "embed-ckpt_file",
        "directory",
        "embed {manifest} --model {screen_csv} -o {out}/e.h5ad --workers 0 --device cpu",
        names=("screen.csv", "not an lcd checkpoint"),
    ),
    Case(
        "embed-ckpt_no_config",
        "foreign-checkpoint",
        "embed {manifest} --model {ckpt_no_config} -o {out}/e.h5ad --workers 0 --device cpu",
        names=("ckpt_no_config", "not an lcd checkpoint", "config.json"),
    ),
    Case(
        "embed-ckpt_trunc",
        "truncated",
        "embed {manifest} --model {ckpt_trunc} -o {out}/e.h5ad --workers 0 --device cpu",
        names=("ckpt_trunc", "not an lcd checkpoint", "truncated"),
    ),
    Case(
        "embed-ckpt_bad_json",
        "corrupted",
        "embed {manifest} --model {ckpt_bad_json} -o {out}/e.h5ad --workers 0 --device cpu",
        names=("ckpt_bad_json", "not an lcd checkpoint"),
    ),
    Case(
        "embed-ckpt_foreign",
        "foreign-checkpoint",
        "embed {manifest} --model {ckpt_foreign} -o {out}/e.h5ad --workers 0 --device cpu",
        names=("ckpt_foreign", "not an lcd checkpoint"),
    ),
    Case(
        "embed-ckpt_wrong_dim",
        "foreign-checkpoint",
        "embed {manifest} --model {ckpt_wrong_dim} -o {out}/e.h5ad --workers 0 --device cpu",
        names=("ckpt_wrong_dim",),
    ),
    Case(
        "embed-ckpt_wrong_type",
        "config-type",
        "embed {manifest} --model {ckpt_wrong_type} -o {out}/e.h5ad --workers 0 --device cpu",
        names=("ckpt_wrong_type", "img_size"),
    ),
    Case(
        "embed-ckpt_odd",
        "out-of-range",
        "embed {manifest} --model {ckpt_odd} -o {out}/e.h5ad --workers 0 --device cpu",
        names=("ckpt_odd",),
    ),
    Case(
        "embed-weights_pickle",
        "code-checkpoint",
        "embed {manifest} --model vit_tiny_patch16_224 --weights {weights_pickle} -o {out}/e.h5ad --workers 0 "
        "--device cpu",
        names=("evil_weights.pth", "not an lcd checkpoint"),
    ),
    Case(
        "embed-weights_text",
        "corrupted",
        "embed {manifest} --model vit_tiny_patch16_224 --weights {weights_text} -o {out}/e.h5ad --workers 0 "
        "--device cpu",
        names=("not_weights.pth", "not an lcd checkpoint"),
    ),
    Case(
        "embed-weights_foreign",
        "foreign-checkpoint",
        "embed {manifest} --model vit_tiny_patch16_224 --weights {weights_foreign} -o {out}/e.h5ad --workers 0 "
        "--device cpu",
        names=("resnet_like.pth",),
    ),
    Case(
        "embed-timm_typo",
        "missing-path",
        "embed {manifest} --model vit_tiny_patch16_2244 -o {out}/e.h5ad --workers 0 --device cpu",
        names=("vit_tiny_patch16_2244",),
    ),
    # ------------------------------------------------------------------ embed: options
    Case("embed-planes", "out-of-range", EMBED % "manifest" + " --planes 0,7", names=("plane 7",)),
    Case("embed-low_high", "out-of-range", EMBED % "manifest" + " --low 90 --high 10", names=("low",)),
    Case(
        "embed-normalization",
        "out-of-range",
        EMBED % "manifest" + " --normalization zscore",
        names=("zscore",),
    ),
    Case("embed-pooling", "out-of-range", EMBED % "manifest" + " --pooling max", names=("max",)),
    Case("embed-batch_size", "out-of-range", EMBED % "manifest" + " --batch-size 0", names=("batch_size",)),
    Case("embed-on_error", "out-of-range", EMBED % "manifest" + " --on-error ignore", names=("ignore",)),
    Case("embed-downscale", "out-of-range", EMBED % "manifest" + " --downscale 0", names=("downscale",)),
    Case("embed-stride", "out-of-range", EMBED % "manifest" + " --stride 0", names=("stride",)),
    Case("embed-device", "out-of-range", EMBED % "manifest" + " --device tpu", names=("tpu",)),
    Case("embed-shard_size", "out-of-range", EMBED % "manifest" + " --shard-size 0", names=("shard_size",)),
    # ------------------------------------------------------------------ attention
    Case("attention-missing", "missing-path", ATT % "missing", names=("no_such_file.csv",)),
    Case("attention-rows", "out-of-range", ATT % "manifest" + " --rows 99", names=("99",)),
    Case(
        "attention-nan_pixel",
        "nonfinite",
        ATT % "manifest_nan_pixel" + " --rows 1",
        names=("field1.tif", "NaN"),
    ),
    Case(
        "attention-ckpt_trunc",
        "truncated",
        "attention {manifest} --model {ckpt_trunc} -o {out}/att --device cpu",
        names=("ckpt_trunc",),
    ),
    # ------------------------------------------------------------------ from-table
    Case("from_table-empty", "empty", TABLE % "empty_csv", names=("empty.csv",)),
    Case("from_table-header", "header-only", TABLE % "header_csv", names=("header_only.csv", "no rows")),
    Case("from_table-missing", "missing-path", TABLE % "missing", names=("no_such_file.csv",)),
    Case("from_table-nan", "nonfinite", TABLE % "nan_csv", names=("nan.csv",)),
    Case(
        "from_table-nan_drop",
        "nonfinite",
        "from-table {nan_inf_csv} -o {out}/t.h5ad --nonfinite drop_features",
        expect="status",
        check=_table_dropped,
    ),
    Case("from_table-level", "out-of-range", TABLE % "screen_csv" + " --level plate", names=("plate",)),
    Case(
        "from_table-nonfinite_opt",
        "out-of-range",
        TABLE % "screen_csv" + " --nonfinite impute",
        names=("impute",),
    ),
    Case("from_table-dup_columns", "duplicates", TABLE % "dup_columns_csv", names=("dup_columns.csv",)),
    Case("from_table-ok", "constant", TABLE % "constant_csv", expect="works", check=_table_ok),
    Case("from_table-xlsx_out", "wrong-format", "from-table {screen_csv} -o {out}/t.xlsx", names=("t.xlsx",)),
    # ------------------------------------------------------------------ manifest
    Case(
        "manifest-regex",
        "config-type",
        "manifest -o {out}/m.csv --glob fields/*.tif --regex (?P<well>[A-Z --root {manifest_folder}",
        names=("regex",),
    ),
    Case(
        "manifest-glob_none",
        "missing-path",
        "manifest -o {out}/m.csv --glob fields/*.png --regex field(?P<fov>\\d+) --root {manifest_folder}",
        names=("*.png",),
    ),
    Case(
        "manifest-opera_empty",
        "missing-path",
        "manifest -o {out}/m.csv --opera {folder_csv}",
        names=("a_folder.csv",),
    ),
    Case(
        "manifest-xlsx_out",
        "wrong-format",
        "manifest -o {out}/m.xlsx --glob fields/*.tif --regex field(?P<fov>\\d+) --root {manifest_folder}",
        names=("m.xlsx",),
    ),
]


@pytest.fixture(scope="module")
def app():
    from lcd_embed.cli import app

    return app


@pytest.mark.parametrize("case", params(CASES))
def test_cli(case, app, corpus, tmp_path):
    PICKLE_MARKER.unlink(missing_ok=True)
    run_case(case, app, corpus, tmp_path)
    assert not PICKLE_MARKER.exists(), "a pickled object was unpickled (code ran)"


# ---------------------------------------------------------------------------------- Python API


def _read_field(name, row):
    def call(f, out):
        from lcd_embed import read_field, read_manifest

        return read_field(read_manifest(f[name]).iloc[row])

    return call


def _load_foreign(f, out):
    from lcd_embed import load_backbone

    return load_backbone(f["ckpt_foreign"], device="cpu")


def _embed_frame_skip(f, out):
    from lcd_embed import embed, read_manifest

    frame = read_manifest(f["manifest_nan_pixel"])
    return embed(frame, f["ckpt"], on_error="skip", num_workers=0, device="cpu", progress=False)


def _frame_skipped(out, adata):
    assert 1 not in set(adata.obs["manifest_row"]) and adata.obs["manifest_row"].nunique() == 7
    assert list(adata.uns["lcd_embed"]["failures"]["manifest_row"]) == [1]


def _validate_dup_well(f, out):
    from lcd_embed import read_manifest

    return read_manifest(f["manifest_dup_well"])


API_CASES = [
    Case("api-read_field_bits", "corrupted", _read_field("manifest_bits_tiff", 3), names=("field3.tif",)),
    Case("api-read_field_huge", "huge-values", _read_field("manifest_huge_pixels", 1), names=("field1.tif",)),
    Case(
        "api-load_foreign",
        "foreign-checkpoint",
        _load_foreign,
        names=("ckpt_foreign", "not an lcd checkpoint"),
    ),
    Case("api-embed_frame_skip", "nonfinite", _embed_frame_skip, expect="status", check=_frame_skipped),
    Case("api-manifest_dup_well", "duplicates", _validate_dup_well, names=("row 1", "row 0")),
]


@pytest.mark.parametrize("case", params(API_CASES))
def test_api(case, corpus, tmp_path):
    PICKLE_MARKER.unlink(missing_ok=True)
    run_case(case, None, corpus, tmp_path)
    assert not PICKLE_MARKER.exists()
