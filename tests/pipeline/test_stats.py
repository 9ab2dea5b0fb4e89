"""Wilcoxon pairs and Holm's correction against scipy, statsmodels and a hand-written Holm."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from lcd_pipeline.stats import holm, wilcoxon_pairs
from scipy.stats import wilcoxon
from statsmodels.stats.multitest import multipletests


def naive_holm(p):
    """Holm (1979) written out: sort ascending, multiply by (m - rank), running maximum, cap at 1."""
    p = np.asarray(p, float)
    m = len(p)
    order = np.argsort(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


@pytest.mark.parametrize("seed", range(5))
def test_holm_matches_statsmodels_and_the_definition(seed):
    p = np.random.default_rng(seed).uniform(0, 0.2, size=9)
    got = holm(p)
    np.testing.assert_allclose(got, naive_holm(p), rtol=1e-12)
    np.testing.assert_allclose(got, multipletests(p, method="holm")[1], rtol=1e-12)


def test_holm_leaves_missing_p_values_out_of_the_family():
    got = holm([0.01, np.nan, 0.04])
    assert np.isnan(got[1])
    np.testing.assert_allclose(got[[0, 2]], naive_holm([0.01, 0.04]))


def _scores(seed=0, n=40):
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.1, 0.6, n)
    models = {
        "a": base + 0.1 + rng.normal(0, 0.03, n),
        "b": base + rng.normal(0, 0.03, n),
        "c": base + rng.normal(0, 0.03, n),
    }
    rows = []
    for m, values in models.items():
        for k, v in enumerate(values):
            rows.append(
                {"model": m, "compound": f"c{k % 10}", "timepoint": k // 10, "dose": 1.0, "map_mean": v}
            )
    return pd.DataFrame(rows), models


def test_wilcoxon_pairs_match_scipy_on_the_same_pairs_and_holm_over_the_table():
    table, models = _scores()
    got = wilcoxon_pairs(
        table, by="model", pair_keys=["compound", "timepoint", "dose"], levels=["a", "b", "c"]
    )
    assert list(zip(got["a"], got["b"], strict=True)) == list(itertools.combinations("abc", 2))
    for row in got.itertuples():
        ref = wilcoxon(models[row.a], models[row.b])
        assert row.statistic == pytest.approx(ref.statistic) and row.p_value == pytest.approx(
            ref.pvalue, rel=1e-12
        )
        assert row.n_pairs == 40
    np.testing.assert_allclose(got["p_holm"], multipletests(got["p_value"], method="holm")[1], rtol=1e-12)
    by = got.set_index(["a", "b"])
    assert by.loc[("a", "b"), "better"] == "a" and by.loc[("a", "c"), "better"] == "a"
    assert by.loc[("b", "c"), "status"] == "ok"


def test_wilcoxon_pairs_only_on_units_both_scored_and_undefined_pairs_say_why():
    table, models = _scores(1)
    table.loc[(table["model"] == "b") & (table["compound"] == "c0"), "map_mean"] = np.nan  # b failed there
    got = wilcoxon_pairs(table, by="model", pair_keys=["compound", "timepoint", "dose"], levels=["a", "b"])
    keep = np.array([k % 10 != 0 for k in range(40)])
    ref = wilcoxon(models["a"][keep], models["b"][keep])
    assert got.iloc[0]["n_pairs"] == keep.sum() and got.iloc[0]["p_value"] == pytest.approx(
        ref.pvalue, rel=1e-12
    )
    same = pd.concat([table[table["model"] == "a"], table[table["model"] == "a"].assign(model="a2")])
    tied = wilcoxon_pairs(same, by="model", pair_keys=["compound", "timepoint", "dose"])
    assert tied.iloc[0]["status"] == "failed" and "no non-zero difference" in tied.iloc[0]["reason"]
    assert np.isnan(tied.iloc[0]["p_value"]) and not tied.iloc[0]["significant"]
