"""Percent inhibition against a naive loop (per field and per well), and every failed case by name."""

import lcd_metrics as lm
import numpy as np
import pandas as pd
import pytest


def fields(seed=0, timepoints=(24, 48)):
    """Two plates × timepoints, 6 wells of 3 fields each; wells A00/A01 are DMSO."""
    rng = np.random.default_rng(seed)
    rows = []
    for plate in ("P1", "P2"):
        for t in timepoints:
            for w in range(6):
                for fov in range(3):
                    rows.append(
                        {
                            "plate": plate,
                            "timepoint": t,
                            "well": f"A{w:02d}",
                            "fov": fov,
                            "compound": "DMSO" if w < 2 else f"C{w}",
                            "nuclei_count": int(rng.integers(50, 150)),
                        }
                    )
    frame = pd.DataFrame(rows)
    frame.index = [f"f{i}" for i in range(len(frame))]
    return frame


def naive_fields(obs, keys):
    out = {}
    for i, row in obs.iterrows():
        same = np.ones(len(obs), bool)
        for k in keys:
            same &= (obs[k] == row[k]).to_numpy()
        ctrl = obs[same & (obs["compound"] == "DMSO").to_numpy()]["nuclei_count"].tolist()
        mean = sum(ctrl) / len(ctrl)
        out[i] = 100 * (mean - row["nuclei_count"]) / mean
    return out


def naive_wells(obs, keys):
    wells = {}
    for _, row in obs.iterrows():
        wells.setdefault(tuple(row[k] for k in [*keys, "well"]), []).append(row)
    means = {k: sum(r["nuclei_count"] for r in v) / len(v) for k, v in wells.items()}
    out = {}
    for key, mean in means.items():
        ctrl = [m for k, m in means.items() if k[:-1] == key[:-1] and wells[k][0]["compound"] == "DMSO"]
        cm = sum(ctrl) / len(ctrl)
        out[key] = (100 * (cm - mean) / cm, len(wells[key]), cm)
    return out


def test_field_mode_matches_naive_loop():
    obs = fields()
    before = obs.copy()
    out = lm.inhibition(obs)
    pd.testing.assert_frame_equal(obs, before)  # input untouched
    expected = naive_fields(obs, ["plate", "timepoint"])
    assert out.index.equals(obs.index) and (out["status"] == "ok").all() and (out["reason"] == "").all()
    np.testing.assert_allclose(out["inhibition"], [expected[i] for i in obs.index], rtol=1e-12)
    assert out["is_control"].tolist() == (obs["compound"] == "DMSO").tolist()
    assert list(out.columns) == [
        "plate", "timepoint", "is_control", "nuclei_count", "control_mean", "inhibition", "status", "reason",
    ]  # fmt: skip


def test_well_mode_matches_naive_loop():
    obs = fields(seed=1)
    out = lm.inhibition(obs, well_key="well")
    expected = naive_wells(obs, ["plate", "timepoint"])
    assert len(out) == len(expected) == 24 and (out["status"] == "ok").all()
    for _, row in out.iterrows():
        inh, n, cm = expected[(row["plate"], row["timepoint"], row["well"])]
        assert row["inhibition"] == pytest.approx(inh, rel=1e-12)
        assert row["n_fields"] == n and row["control_mean"] == pytest.approx(cm, rel=1e-12)
    # controls are centred: the control wells' inhibitions average to 0 in every measurement
    ctrl = out[out["is_control"]].groupby(["plate", "timepoint"])["inhibition"].mean()
    np.testing.assert_allclose(ctrl, 0.0, atol=1e-9)


