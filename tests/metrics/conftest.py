"""Fixtures of the lcd-metrics tests: the real profiles beside the repository and small synthetic designs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

LINCS = "lincs_a549_SQ00015054/SQ00015054_normalized_feature_select.csv.gz"
INJURY_SPLITS = ("fs_plate_holdout", "fs_well_holdout", "fs_treatment_holdout")


@pytest.fixture(scope="session")
def lincs_path(shared_data):
    return shared_data / "profiles" / LINCS


@pytest.fixture(scope="session")
def lincs(lincs_path) -> pd.DataFrame:
    return pd.read_csv(lincs_path)


@pytest.fixture(scope="session")
def cell_injury(shared_data) -> pd.DataFrame:
    """All three hold-out splits of the cell-injury screen together (3,199 wells, 84 plates)."""
    parts = [pd.read_csv(shared_data / "profiles" / "cell_injury" / f"{s}.csv.gz") for s in INJURY_SPLITS]
    return pd.concat(parts, ignore_index=True)


def screen(
    n_compounds=6,
    n_replicas=3,
    plates_per_replica=2,
    n_ctrl=34,
    doses=(1.0, 10.0),
    timepoints=("24h",),
    wells_per_plate=1,
    d=24,
    effect=None,
    seed=0,
):
    """A synthetic live-cell screen: per timepoint × replica × plate, `n_ctrl` DMSO wells and for each
    compound × dose `wells_per_plate` wells on every plate. `effect[c]` is a shift added to compound c."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in timepoints:
        for r in range(n_replicas):
            for p in range(plates_per_replica):
                plate = f"{t}-R{r}-P{p}"
                rows += [("DMSO", 0.0, t, f"R{r}", plate)] * n_ctrl
                for c in range(n_compounds):
                    for dose in doses:
                        rows += [(f"cmp{c}", dose, t, f"R{r}", plate)] * wells_per_plate
    obs = pd.DataFrame(rows, columns=["compound", "dose", "timepoint", "replica", "plate"])
    X = rng.normal(size=(len(obs), d))
    if effect:
        for c, shift in effect.items():
            X[(obs["compound"] == f"cmp{c}").to_numpy()] += shift
    obs.index = [f"well{i}" for i in range(len(obs))]
    return obs, X


@pytest.fixture
def make_screen():
    return screen


PAPER_CONTROLS = 32
LOW = (0.156, 0.625, 2.5)


def paper_layout(n_compounds=3, d=16, seed=0, effect=0.9):
    """Rows: (compound, dose, timepoint, replica, plate); features with a per-plate offset."""
    rng = np.random.default_rng(seed)
    rows = []
    for rep, doses in (("R1", (10.0,)), ("R2", (10.0,)), ("R3", LOW)):
        for layout in ("A", "B"):
            plate = f"{rep}-{layout}"
            rows += [("DMSO", 0.0, "24h", rep, plate)] * PAPER_CONTROLS
            for c in range(n_compounds):
                for dose in doses:
                    per_plate = 2 if dose == 10.0 else 3
                    rows += [(f"cmp{c}", dose, "24h", rep, plate)] * per_plate
    obs = pd.DataFrame(rows, columns=["compound", "dose", "timepoint", "replica", "plate"])
    X = rng.normal(size=(len(obs), d))
    plate_offset = {p: rng.normal(scale=0.7, size=d) for p in obs["plate"].unique()}
    X += np.stack([plate_offset[p] for p in obs["plate"]])
    signature = rng.normal(size=d)
    X[(obs["compound"] == "cmp0").to_numpy()] += effect * signature
    obs.index = [f"w{i}" for i in range(len(obs))]
    return obs, X


@pytest.fixture(scope="session")
def make_paper():
    return paper_layout
