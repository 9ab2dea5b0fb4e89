"""Degenerate data and out-of-range options (issue #19): a recorded status/reason or a one-line error,
never a confident number. Oracles: closed forms, naive rankings, the profiles before scaling."""

import lcd_metrics as lm
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("typer")
from lcd_metrics import cli, kernels
from typer.testing import CliRunner

runner = CliRunner()


def identical_screen(n_compounds=3):
    rows = []
    for r in ("R0", "R1", "R2"):
        for p in ("A", "B"):
            rows += [("DMSO", 0.0, "24h", r, f"{r}{p}")] * 34
            rows += [(f"cmp{c}", 1.0, "24h", r, f"{r}{p}") for c in range(n_compounds)]
    obs = pd.DataFrame(rows, columns=["compound", "dose", "timepoint", "replica", "plate"])
    X = np.tile(np.linspace(0.5, 2.0, 12), (len(obs), 1))  # every profile the same
    return pd.concat([obs, pd.DataFrame(X, columns=[f"f{i}" for i in range(12)])], axis=1)


def test_identical_profiles_are_not_a_perfect_replicate():
    df = identical_screen()
    rules = dict(pos_sameby=["compound"], neg_diffby=["compound"], control="compound == 'DMSO'")
    ap = lm.average_precision(df, features="^f", **rules)
    queries = ap[ap["n_pos_pairs"] > 0]
    assert queries["average_precision"].isna().all()  # copairs' tie rule would say 1.0
    assert (queries["status"] == "failed").all()
    assert queries["reason"].str.contains("same similarity").all()
    m = lm.mean_average_precision(df, features="^f", null_size=500, **rules)
    assert len(m) == 3 and (m["status"] == "failed").all()
    assert m["mean_average_precision"].isna().all() and m["p_value"].isna().all()
    assert not m["below_p"].any() and not m["below_corrected_p"].any()
    assert m["reason"].str.contains("6 of 6 profiles have no AP").all()


def test_identical_profiles_map_es_rows_fail_with_a_reason():
    res = lm.map_es(identical_screen(), features="^f", n_draws=200)
    assert (res["status"] == "failed").all()
    assert res["map_es"].isna().all() and not res["active"].any()
    assert res["reason"].str.contains("every candidate has the same similarity").all()


def test_ties_of_only_some_candidates_keep_copairs_rule():
    """A positive tied with one negative (duplicated well) is ranked first, as copairs does."""
    pos = np.array([[0.5, 0.2]])
    neg = np.array([[0.5, 0.1, 0.3]])
    assert not kernels.all_tied(pos, neg)[0]
    # ranking: 0.5(pos) 0.5(neg) 0.3(neg) 0.2(pos) 0.1(neg): AP = (1/1 + 2/4) / 2
    assert kernels.ap_from_similarities(pos, neg)[0] == pytest.approx(0.75)


def test_huge_and_tiny_values_keep_their_direction():
    rng = np.random.default_rng(0)
    df = identical_screen()
    X = rng.normal(size=(len(df), 12))
    base = df.drop(columns=[c for c in df.columns if c.startswith("f")])
    plain = pd.concat([base, pd.DataFrame(X, columns=[f"f{i}" for i in range(12)])], axis=1)
    scaled = plain.copy()
    scaled.loc[0:5, [f"f{i}" for i in range(12)]] *= 1e300  # finite, but squares overflow
    scaled.loc[6:9, [f"f{i}" for i in range(12)]] *= 1e-200  # squares underflow to zero
    rules = dict(pos_sameby=["compound"], neg_diffby=["compound"], control="compound == 'DMSO'")
    a = lm.average_precision(plain, features="^f", **rules)
    b = lm.average_precision(scaled, features="^f", **rules)
    np.testing.assert_allclose(a["average_precision"], b["average_precision"], rtol=1e-12, equal_nan=True)
    xn = kernels.l2_normalize(scaled.filter(regex="^f").to_numpy())
    np.testing.assert_allclose(np.linalg.norm(xn, axis=1), 1.0, rtol=1e-12)
    # map_es draws in an order that includes the feature bytes, so compare what scale cannot change
    es_plain = lm.map_es(plain, features="^f", n_draws=100)
    es_scaled = lm.map_es(scaled, features="^f", n_draws=100)
    assert es_scaled["map_es"].notna().all()
    pd.testing.assert_series_equal(es_plain["status"], es_scaled["status"])


