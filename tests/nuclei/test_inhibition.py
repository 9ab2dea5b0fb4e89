"""Inhibition % per well of lcd-nuclei's counts: lcd_metrics.inhibition against a naive loop.

lcd-nuclei has no inhibition of its own any more; ``lcd_nuclei.inhibition`` is a deprecated forwarder.
"""

import numpy as np
import pandas as pd
import pytest
from lcd_metrics import inhibition


def field_counts(seed=0):
    """What ``count_nuclei`` writes to obs: one row per field, wells of 3 fields, two DMSO wells a plate."""
    rng = np.random.default_rng(seed)
    rows = []
    for plate in ["P1", "P2"]:
        for w in range(6):
            for fov in range(3):
                rows.append(
                    {
                        "plate": plate,
                        "well": f"A{w:02d}",
                        "fov": fov,
                        "timepoint": 1,
                        "compound": "DMSO" if w < 2 else "C",
                        "nuclei_count": int(rng.integers(50, 150)),
                    }
                )
    return pd.DataFrame(rows)


def test_inhibition_per_well_matches_naive_loop():
    obs = field_counts()
    out = inhibition(obs, well_key="well")
    for _, r in out.iterrows():
        plate = obs[obs.plate == r.plate]
        ctrl = np.mean([g.nuclei_count.mean() for _, g in plate[plate.compound == "DMSO"].groupby("well")])
        well = plate[plate.well == r.well].nuclei_count.mean()
        assert np.isclose(r.inhibition, 100 * (1 - well / ctrl))
        assert r.n_fields == 3 and np.isclose(r.nuclei_count_mean, well)
    assert (out.status == "ok").all() and len(out) == 12


def test_inhibition_per_field_matches_naive_loop():
    obs = field_counts(seed=3)
    out = inhibition(obs)
    assert len(out) == len(obs) and (out.status == "ok").all()
    for i, r in obs.iterrows():
        ctrl = obs[(obs.plate == r.plate) & (obs.compound == "DMSO")].nuclei_count.mean()
        assert np.isclose(out.loc[i, "inhibition"], 100 * (ctrl - r.nuclei_count) / ctrl)


def test_group_without_controls_is_recorded():
    obs = pd.DataFrame(
        {
            "plate": ["P1", "P1", "P2"],
            "well": ["A1", "A2", "A1"],
            "timepoint": 0,
            "compound": ["DMSO", "C", "C"],
            "nuclei_count": [10, 5, 7],
        }
    )
    out = inhibition(obs, well_key="well")
    p2 = out[out.plate == "P2"].iloc[0]
    assert p2.status == "failed" and "no control" in p2.reason and np.isnan(p2.inhibition)
    assert out[out.plate == "P1"].inhibition.tolist() == [0.0, 50.0]


def test_deprecated_lcd_nuclei_inhibition_warns_and_forwards():
    import lcd_nuclei

    assert "inhibition" not in lcd_nuclei.__all__
    obs = field_counts(seed=1).drop(columns="timepoint")  # the old default timepoint_key is skipped
    with pytest.warns(DeprecationWarning, match=r"use lcd_metrics.inhibition"):
        old = lcd_nuclei.inhibition(obs, value="nuclei_count", control="compound == 'DMSO'")
    pd.testing.assert_frame_equal(old, inhibition(obs, measurement_keys=["plate"], well_key="well"))
