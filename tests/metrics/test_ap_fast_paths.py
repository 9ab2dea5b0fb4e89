"""The AP step's fast paths, each taken and each falling back, against a naive copairs oracle and against
the general computation they replace (bit for bit where the code claims the same bits)."""

import lcd_metrics as lm
import numpy as np
import pandas as pd
import pytest
from lcd_core import InputError, check_finite
from lcd_metrics import kernels, pairs
from lcd_metrics._profiles import check_nonzero, checked_unit_rows


def naive_ap(pos, neg):
    """Decreasing similarity, positives ahead of negatives on ties; mean precision at each positive."""
    items = sorted([(s, 0) for s in pos] + [(s, 1) for s in neg], key=lambda t: (-t[0], t[1]))
    hits, total = 0, 0.0
    for rank, (_, is_neg) in enumerate(items, start=1):
        if not is_neg:
            hits += 1
            total += hits / rank
    return total / len(pos)


def naive_table(obs, X, pos_sameby=(), pos_diffby=(), neg_sameby=(), neg_diffby=()):
    """copairs' rules pair by pair (one query at a time): (AP, n_pos, n_total) per row."""
    cols = {c: obs[c].to_numpy() for c in {*pos_sameby, *pos_diffby, *neg_sameby, *neg_diffby}}
    xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    out = []
    for i in range(len(obs)):
        other = np.arange(len(obs)) != i
        pos, neg = other.copy(), other.copy()
        for c in pos_sameby:
            pos &= cols[c] == cols[c][i]
        for c in pos_diffby:
            pos &= cols[c] != cols[c][i]
        for c in neg_sameby:
            neg &= cols[c] == cols[c][i]
        for c in neg_diffby:
            neg &= cols[c] != cols[c][i]
        sims = xn @ xn[i]
        ps, ns = sims[pos].tolist(), sims[neg].tolist()
        ap = np.nan if not ps else (1.0 if not ns else naive_ap(ps, ns))
        out.append((ap, len(ps), len(ps) + len(ns)))
    return np.array(out)


def plates(n_plates=5, n_ctrl=6, n_comp=9, reps=3, seed=0, d=16):
    """Compounds with `reps` wells on consecutive plates, `n_ctrl` DMSO wells per plate."""
    rng = np.random.default_rng(seed)
    rows = [("DMSO", f"P{p}") for p in range(n_plates) for _ in range(n_ctrl)]
    rows += [(f"C{c}", f"P{(c + r) % n_plates}") for c in range(n_comp) for r in range(reps)]
    obs = pd.DataFrame(rows, columns=["compound", "plate"])
    X = rng.normal(size=(len(obs), d))
    return obs, X


def check_against_naive(obs, X, **rules):
    ours = lm.average_precision(obs, X, **rules)
    ref_rules = dict(rules)
    if "control" in ref_rules:  # the recipe spelled out for the oracle
        ctrl = obs.eval(ref_rules.pop("control")).to_numpy()
        obs = obs.assign(ref=np.where(ctrl, np.arange(len(obs)), -1))
        ref_rules["pos_sameby"] = [*ref_rules["pos_sameby"], "ref"]
        ref_rules["neg_diffby"] = [*ref_rules.get("neg_diffby", []), "ref"]
    expected = naive_table(obs, X, **ref_rules)
    np.testing.assert_array_equal(ours["n_pos_pairs"].to_numpy(), expected[:, 1])
    np.testing.assert_array_equal(ours["n_total_pairs"].to_numpy(), expected[:, 2])
    np.testing.assert_allclose(
        ours["average_precision"].to_numpy(), expected[:, 0], atol=1e-12, equal_nan=True
    )


class Spy:
    def __init__(self, monkeypatch, name):
        self.calls = 0
        real = getattr(pairs, name)

        def wrapped(*args, **kwargs):
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(pairs, name, wrapped)


@pytest.mark.parametrize("neg_sameby", [[], ["plate"]])
def test_control_recipe_takes_the_maskless_path_and_matches_naive(monkeypatch, neg_sameby):
    """Compound wells against DMSO (all of it or the query's plate): every block part's candidates are
    negatives of every query, so no pair mask is built; the counts and AP equal the pair loop."""
    obs, X = plates(n_plates=2, n_ctrl=10, n_comp=400, reps=2)  # 400 compound wells per plate
    fast, mask = Spy(monkeypatch, "_score_all_negatives"), Spy(monkeypatch, "_pair_mask")
    monkeypatch.setattr(pairs, "_CELLS_PER_BLOCK", 1 << 21)
    check_against_naive(
        obs,
        X,
        pos_sameby=["compound"],
        neg_sameby=neg_sameby,
        neg_diffby=["compound"],
        control="compound == 'DMSO'",
    )
    assert fast.calls > 0
    if not neg_sameby:  # with plates, the block that holds the end of one and the start of the next
        assert mask.calls == 0  # compares with the controls of both: that block takes the mask


