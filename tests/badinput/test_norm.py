"""Census of lcd-norm: ``aggregate``, ``mad``, ``harmony``, ``fastmnn``, ``mad-harmony-fov``, ``compare``."""

from __future__ import annotations

import numpy as np
import pytest
from census import Case, params, run_case, status_table

PACKAGE = "lcd-norm"
AGG = "aggregate {%s} -o {out}/agg.h5ad --by well"
MAD = "mad {%s} -o {out}/mad.h5ad"
HARM = "harmony {%s} -o {out}/harmony.h5ad"
MNN = "fastmnn {%s} -o {out}/mnn.h5ad --k 5 --n-components 8"
MHF = "mad-harmony-fov {%s} -o {out}/mhf.h5ad"
CMP = "compare {%s} -o {out}/cmp.csv --null-size 20"


def _h5ad(out, name):
    from lcd_core import read_h5ad

    return read_h5ad(out / name)


def _aggregated_wells(out, result):
    agg = _h5ad(out, "agg.h5ad")
    assert agg.n_obs == 160 and np.isfinite(agg.X).all(), agg  # 320 fields, 2 per well
    assert (agg.obs["n_members"] == 2).all()


def _unicode_wells(out, result):
    agg = _h5ad(out, "agg.h5ad")
    assert {"ß-Lapachon", "化合物-1"} <= set(agg.obs["compound"].astype(str)), set(agg.obs["compound"])
    assert "Platte-Ä" in set(agg.obs["plate"].astype(str))


def _constant_dropped(out, result):
    """A constant feature has zero control MAD: dropped from X_mad and named in uns."""
    mad = _h5ad(out, "mad.h5ad")
    info = mad.uns["X_mad"]
    assert len(info["dropped_features"]) == 1 and mad.obsm["X_mad"].shape == (320, 23), info
    assert np.isfinite(mad.obsm["X_mad"]).all()


def _finite_rep(name, key):
    def check(out, result):
        adata = _h5ad(out, name)
        assert np.isfinite(adata.obsm[key]).all()

    return check


def _compare_table(out):
    """The comparison table: a method that ran has a mAP or says why not (map_status + reason)."""
    table = status_table(out / "cmp.csv")
    ran = table[table["status"] == "ok"]
    no_map = ran[~np.isfinite(ran["map"].to_numpy(float))]
    assert (no_map["map_status"] != "ok").all() and no_map["reason"].fillna("").str.len().gt(0).all(), no_map
    return table.set_index("method")


def _compare_failed(method, reason):
    def check(out, result):
        row = _compare_table(out).loc[method]
        assert row["status"] == "failed" and reason in row["reason"], row

    return check


def _dup_rows_aggregated(out, result):
    """A duplicated field row is a second member of its well: n_members says 3, not 2."""
    agg = _h5ad(out, "agg.h5ad")
    assert sorted(agg.obs["n_members"].value_counts().items()) == [(2, 159), (3, 1)]


def _huge_like_rescaled(out, result):
    """Cosine normalisation ignores scale: the 1e300 row is corrected like the same row scaled to 1."""
    import pandas as pd
    from lcd_core import load_profiles
    from lcd_norm import fastmnn

    frame = pd.read_csv(result.argv[1])
    feats = [c for c in frame.columns if c.startswith(("Cells_", "Cytoplasm_", "Nuclei_"))]
    frame.loc[9, feats] = 1.0
    expected = fastmnn(load_profiles(frame), k=5, n_components=8, copy=True).obsm["X_mnn"]
    got = _h5ad(out, "mnn.h5ad").obsm["X_mnn"]
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


