"""Fixtures of the lcd-norm tests: the real profile tables and a small synthetic live-cell design."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

LINCS = "profiles/lincs_a549_SQ00015054/SQ00015054_normalized_feature_select.csv.gz"
INJURY = "profiles/cell_injury/fs_plate_holdout.csv.gz"
INJURY_CONTROL = "`Control Type` == 'Negative'"
INJURY_BATCH = "Experimental Condition [Experimental Batch]"


@pytest.fixture(scope="session")
def lincs_table(shared_data) -> pd.DataFrame:
    return pd.read_csv(shared_data / LINCS)


@pytest.fixture(scope="session")
def injury_table(shared_data) -> pd.DataFrame:
    return pd.read_csv(shared_data / INJURY)


def make_profiles(
    *,
    n_replicas: int = 3,
    plates_per_replica: int = 2,
    n_compounds: int = 6,
    wells_per_compound: int = 2,
    n_dmso: int = 8,
    n_fov: int = 3,
    timepoints: tuple = (24, 48),
    n_features: int = 24,
    batch_shift: float = 3.0,
    fov_shift: float = 1.0,
    seed: int = 0,
) -> AnnData:
    """FOV-level profiles with planted replica, plate and FOV shifts and a compound signal.

    Compound c has a fixed phenotype vector; replica, plate and FOV index add fixed offsets, so the
    biological label and the batch labels are known.
    """
    rng = np.random.default_rng(seed)
    phenotypes = rng.normal(0, 2.0, (n_compounds, n_features))
    replica_shift = rng.normal(0, batch_shift, (n_replicas, n_features))
    fov_offsets = rng.normal(0, fov_shift, (n_fov, n_features))
    rows, values = [], []
    for r in range(n_replicas):
        for p in range(plates_per_replica):
            plate = f"R{r}P{p}"
            plate_shift = rng.normal(0, 0.5, n_features)
            plate_scale = rng.uniform(0.7, 1.5, n_features)
            wells = [("DMSO", None)] * n_dmso + [
                (f"cpd{c}", c) for c in range(n_compounds) for _ in range(wells_per_compound)
            ]
            for w, (compound, c) in enumerate(wells):
                for t in timepoints:
                    for f in range(n_fov):
                        signal = 0.0 if c is None else phenotypes[c] * (t / max(timepoints))
                        base = rng.normal(0, 1.0, n_features) + signal + replica_shift[r] + fov_offsets[f]
                        values.append(base * plate_scale + plate_shift + 5.0)
                        rows.append(
                            {
                                "replica": f"rep{r}",
                                "plate": plate,
                                "well": f"W{w:02d}",
                                "fov": f,
                                "timepoint": t,
                                "compound": compound,
                                "moa": "control" if c is None else f"moa{c % 3}",
                            }
                        )
    obs = pd.DataFrame(rows)
    obs.index = obs.index.astype(str)
    var = pd.DataFrame(index=[f"f{i}" for i in range(n_features)])
    return AnnData(X=np.asarray(values, dtype=np.float64), obs=obs, var=var)


@pytest.fixture
def profiles() -> AnnData:
    return make_profiles()


@pytest.fixture(scope="session")
def profile_factory():
    """:func:`make_profiles` for tests that need a variant of the synthetic design."""
    return make_profiles
