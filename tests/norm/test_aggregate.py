"""aggregate against a naive pandas groupby loop."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from lcd_norm import InputError, aggregate


def _naive(adata, keys, func):
    frame = pd.concat([adata.obs[keys].reset_index(drop=True), pd.DataFrame(adata.X)], axis=1)
    rows, counts, labels = [], [], []
    for label, part in frame.groupby(keys, sort=True):
        values = part.drop(columns=keys).to_numpy()
        rows.append(np.median(values, axis=0) if func == "median" else values.mean(axis=0))
        counts.append(len(part))
        labels.append(label)
    return np.array(rows), np.array(counts), labels


@pytest.mark.parametrize("func", ["median", "mean"])
def test_fov_to_well_matches_naive_groupby(profiles, func):
    out = aggregate(profiles, "well", func=func)
    expected, counts, labels = _naive(profiles, ["plate", "well", "timepoint"], func)
    np.testing.assert_allclose(out.X, expected, rtol=1e-12)
    np.testing.assert_array_equal(out.obs["n_members"].to_numpy(), counts)
    assert list(zip(out.obs["plate"], out.obs["well"], out.obs["timepoint"], strict=True)) == labels
    assert out.uns["lcd"]["level"] == "well"
    assert list(out.var_names) == list(profiles.var_names)


def test_constant_metadata_kept_varying_dropped(profiles):
    out = aggregate(profiles, "well")
    assert {"replica", "compound", "moa"} <= set(out.obs.columns)
    assert "fov" not in out.obs.columns  # varies within a well
    assert out.uns["aggregate"]["params"]["dropped_columns"] == ["fov"]


def test_tiles_to_fov_to_well_counts_members(profiles):
    rng = np.random.default_rng(1)
    rows = np.repeat(np.arange(profiles.n_obs), 4)
    obs = profiles.obs.iloc[rows].reset_index(drop=True)
    obs["tile"] = np.tile(np.arange(4), profiles.n_obs)
    obs.index = obs.index.astype(str)
    tiles = AnnData(X=profiles.X[rows] + rng.normal(0, 0.1, (len(rows), profiles.n_vars)), obs=obs)
    fov = aggregate(tiles, "fov", func="mean")
    assert fov.n_obs == profiles.n_obs and (fov.obs["n_members"] == 4).all()
    assert fov.uns["lcd"]["level"] == "fov"
    well = aggregate(fov, "well")
    assert (well.obs["n_members"] == 3).all()


def test_explicit_columns_and_obsm(profiles):
    profiles.obsm["X_emb"] = profiles.X[:, :5] * 2
    out = aggregate(profiles, ["replica"], use_rep="X_emb", func="mean")
    for r, row in zip(out.obs["replica"], out.X, strict=True):
        np.testing.assert_allclose(
            row, profiles.obsm["X_emb"][(profiles.obs["replica"] == r).to_numpy()].mean(0)
        )
    assert out.uns["lcd"]["level"] == "replica"


def test_bad_input(profiles):
    with pytest.raises(InputError, match="'site' not found"):
        aggregate(profiles, ["plate", "site"])
    obs = profiles.obs.drop(columns="timepoint")
    profiles.obs = obs
    with pytest.raises(InputError, match="'timepoint' not found"):
        aggregate(profiles, "well")
    with pytest.raises(InputError, match="func"):
        aggregate(profiles, ["plate"], func="max")
