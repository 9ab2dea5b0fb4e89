"""lcd-moa reads profiles through lcd-core (the data contract's feature rule) and writes atomically.

0.1.0 had its own reader (lcd_moa.io); 0.2.0 uses lcd_core.load_profiles / table_to_anndata /
write_table. The feature-rule assertions of 0.1.0 are kept, on the functions lcd-moa now calls.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from lcd_core import InputError, load_profiles, table_to_anndata, write_table
from lcd_moa import cross_validate


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
    with pytest.raises(InputError, match="pass features="):
        table_to_anndata(pd.DataFrame({"a": [1.0], "b": [2.0]}))
    with pytest.raises(InputError, match="feature column 'Other' is not numeric"):
        table_to_anndata(base.assign(Other=["x", "y"]))
    with pytest.raises(InputError, match="feature column 'nope' not found"):
        table_to_anndata(base, features=["nope"])


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _as_table(adata) -> pd.DataFrame:
    return pd.concat(
        [
            adata.obs.add_prefix("Metadata_").reset_index(drop=True),
            pd.DataFrame(adata.X, columns=[f"Cells_f{i}" for i in range(adata.n_vars)]),
            pd.DataFrame({"Image_flag": np.zeros(adata.n_obs)}),  # a column the regex below leaves out
        ],
        axis=1,
    )


def test_table_input_equals_anndata_input_and_is_not_modified(screen, activity, tmp_path):
    adata = screen(n_moa=3, n_per_moa=5, seed=40)
    act = activity(adata, 3.0).rename(columns=lambda c: f"Metadata_{c}" if c != "active" else c)
    table = _as_table(adata)
    before = table.copy()
    spec = {
        "compound_key": "Metadata_compound",
        "moa_key": "Metadata_moa",
        "condition_keys": ["Metadata_timepoint", "Metadata_dose"],
        "control": "Metadata_compound == 'DMSO'",
        "features": "^Cells_",
    }
    from_table = cross_validate(table, act, spec, seed=0)
    pd.testing.assert_frame_equal(table, before)  # the caller's table is untouched
    table.to_csv(tmp_path / "profiles.csv.gz", index=False)
    from_file = cross_validate(tmp_path / "profiles.csv.gz", act, spec, seed=0)
    plain = cross_validate(adata, activity(adata, 3.0), seed=0)
    for result in (from_table, from_file):
        np.testing.assert_allclose(
            result.condition_probs.filter(like="p_").to_numpy(float),
            plain.condition_probs.filter(like="p_").to_numpy(float),
            rtol=1e-12,
        )
    assert from_file.params["spec"]["features"] == "^Cells_"


def test_unknown_suffix_features_on_anndata_and_atomic_writes(screen, activity, tmp_path):
    (tmp_path / "t.xlsx").write_text("")
    with pytest.raises(InputError, match=r"t\.xlsx: unknown table format '\.xlsx'"):
        cross_validate(tmp_path / "t.xlsx")
    adata = screen(n_moa=3, n_per_moa=5, seed=41)
    with pytest.raises(InputError, match="features= applies to tables"):
        cross_validate(adata, None, {"features": "^f"})
    result = cross_validate(adata, activity(adata, 3.0), seed=0)
    written = result.write(tmp_path / "out", figures=False)
    assert set(written) >= {"metrics", "predictions", "params", "polypharmacology"}
    assert not [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temporaries
    assert (tmp_path / "out" / "metrics.parquet").stat().st_mode & 0o777 == 0o666 & ~_umask()
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file, expected an output folder"):
        result.write(tmp_path / "file", figures=False)
    table = pd.DataFrame({"Metadata_x": ["a", "b"], "f": [1.0, 2.0]})
    write_table(table, tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "t.parquet"), table)
    assert load_profiles(tmp_path / "t.parquet").uns["lcd"]["source"] == str(tmp_path / "t.parquet")
