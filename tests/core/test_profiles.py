"""The feature-column rule, profile loading, the feature accessor, controls and keys."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from lcd_core import (
    DEFAULT_CONTROL,
    InputError,
    check_keys,
    control_mask,
    feature_columns,
    get_rep,
    groups_without_controls,
    load_profiles,
    write_table,
)


def test_feature_rule_in_order():
    meta = pd.DataFrame({"Metadata_a": ["x"], "Cells_b": [1.0], "other": [2]})
    assert feature_columns(meta) == ["Cells_b", "other"]  # rule 2: everything not Metadata_
    cp = pd.DataFrame({"Plate": ["p"], "Cells_b": [1.0], "Nuclei_c": [2.0], "Image_d": [3], "x": [4.0]})
    assert feature_columns(cp) == ["Cells_b", "Nuclei_c", "Image_d"]  # rule 3: compartments
    assert feature_columns(cp, "^(Cells|x)") == ["Cells_b", "x"]  # rule 1: regex
    assert feature_columns(cp, ["x", "Cells_b"]) == ["x", "Cells_b"]  # rule 1: list, given order
    with pytest.raises(InputError, match="cannot tell features"):
        feature_columns(pd.DataFrame({"a": [1.0]}))


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"Metadata_a": ["x"], "flag": [True]}), "'flag' is boolean"),
        (pd.DataFrame({"Metadata_a": ["x"], "name": ["n"]}), "'name' is not numeric"),
        (
            pd.DataFrame({"Metadata_a": pd.Series([], dtype=object), "f": pd.Series([], dtype=object)}),
            "no rows",
        ),
        (pd.DataFrame({"Metadata_a": ["x"]}), "no feature columns"),
    ],
)
def test_feature_rule_refusals(frame, message):
    with pytest.raises(InputError, match=message):
        feature_columns(frame, source="t.csv")


def test_feature_rule_explicit_errors():
    df = pd.DataFrame({"Metadata_a": ["x"], "f": [1.0]})
    with pytest.raises(InputError, match="'g' not found"):
        feature_columns(df, ["g"])
    with pytest.raises(InputError, match="matches no column"):
        feature_columns(df, "^zzz")
    with pytest.raises(InputError, match="not valid"):
        feature_columns(df, "([")


def test_load_profiles_from_every_form_gives_the_same_matrix(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(5, 3)), columns=["f0", "f1", "f2"])
    df.insert(0, "Metadata_Plate", ["p1"] * 5)
    write_table(df, tmp_path / "p.parquet")
    write_table(df, tmp_path / "p.tsv")
    from_frame = load_profiles(df)
    from_pq = load_profiles(tmp_path / "p.parquet")
    from_tsv = load_profiles(str(tmp_path / "p.tsv"))
    for a in (from_frame, from_pq, from_tsv):
        np.testing.assert_array_equal(get_rep(a), df[["f0", "f1", "f2"]].to_numpy())
        assert list(a.obs.columns) == ["Metadata_Plate"]
    assert from_pq.uns["lcd"]["source"].endswith("p.parquet")
    adata = ad.AnnData(X=df[["f0", "f1", "f2"]].to_numpy(np.float32))
    assert load_profiles(adata) is adata  # not copied
    assert get_rep(adata, dtype=None).dtype == np.float32


def test_load_profiles_refusals(tmp_path):
    adata = ad.AnnData(X=np.ones((2, 2)))
    with pytest.raises(InputError, match="layer 'mad' not found"):
        load_profiles(adata, layer="mad")
    with pytest.raises(InputError, match="obsm key 'X_h' not found"):
        load_profiles(adata, use_rep="X_h")
    with pytest.raises(InputError, match="not both"):
        load_profiles(adata, layer="a", use_rep="b")
    with pytest.raises(InputError, match="apply to AnnData"):
        load_profiles(pd.DataFrame({"Metadata_a": [1], "f": [1.0]}), layer="x")
    with pytest.raises(InputError, match="unsupported profiles input list"):
        load_profiles([1, 2])
    (tmp_path / "bad.h5ad").write_bytes(b"\x89HDF\r\n garbage")
    with pytest.raises(InputError, match=r"bad.h5ad: is not a valid h5ad file"):
        load_profiles(tmp_path / "bad.h5ad")


def test_get_rep_names_nonfinite_rows():
    X = np.ones((4, 3))
    X[2, 1] = np.nan
    X[3, 0] = np.inf
    adata = ad.AnnData(X=X, obs=pd.DataFrame(index=["a", "b", "c", "d"]))
    with pytest.raises(InputError, match=r"2 NaN/inf values in 2 rows \(first: 'c', 'd'\)"):
        get_rep(adata)
    assert np.isnan(get_rep(adata, finite=False)[2, 1])
    adata.obsm["X_e"] = np.zeros((4, 0))
    with pytest.raises(InputError, match="no feature columns"):
        get_rep(adata, use_rep="X_e")


def test_control_mask_one_behaviour():
    obs = pd.DataFrame(
        {
            "compound": ["DMSO", "a", None, "DMSO"],
            "ctrl": [True, False, False, True],
            "nullable": pd.array([True, None, False, True], dtype="boolean"),
            "My Col": ["x", "y", "x", "y"],
        }
    )
    np.testing.assert_array_equal(control_mask(obs), [True, False, False, True])  # missing -> not control
    assert DEFAULT_CONTROL == "compound == 'DMSO'"
    np.testing.assert_array_equal(control_mask(obs, "ctrl"), [True, False, False, True])
    np.testing.assert_array_equal(control_mask(obs, "`My Col` == 'x'"), [True, False, True, False])
    nb = obs.assign(nullable=pd.array([True, False, False, True], dtype="boolean"))
    np.testing.assert_array_equal(control_mask(nb, "nullable"), [True, False, False, True])
    with pytest.raises(InputError, match="'nullable' has 1 missing values"):
        control_mask(obs, "nullable")
    with pytest.raises(InputError, match="must be boolean"):
        control_mask(obs, "compound")
    with pytest.raises(InputError, match="no control rows match"):
        control_mask(obs, "compound == 'PBS'")
    assert not control_mask(obs, "compound == 'PBS'", require=False).any()
    with pytest.raises(InputError, match="cannot evaluate control query"):
        control_mask(obs, "nonexistent == 1")


def test_groups_without_controls():
    obs = pd.DataFrame({"plate": ["A", "A", "B", "B"], "t": [1, 1, 1, 2]})
    mask = np.array([True, False, True, False])
    assert groups_without_controls(obs, mask, ["plate", "t"]) == [{"plate": "B", "t": 2}]


def test_check_keys():
    obs = pd.DataFrame({"plate": ["A", None], "well": ["B03", "B04"]}, index=["r0", "r1"])
    assert check_keys(obs, "well") == ["well"]
    with pytest.raises(InputError, match="column 'dose' not found"):
        check_keys(obs, ["well", "dose"], source="p.csv")
    with pytest.raises(InputError, match=r"'plate' has 1 missing values \(first rows: 'r1'\)"):
        check_keys(obs, ["plate"])
    assert check_keys(obs, ["plate"], allow_missing=True) == ["plate"]