CASES = [
    # ------------------------------------------------------------------ aggregate
    Case("aggregate-missing", "missing-path", AGG % "missing_h5ad", names=("no_such_file.h5ad",)),
    Case("aggregate-folder", "directory", AGG % "folder_csv", names=("a_folder.csv",)),
    Case("aggregate-empty_csv", "empty", AGG % "empty_csv", names=("empty.csv",)),
    Case("aggregate-empty_h5ad", "empty", AGG % "empty_h5ad", names=("empty.h5ad",)),
    Case(
        "aggregate-header_parquet",
        "header-only",
        AGG % "header_parquet",
        names=("header_only.parquet", "no rows"),
    ),
    Case("aggregate-header_h5ad", "header-only", AGG % "header_h5ad", names=("header_only.h5ad", "no rows")),
    Case("aggregate-csv_as_h5ad", "wrong-format", AGG % "csv_named_h5ad", names=("csv_text.h5ad",)),
    Case("aggregate-csv_out", "wrong-format", "aggregate {screen_csv} -o {out}/agg.csv", names=("agg.csv",)),
    Case("aggregate-trunc_h5ad", "truncated", AGG % "trunc_h5ad", names=("truncated.h5ad",)),
    Case("aggregate-flipped_h5ad", "corrupted", AGG % "flipped_h5ad", names=("flipped.h5ad",)),
    Case("aggregate-flipped_parquet", "corrupted", AGG % "flipped_parquet", names=("flipped.parquet",)),
    Case(
        "aggregate-well_key",
        "missing-column",
        "aggregate {screen_csv} -o {out}/agg.h5ad --by well --well-key Well",
        names=("'Well'",),
    ),
    Case(
        "aggregate-by_typo",
        "missing-column",
        "aggregate {screen_csv} -o {out}/agg.h5ad --by plate,wel",
        names=("'wel'",),
    ),
    Case("aggregate-func", "out-of-range", AGG % "screen_csv" + " --func max", names=("max",)),
    Case("aggregate-nan", "nonfinite", AGG % "nan_csv", names=("nan.csv", "'5'")),
    Case("aggregate-dup_columns", "duplicates", AGG % "dup_columns_csv", names=("dup_columns.csv",)),
    Case(
        "aggregate-dup_rows", "duplicates", AGG % "dup_rows_csv", expect="status", check=_dup_rows_aggregated
    ),
    Case("aggregate-constant", "constant", AGG % "constant_csv", expect="works", check=_aggregated_wells),
    Case("aggregate-unicode", "unicode", AGG % "unicode_csv", expect="works", check=_unicode_wells),
    Case("aggregate-missing_key_value", "missing-column", AGG % "missing_meta_csv", names=("'plate'", "'3'")),
    # ------------------------------------------------------------------ mad
    Case("mad-missing", "missing-path", MAD % "missing", names=("no_such_file.csv",)),
    Case("mad-header_parquet", "header-only", MAD % "header_parquet", names=("header_only.parquet",)),
    Case(
        "mad-plate_key",
        "missing-column",
        MAD % "screen_csv" + " --measurement-keys Plate",
        names=("'Plate'",),
    ),
    Case(
        "mad-no_controls_plate",
        "no-controls",
        MAD % "no_controls_csv",
        names=("no_controls.csv", "R2-P1", "no control rows"),
    ),
    Case("mad-no_controls_at_all", "no-controls", MAD % "no_dmso_csv", names=("no_dmso.csv", "DMSO")),
    Case("mad-all_zero", "constant", MAD % "zero_csv", names=("zero.csv", "zero MAD")),
    Case("mad-constant", "constant", MAD % "constant_csv", expect="status", check=_constant_dropped),
    Case("mad-nan", "nonfinite", MAD % "nan_csv", names=("nan.csv", "'5'")),
    Case("mad-inf", "nonfinite", MAD % "inf_csv", names=("inf.csv", "'7'")),
    Case("mad-huge", "huge-values", MAD % "huge_csv", expect="works", check=_finite_rep("mad.h5ad", "X_mad")),
    Case(
        "mad-zero_mad_policy", "out-of-range", MAD % "screen_csv" + " --zero-mad ignore", names=("zero_mad",)
    ),
    Case("mad-eps", "out-of-range", MAD % "screen_csv" + " --eps -1", names=("eps",)),
    Case("mad-bad_control", "config-type", MAD % "screen_csv" + " --control is_dmso", names=("is_dmso",)),
    # ------------------------------------------------------------------ harmony
    Case("harmony-header_parquet", "header-only", HARM % "header_parquet", names=("header_only.parquet",)),
    Case("harmony-empty_h5ad", "empty", HARM % "empty_h5ad", names=("empty.h5ad",)),
    Case(
        "harmony-replica_key",
        "missing-column",
        HARM % "screen_csv" + " --replica-key batch",
        names=("'batch'",),
    ),
    Case(
        "harmony-single_replica",
        "single-replica",
        HARM % "single_replica_csv",
        names=("replica", "single level"),
    ),
    Case("harmony-theta", "out-of-range", HARM % "screen_csv" + " --theta -1", names=("theta",)),
    Case("harmony-max_iter", "out-of-range", HARM % "screen_csv" + " --max-iter 0", names=("max_iter",)),
    Case("harmony-nclust", "out-of-range", HARM % "screen_csv" + " --nclust 0", names=("nclust",)),
    Case("harmony-nan", "nonfinite", HARM % "nan_csv", names=("nan.csv", "'5'")),
    Case(
        "harmony-huge",
        "huge-values",
        HARM % "huge_csv",
        names=("huge.csv", "'9'"),
    ),
    Case("harmony-xlsx_out", "wrong-format", "harmony {screen_csv} -o {out}/h.xlsx", names=("h.xlsx",)),
    # ------------------------------------------------------------------ fastmnn
    Case("fastmnn-single_replica", "single-replica", MNN % "single_replica_csv", names=("two batches",)),
    Case("fastmnn-k0", "out-of-range", MNN % "screen_csv" + " --k 0", names=("k",)),
    Case(
        "fastmnn-n_components",
        "out-of-range",
        "fastmnn {screen_csv} -o {out}/mnn.h5ad --n-components 0",
        names=("n_components",),
    ),
    Case("fastmnn-merge_order", "missing-column", MNN % "screen_csv" + " --merge-order R1,R9", names=("R9",)),
    Case("fastmnn-nan", "nonfinite", MNN % "nan_csv", names=("nan.csv",)),
    Case("fastmnn-all_zero", "constant", MNN % "zero_csv", names=("zero.csv",)),
    Case("fastmnn-ndist", "out-of-range", MNN % "screen_csv" + " --ndist -2", names=("ndist",)),
    Case("fastmnn-huge", "huge-values", MNN % "huge_csv", expect="works", check=_huge_like_rescaled),
    # ------------------------------------------------------------------ mad-harmony-fov
    Case("mhf-no_controls_plate", "no-controls", MHF % "no_controls_csv", names=("R2-P1", "no control rows")),
    Case("mhf-single_replica", "single-replica", MHF % "single_replica_csv", names=("single level",)),
    Case("mhf-theta", "out-of-range", MHF % "screen_csv" + " --theta -1", names=("theta",)),
    Case("mhf-fov_key", "missing-column", MHF % "screen_csv" + " --fov-key field", names=("'field'",)),
    Case("mhf-all_zero", "constant", MHF % "zero_csv", names=("zero.csv", "zero MAD")),
    # ------------------------------------------------------------------ compare
    Case("compare-methods", "out-of-range", CMP % "screen_csv" + " --methods mad,combat", names=("combat",)),
    Case("compare-xlsx_out", "wrong-format", "compare {screen_csv} -o {out}/cmp.xlsx", names=("cmp.xlsx",)),
    Case(
        "compare-single_replica",
        "single-replica",
        CMP % "single_replica_csv" + " --methods none,harmony",
        expect="status",
        check=_compare_failed("harmony", "single level"),
    ),
    Case(
        "compare-no_controls_plate",
        "no-controls",
        CMP % "no_controls_csv" + " --methods none,mad",
        expect="status",
        check=_compare_failed("mad", "no control rows"),
    ),
    Case("compare-header_parquet", "header-only", CMP % "header_parquet", names=("header_only.parquet",)),
]