def test_blocks_over_several_plates_fall_back_to_the_mask_and_match_naive(monkeypatch):
    """With small plates a block of 256 queries spans several plates: its candidates (the controls of
    all of them) are not negatives of every query; the mask path runs and gives the naive answer."""
    obs, X = plates(n_plates=40, n_ctrl=3, n_comp=120, reps=3, seed=1)
    mask = Spy(monkeypatch, "_pair_mask")
    check_against_naive(
        obs,
        X,
        pos_sameby=["compound"],
        neg_sameby=["plate"],
        neg_diffby=["compound"],
        control="compound == 'DMSO'",
    )
    assert mask.calls > 0


def test_rules_without_diffby_fall_back_and_match_naive(monkeypatch):
    """Negatives by neg_sameby alone: a query is among its own candidates, so the precondition fails
    (a partner may be positive and negative at once, as in copairs)."""
    obs, X = plates(seed=2)
    assert not pairs._all_negatives(
        {"plate": pd.factorize(obs["plate"], sort=True)[0].astype(np.int64)},
        np.array([0, 1]),
        np.arange(6),
        pairs.PairRules(("plate",), (), ("plate",), ()),
    )
    mask = Spy(monkeypatch, "_pair_mask")
    check_against_naive(obs, X, pos_sameby=["compound"], neg_sameby=["plate"])
    assert mask.calls > 0


def test_overlapping_diffby_values_fall_back_and_match_naive(monkeypatch):
    """neg_diffby values shared between queries and candidates (other compounds at the same dose)."""
    obs, X = plates(n_plates=3, n_ctrl=0, n_comp=12, reps=4, seed=3)
    obs["dose"] = np.arange(len(obs)) % 2
    mask = Spy(monkeypatch, "_pair_mask")
    check_against_naive(
        obs, X, pos_sameby=["compound"], pos_diffby=["plate"], neg_sameby=["dose"], neg_diffby=["compound"]
    )
    assert mask.calls > 0


def test_sub_blocks_with_many_candidates_match_naive(monkeypatch):
    """A tiny cell budget splits blocks into sub-blocks (the block's candidates decide the split)."""
    monkeypatch.setattr(pairs, "_CELLS_PER_BLOCK", 64)
    obs, X = plates(n_plates=6, n_ctrl=5, n_comp=30, seed=4)
    check_against_naive(
        obs, X, pos_sameby=["compound"], neg_diffby=["compound"], control="compound == 'DMSO'"
    )
    check_against_naive(obs, X, pos_sameby=["compound"], neg_sameby=["plate"], neg_diffby=["compound"])


def test_all_negatives_precondition_each_rule():
    codes = {"a": np.array([0, 0, 1, 1, 2]), "b": np.array([5, 5, 5, 6, 5])}
    rules = pairs.PairRules(("a",), (), ("b",), ("a",))
    # same b (5) everywhere, disjoint a: all true
    assert pairs._all_negatives(codes, np.array([0, 1]), np.array([2, 4]), rules)
    assert pairs._all_negatives(codes, np.array([0]), np.zeros(0, dtype=np.int64), rules)
    assert not pairs._all_negatives(codes, np.array([0, 1]), np.array([2, 3]), rules)  # b differs
    assert not pairs._all_negatives(codes, np.array([0, 2]), np.array([1, 4]), rules)  # a shared
    # several query values: the lookup table branch
    rules2 = pairs.PairRules(("a",), (), (), ("a",))
    assert pairs._all_negatives(codes, np.array([0, 2]), np.array([4]), rules2)
    assert not pairs._all_negatives(codes, np.array([0, 2]), np.array([3, 4]), rules2)


def test_group_products_are_the_einsum_bits():
    rng = np.random.default_rng(0)
    for g in (2, 3, 4, 8, 9, 12):
        x = rng.normal(size=(37 * g, 48))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        xg = x.reshape(37, g, 48)
        ours = pairs._group_products(xg)
        ref = np.einsum("mgd,mhd->mgh", xg, xg)
        off = ~np.eye(g, dtype=bool)
        assert np.array_equal(ours[:, off], ref[:, off])
        assert np.isnan(ours[:, ~off]).all()
        # and each equals the pairwise einsum of the two rows (the positives' definition)
        assert np.array_equal(ours[:, 0, 1], np.einsum("ij,ij->i", xg[:, 0].copy(), xg[:, 1].copy()))


