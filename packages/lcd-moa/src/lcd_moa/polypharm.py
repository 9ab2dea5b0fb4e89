"""Polypharmacology: the top-k MoAs of each compound at each dose × timepoint.

A compound whose per-condition probes rank two MoAs on top (e.g. TAK-901: Aurora at one dose, JAK at
another, or both together) shows it in this table; the LCD paper reads polypharmacology off the top-2
per-condition predictions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from lcd_core import ConfigError, InputError

from lcd_moa.spec import CONTROL_LABEL

#: MoAs kept per compound × condition (the LCD paper reads polypharmacology off the top 2).
TOP_MOAS = 2


def top_moas(
    condition_probs: pd.DataFrame,
    classes: Sequence[str],
    condition_keys: Sequence[str],
    *,
    control_label: str = CONTROL_LABEL,
    k: int = TOP_MOAS,
) -> pd.DataFrame:
    """Rank MoAs per compound × condition.

    Parameters
    ----------
    condition_probs
        The ``condition_probs`` table of a result (``compound``, condition keys, ``p_<class>``).
    classes
        The global class list (with the control class).
    condition_keys
        Condition key columns.
    control_label
        The control class: never ranked as an MoA; its probability is reported as ``p_control``.
    k
        How many MoAs to keep per compound × condition.

    Returns
    -------
    pandas.DataFrame
        One row per compound × condition × rank: ``compound``, condition keys, ``rank`` (1 = most
        probable), ``moa``, ``probability`` (renormalized over MoAs) and ``p_control``.
    """
    moas = [c for c in classes if c != control_label]
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ConfigError(f"k (MoAs kept per condition) must be an integer >= 1, got {k!r}")
    needed = ["compound", *condition_keys, *(f"p_{c}" for c in moas)]
    missing = [c for c in needed if c not in condition_probs.columns]
    if missing:
        raise InputError(f"condition_probs: column(s) {missing[:5]} not found; is this lcd-moa's table?")
    k = min(k, len(moas))
    P = condition_probs[[f"p_{c}" for c in moas]].to_numpy(dtype=np.float64)
    total = P.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        P = np.where(total > 0, P / total, 1.0 / len(moas))
    order = np.argsort(-P, axis=1, kind="stable")[:, :k]
    p_control = (
        condition_probs[f"p_{control_label}"].to_numpy()
        if f"p_{control_label}" in condition_probs
        else np.nan
    )
    base = condition_probs[["compound", *condition_keys]].reset_index(drop=True)
    frames = []
    for r in range(k):
        frame = base.copy()
        frame["rank"] = r + 1
        frame["moa"] = np.asarray(moas, dtype=object)[order[:, r]]
        frame["probability"] = P[np.arange(len(P)), order[:, r]]
        frame["p_control"] = p_control
        frames.append(frame)
    if not frames or base.empty:
        return pd.DataFrame(columns=["compound", *condition_keys, "rank", "moa", "probability", "p_control"])
    return (
        pd.concat(frames, ignore_index=True)
        .sort_values(["compound", *condition_keys, "rank"], kind="stable")
        .reset_index(drop=True)
    )