def test_float32_resolution_tie_is_ranked_exactly():
    """copairs stores similarities as float32: 0.5 + 1e-9 and 0.5 + 2.1e-8 become one value and tie,
    so copairs puts the positive first (AP 1). In float64 the negative is closer (AP 1/2): ours."""
    copairs_map = pytest.importorskip("copairs.map")
    import warnings

    a, b = np.arccos(0.5 + 1e-9), np.arccos(0.5 + 2.1e-8)
    feats = np.array([[1.0, 0.0], [np.cos(a), np.sin(a)], [np.cos(b), np.sin(b)], [-1.0, 0.1]])
    assert np.float32(feats[1] @ feats[0]) == np.float32(feats[2] @ feats[0])  # tie in float32 only
    meta = pd.DataFrame({"c": ["A", "A", "DMSO", "DMSO"], "ref": [-1, -1, 2, 3]})
    rules = dict(pos_sameby=["c", "ref"], pos_diffby=[], neg_sameby=[], neg_diffby=["c", "ref"])
    ours = lm.average_precision(meta, feats, **rules)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = copairs_map.average_precision(meta, feats, progress_bar=False, **rules)
    assert ours["average_precision"].iloc[0] == pytest.approx(0.5)  # the negative ranks first
    assert theirs["average_precision"].iloc[0] == pytest.approx(1.0)  # float32 tie, positive first


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(threshold=2.0), r"threshold must be a finite number in \(0, 1\], got 2.0"),
        (dict(threshold=float("nan")), r"threshold must be a finite number in \(0, 1\], got nan"),
        (dict(threshold=0.0), r"threshold must be a finite number in \(0, 1\]"),
        (dict(null_size=-5), "null_size must be an integer >= 1, got -5"),
        (dict(null_size=2.5), "null_size must be an integer >= 1, got 2.5"),
        (dict(seed=-1), "seed must be an integer >= 0, got -1"),
        (dict(hierarchical_by=["compound"]), r"hierarchical_by \['compound'\] must be a proper subset"),
    ],
)
def test_map_options_out_of_range(kwargs, message):
    df = identical_screen()
    df["f0"] = np.random.default_rng(1).normal(size=len(df))
    with pytest.raises(lm.InputError, match=message):
        lm.mean_average_precision(
            df,
            features="^f",
            pos_sameby=["compound"],
            neg_diffby=["compound"],
            control="compound == 'DMSO'",
            **kwargs,
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(threshold=float("nan")), "threshold must be a finite number"),
        (dict(threshold=float("inf")), "threshold must be a finite number"),
        (dict(n_draws=-10), "n_draws must be an integer >= 2, got -10"),
        (dict(n_draws=True), "n_draws must be an integer >= 2, got True"),
        (dict(n_pos=0), "n_pos must be an integer >= 1, got 0"),
        (dict(n_neg="31"), "n_neg must be an integer >= 1, got '31'"),
        (dict(seed=-3), "seed must be an integer >= 0, got -3"),
    ],
)
def test_map_es_options_out_of_range(kwargs, message):
    with pytest.raises(lm.InputError, match=message):
        lm.map_es(identical_screen(), features="^f", **kwargs)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["map-es", "--threshold", "nan", "-o", "{out}.csv"], "threshold must be a finite number"),
        (["map-es", "--n-draws", "-5", "-o", "{out}.csv"], "n_draws must be an integer >= 2"),
        (
            [
                "map",
                "--pos-sameby",
                "compound",
                "--neg-diffby",
                "compound",
                "--threshold",
                "2",
                "-o",
                "{out}.csv",
            ],
            "threshold must be",
        ),
        (["map-es", "-o", "{out}.xlsx"], "unknown table format '.xlsx'"),
        (["map-es", "-o", "{out}.h5ad"], "cannot write a h5ad file here"),
        (
            ["map", "--pos-sameby", "compound", "--neg-diffby", "compound", "-o", "{out}.xlsx"],
            "unknown table format",
        ),
        (["cell-count", "-o", "{out}.h5ad"], "cannot write a h5ad file here"),
        (["map-es"], "map-es needs -o/--out"),
    ],
)
def test_cli_bad_options_and_output_formats_exit_2(tmp_path, args, message):
    src = tmp_path / "in.csv"
    df = identical_screen()
    df["nuclei_count"] = 100
    df.to_csv(src, index=False)
    before = src.read_bytes()
    out = str(tmp_path / "result")
    argv = [args[0], str(src), *[a.format(out=out) for a in args[1:]]]
    if args[0] != "cell-count":
        argv += ["--features", "^f"]
    r = runner.invoke(cli.app, argv)
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output
    assert not any(p.name.startswith("result") for p in tmp_path.iterdir())  # nothing written
    assert src.read_bytes() == before