def test_rows_view_only_for_runs_and_same_products():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 64))
    run = np.arange(100, 356)
    v = pairs._rows(x, run)
    assert np.shares_memory(v, x) and np.array_equal(v, x[run])
    assert np.array_equal(pairs._rows(x, run.reshape(64, 4)), x[run.reshape(64, 4)])
    other = np.r_[np.arange(100, 200), np.arange(201, 357)]
    assert not np.shares_memory(pairs._rows(x, other), x)
    assert not np.shares_memory(pairs._rows(x, run[::-1]), x)
    assert pairs._rows(x, np.zeros(0, dtype=np.int64)).shape == (0, 64)
    c = x[:38].copy()
    assert np.array_equal(kernels.cosine_block(v, c), kernels.cosine_block(x[run], c))


def _counting_by_cube(pos, neg):
    """The counting AP as written before (a (q, k, m) boolean cube summed into int64)."""
    valid = ~np.isnan(pos)
    n_pos = valid.sum(axis=1)
    order = -np.sort(np.where(valid, -pos, np.inf), axis=1)
    n_above = (neg[:, None, :] > order[:, :, None]).sum(axis=2)
    j = np.arange(1, order.shape[1] + 1, dtype=np.float64)
    prec = np.where(np.arange(order.shape[1]) < n_pos[:, None], j / (j + n_above), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return prec.sum(axis=1) / n_pos


@pytest.mark.parametrize("seed", range(4))
def test_counting_kernel_equals_the_cube_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    pos = np.round(rng.normal(size=(200, 6)), 1)  # ties with the negatives on purpose
    pos[rng.random(pos.shape) < 0.3] = np.nan
    neg = np.round(rng.normal(size=(200, 70)), 1)
    neg[rng.random(neg.shape) < 0.2] = -np.inf
    got, want = kernels._ap_by_counting(pos, neg), _counting_by_cube(pos, neg)
    assert np.array_equal(got, want, equal_nan=True)


def test_checked_unit_rows_equals_the_three_calls():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(50, 8))
    X[3] *= 1e300  # overflowing squares: the sum is inf, the row is finite
    X[4] *= 1e-200  # underflowing squares: the sum is 0, the row is not zero
    ids = pd.Index([f"r{i}" for i in range(50)])
    assert np.array_equal(checked_unit_rows(X, ids, "X"), kernels.l2_normalize(X))
    for bad, exc_from in ((np.nan, check_finite), (np.inf, check_finite), (0.0, check_nonzero)):
        Y = X.copy()
        if bad == 0.0:
            Y[[7, 9]] = 0.0
        else:
            Y[7, 2] = bad
        with pytest.raises(InputError) as ours:
            checked_unit_rows(Y, ids, "X")
        with pytest.raises(InputError) as theirs:
            if exc_from is check_nonzero:
                check_finite(Y, ids, "X")
            exc_from(Y, ids, "X")
        assert str(ours.value) == str(theirs.value)


def test_groups_of_sorted_and_unsorted_rows():
    codes = {"p": np.array([2, 0, 1, 0, 2, 1, 1])}
    g = pairs._Groups(codes, ["p"], 7)
    assert g.groups_of(np.array([1, 3, 2, 5, 0])).tolist() == [0, 1, 2]  # sorted by group: runs
    assert g.groups_of(np.array([0, 1, 2])).tolist() == [0, 1, 2]  # not sorted: unique
    assert g.rows_of(np.array([0, 1])).tolist() == [0, 1, 3, 4]


