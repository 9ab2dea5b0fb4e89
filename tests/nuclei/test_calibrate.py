"""Stain-calibrated choice: brute-force oracles for the choice, leave-one-out and the learning curve."""

import numpy as np
import pytest
from lcd_core import InputError
from lcd_nuclei.calibrate import (
    calibration_curve,
    choose_candidate,
    leave_one_out_choice,
    read_calibration,
    write_calibration,
)


def lin_ccc(x, y):
    sxy = np.mean((x - x.mean()) * (y - y.mean()))
    return 2 * sxy / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)


@pytest.fixture
def counts():
    rng = np.random.default_rng(0)
    ref = rng.integers(5, 60, size=12).astype(float)
    pred = np.stack(
        [
            ref * a + b + rng.normal(scale=s, size=12)
            for a, b, s in [(0.5, 0, 2), (1.0, 3, 4), (1.2, -2, 1), (0.9, 1, 8), (1.0, 0, 3)]
        ]
    )
    return pred, ref


@pytest.mark.parametrize("criterion", ["mae", "ccc"])
def test_choice_matches_brute_force(counts, criterion):
    pred, ref = counts
    for fields in ([0, 1, 2], [3, 5, 7, 9, 11], list(range(12))):
        if criterion == "mae":
            scores = [np.mean(np.abs(p[fields] - ref[fields])) for p in pred]
            expected = int(np.argmin(scores))
        else:
            scores = [lin_ccc(ref[fields], p[fields]) for p in pred]
            expected = int(np.argmax(scores))
        assert choose_candidate(pred, ref, fields, criterion=criterion) == expected


def test_leave_one_out_never_uses_the_held_out_reference(counts):
    pred, ref = counts
    chosen, predicted = leave_one_out_choice(pred, ref)
    for i in range(ref.size):
        others = [j for j in range(ref.size) if j != i]
        best = int(np.argmin([np.mean(np.abs(p[others] - ref[others])) for p in pred]))
        assert chosen[i] == best
        assert predicted[i] == pred[best, i]
    # changing a field's own reference changes no choice made for it
    changed = ref.copy()
    changed[4] += 1000
    chosen2, _ = leave_one_out_choice(pred, changed)
    assert chosen2[4] == chosen[4]


def test_curve_finds_an_exact_candidate_from_one_stained_field():
    rng = np.random.default_rng(3)
    ref = rng.integers(0, 80, size=10).astype(float)
    pred = np.stack([ref + 15, 0.5 * ref, ref, ref * 2])  # row 2 is exact
    curve = calibration_curve(pred, ref, [1, 3, 7], n_repeats=20, seed=1)
    assert len(curve) == 60
    assert (curve["chosen"] == 2).all()
    assert np.allclose(curve["pearson_r"], 1.0) and (curve["mae"] == 0).all()
    # reproducible with the seed
    again = calibration_curve(pred, ref, [1, 3, 7], n_repeats=20, seed=1)
    assert curve.equals(again)


def test_curve_held_out_agreement_matches_a_naive_recomputation(counts):
    pred, ref = counts
    curve = calibration_curve(pred, ref, [2, 5], n_repeats=5, seed=4)
    rng = np.random.default_rng(4)
    for _, row in curve.iterrows():
        stained = rng.choice(ref.size, size=int(row["n_stained"]), replace=False)
        held = [j for j in range(ref.size) if j not in set(stained)]
        k = choose_candidate(pred, ref, stained)
        assert row["chosen"] == k
        assert row["pearson_r"] == pytest.approx(np.corrcoef(pred[k, held], ref[held])[0, 1])
        assert row["mae"] == pytest.approx(np.mean(np.abs(pred[k, held] - ref[held])))


def test_bad_inputs(counts, tmp_path):
    pred, ref = counts
    with pytest.raises(InputError, match="criterion"):
        choose_candidate(pred, ref, criterion="r2")
    with pytest.raises(InputError, match="at least 2 calibration"):
        choose_candidate(pred, ref, [0], criterion="ccc")
    with pytest.raises(InputError, match=r"\(candidates, fields\)"):
        choose_candidate(pred[:, :5], ref)
    with pytest.raises(InputError, match="between 1 and 9"):
        calibration_curve(pred, ref, [10])
    with pytest.raises(InputError, match="NaN"):
        choose_candidate(np.full((2, 3), np.nan), np.ones(3))
    with pytest.raises(InputError, match="not found"):
        write_calibration(tmp_path / "missing", {"diameter": 12})


def test_calibration_round_trip(tmp_path):
    assert read_calibration(tmp_path) is None
    path = write_calibration(tmp_path, {"diameter": 12.0, "polarity": "bright"}, evidence={"n_stained": 4})
    assert path.name == "nuclei_calibration.json"
    doc = read_calibration(tmp_path)
    assert doc == {"params": {"diameter": 12.0, "polarity": "bright"}, "evidence": {"n_stained": 4}}
    path.write_text('{"other": 1}')
    with pytest.raises(InputError, match="no 'params'"):
        read_calibration(tmp_path)
