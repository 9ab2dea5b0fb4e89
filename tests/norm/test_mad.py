"""MAD robustize against pycytominer (the reference implementation) on real profiles."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from lcd_core import load_profiles
from lcd_norm import InputError, mad_robustize
from pycytominer import normalize
from scipy.stats import median_abs_deviation

INJURY_CONTROL = "`Control Type` == 'Negative'"


def _pycytominer_per_group(
    frame: pd.DataFrame, group: str, features: list[str], samples: str, **kw
) -> pd.DataFrame:
    parts = []
    meta = [c for c in frame.columns if c not in set(features)]
    for _, part in frame.groupby(group, sort=False):
        parts.append(
            normalize(
                part, features=features, meta_features=meta, samples=samples, method="mad_robustize", **kw
            )
        )
    return pd.concat(parts).loc[frame.index, features]


def test_lincs_plate_equals_pycytominer(lincs_table):
    features = [c for c in lincs_table.columns if not c.startswith("Metadata_")]
    control = "Metadata_broad_sample == 'DMSO'"
    expected = _pycytominer_per_group(lincs_table, "Metadata_Plate", features, control)
    adata = load_profiles(lincs_table)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zero-MAD features are warned about; kept here like pycytominer
        mad_robustize(adata, measurement_keys="Metadata_Plate", control=control, zero_mad="keep")
    assert list(adata.var_names) == features and adata.uns["X_mad"]["features"] == features
    np.testing.assert_allclose(adata.obsm["X_mad"], expected.to_numpy(), rtol=1e-9, atol=1e-6)


def test_cell_injury_per_plate_equals_pycytominer(injury_table):
    adata = load_profiles(injury_table)
    features = list(adata.var_names)
    expected = _pycytominer_per_group(injury_table, "Plate", features, INJURY_CONTROL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mad_robustize(adata, measurement_keys=["Plate"], control=INJURY_CONTROL, zero_mad="keep")
    assert adata.uns["X_mad"]["n_groups"] == injury_table["Plate"].nunique() == 9
    np.testing.assert_allclose(adata.obsm["X_mad"], expected.to_numpy(), rtol=1e-9, atol=1e-6)


def test_eps_is_pycytominer_epsilon(injury_table):
    one_plate = injury_table[injury_table["Plate"] == injury_table["Plate"].iloc[0]].reset_index(drop=True)
    adata = load_profiles(one_plate)
    features = list(adata.var_names)
    expected = _pycytominer_per_group(
        one_plate, "Plate", features, INJURY_CONTROL, mad_robustize_epsilon=0.25
    )
    mad_robustize(adata, measurement_keys="Plate", control=INJURY_CONTROL, eps=0.25, zero_mad="keep")
    np.testing.assert_allclose(adata.obsm["X_mad"], expected.to_numpy(), rtol=1e-9, atol=1e-9)


def test_raw_mad_uses_unscaled_mad(profiles):
    adata = profiles
    mad_robustize(adata, measurement_keys=("plate", "timepoint"), raw_mad=True, eps=0.0, key_added="raw")
    obs = adata.obs
    group = (obs["plate"] == "R1P0") & (obs["timepoint"] == 48)
    ctrl = group & (obs["compound"] == "DMSO")
    X = adata.X
    median = np.median(X[ctrl.to_numpy()], axis=0)
    mad = median_abs_deviation(X[ctrl.to_numpy()], axis=0, scale=1.0)
    np.testing.assert_allclose(adata.obsm["raw"][group.to_numpy()], (X[group.to_numpy()] - median) / mad)
    assert adata.uns["raw"]["params"]["raw_mad"] is True


def test_controls_end_up_centred_per_group(profiles):
    mad_robustize(profiles)
    obs = profiles.obs
    for _, idx in obs[obs["compound"] == "DMSO"].groupby(["plate", "timepoint"]).indices.items():
        rows = obs.index[obs["compound"] == "DMSO"][idx]
        values = profiles[rows].obsm["X_mad"]
        np.testing.assert_allclose(np.median(values, axis=0), 0.0, atol=1e-12)
        np.testing.assert_allclose(median_abs_deviation(values, axis=0, scale=1 / 1.4826), 1.0, rtol=1e-9)


def _with_constant_control_feature(adata):
    X = adata.X.copy()
    dmso = (adata.obs["compound"] == "DMSO").to_numpy()
    X[dmso & (adata.obs["plate"] == "R0P1").to_numpy(), 3] = 7.0  # zero MAD in the controls of one plate
    adata.X = X
    return adata


def test_zero_mad_features_dropped_named_and_recorded(profiles):
    adata = _with_constant_control_feature(profiles)
    with pytest.warns(UserWarning, match=r"1 features have zero MAD.*dropped: f3"):
        out = mad_robustize(adata, copy=True)
    kept = out.uns["X_mad"]["features"]
    assert "f3" not in kept and len(kept) == adata.n_vars - 1 == out.obsm["X_mad"].shape[1]
    assert out.uns["X_mad"]["dropped_features"] == ["f3"] == out.uns["X_mad"]["zero_mad_features"]
    assert out.n_vars == adata.n_vars == 24  # the AnnData is not subset: X and var stay whole
    assert "X_mad" not in adata.obsm and "X_mad" not in adata.uns  # copy=True leaves the input alone
    assert np.isfinite(out.obsm["X_mad"]).all()
    with pytest.warns(UserWarning, match="kept"):
        full = mad_robustize(adata, zero_mad="keep", copy=True).obsm["X_mad"]
    np.testing.assert_array_equal(out.obsm["X_mad"], np.delete(full, 3, axis=1))  # f3 is column 3
    assert out.uns["X_mad"]["params"]["zero_mad"] == "drop"


def test_zero_mad_error_policy(profiles):
    adata = _with_constant_control_feature(profiles)
    with pytest.raises(InputError, match="f3"):
        mad_robustize(adata, zero_mad="error")


def test_group_without_controls_is_named(profiles):
    adata = profiles
    obs = adata.obs.copy()
    obs.loc[(obs["plate"] == "R2P1") & (obs["timepoint"] == 24) & (obs["compound"] == "DMSO"), "compound"] = (
        "X"
    )
    adata.obs = obs
    with pytest.raises(InputError, match=r"plate='R2P1', timepoint=24 has no control rows"):
        mad_robustize(adata)


def test_missing_key_nan_and_bad_control(profiles):
    with pytest.raises(InputError, match="'batch' not found"):
        mad_robustize(profiles, measurement_keys=("batch",))
    with pytest.raises(InputError, match="no control rows match"):
        mad_robustize(profiles, control="compound == 'nothing'")
    with pytest.raises(InputError, match="control query"):
        mad_robustize(profiles, control="compound ==")
    X = profiles.X.copy()
    X[5, 2] = np.nan
    X[9, 0] = np.inf
    profiles.X = X
    with pytest.raises(InputError, match=r"2 NaN/inf values in 2 rows \(first: '5', '9'\)"):
        mad_robustize(profiles)


def test_boolean_control_column(profiles):
    expected = mad_robustize(profiles, copy=True).obsm["X_mad"]
    profiles.obs["is_ctrl"] = profiles.obs["compound"] == "DMSO"
    mad_robustize(profiles, control="is_ctrl")
    np.testing.assert_array_equal(profiles.obsm["X_mad"], expected)


def test_float32_input_stays_float32_and_close_to_float64(profiles):
    expected = mad_robustize(profiles, copy=True).obsm["X_mad"]
    profiles.X = profiles.X.astype(np.float32)
    mad_robustize(profiles)
    assert profiles.obsm["X_mad"].dtype == np.float32
    np.testing.assert_allclose(profiles.obsm["X_mad"], expected, rtol=1e-5, atol=1e-5)


def test_zero_mad_keep_matches_pycytominer(profiles):
    adata = _with_constant_control_feature(profiles)
    frame = pd.concat(
        [adata.obs.reset_index(drop=True), pd.DataFrame(adata.X, columns=list(adata.var_names))], axis=1
    )
    expected = _pycytominer_per_group(
        frame.assign(group=frame["plate"] + "_" + frame["timepoint"].astype(str)),
        "group",
        list(adata.var_names),
        "compound == 'DMSO'",
    )
    with pytest.warns(UserWarning, match=r"kept \(divided by eps only\): f3"):
        mad_robustize(adata, zero_mad="keep")
    np.testing.assert_allclose(adata.obsm["X_mad"], expected.to_numpy(), rtol=1e-9, atol=1e-6)
    assert np.abs(adata.obsm["X_mad"][:, 3]).max() > 1e12  # the zero-MAD feature explodes, as in pycytominer