def test_unit_rows_taken_equal_the_normalized_matrix_bit_for_bit():
    """Rows divided when taken (runs, gathers, 2-D index) are the rows of l2_normalize; a matrix with a
    row that needs rescaling gets l2_normalize itself."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 24)) * rng.uniform(0.01, 100, size=(300, 1))
    xn = kernels.unit_rows(X)
    assert isinstance(xn, kernels.UnitRows) and len(xn) == 300
    ref = kernels.l2_normalize(X)
    for idx in (np.arange(40, 90), rng.permutation(300)[:77], np.arange(8, 48).reshape(10, 4), np.array([5])):
        assert np.array_equal(xn.take(idx), ref[idx])
    assert np.array_equal(kernels.dense(xn), ref)
    X[7] *= 1e200
    assert isinstance(kernels.unit_rows(X), np.ndarray)
    assert np.array_equal(kernels.unit_rows(X), kernels.l2_normalize(X))


def test_ap_table_columns_by_concatenation_and_by_insertion_agree():
    """The AP columns are appended in one concatenation; a repeated index or a metadata column of the
    same name takes the column-by-column path (the old one): same values, old column kept in place."""
    obs, X = plates(seed=5)
    rules = dict(pos_sameby=["compound"], neg_diffby=["compound"], control="compound == 'DMSO'")
    base = lm.average_precision(obs, X, **rules)
    assert list(base.columns[-6:]) == [
        "n_pos_pairs",
        "n_total_pairs",
        "average_precision",
        "normalized_average_precision",
        "status",
        "reason",
    ]
    dup = lm.average_precision(obs.set_axis([0] * len(obs)), X, **rules)
    pd.testing.assert_frame_equal(dup.reset_index(drop=True), base.reset_index(drop=True), check_exact=True)
    named = lm.average_precision(obs.assign(average_precision=-1.0), X, **rules)
    assert list(named.columns[:3]) == ["compound", "plate", "average_precision"]
    np.testing.assert_array_equal(named["average_precision"].to_numpy(), base["average_precision"].to_numpy())


def _all_tied_before(pos, neg):
    """all_tied as written before the positives-only screen."""
    out = np.zeros(pos.shape[0], dtype=bool)
    if pos.shape[1] == 0 or neg.shape[1] == 0:
        return out
    top_p = np.where(np.isnan(pos), -np.inf, pos).max(axis=1)
    top_n = neg.max(axis=1)
    rows = np.flatnonzero(
        np.isfinite(top_p) & np.isfinite(top_n) & (np.abs(top_p - top_n) <= kernels.TIE_TOL)
    )
    p, n = pos[rows], neg[rows]
    vp, vn = ~np.isnan(p), np.isfinite(n)
    hi = np.maximum(top_p[rows], top_n[rows])
    lo = np.minimum(np.where(vp, p, np.inf).min(axis=1), np.where(vn, n, np.inf).min(axis=1))
    out[rows] = hi - lo <= kernels.TIE_TOL
    return out


@pytest.mark.parametrize("seed", range(3))
def test_all_tied_screen_keeps_the_same_rows(seed):
    """Tied rows, rows tied among positives only, single positives, all-padding rows: same flags."""
    rng = np.random.default_rng(seed)
    q, k, m = 300, 4, 20
    pos = rng.normal(size=(q, k))
    neg = rng.normal(size=(q, m))
    kind = rng.integers(0, 5, size=q)
    pos[kind == 1] = 0.5  # all positives equal, negatives differ
    pos[kind == 2], neg[kind == 2] = 0.25, 0.25 + rng.uniform(-5e-13, 5e-13, size=((kind == 2).sum(), m))
    pos[kind == 3, 1:] = np.nan  # one positive
    neg[kind == 3] = np.where(rng.random(((kind == 3).sum(), m)) < 0.5, pos[kind == 3, :1], -np.inf)
    pos[(kind == 4) & (np.arange(q) % 2 == 0)] = np.nan  # no positive
    neg[rng.random(neg.shape) < 0.1] = -np.inf
    got = kernels.all_tied(pos, neg)
    assert np.array_equal(got, _all_tied_before(pos, neg))
    assert got.sum() > 10 and (~got).sum() > 10


def test_grouped_positives_without_diffby_equal_the_masked_packing():
    """Without pos_diffby every other row of the group is a positive (packed without a mask); the masked
    packing with a pos_diffby column that never matches gives the same array, bit for bit."""
    rng = np.random.default_rng(6)
    sizes = rng.integers(1, 7, size=60)
    group = np.repeat(np.arange(60), sizes)
    rng.shuffle(group)
    X = rng.normal(size=(group.size, 12))
    xn = kernels.unit_rows(X)
    codes = {"g": group.astype(np.int64), "row": np.arange(group.size, dtype=np.int64)}
    fast = pairs._grouped_positives(xn, codes, pairs.PairRules(("g",), (), (), ("g",)))
    masked = pairs._grouped_positives(xn, codes, pairs.PairRules(("g",), ("row",), (), ("g",)))
    assert np.array_equal(fast[1], masked[1]) and np.array_equal(fast[0], masked[0], equal_nan=True)
    np.testing.assert_array_equal(fast[1], np.bincount(group)[group] - 1)


def test_unit_rows_scratch_takes_equal_fresh_takes():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(400, 16))
    xn = kernels.unit_rows(X)
    ref = kernels.l2_normalize(X)
    first = xn.take(np.arange(10, 300), "q")
    assert np.array_equal(first, ref[10:300])
    idx = rng.permutation(400)[:50].reshape(25, 2)
    again = xn.take(idx, "q")  # a smaller take reuses (and overwrites) the buffer
    assert np.array_equal(again, ref[idx]) and np.shares_memory(again, first)
    assert np.array_equal(xn.take(np.arange(400), "q"), ref)  # a larger one grows it
