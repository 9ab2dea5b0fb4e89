"""Fixtures of the lcd-moa tests: a small synthetic screen with separable MoAs."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest


def make_screen(
    *,
    n_moa: int = 4,
    n_per_moa: int = 6,
    timepoints=(24, 48),
    doses=(1.0, 3.0, 10.0),
    n_wells: int = 3,
    n_controls: int = 8,
    n_features: int = 16,
    effect: float = 3.0,
    seed: int = 0,
) -> ad.AnnData:
    """Wells whose mean moves along one random unit direction per MoA, scaled by log dose and time.

    Control wells (compound "DMSO", no dose) sit at the origin; noise is standard normal. The MoA
    directions are kept in ``uns["directions"]``.
    """
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(n_moa, n_features))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    rows, feats = [], []
    top = np.log1p(max(doses))
    for m in range(n_moa):
        for i in range(n_per_moa):
            for t in timepoints:
                for d in doses:
                    scale = effect * np.log1p(d) / top * (0.7 + 0.3 * t / max(timepoints))
                    for w in range(n_wells):
                        rows.append(
                            {
                                "compound": f"cpd_{m}_{i}",
                                "moa": f"MoA{m}",
                                "timepoint": t,
                                "dose": d,
                                "well": w,
                            }
                        )
                        feats.append(scale * directions[m] + rng.normal(size=n_features))
    for t in timepoints:
        for w in range(n_controls):
            rows.append({"compound": "DMSO", "moa": None, "timepoint": t, "dose": np.nan, "well": w})
            feats.append(rng.normal(size=n_features))
    obs = pd.DataFrame(rows)
    obs.index = obs.index.astype(str)
    adata = ad.AnnData(
        np.asarray(feats), obs=obs, var=pd.DataFrame(index=[f"f{i}" for i in range(n_features)])
    )
    adata.uns["directions"] = directions
    return adata


def activity_by_dose(adata: ad.AnnData, min_dose: float) -> pd.DataFrame:
    """An activity table in lcd-metrics' map_es layout: active when the dose is at least ``min_dose``."""
    obs = adata.obs[adata.obs["compound"] != "DMSO"]
    table = obs[["compound", "timepoint", "dose"]].drop_duplicates().reset_index(drop=True)
    table["map_es"] = np.log1p(table["dose"])
    table["active"] = table["dose"] >= min_dose
    table["status"] = "ok"
    table["reason"] = ""
    return table


@pytest.fixture
def screen():
    """Factory for synthetic screens (see :func:`make_screen`)."""
    return make_screen


@pytest.fixture
def activity():
    """Factory for dose-threshold activity tables (see :func:`activity_by_dose`)."""
    return activity_by_dose
