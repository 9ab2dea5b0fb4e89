"""The withdrawal design (treatment removed after timepoint k) and the trajectories, against the simulator's truth.

Oracles: the closed-form strength written out here; the simulator's true nuclei (disks from
truth/nuclei.parquet) as the segmentation of the pixel-level handcrafted features; the planted strength
per compound × dose × timepoint for the trajectories' distances to DMSO.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lcd_pipeline.simulate import SimulationConfig, preset_config, simulate_plate
from scipy.stats import spearmanr

HOURS = (12.0, 24.0, 48.0, 72.0)
K = 2  # treatment removed after the second timepoint (24 h)
TAU, RECOVERY = 16.0, 12.0
WITHDRAWAL = dict(
    n_replicas=3,
    moas=("tubulin", "actin"),
    compounds_per_moa=2,
    n_inert=1,
    doses=(1.0, 10.0),
    timepoint_hours=HOURS,
    n_dmso=6,
    fovs_per_well=2,
    image_size=96,
    plate_rows=6,
    plate_columns=8,
    withdrawal_after=K,
    recovery_hours=RECOVERY,
)


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    return simulate_plate(
        tmp_path_factory.mktemp("withdrawal") / "plate",
        SimulationConfig(seed=5, **WITHDRAWAL),
        progress=False,
    )


def test_truth_strength_follows_the_closed_form(plate):
    cond = plate.truth("conditions")
    comp = plate.truth("compounds").set_index("compound")
    for row in cond.itertuples():
        c = comp.loc[row.compound]
        hill = 0.0 if c["inert"] else row.dose**2 / (row.dose**2 + c["ec50"] ** 2)
        h = HOURS[row.timepoint - 1]
        if row.timepoint <= K:
            expected = c["e_max"] * hill * (1 - np.exp(-h / TAU))
        else:
            at_k = c["e_max"] * hill * (1 - np.exp(-HOURS[K - 1] / TAU))
            expected = at_k * np.exp(-(h - HOURS[K - 1]) / RECOVERY)
        assert row.strength == pytest.approx(expected, rel=1e-12, abs=1e-15)
        assert row.withdrawn == (row.timepoint > K)
        assert row.active == (expected >= 0.3)
    # phenotypes relax: at the last timepoint nothing strong is left
    assert cond.loc[cond["timepoint"] == len(HOURS), "strength"].max() < 0.1 * cond["strength"].max()


def test_without_withdrawal_nothing_changes_before_k(plate, tmp_path):
    cfg = SimulationConfig(seed=5, **{**WITHDRAWAL, "withdrawal_after": None})
    from lcd_pipeline.simulate.design import compound_table, condition_truth

    rng = np.random.default_rng([5, 0])
    plain = condition_truth(cfg, compound_table(cfg, rng))
    withdrawn = plate.truth("conditions")
    before = withdrawn["timepoint"] <= K
    np.testing.assert_array_equal(withdrawn.loc[before, "strength"], plain.loc[before, "strength"])
    # continuous treatment keeps growing; withdrawal makes every active compound × dose fall after k
    for _, g in plain.groupby(["compound", "dose"]):
        assert g.sort_values("timepoint")["strength"].is_monotonic_increasing
    for _, g in withdrawn[withdrawn["strength"] > 0].groupby(["compound", "dose"]):
        s = g.sort_values("timepoint")["strength"].to_numpy()
        assert (np.diff(s[K - 1 :]) < 0).all()
    with pytest.raises(ValueError, match="withdrawal_after"):
        SimulationConfig(**{**WITHDRAWAL, "withdrawal_after": len(HOURS)})


def test_cells_come_back_after_withdrawal_in_the_pixels(plate):
    """True nuclei counts (rendered cells) of count-loss compounds recover toward DMSO after withdrawal."""
    fields = plate.truth("fields")
    cond = plate.truth("conditions")
    strong = cond[
        (cond["timepoint"] == K) & (cond["strength"] > 0.5) & (cond["compound"].str.startswith("tubulin"))
    ]
    assert len(strong), "the design needs a strongly active tubulin condition at k"
    dmso = fields[fields["compound"] == "DMSO"].groupby("timepoint")["nuclei_count"].mean()
    gaps = []
    for row in strong.itertuples():
        f = fields[(fields["compound"] == row.compound) & (fields["dose"] == row.dose)]
        per_t = f.groupby("timepoint")["nuclei_count"].mean()
        gaps.append((dmso - per_t).to_numpy())
    gaps = np.mean(gaps, axis=0)
    assert gaps[K - 1] > 1.0  # cells lost while treated
    assert gaps[-1] < 0.5 * gaps[K - 1]  # mostly back after two recovery timepoints


def _truth_segmenter(plate):
    nuclei = plate.truth("nuclei")
    size = WITHDRAWAL["image_size"]
    yy, xx = np.mgrid[:size, :size] + 0.5
    groups = {k: g for k, g in nuclei.groupby(["plate", "well", "fov", "timepoint"])}

    def segment(image, row):
        labels = np.zeros((size, size), np.int32)
        g = groups.get((row["plate"], row["well"], int(row["fov"]), int(row["timepoint"])))
        if g is not None:
            for k, n in enumerate(g.itertuples(), start=1):
                labels[(yy - n.y) ** 2 + (xx - n.x) ** 2 < n.radius**2] = k
        return labels, None

    return segment


@pytest.fixture(scope="module")
def well_profiles(plate):
    import lcd_embed
    from lcd_norm import aggregate, mad_robustize
    from lcd_pipeline.handcrafted import handcrafted_profiles

    manifest = lcd_embed.manifest_from_opera(plate.image_dirs, plate.plate_map, hours_offset=HOURS[0])
    fov = handcrafted_profiles(manifest, segment=_truth_segmenter(plate))
    mad_robustize(fov, ["plate", "timepoint"], "compound == 'DMSO'")
    return aggregate(fov, by="well", use_rep="X_mad")


def test_trajectories_track_the_planted_strength_and_the_recovery(plate, well_profiles):
    from lcd_pipeline.trajectories import trajectories

    traj = trajectories(well_profiles, control="compound == 'DMSO'")
    table = traj.table
    assert len(table) == (2 * 2 + 1) * 2 * len(HOURS)  # compounds x doses x timepoints
    truth = plate.truth("conditions")[["compound", "dose", "timepoint", "strength", "withdrawn"]]
    both = table.merge(truth, on=["compound", "dose", "timepoint"])
    rho = spearmanr(both["distance_to_control"], both["strength"]).statistic
    assert rho > 0.6, both[["compound", "dose", "timepoint", "distance_to_control", "strength"]]
    # after withdrawal, the compound × doses that were strongly active at k move back toward DMSO
    strong = both[(both["timepoint"] == K) & (both["strength"] > 0.4)][["compound", "dose"]]
    back = both.merge(strong, on=["compound", "dose"])
    at_k = back[back["timepoint"] == K].set_index(["compound", "dose"])["distance_to_control"]
    at_end = back[back["timepoint"] == len(HOURS)].set_index(["compound", "dose"])["distance_to_control"]
    assert len(at_k) >= 2 and (at_end < at_k).mean() >= 0.75, pd.concat([at_k, at_end], axis=1)
    first_after = back[back["timepoint"] == K + 1]
    assert (first_after["direction"] == "toward").mean() >= 0.75
    # the 2-D view: one median position per compound x dose x timepoint, controls kept apart
    assert len(traj.coords) == len(table) and traj.basis == "pca"
    assert np.isfinite(traj.coords[["x", "y"]].to_numpy()).all() and len(traj.control_coords) > 0


def test_trajectory_distances_equal_a_direct_computation(well_profiles):
    """Oracle: median well profile minus DMSO median, written with numpy per group."""
    from lcd_pipeline.trajectories import trajectories

    traj = trajectories(well_profiles, control="compound == 'DMSO'").table
    X, obs = np.asarray(well_profiles.X, float), well_profiles.obs
    row = traj.iloc[5]
    at = obs["timepoint"] == row["timepoint"]
    ctrl = np.median(X[(at & (obs["compound"] == "DMSO")).to_numpy()], axis=0)
    mine = (at & (obs["compound"] == row["compound"]) & (obs["dose"] == row["dose"])).to_numpy()
    assert row["distance_to_control"] == pytest.approx(np.linalg.norm(np.median(X[mine], axis=0) - ctrl))
    prev = traj[(traj["compound"] == row["compound"]) & (traj["dose"] == row["dose"])]
    assert prev["change"].isna().sum() == 1  # the first timepoint has no previous one


def test_controls_need_no_dose_but_a_treated_well_does(well_profiles):
    from lcd_core import InputError
    from lcd_pipeline.trajectories import trajectories

    wells = well_profiles.copy()
    dmso = (wells.obs["compound"] == "DMSO").to_numpy()
    wells.obs["dose"] = wells.obs["dose"].astype(float).where(~dmso)  # a CellProfiler table's DMSO rows
    ref = trajectories(well_profiles, control="compound == 'DMSO'").table
    got = trajectories(wells, control="compound == 'DMSO'").table
    pd.testing.assert_frame_equal(got.reset_index(drop=True), ref.reset_index(drop=True))
    wells.obs.loc[wells.obs.index[np.flatnonzero(~dmso)[0]], "dose"] = np.nan
    with pytest.raises(InputError, match="'dose'"):
        trajectories(wells, control="compound == 'DMSO'")


def test_demo_preset_accepts_withdrawal():
    cfg = preset_config("demo", withdrawal_after=1)
    assert cfg.withdrawal_after == 1
