"""Census of lcd-core: the shared readers and writers every command goes through (Python API)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from census import Case, params, run_case

PACKAGE = "lcd-core"


def _read_table(name):
    def call(f, out):
        from lcd_core import read_table

        return read_table(f[name])

    return call


def _read_h5ad(name):
    def call(f, out):
        from lcd_core import read_h5ad

        return read_h5ad(f[name])

    return call


def _load_profiles(name, **kwargs):
    def call(f, out):
        from lcd_core import load_profiles

        return load_profiles(f[name], **kwargs)

    return call


def _read_npz(f, out):
    from lcd_core import read_npz

    return read_npz(f.path("moa_model_trunc_npz") / "model.npz")


def _get_rep_nan(f, out):
    from lcd_core import get_rep, load_profiles

    return get_rep(load_profiles(f["nan_csv"]))


def _write_xlsx(f, out):
    from lcd_core import write_table

    return write_table(pd.DataFrame({"a": [1]}), out / "t.xlsx")


def _write_empty_column(f, out):
    """An all-empty metadata column (the `lcd demo --seed 2` crash) is written as missing values."""
    import anndata as ad
    from lcd_core import read_h5ad, write_h5ad

    obs = pd.DataFrame({"moa": [None, None, None], "well": ["A01", "A02", "A03"]}, index=["0", "1", "2"])
    write_h5ad(ad.AnnData(X=np.ones((3, 2)), obs=obs), out / "x.h5ad")
    return read_h5ad(out / "x.h5ad")


def _empty_column_read_back(out, adata):
    assert adata.obs["moa"].isna().all() and list(adata.obs["well"].astype(str)) == ["A01", "A02", "A03"]


def _control_query(f, out):
    from lcd_core import control_mask, read_table

    return control_mask(read_table(f["screen_csv"]), "compound = 'DMSO'", source="screen.csv")


def _check_options(f, out):
    from lcd_core import check_options

    def target(n_draws: int = 10) -> None: ...

    return check_options({"n_draws": "10"}, target, section="metrics")


def _stale_temps(f, out):
    """A temporary of a dead writer is removed; one of a live writer (this process) is kept."""
    from lcd_core import remove_stale_temps

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(dead.stdout)
    (out / f".a.h5ad.tmp-{pid}-x.h5ad").write_text("half")
    (out / f".b.h5ad.tmp-{os.getpid()}-y.h5ad").write_text("in progress")
    return out, remove_stale_temps(out)


def _only_dead_removed(out, result):
    folder, removed = result
    assert [p.name.split(".tmp-")[0] for p in removed] == [".a.h5ad"]
    assert sorted(p.name[:7] for p in folder.iterdir()) == [".b.h5ad"]
    for p in folder.iterdir():
        p.unlink()  # the census requires an empty output folder only for errors; tidy anyway


API_CASES = [
    Case(
        "read_table-dup_header",
        "duplicates",
        _read_table("dup_columns_csv"),
        names=("dup_columns.csv", "twice"),
    ),
    Case("read_table-xlsx", "wrong-format", _read_table("xlsx"), names=("screen.xlsx", ".xlsx")),
    Case("read_table-h5ad", "wrong-format", _read_table("screen_h5ad"), names=("screen.h5ad", "AnnData")),
    Case("read_table-empty", "empty", _read_table("empty_csv"), names=("empty.csv", "empty")),
    Case("read_table-folder", "directory", _read_table("folder_csv"), names=("a_folder.csv", "folder")),
    Case(
        "read_table-flipped_parquet", "corrupted", _read_table("flipped_parquet"), names=("flipped.parquet",)
    ),
    Case("read_table-trunc_parquet", "truncated", _read_table("trunc_parquet"), names=("truncated.parquet",)),
    Case("read_h5ad-flipped", "corrupted", _read_h5ad("flipped_h5ad"), names=("flipped.h5ad",)),
    Case("read_h5ad-csv", "wrong-format", _read_h5ad("csv_named_h5ad"), names=("csv_text.h5ad",)),
    Case("read_h5ad-missing", "missing-path", _read_h5ad("missing_h5ad"), names=("no_such_file.h5ad",)),
    Case("read_npz-trunc", "truncated", _read_npz, names=("model.npz",)),
    Case(
        "load_profiles-header",
        "header-only",
        _load_profiles("header_csv"),
        names=("header_only.csv", "no rows"),
    ),
    Case(
        "load_profiles-features",
        "missing-column",
        _load_profiles("screen_csv", features=["Cells_nothing"]),
        names=("Cells_nothing",),
    ),
    Case("load_profiles-text", "nonfinite", _load_profiles("text_feature_csv"), names=("numeric",)),
    Case("get_rep-nan", "nonfinite", _get_rep_nan, names=("nan.csv", "'5'")),
    Case("write_table-xlsx", "wrong-format", _write_xlsx, names=("t.xlsx",)),
    Case(
        "write_h5ad-empty_column",
        "missing-column",
        _write_empty_column,
        expect="works",
        check=_empty_column_read_back,
    ),
    Case("control_mask-query", "config-type", _control_query, names=("compound = 'DMSO'", "screen.csv")),
    Case("check_options-type", "config-type", _check_options, names=("metrics.n_draws", "'10'")),
    Case("remove_stale_temps", "leftovers", _stale_temps, expect="works", check=_only_dead_removed),
]


@pytest.mark.parametrize("case", params(API_CASES))
def test_api(case, corpus, tmp_path):
    run_case(case, None, corpus, tmp_path)
