"""Census of lcd-metrics: ``map``, ``map-es``, ``cell-count``, ``inhibition`` and the Python functions.

Cases marked ``owner="h-metrics"`` are lcd-metrics behaviours that branch fixes (issue #19 items owned
there); they are strict xfails until it lands.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from census import Case, params, read_any, run_case, status_table

PACKAGE = "lcd-metrics"
MAP_ES = "map-es {%s} -o {out}/activity.csv --n-draws 40 --n-neg 8"
MAP = "map {%s} -o {out}/map.csv --pos-sameby compound,dose,timepoint --neg-diffby compound --null-size 50"
CELL = "cell-count {%s} -o {out}/cc.csv --n-boot 50"
INHIB = "inhibition {%s} -o {out}/inh.csv --measurement-keys plate,timepoint"
POWER = "power {%s} -o {out}/power.csv --n-pos 1 --n-neg 4 --n-draws 20 --effect 0,1 --n-sim 2"


def _activity_ok(out, result):
    status_table(out / "activity.csv", values=("map_es", "map_mean", "null_mean"))


def _unicode_kept(out, result):
    table = status_table(out / "activity.csv", values=("map_es",))
    assert {"ß-Lapachon", "化合物-1", "Ωmega"} <= set(table["compound"]), set(table["compound"])


def _plate_without_controls(out, result):
    """Plate R2-P1 has no controls: its wells cannot be queries; every row says so, none is dropped."""
    table = status_table(out / "activity.csv", values=("map_es",))
    assert len(table) == 24, table  # 6 compounds x 2 doses x 2 timepoints
    assert (table["status"] == "partial").all(), table[["status", "reason"]]
    assert table["reason"].str.contains("no controls on their plate").all(), table["reason"].tolist()


def _single_replica(out, result):
    """A single replica: either failed/partial with a reason, or scored from other plates (h-metrics' rule)."""
    table = status_table(out / "activity.csv", values=("map_es",))
    if "pos_rule" in table.columns:  # positives from other plates of the same replica
        assert set(table.loc[table["status"] == "ok", "pos_rule"]) <= {"other_plate"}
    else:
        assert (table["status"] == "failed").all() and table["reason"].str.contains("replica").all()


def _identical_not_confident(out, result):
    """Identical profiles: every AP ties; no confident 'ok' effect size, no NaN marked partial."""
    table = status_table(out / "activity.csv", values=("map_es", "map_mean"))
    assert (table["status"] == "failed").all(), table[["status", "reason", "map_es"]]


def _map_identical(out, result):
    table = status_table(out / "map.csv", values=("mean_average_precision",))
    assert (table["status"] != "ok").all(), table


def _rescaled(frame: pd.DataFrame) -> pd.DataFrame:
    """The huge_csv frame with its 1e300 row scaled by 2**-996 (to ~1.49, the same direction).

    A power of two changes only the exponent bits, so the row keeps its place in map_es's canonical
    order (rows equal in every key are ordered by their feature bytes, mantissa bytes first): the
    draws are the same, and only the scale differs.
    """
    feats = [c for c in frame.columns if c.startswith(("Cells_", "Cytoplasm_", "Nuclei_"))]
    frame.loc[9, feats] = np.ldexp(1e300, -996)
    return frame


def _map_es_huge_scale_invariant(out, result):
    """Cosine similarity ignores scale: a row of 1e300 scores like the same row scaled to 1."""
    from lcd_metrics import map_es

    got = status_table(out / "activity.csv", values=("map_es",))
    expected = map_es(_rescaled(pd.read_csv(_huge_input(result))), n_draws=40, n_neg=8)
    np.testing.assert_allclose(got["map_es"], expected["map_es"], rtol=1e-9)


def _map_huge_scale_invariant(out, result):
    """Cosine similarity ignores scale: a row of 1e300 ranks like the same row scaled to 1."""
    from lcd_metrics import mean_average_precision

    got = read_any(out / "map.csv")
    expected = mean_average_precision(
        _rescaled(pd.read_csv(_huge_input(result))),
        ["compound", "dose", "timepoint"],
        pos_sameby=["compound", "dose", "timepoint"],
        neg_diffby=["compound"],
        null_size=50,
    )
    np.testing.assert_allclose(got["mean_average_precision"], expected["mean_average_precision"], rtol=1e-9)


def _huge_input(result) -> str:
    """The input file of a CLI run (its first argument after the command)."""
    return result.argv[1]


def _counts_rows(column="median_z", file="cc.csv"):
    def check(out, result):
        status_table(out / file, values=(column,))

    return check


def _inhibition_failed(reason):
    def check(out, result):
        table = status_table(out / "inh.csv", values=("inhibition",))
        bad = table[table["status"] == "failed"]
        assert len(bad) > 0 and bad["reason"].str.contains(reason, regex=False).all(), bad
        assert bad["inhibition"].isna().all()

    return check


CASES = [
    # ------------------------------------------------------------------ map-es: files
    Case("map_es-missing", "missing-path", MAP_ES % "missing", names=("no_such_file.csv",)),
    Case("map_es-folder", "directory", MAP_ES % "folder_csv", names=("a_folder.csv", "folder")),
    Case("map_es-empty_csv", "empty", MAP_ES % "empty_csv", names=("empty.csv", "empty")),
    Case("map_es-empty_parquet", "empty", MAP_ES % "empty_parquet", names=("empty.parquet",)),
    Case("map_es-empty_h5ad", "empty", MAP_ES % "empty_h5ad", names=("empty.h5ad",)),
    Case("map_es-header_csv", "header-only", MAP_ES % "header_csv", names=("header_only.csv", "no rows")),
    Case(
        "map_es-header_parquet",
        "header-only",
        MAP_ES % "header_parquet",
        names=("header_only.parquet", "no rows"),
    ),
    Case("map_es-header_h5ad", "header-only", MAP_ES % "header_h5ad", names=("header_only.h5ad", "no rows")),
    Case("map_es-csv_as_h5ad", "wrong-format", MAP_ES % "csv_named_h5ad", names=("csv_text.h5ad",)),
    Case("map_es-csv_as_parquet", "wrong-format", MAP_ES % "csv_named_parquet", names=("csv_text.parquet",)),
    Case("map_es-xlsx_in", "wrong-format", MAP_ES % "xlsx", names=("screen.xlsx", ".xlsx")),
    Case(
        "map_es-xlsx_out",
        "wrong-format",
        "map-es {screen_csv} -o {out}/activity.xlsx --n-draws 40",
        names=("activity.xlsx",),
    ),
    Case(
        "map_es-h5ad_out",
        "wrong-format",
        "map-es {screen_csv} -o {out}/activity.h5ad --n-draws 40",
        names=("activity.h5ad",),
    ),
    Case("map_es-trunc_parquet", "truncated", MAP_ES % "trunc_parquet", names=("truncated.parquet",)),
    Case("map_es-trunc_h5ad", "truncated", MAP_ES % "trunc_h5ad", names=("truncated.h5ad",)),
    Case("map_es-trunc_csv", "truncated", MAP_ES % "trunc_csv", names=("truncated.csv",)),
    Case("map_es-scrambled_parquet", "corrupted", MAP_ES % "scrambled_parquet", names=("scrambled.parquet",)),
    Case("map_es-scrambled_h5ad", "corrupted", MAP_ES % "scrambled_h5ad", names=("scrambled.h5ad",)),
    Case("map_es-flipped_parquet", "corrupted", MAP_ES % "flipped_parquet", names=("flipped.parquet",)),
    Case("map_es-flipped_h5ad", "corrupted", MAP_ES % "flipped_h5ad", names=("flipped.h5ad",)),
    # ------------------------------------------------------------------ map-es: columns and values
    Case(
        "map_es-compound_key",
        "missing-column",
        MAP_ES % "screen_csv" + " --compound-key compund",
        names=("'compund'", "screen.csv"),
    ),
    Case(
        "map_es-plate_key", "missing-column", MAP_ES % "screen_csv" + " --plate-key Plate", names=("'Plate'",)
    ),
    Case(
        "map_es-timepoint_key",
        "missing-column",
        MAP_ES % "screen_csv" + " --timepoint-key time",
        names=("'time'",),
    ),
    Case(
        "map_es-features_regex",
        "missing-column",
        MAP_ES % "screen_csv" + " --features ^Image_",
        names=("^Image_", "matches no column"),
    ),
    Case(
        "map_es-missing_plate_value", "missing-column", MAP_ES % "missing_meta_csv", names=("'plate'", "'3'")
    ),
    Case("map_es-nan", "nonfinite", MAP_ES % "nan_csv", names=("nan.csv", "'5'")),
    Case("map_es-inf", "nonfinite", MAP_ES % "inf_csv", names=("inf.csv", "'7'")),
    Case(
        "map_es-text_feature", "nonfinite", MAP_ES % "text_feature_csv", names=("text_feature.csv", "numeric")
    ),
    Case("map_es-constant_feature", "constant", MAP_ES % "constant_csv", expect="works", check=_activity_ok),
    Case("map_es-all_zero", "constant", MAP_ES % "zero_csv", names=("zero.csv", "zero norm")),
    Case(
        "map_es-identical",
        "constant",
        MAP_ES % "identical_csv",
        expect="status",
        check=_identical_not_confident,
    ),
    Case(
        "map_es-huge",
        "huge-values",
        MAP_ES % "huge_csv",
        expect="works",
        check=_map_es_huge_scale_invariant,
    ),
    Case("map_es-dup_columns", "duplicates", MAP_ES % "dup_columns_csv", names=("dup_columns.csv",)),
    Case(
        "map_es-single_replica",
        "single-replica",
        MAP_ES % "single_replica_csv",
        expect="status",
        check=_single_replica,
    ),
    Case(
        "map_es-plate_without_controls",
        "no-controls",
        MAP_ES % "no_controls_csv",
        expect="status",
        check=_plate_without_controls,
    ),
    Case("map_es-no_controls_at_all", "no-controls", MAP_ES % "no_dmso_csv", names=("no_dmso.csv", "DMSO")),
    Case("map_es-unicode", "unicode", MAP_ES % "unicode_csv", expect="works", check=_unicode_kept),
    Case("map_es-unicode_h5ad", "unicode", MAP_ES % "unicode_h5ad", expect="works", check=_unicode_kept),
    # ------------------------------------------------------------------ map-es: options
    Case(
        "map_es-threshold_2",
        "out-of-range",
        MAP_ES % "screen_csv" + " --threshold 2",
        expect="works",
        check=_activity_ok,
    ),
    Case(
        "map_es-threshold_nan",
        "out-of-range",
        MAP_ES % "screen_csv" + " --threshold nan",
        names=("threshold",),
    ),
    Case(
        "map_es-n_draws_0",
        "out-of-range",
        "map-es {screen_csv} -o {out}/a.csv --n-draws 0",
        names=("n_draws",),
    ),
    Case("map_es-n_pos_0", "out-of-range", MAP_ES % "screen_csv" + " --n-pos 0", names=("n_pos",)),
    Case("map_es-n_neg_neg", "out-of-range", MAP_ES % "screen_csv" + " --n-neg -1", names=("n_neg",)),
    Case("map_es-seed_negative", "out-of-range", MAP_ES % "screen_csv" + " --seed -1", names=("seed",)),
    Case(
        "map_es-bad_control_query",
        "config-type",
        MAP_ES % "screen_csv" + ' --control "compound =="',
        names=("compound ==",),
    ),
    # ------------------------------------------------------------------ map
    Case("map-missing", "missing-path", MAP % "missing", names=("no_such_file.csv",)),
    Case("map-empty", "empty", MAP % "empty_csv", names=("empty.csv",)),
    Case(
        "map-header_parquet", "header-only", MAP % "header_parquet", names=("header_only.parquet", "no rows")
    ),
    Case(
        "map-pos_sameby_typo",
        "missing-column",
        "map {screen_csv} -o {out}/map.csv --pos-sameby compnd --neg-diffby compound",
        names=("'compnd'",),
    ),
    Case("map-nan", "nonfinite", MAP % "nan_csv", names=("nan.csv", "'5'")),
    Case("map-all_zero", "constant", MAP % "zero_csv", names=("zero.csv", "zero norm")),
    Case(
        "map-identical",
        "constant",
        MAP % "identical_csv",
        expect="status",
        check=_map_identical,
    ),
    Case(
        "map-huge",
        "huge-values",
        MAP % "huge_csv",
        expect="works",
        check=_map_huge_scale_invariant,
    ),
    Case("map-null_unknown", "out-of-range", MAP % "screen_csv" + " --null plates", names=("null", "plates")),
    Case(
        "map-null_blocked_without_blocks",
        "missing-column",
        MAP % "screen_csv" + " --null blocked",
        names=("null_blocks",),
    ),
    Case(
        "map-null_blocks_missing_column",
        "missing-column",
        MAP % "screen_csv" + " --null blocked --null-blocks plaet",
        names=("plaet",),
    ),
    Case("map-null_size_0", "out-of-range", MAP % "screen_csv" + " --null-size 0", names=("null_size",)),
    Case(
        "map-threshold_2",
        "out-of-range",
        MAP % "screen_csv" + " --threshold 2",
        names=("threshold",),
    ),
    Case(
        "map-xlsx_out",
        "wrong-format",
        "map {screen_csv} -o {out}/map.xlsx --pos-sameby compound --neg-diffby compound",
        names=("map.xlsx",),
    ),
    Case(
        "map-ap_out_h5ad",
        "wrong-format",
        MAP % "screen_csv" + " --ap-out {out}/ap.h5ad",
        names=("ap.h5ad",),
    ),
    # ------------------------------------------------------------------ cell-count
    Case("cell_count-missing", "missing-path", CELL % "missing", names=("no_such_file.csv",)),
    Case("cell_count-no_count_column", "missing-column", CELL % "screen_csv", names=("nuclei_count",)),
    Case("cell_count-nan", "nonfinite", CELL % "counts_nan_csv", names=("counts_nan.csv", "nuclei_count")),
    Case("cell_count-text", "nonfinite", CELL % "counts_text_csv", names=("counts_text.csv", "nuclei_count")),
    Case(
        "cell_count-negative",
        "out-of-range",
        CELL % "counts_negative_csv",
        names=("counts_negative.csv", "negative"),
    ),
    Case(
        "cell_count-constant",
        "constant",
        CELL % "counts_constant_csv",
        expect="status",
        check=_counts_rows(),
    ),
    Case(
        "cell_count-no_controls_plate",
        "no-controls",
        CELL % "counts_no_controls_csv",
        expect="status",
        check=_counts_rows(),
    ),
    Case("cell_count-ci_2", "out-of-range", CELL % "counts_csv" + " --ci 2", names=("ci",)),
    Case("cell_count-n_boot_0", "out-of-range", CELL % "counts_csv" + " --n-boot 0", names=("n_boot",)),
    Case("cell_count-huge", "huge-values", CELL % "counts_huge_csv", expect="status", check=_counts_rows()),
    # ------------------------------------------------------------------ power
    Case("power-missing", "missing-path", POWER % "missing", names=("no_such_file.csv",)),
    Case("power-empty", "empty", POWER % "empty_csv", names=("empty.csv", "empty")),
    Case("power-header", "header-only", POWER % "header_csv", names=("header_only.csv", "no rows")),
    Case("power-nan", "nonfinite", POWER % "nan_csv", names=("nan.csv", "'5'")),
    Case("power-no_controls", "no-controls", POWER % "no_dmso_csv", names=("no_dmso.csv", "DMSO")),
    Case("power-trunc_h5ad", "truncated", POWER % "trunc_h5ad", names=("truncated.h5ad",)),
    Case("power-n_pos_0", "out-of-range", POWER % "screen_csv" + " --n-pos 0", names=("n_pos",)),
    Case("power-n_sim_0", "out-of-range", POWER % "screen_csv" + " --n-sim 0", names=("n_sim",)),
    Case("power-effect_text", "out-of-range", POWER % "screen_csv" + " --effect 0,big", names=("big",)),
    Case(
        "power-xlsx_out",
        "wrong-format",
        POWER.replace("power.csv", "power.xlsx") % "screen_csv",
        names=(".xlsx",),
    ),
    # ------------------------------------------------------------------ inhibition
    Case("inhibition-missing", "missing-path", INHIB % "missing", names=("no_such_file.csv",)),
    Case("inhibition-header", "header-only", INHIB % "header_csv", names=("header_only.csv",)),
    Case("inhibition-no_count_column", "missing-column", INHIB % "screen_csv", names=("nuclei_count",)),
    Case(
        "inhibition-key_typo",
        "missing-column",
        "inhibition {counts_csv} -o {out}/inh.csv --measurement-keys plate,timpoint",
        names=("'timpoint'",),
    ),
    Case(
        "inhibition-zero_controls",
        "constant",
        INHIB % "counts_zero_controls_csv",
        expect="status",
        check=_inhibition_failed("control mean"),
    ),
    Case(
        "inhibition-no_controls_plate",
        "no-controls",
        INHIB % "counts_no_controls_csv",
        expect="status",
        check=_inhibition_failed("no control"),
    ),
    Case(
        "inhibition-negative",
        "out-of-range",
        INHIB % "counts_negative_csv",
        expect="status",
        check=_inhibition_failed("negative"),
    ),
    Case(
        "inhibition-nan",
        "nonfinite",
        INHIB % "counts_nan_csv",
        expect="status",
        check=_inhibition_failed("missing"),
    ),
    Case(
        "inhibition-xlsx_out",
        "wrong-format",
        "inhibition {counts_csv} -o {out}/inh.xlsx",
        names=("inh.xlsx",),
    ),
]


# ---------------------------------------------------------------------------------- Python API


def _map_es_row_order(f, out):
    """map_es must not depend on how the rows are sorted (same seed, shuffled rows: same table)."""
    from lcd_metrics import map_es

    frame = pd.read_csv(f["screen_csv"])
    shuffled = frame.sample(frac=1.0, random_state=3)
    keys = ["compound", "timepoint", "dose"]
    a = map_es(frame, n_draws=200).sort_values(keys).reset_index(drop=True)
    b = map_es(shuffled, n_draws=200).sort_values(keys).reset_index(drop=True)
    return a, b


def _identical_tables(out, result):
    a, b = result
    pd.testing.assert_frame_equal(a, b)


def _map_es_anndata_nan(f, out):
    from lcd_core import read_h5ad
    from lcd_metrics import map_es

    adata = read_h5ad(f["screen_h5ad"])
    adata.X[4, 2] = np.nan
    return map_es(adata, n_draws=20)


API_CASES = [
    Case(
        "api-map_es_row_order",
        "row-order",
        _map_es_row_order,
        expect="works",
        check=_identical_tables,
    ),
    Case("api-map_es_anndata_nan", "nonfinite", _map_es_anndata_nan, names=("NaN", "'4'")),
]


@pytest.fixture(scope="module")
def app():
    from lcd_metrics.cli import app

    return app


@pytest.mark.parametrize("case", params(CASES))
def test_cli(case, app, corpus, tmp_path):
    run_case(case, app, corpus, tmp_path)


@pytest.mark.parametrize("case", params(API_CASES))
def test_api(case, corpus, tmp_path):
    run_case(case, None, corpus, tmp_path)
