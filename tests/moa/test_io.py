"""Loading pycytominer tables into AnnData (the data contract's feature rule) and atomic writes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lcd_moa.io import read_profiles, table_to_anndata, write_table


def test_feature_rules():
    base = pd.DataFrame(
        {"Metadata_Plate": ["p", "q"], "Cells_a": [1.0, 2.0], "Nuclei_b": [3, 4], "Other": [5.0, 6.0]}
    )
    meta = table_to_anndata(base)
    assert list(meta.var_names) == ["Cells_a", "Nuclei_b", "Other"]  # Metadata_ present: all others
    cp = table_to_anndata(base.rename(columns={"Metadata_Plate": "Plate"}))
    assert list(cp.var_names) == ["Cells_a", "Nuclei_b"] and list(cp.obs.columns) == ["Plate", "Other"]
    assert list(table_to_anndata(base, features="^Nuclei").var_names) == ["Nuclei_b"]
    assert list(table_to_anndata(base, features=["Other"]).var_names) == ["Other"]
    with pytest.raises(ValueError, match="pass features="):
        table_to_anndata(pd.DataFrame({"a": [1.0], "b": [2.0]}))
    with pytest.raises(TypeError, match="feature column 'Other' is not numeric"):
        table_to_anndata(base.assign(Other=["x", "y"]))
    with pytest.raises(KeyError, match="feature columns not found"):
        table_to_anndata(base, features=["nope"])


def test_inputs_are_not_modified_and_writes_are_atomic(tmp_path):
    table = pd.DataFrame({"Metadata_x": ["a", "b"], "f": [1.0, 2.0]})
    before = table.copy()
    adata = read_profiles(table)
    adata.X[0, 0] = 99.0
    pd.testing.assert_frame_equal(table, before)
    write_table(table, tmp_path / "t.parquet")
    write_table(table, tmp_path / "t.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.parquet"]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "t.parquet"), table)
    (tmp_path / "t.xlsx").write_text("")
    with pytest.raises(ValueError, match=r"t\.xlsx: unknown table format"):
        read_profiles(tmp_path / "t.xlsx")
    assert np.isfinite(adata.X).all()