@pytest.fixture(scope="module")
def app():
    from lcd_norm.cli import app

    return app


@pytest.mark.parametrize("case", params(CASES))
def test_cli(case, app, corpus, tmp_path):
    run_case(case, app, corpus, tmp_path)


# ---------------------------------------------------------------------------------- Python API


def _adata(f, name):
    from lcd_core import load_profiles

    return load_profiles(f[name])


def _mad_all_zero(f, out):
    from lcd_norm import mad_robustize

    return mad_robustize(_adata(f, "zero_csv"), copy=True)


def _harmony_theta(f, out):
    from lcd_norm import harmony

    return harmony(_adata(f, "screen_csv"), theta=-1.0, copy=True)


def _harmony_huge(f, out):
    from lcd_norm import harmony

    return harmony(_adata(f, "huge_csv"), copy=True)


def _aggregate_keys(f, out):
    from lcd_norm import aggregate

    return aggregate(_adata(f, "screen_csv"), by=["plate", "wel"])


def _fastmnn_huge(f, out):
    from lcd_norm import fastmnn

    return fastmnn(_adata(f, "huge_csv"), k=5, n_components=8, cos_norm=False, copy=True)


API_CASES = [
    Case("api-mad_all_zero", "constant", _mad_all_zero, names=("zero.csv", "zero MAD")),
    Case("api-harmony_theta", "out-of-range", _harmony_theta, names=("theta",)),
    Case("api-harmony_huge", "huge-values", _harmony_huge, names=("huge.csv", "'9'")),
    Case("api-aggregate_keys", "missing-column", _aggregate_keys, names=("'wel'",)),
    Case("api-fastmnn_huge_no_cos", "huge-values", _fastmnn_huge, names=("huge.csv",)),
]


@pytest.mark.parametrize("case", params(API_CASES))
def test_api(case, corpus, tmp_path):
    run_case(case, None, corpus, tmp_path)
