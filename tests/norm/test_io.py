"""Reading pycytominer tables by the contract's feature rules; atomic writes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lcd_core import load_profiles, write_h5ad, write_table
from lcd_norm import InputError, mad_robustize


def test_metadata_prefix_rule_on_lincs(lincs_table):
    adata = load_profiles(lincs_table)
    meta = [c for c in lincs_table.columns if c.startswith("Metadata_")]
    assert list(adata.obs.columns) == meta
    assert adata.n_vars == lincs_table.shape[1] - len(meta)
    np.testing.assert_array_equal(adata.X, lincs_table.drop(columns=meta).to_numpy())


def test_cellprofiler_rule_on_cell_injury(injury_table):
    adata = load_profiles(injury_table)
    assert all(v.startswith(("Cells_", "Cytoplasm_", "Nuclei_", "Image_")) for v in adata.var_names)
    assert "Experimental Condition [Experimental Batch]" in adata.obs.columns  # names unchanged
    assert "Mahalanobis distance" in adata.obs.columns and adata.n_vars == 352


def test_explicit_features_and_regex():
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0], "label": ["x", "y"]})
    assert list(load_profiles(frame, features=["b"]).var_names) == ["b"]
    assert list(load_profiles(frame, features="^[ab]$").obs.columns) == ["label"]
    with pytest.raises(InputError, match="pass features="):
        load_profiles(frame)
    with pytest.raises(InputError, match="'label' is not numeric"):
        load_profiles(frame.rename(columns={"a": "Metadata_a"}))


def test_files_roundtrip_and_atomic_write(tmp_path, lincs_table, profiles):
    csv = tmp_path / "plate.csv.gz"
    lincs_table.to_csv(csv, index=False)
    parquet = tmp_path / "plate.parquet"
    lincs_table.to_parquet(parquet)
    a, b = load_profiles(csv), load_profiles(parquet)
    np.testing.assert_allclose(a.X, b.X)
    mad_robustize(profiles)
    out = write_h5ad(profiles, tmp_path / "sub" / "p.h5ad")
    back = load_profiles(out)
    np.testing.assert_array_equal(back.obsm["X_mad"], profiles.obsm["X_mad"])
    assert back.uns["X_mad"]["params"]["measurement_keys"].tolist() == ["plate", "timepoint"]
    write_table(pd.DataFrame({"x": [1]}), tmp_path / "t.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plate.csv.gz", "plate.parquet", "sub", "t.csv"]
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["p.h5ad"]  # no temp files left


def test_missing_or_unknown_file(tmp_path):
    with pytest.raises(InputError, match=r"nope\.csv: profiles table not found"):
        load_profiles(tmp_path / "nope.csv")
    (tmp_path / "x.xlsx").write_text("x")
    with pytest.raises(InputError, match="unknown table format"):
        load_profiles(tmp_path / "x.xlsx")
