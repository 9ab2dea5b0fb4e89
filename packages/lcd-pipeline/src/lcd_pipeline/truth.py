"""Recovered versus planted.

The pipeline's activity calls and MoA predictions against a simulated plate's ground truth
(``truth/conditions.parquet``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def activity_vs_truth(activity: pd.DataFrame, conditions: pd.DataFrame) -> pd.DataFrame:
    """One row per compound × timepoint × dose with ``called`` (pipeline) and ``true_active``, ``strength``.

    Rows the pipeline could not score (``status == "failed"``) are kept with ``called = False`` and
    their status, so a failure counts as a miss rather than disappearing.
    """
    keys = ["compound", "timepoint", "dose"]
    truth = conditions[[*keys, "moa", "strength", "active", "inert"]].rename(
        columns={"active": "true_active"}
    )
    act = activity[[*keys, "status", "active", "map_es"]].rename(columns={"active": "called"})
    act = act.assign(timepoint=pd.to_numeric(act["timepoint"]), dose=act["dose"].astype(float))
    out = truth.merge(act, on=keys, how="left")
    out["called"] = out["called"].fillna(False).astype(bool)
    out["status"] = out["status"].fillna("missing")
    return out


def recovery_summary(joined: pd.DataFrame) -> pd.DataFrame:
    """Recall of truly active conditions (all, and at the highest dose) and false calls on inert compounds."""
    top = joined["dose"] == joined["dose"].max()
    rows = [
        ("truly active conditions called active", joined.loc[joined["true_active"], "called"]),
        (
            "truly active at the highest dose, called active",
            joined.loc[joined["true_active"] & top, "called"],
        ),
        ("inert compound conditions called active", joined.loc[joined["inert"], "called"]),
        (
            "not truly active (non-inert) called active",
            joined.loc[~joined["true_active"] & ~joined["inert"], "called"],
        ),
    ]
    return pd.DataFrame(
        [{"quantity": q, "n": len(s), "fraction": float(s.mean()) if len(s) else np.nan} for q, s in rows]
    )


def moa_vs_truth(predictions: pd.DataFrame, method: str) -> pd.DataFrame:
    """Per compound of one MoA method: true MoA, predicted MoA and whether they agree."""
    pred = predictions[(predictions["method"] == method) & predictions["moa"].notna()]
    return pred[["compound", "moa", "predicted", "correct"]].reset_index(drop=True)
