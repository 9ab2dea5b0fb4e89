"""MoASpec / ProbeSpec: each default declared once, checked on construction, fed from plain mappings."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import lcd_moa
import pytest
from lcd_core import DEFAULT_CONTROL, ConfigError, check_options
from lcd_moa import MoASpec, ProbeSpec, cross_validate, fit_moa, predict_moa

SRC = Path(lcd_moa.__file__).parent


def test_defaults_come_from_the_data_contract():
    spec = MoASpec()
    assert spec.control == DEFAULT_CONTROL
    assert spec.condition_keys == ("timepoint", "dose") and spec.dose == "dose"
    assert MoASpec(condition_keys=["dose", "timepoint"], dose_key="dose").dose == "dose"
    assert MoASpec(condition_keys="dose").condition_keys == ("dose",)  # one name is a list of one
    # the control query is typed in lcd-core only, and C only in ProbeSpec
    for path in SRC.glob("*.py"):
        assert "compound == 'DMSO'" not in path.read_text(), path.name
    for fn in (cross_validate, fit_moa, predict_moa):
        assert "C" not in inspect.signature(fn).parameters
    assert [f.name for f in dataclasses.fields(ProbeSpec)].count("C") == 1


def test_round_trip_and_frozen():
    spec = MoASpec(
        compound_key="cpd", condition_keys=["t", "d"], activity_keys=["c", "tt", "dd"], features=["a"]
    )
    assert spec.features == ("a",) and spec.activity_keys == ("c", "tt", "dd")
    assert MoASpec.from_dict(spec.to_dict()) == spec
    probe = ProbeSpec(C=2, weights="accuracy")
    assert probe.C == 2.0 and ProbeSpec.from_dict(probe.to_dict()) == probe
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.compound_key = "x"  # type: ignore[misc]
    assert spec.replace(moa_key="label").moa_key == "label" and spec.moa_key == "moa"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"compound_kee": "x"}, r"MoASpec.compound_kee: unknown option; did you mean 'compound_key'\?"),
        ({"condition_keys": 3}, r"MoASpec.condition_keys: expected"),
        ({"condition_keys": []}, r"condition_keys: name at least one column"),
        ({"dose_key": "well"}, r"dose_key: 'well' must be one of condition_keys"),
        ({"activity_keys": ["a", "b"]}, r"activity_keys: must name 3 columns"),
        ({"layer": "a", "use_rep": "b"}, r"give layer or use_rep, not both"),
        ({"compound_key": "dose"}, r"must be different columns"),
        ({"control": ""}, r"MoASpec.control: expected a non-empty string"),
    ],
)
def test_moa_spec_refuses_bad_options(options, message):
    with pytest.raises(ConfigError, match=message):
        MoASpec.from_dict(options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"c": 1.0}, r"ProbeSpec.c: unknown option \(known: C, allow_control_prediction"),
        ({"C": 0}, r"ProbeSpec.C: must be a positive number"),
        ({"C": float("nan")}, r"ProbeSpec.C: must be a positive number"),
        ({"C": "1"}, r"ProbeSpec.C: expected float"),
        ({"max_iter": 0}, r"max_iter: must be an integer >= 1"),
        ({"inner_folds": 1}, r"inner_folds: must be an integer >= 2"),
        ({"weights": "votes"}, r"weights: must be one of equal, wells, accuracy, got 'votes'"),
        ({"score": "some"}, r"score: must be one of active, all"),
        ({"allow_control_prediction": "yes"}, r"allow_control_prediction: expected bool"),
    ],
)
def test_probe_spec_refuses_bad_options(options, message):
    with pytest.raises(ConfigError, match=message):
        ProbeSpec.from_dict(options)


def test_a_yaml_section_feeds_cross_validate(screen, activity):
    """A config section (as lcd-pipeline's `moa:`) is checked against cross_validate, specs as mappings."""
    section = {"n_folds": 3, "spec": {"control": "compound == 'DMSO'"}, "probe": {"weights": "wells"}}
    options = check_options(section, cross_validate, section="moa", exclude=("data", "activity"))
    adata = screen(n_moa=3, n_per_moa=5, seed=50)
    result = cross_validate(adata, activity(adata, 3.0), **options)
    assert result.params["n_folds"] == 3 and result.params["probe"]["weights"] == "wells"
    assert result.params["spec"] == MoASpec().to_dict()
    with pytest.raises(ConfigError, match=r"moa.n_fold: unknown option; did you mean 'n_folds'"):
        check_options({"n_fold": 3}, cross_validate, section="moa", exclude=("data", "activity"))
    with pytest.raises(ConfigError, match=r"MoASpec.moa_kee: unknown option"):
        cross_validate(adata, None, {"moa_kee": "x"})
    with pytest.raises(ConfigError, match=r"expected a ProbeSpec, a mapping of its fields or None, got str"):
        cross_validate(adata, None, probe="wells")
