"""Every bad input gives a one-line InputError naming the column, rows or group; nothing silent."""

import importlib.util

import lcd_core
import lcd_metrics as lm
import numpy as np
import pandas as pd
import pytest


def small_table(n=12, d=5, seed=0):
    rng = np.random.default_rng(seed)
    meta = pd.DataFrame(
        {"Metadata_cmp": ["A", "A", "B", "B", "C", "C"] * (n // 6), "Metadata_plate": ["p1"] * n}
    )
    meta.loc[: n // 3 - 1, "Metadata_cmp"] = "DMSO"
    feats = pd.DataFrame(rng.normal(size=(n, d)), columns=[f"Cells_f{i}" for i in range(d)])
    return pd.concat([meta, feats], axis=1)


RULES = dict(pos_sameby=["Metadata_cmp"], neg_diffby=["Metadata_cmp"])


def one_line(exc):
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_missing_column_is_named_and_columns_listed():
    with pytest.raises(lm.InputError) as exc:
        lm.average_precision(small_table(), pos_sameby=["Metadata_compound"], neg_diffby=["Metadata_cmp"])
    msg = one_line(exc)
    assert "'Metadata_compound' not found" in msg and "Metadata_cmp" in msg and "Metadata_plate" in msg
    with pytest.raises(lm.InputError, match=r"column 'replica' not found; available columns: .*compound"):
        lm.map_es(
            pd.DataFrame({"compound": ["DMSO"], "plate": ["p"], "f": [1.0]}),
            features=["f"],
            timepoint_key=None,
            dose_key=None,
        )


def test_nan_and_inf_are_counted_with_first_rows():
    df = small_table()
    df.loc[3, "Cells_f0"] = np.nan
    df.loc[7, "Cells_f2"] = np.inf
    df.loc[7, "Cells_f3"] = np.nan
    with pytest.raises(lm.InputError) as exc:
        lm.average_precision(df, **RULES)
    assert "3 NaN/inf values in 2 rows (first: '3', '7')" in one_line(exc)


def test_zero_norm_profiles_are_refused_not_scored():
    df = small_table()
    df.loc[5, [c for c in df.columns if c.startswith("Cells_")]] = 0.0
    with pytest.raises(lm.InputError) as exc:
        lm.average_precision(df, **RULES)
    assert "1 profiles have zero norm (first: '5')" in one_line(exc)


def test_non_numeric_feature_column_is_named():
    df = small_table()
    df["Cells_note"] = "x"
    with pytest.raises(lm.InputError, match="feature column 'Cells_note' is not numeric"):
        lm.average_precision(df, **RULES)


def test_features_cannot_be_told_apart():
    df = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    with pytest.raises(lm.InputError, match=r"cannot tell features from metadata.*pass features="):
        lm.average_precision(df, pos_sameby=["b"], neg_diffby=["b"])


@pytest.mark.parametrize(
    ("control", "message"),
    [
        ("Metadata_cmp == 'none'", r"no control rows match \"Metadata_cmp == 'none'\""),
        ("no such == 1", "cannot evaluate control query"),
    ],
)
def test_no_control_rows(control, message):
    with pytest.raises(lm.InputError, match=message):
        lm.map_es(
            small_table(),
            compound_key="Metadata_cmp",
            plate_key="Metadata_plate",
            replica_key="Metadata_plate",
            timepoint_key=None,
            dose_key=None,
            control=control,
        )


def test_no_pairs_and_empty_filters():
    df = small_table()
    with pytest.raises(lm.InputError, match="no positive pairs"):
        # one plate only: no two wells of a compound on different plates
        lm.average_precision(
            df, pos_sameby=["Metadata_cmp"], pos_diffby=["Metadata_plate"], neg_diffby=["Metadata_cmp"]
        )
    with pytest.raises(lm.InputError, match="leave no rows"):
        lm.average_precision(df, pos_sameby=["Metadata_cmp == 'nothing'"], neg_diffby=["Metadata_plate"])
    with pytest.raises(lm.InputError, match="must be disjoint"):
        lm.average_precision(
            df, pos_sameby=["Metadata_cmp"], pos_diffby=["Metadata_cmp"], neg_diffby=["Metadata_cmp"]
        )


def test_missing_metadata_values_are_refused():
    df = small_table()
    df.loc[4, "Metadata_cmp"] = None
    with pytest.raises(
        lm.InputError, match=r"column 'Metadata_cmp' has 1 missing values \(first rows: '4'\)"
    ):
        lm.average_precision(df, **RULES)


def test_unsupported_options_refuse_rather_than_differ():
    with pytest.raises(lm.InputError, match="distance='euclidean' is not supported"):
        lm.average_precision(small_table(), distance="euclidean", **RULES)
    with pytest.raises(lm.InputError, match="multilabel_col 'Metadata_plate' must be one of pos_sameby"):
        lm.average_precision(small_table(), multilabel_col="Metadata_plate", **RULES)


def test_parquet_without_pyarrow_says_what_to_install(monkeypatch, tmp_path):
    pytest.importorskip("typer")
    from lcd_metrics.cli import app
    from typer.testing import CliRunner

    src = tmp_path / "t.csv"
    small_table().to_csv(src, index=False)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("pyarrow", "fastparquet") else real(name, *a),
    )
    args = ["map", str(src), "--pos-sameby", "Metadata_cmp", "--neg-diffby", "Metadata_cmp"]
    r = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "x.parquet")])
    assert r.exit_code == 2 and "parquet needs pyarrow (pip install pyarrow)" in r.output
    assert not (tmp_path / "x.parquet").exists()  # refused before any work
    (tmp_path / "y.parquet").write_bytes(b"")
    with pytest.raises(lm.InputError, match=r"pyarrow"):
        lm.average_precision(tmp_path / "y.parquet", **RULES)


def test_file_errors(tmp_path):
    with pytest.raises(lm.InputError, match=r"missing\.csv: profiles table not found"):
        lm.average_precision(tmp_path / "missing.csv", **RULES)
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(lm.InputError, match="unknown table format"):
        lm.average_precision(tmp_path / "t.xlsx", **RULES)


def test_anndata_layer_and_rep_errors():
    ad = pytest.importorskip("anndata")
    a = ad.AnnData(X=np.ones((3, 2)))
    with pytest.raises(lm.InputError, match=r"layer 'mad' not found"):
        lm.map_es(a, layer="mad")
    with pytest.raises(lm.InputError, match=r"obsm key 'X_harmony' not found"):
        lm.average_precision(a, use_rep="X_harmony", **RULES)


def test_write_is_atomic_and_input_untouched(tmp_path):
    df = small_table()
    before = df.copy()
    lm.mean_average_precision(df, null_size=50, **RULES)
    pd.testing.assert_frame_equal(df, before)
    out = lcd_core.write_table(df, tmp_path / "t.csv")
    assert out.read_text().startswith("Metadata_cmp")
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]  # no temp file left behind