def test_well_mode_weighs_wells_not_fields():
    obs = pd.DataFrame(
        {
            "plate": "P1",
            "well": ["A1", "A2", "A2", "A2", "A3"],
            "compound": ["DMSO", "DMSO", "DMSO", "DMSO", "C"],
            "nuclei_count": [100, 50, 50, 50, 60],
        }
    )
    out = lm.inhibition(obs, measurement_keys=("plate",), well_key="well").set_index("well")
    assert out.loc["A3", "control_mean"] == 75  # (100 + 50) / 2, not (100 + 3·50) / 4
    assert out.loc["A3", "inhibition"] == pytest.approx(20.0)
    field = lm.inhibition(obs, measurement_keys="plate")
    assert field["control_mean"].iloc[0] == pytest.approx(62.5)


def test_failed_groups_and_rows_say_why():
    obs = fields(timepoints=(24,)).drop(columns="timepoint")
    # P2 has no controls; in P1 one treated field is missing and one is negative
    obs = obs[~((obs["plate"] == "P2") & (obs["compound"] == "DMSO"))].copy()
    obs["nuclei_count"] = obs["nuclei_count"].astype(float)
    treated_p1 = obs.index[(obs["plate"] == "P1") & (obs["compound"] != "DMSO")]
    obs.loc[treated_p1[0], "nuclei_count"] = np.nan
    obs.loc[treated_p1[1], "nuclei_count"] = -3.0
    out = lm.inhibition(obs, measurement_keys=["plate"])
    p2 = out[out["plate"] == "P2"]
    assert (p2["status"] == "failed").all() and p2["inhibition"].isna().all()
    assert p2["reason"].str.contains("no control rows .* in plate='P2'").all()
    assert out.loc[treated_p1[0], "reason"] == "missing nuclei_count"
    assert out.loc[treated_p1[1], "reason"] == "negative nuclei_count"
    ok = out[out["status"] == "ok"]
    assert len(ok) == (obs["plate"] == "P1").sum() - 2 and ok["inhibition"].notna().all()
    assert out.loc[out["status"] == "failed", "inhibition"].isna().all()  # never a number when failed
    # well mode: the wells with the bad fields fail, the others keep their value
    wells = lm.inhibition(obs, measurement_keys=["plate"], well_key="well")
    bad = wells[(wells["plate"] == "P1") & (wells["status"] == "failed")]
    assert bad["reason"].str.contains("of 3 fields have a missing or negative nuclei_count").all()
    assert len(bad) in (1, 2) and bad["inhibition"].isna().all()


def test_zero_control_mean_and_bad_controls_fail_the_measurement():
    obs = pd.DataFrame(
        {
            "plate": ["P1", "P1", "P2", "P2", "P2"],
            "compound": ["DMSO", "C", "DMSO", "DMSO", "C"],
            "nuclei_count": [0.0, 5.0, 10.0, np.nan, 4.0],
        }
    )
    out = lm.inhibition(obs, measurement_keys="plate")
    assert (out["status"] == "failed").all() and out["inhibition"].isna().all()
    assert out.loc[1, "reason"] == "control mean of plate='P1' is 0"
    assert out.loc[4, "reason"] == "1 control rows of plate='P2' have no usable nuclei_count"
    assert out.loc[3, "reason"] == "missing nuclei_count"


def test_bad_input_is_one_line_error(tmp_path):
    obs = fields()
    with pytest.raises(lm.InputError, match=r"column 'timepoint' not found"):
        lm.inhibition(obs.drop(columns="timepoint"))
    with pytest.raises(lm.InputError, match=r"no control rows match"):
        lm.inhibition(obs, control="compound == 'none'")
    with pytest.raises(lm.InputError, match=r"count column 'compound' is not numeric"):
        lm.inhibition(obs, count_key="compound")
    mixed = obs.copy()
    mixed.loc[mixed.index[0], "compound"] = "C9"  # one field of the DMSO well A00
    with pytest.raises(lm.InputError, match=r"1 wells have both control and non-control fields .*well='A00'"):
        lm.inhibition(mixed, well_key="well")
    path = tmp_path / "counts.csv"
    obs.to_csv(path, index=False)
    from_file = lm.inhibition(path, well_key="well")
    pd.testing.assert_frame_equal(from_file, lm.inhibition(obs, well_key="well"))
