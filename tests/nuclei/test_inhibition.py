"""Inhibition % per well vs a naive loop."""

import numpy as np
import pandas as pd
from lcd_nuclei.count import inhibition


def test_inhibition_matches_naive_loop():
    rng = np.random.default_rng(0)
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
    obs = pd.DataFrame(rows)
    out = inhibition(obs)
    for _, r in out.iterrows():
        plate = obs[obs.plate == r.plate]
        ctrl = np.mean([g.nuclei_count.mean() for _, g in plate[plate.compound == "DMSO"].groupby("well")])
        well = plate[plate.well == r.well].nuclei_count.mean()
        assert np.isclose(r.inhibition_pct, 100 * (1 - well / ctrl))
    assert (out.status == "ok").all() and len(out) == 12


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
    out = inhibition(obs)
    p2 = out[out.plate == "P2"].iloc[0]
    assert p2.status == "failed" and "no control" in p2.reason and np.isnan(p2.inhibition_pct)
    assert out[out.plate == "P1"].inhibition_pct.tolist() == [0.0, 50.0]
