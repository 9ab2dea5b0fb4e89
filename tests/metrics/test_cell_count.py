"""Cell-count baseline against a naive pandas re-implementation and constructed cases."""

import lcd_metrics as lm
import numpy as np
import pandas as pd
import pytest


def counts_screen(seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for t in ("24", "48"):
        for p in range(3):
            base = 100 + 20 * p  # plates differ: z-scores per plate remove it
            rows += [("DMSO", 0.0, t, f"P{p}", rng.normal(base, 5)) for _ in range(8)]
            rows += [("toxic", 1.0, t, f"P{p}", rng.normal(base * 0.4, 5)) for _ in range(3)]
            rows += [("inert", 1.0, t, f"P{p}", rng.normal(base, 5)) for _ in range(3)]
    df = pd.DataFrame(rows, columns=["compound", "dose", "timepoint", "plate", "nuclei_count"])
    df.index = [f"w{i}" for i in range(len(df))]
    return df


def test_toxic_active_inert_not_and_median_matches_naive():
    df = counts_screen()
    res = lm.cell_count_activity(df, n_boot=2000)
    ctrl = df[df["compound"] == "DMSO"].groupby(["plate", "timepoint"])["nuclei_count"].agg(["mean", "std"])
    z = df.join(ctrl, on=["plate", "timepoint"])
    z["z"] = (z["nuclei_count"] - z["mean"]) / z["std"]
    naive = z[z["compound"] != "DMSO"].groupby(["compound", "timepoint", "dose"])["z"].median()
    for _, row in res.iterrows():
        assert row["median_z"] == pytest.approx(naive[(row["compound"], row["timepoint"], row["dose"])])
        assert row["ci_low"] <= row["median_z"] <= row["ci_high"]
        assert row["n_wells"] == 9 and row["status"] == "ok"
    assert res.loc[res["compound"] == "toxic", "active"].all()
    assert not res.loc[res["compound"] == "inert", "active"].any()


def test_bootstrap_interval_is_seeded_and_close_to_naive_loop():
    df = counts_screen(1)
    a = lm.cell_count_activity(df, n_boot=4000, seed=3)
    pd.testing.assert_frame_equal(a, lm.cell_count_activity(df, n_boot=4000, seed=3))
    # an independent, loop-based percentile bootstrap lands on nearly the same interval
    rng = np.random.default_rng(123)
    res_row = a[(a["compound"] == "inert") & (a["timepoint"] == "24")].iloc[0]
    ctrl = df[df["compound"] == "DMSO"].groupby(["plate", "timepoint"])["nuclei_count"].agg(["mean", "std"])
    sub = df[(df["compound"] == "inert") & (df["timepoint"] == "24")].join(ctrl, on=["plate", "timepoint"])
    z = ((sub["nuclei_count"] - sub["mean"]) / sub["std"]).to_numpy()
    meds = [np.median(rng.choice(z, z.size)) for _ in range(4000)]
    lo, hi = np.quantile(meds, [0.025, 0.975])
    assert res_row["ci_low"] == pytest.approx(lo, abs=0.25)
    assert res_row["ci_high"] == pytest.approx(hi, abs=0.25)


def test_inhibition_formula_and_no_input_change():
    df = counts_screen()
    before = df.copy()
    out = lm.inhibition(df)
    pd.testing.assert_frame_equal(df, before)
    m = df[df["compound"] == "DMSO"].groupby(["plate", "timepoint"])["nuclei_count"].mean()
    expected = [
        100 * (m[(r.plate, r.timepoint)] - r.nuclei_count) / m[(r.plate, r.timepoint)]
        for r in df.itertuples()
    ]
    np.testing.assert_allclose(out["inhibition"], expected)
    assert (out["status"] == "ok").all() and out.index.equals(df.index)
    ad = pytest.importorskip("anndata")
    a = ad.AnnData(X=np.zeros((len(df), 1)), obs=df)
    from_adata = lm.inhibition(a)  # a table for AnnData input too; the AnnData is not written into
    np.testing.assert_allclose(from_adata["inhibition"], expected)
    assert "inhibition" not in a.obs.columns


def test_cell_count_bad_input():
    df = counts_screen()
    with pytest.raises(lm.InputError, match=r"column 'nuclei' not found"):
        lm.cell_count_activity(df, count_key="nuclei")
    bad = df.copy()
    bad.loc["w3", "nuclei_count"] = np.nan
    with pytest.raises(lm.InputError, match=r"1 NaN/inf values \(first rows: 'w3'\)"):
        lm.cell_count_activity(bad)
    no_ctrl = df[~((df["compound"] == "DMSO") & (df["plate"] == "P0"))]
    res = lm.cell_count_activity(no_ctrl)
    assert (res["status"] == "partial").all() and res["reason"].str.contains(
        "3 of 9 wells on plates with fewer than 2 controls"
    ).all()
    inh = lm.inhibition(no_ctrl)
    p0 = inh["plate"] == "P0"
    assert (inh.loc[p0, "status"] == "failed").all() and inh.loc[p0, "inhibition"].isna().all()
    assert inh.loc[p0, "reason"].str.contains("no control rows").all()
    assert (inh.loc[~p0, "status"] == "ok").all()


def test_scipy_bootstrap_gives_the_numbers_of_the_hand_written_resampling():
    """0.3.0 swapped the hand-written percentile bootstrap for scipy.stats.bootstrap: same generator,
    same resamples, same interval (the old code, kept here as the oracle)."""
    df = counts_screen(2)
    res = lm.cell_count_activity(df, n_boot=1500, ci=0.9, seed=4)
    ctrl = df[df["compound"] == "DMSO"].groupby(["plate", "timepoint"])["nuclei_count"].agg(["mean", "std"])
    z = df.join(ctrl, on=["plate", "timepoint"])
    z["z"] = (z["nuclei_count"] - z["mean"]) / z["std"]
    treated = z[z["compound"] != "DMSO"]
    for gi, (key, g) in enumerate(treated.groupby(["compound", "timepoint", "dose"], sort=True)):
        zs = g["z"].to_numpy()
        rng = np.random.default_rng([4, 2, gi])
        boot = np.median(zs[rng.integers(zs.size, size=(1500, zs.size))], axis=1)
        lo, hi = np.quantile(boot, [0.05, 0.95])
        row = res[(res["compound"] == key[0]) & (res["timepoint"] == key[1]) & (res["dose"] == key[2])].iloc[
            0
        ]
        assert row["ci_low"] == pytest.approx(lo, abs=1e-12) and row["ci_high"] == pytest.approx(
            hi, abs=1e-12
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(n_boot=0), "n_boot must be an integer >= 1, got 0"),
        (dict(ci=1.0), r"ci must be a finite number in \(0, 1\), got 1.0"),
        (dict(ci=float("nan")), "ci must be a finite number"),
        (dict(seed=-1), "seed must be an integer >= 0"),
    ],
)
def test_out_of_range_options(kwargs, message):
    with pytest.raises(lm.InputError, match=message):
        lm.cell_count_activity(counts_screen(), **kwargs)
