"""design_power against an independent route: real map_es runs on screens built the way the power
simulation describes its compounds (control wells of a plate plus a shift, those controls removed)."""

import lcd_metrics as lm
import numpy as np
import pandas as pd
import pytest
from lcd_metrics import kernels


def control_screen(n_rep=3, plates=2, n_ctrl=40, d=16, seed=0):
    rng = np.random.default_rng(seed)
    rows = [
        ("DMSO", "24h", f"R{r}", f"R{r}P{p}")
        for r in range(n_rep)
        for p in range(plates)
        for _ in range(n_ctrl)
    ]
    obs = pd.DataFrame(rows, columns=["compound", "timepoint", "replica", "plate"])
    X = rng.normal(size=(len(obs), d)) + 2.0  # an offset: cosine similarities are not centred
    return obs, X


def noise_scale(obs, X):
    xn = kernels.l2_normalize(X)
    dist = [
        np.linalg.norm(xn[g.index] - xn[g.index].mean(axis=0), axis=1)
        for _, g in obs.reset_index(drop=True).groupby("plate")
    ]
    return float(np.median(np.concatenate(dist)))


def oracle_power(obs, X, effect, n_compounds, n_pos, n_neg, n_draws, seed):
    """For each simulated compound, build a screen: ceil(n_pos / (R-1)) wells per replica, each a control
    well + effect × scale × u, with those control wells removed; run map_es on it; the fraction active."""
    rng = np.random.default_rng(seed)
    xn = kernels.l2_normalize(X)
    scale = noise_scale(obs, X)
    reps = sorted(obs["replica"].unique())
    per = int(np.ceil(n_pos / (len(reps) - 1)))
    active = []
    for c in range(n_compounds):
        u = rng.normal(size=X.shape[1])
        u /= np.linalg.norm(u)
        used, rows, feats = set(), [], []
        for r in reps:
            for p in rng.choice(sorted(obs.loc[obs["replica"] == r, "plate"].unique()), per):
                free = [i for i in np.flatnonzero((obs["plate"] == p).to_numpy()) if i not in used]
                base = int(rng.choice(free))
                used.add(base)
                rows.append(("cmp", "24h", r, p))
                feats.append(xn[base] + effect * scale * u)
        keep = np.array([i not in used for i in range(len(obs))])
        screen = pd.concat([obs[keep], pd.DataFrame(rows, columns=obs.columns)], ignore_index=True)
        F = np.vstack([xn[keep], kernels.l2_normalize(np.array(feats))])
        df = pd.concat([screen, pd.DataFrame(F, columns=[f"f{i}" for i in range(F.shape[1])])], axis=1)
        res = lm.map_es(df, features="^f", dose_key=None, n_pos=n_pos, n_neg=n_neg, n_draws=n_draws, seed=c)
        active.append(bool(res["active"].iloc[0]))
    return float(np.mean(active))


@pytest.mark.parametrize(("effect", "n_pos"), [(0.0, 2), (0.35, 2), (0.35, 4)])
def test_power_agrees_with_map_es_on_built_screens(effect, n_pos):
    obs, X = control_screen()
    df = pd.concat([obs, pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])], axis=1)
    n = 60
    ours = lm.design_power(
        df, features="^f", n_pos=n_pos, n_neg=24, n_draws=300, effect=effect, n_sim=n, seed=1
    )
    assert len(ours) == 1 and ours["status"].iloc[0] == "ok"
    assert ours["pos_rule"].iloc[0] == "other_replica" and ours["n_wells"].iloc[0] == 3 * int(
        np.ceil(n_pos / 2)
    )
    theirs = oracle_power(obs, X, effect, n, n_pos, 24, 300, seed=2)
    p = (ours["power"].iloc[0] + theirs) / 2
    assert abs(ours["power"].iloc[0] - theirs) <= 4 * np.sqrt(2 * p * (1 - p) / n) + 0.05


def test_power_grows_with_effect_and_the_grid_is_complete():
    obs, X = control_screen(seed=3)
    df = pd.concat([obs, pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])], axis=1)
    res = lm.design_power(
        df, features="^f", n_pos=(1, 3), n_neg=(8, 45), n_draws=(50, 200), effect=(0.0, 1.5), n_sim=10
    )
    assert len(res) == 2 * 2 * 2 * 2
    design = ["n_pos", "n_neg", "n_draws"]
    wide = res.pivot_table(index=design, columns="effect", values="power")
    assert (wide[1.5] >= 0.8).all() and (wide[0.0] <= 0.5).all() and (wide[1.5] > wide[0.0]).all()
    # 40 controls per plate: n_neg 45 cannot be met, and the rows say so
    short = res[res["n_neg"] == 45]
    assert (short["status"] == "partial").all() and short["reason"].str.contains("design 45").all()
    pd.testing.assert_frame_equal(res, lm.design_power(
        df.sample(frac=1, random_state=0), features="^f", n_pos=(1, 3), n_neg=(8, 45), n_draws=(50, 200), effect=(0.0, 1.5), n_sim=10
    ))  # fmt: skip


def test_power_cli(tmp_path):
    from lcd_metrics import cli
    from typer.testing import CliRunner

    obs, X = control_screen(n_rep=1, plates=3)
    df = pd.concat([obs, pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])], axis=1)
    src, out = tmp_path / "ctrl.csv", tmp_path / "power.csv"
    df.to_csv(src, index=False)
    args = ["power", str(src), "-o", str(out), "--features", "^f", "--n-pos", "1,2", "--n-neg", "8"]
    r = CliRunner().invoke(cli.app, [*args, "--n-draws", "50", "--effect", "0,2", "--n-sim", "5"])
    assert r.exit_code == 0, r.output
    table = pd.read_csv(out)
    assert len(table) == 4 and (table["pos_rule"] == "other_plate").all()  # one replica: other plates
    r = CliRunner().invoke(cli.app, [*args, "--effect", "big"])
    assert r.exit_code == 2 and "--effect: expected numbers" in r.output
    r = CliRunner().invoke(cli.app, [*args, "--n-sim", "1"])
    assert r.exit_code == 2 and "n_sim must be an integer >= 2" in r.output
