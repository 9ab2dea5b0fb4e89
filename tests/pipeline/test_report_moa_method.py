"""The report's MoA-vs-truth table uses the probe that saw every dose, not whichever row came last."""

import pandas as pd
from lcd_pipeline.report import _all_doses_method


def test_all_doses_probe_is_the_last_incremental_step_whatever_the_row_order():
    rows = [
        ("single_10", "single", 1),
        ("incremental_1", "incremental", 1),
        ("incremental_3", "incremental", 3),
        ("incremental_2", "incremental", 2),
        ("single_0.1", "single", 1),  # last row: a single-dose probe
    ]
    pred = pd.DataFrame(rows, columns=["method", "kind", "step"])
    assert _all_doses_method(pred) == "incremental_3"


def test_without_incremental_steps_falls_back_to_the_only_method():
    pred = pd.DataFrame([("single_1", "single", 1)], columns=["method", "kind", "step"])
    assert _all_doses_method(pred) == "single_1"
