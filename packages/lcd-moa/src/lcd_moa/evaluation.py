"""From per-condition probabilities to per-compound predictions and metrics for each method.

A *method* is a set of conditions whose probabilities are combined: the doses added one at a time in a
chosen order (``incremental_1``, ``incremental_2``, ...) and each dose alone (``single_<dose>``), all
timepoints of a dose included. Every method uses the same out-of-fold probabilities, so methods differ
only in which conditions they aggregate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from lcd_core import ConfigError, InputError

from lcd_moa.activity import normalize_values
from lcd_moa.class_probs import aggregate_compounds, class_scores
from lcd_moa.classification import TOP_K, classification_metrics
from lcd_moa.design import Design

#: Order in which doses are added: the highest dose first (LCD paper).
DOSE_ORDER = "descending"
DOSE_ORDERS = ("descending", "ascending")
DoseOrder = str | Sequence[float]


@dataclass
class Method:
    """A named set of condition indices."""

    name: str
    kind: str  # "incremental" or "single"
    step: int
    doses: list
    conditions: list[int]


def _dose_text(doses: Sequence) -> str:
    return ", ".join(f"{d:g}" if isinstance(d, float) else str(d) for d in doses)


def check_dose_order(dose_order: DoseOrder) -> DoseOrder:
    """``dose_order`` when valid (``"descending"``, ``"ascending"`` or a list of doses); else one line.

    Parameters
    ----------
    dose_order
        The option's value.
    """
    if isinstance(dose_order, str):
        if dose_order not in DOSE_ORDERS:
            raise ConfigError(
                f"dose_order must be 'descending', 'ascending' or a list of doses, got {dose_order!r}"
            )
        return dose_order
    if not isinstance(dose_order, Sequence | np.ndarray) or not len(dose_order):
        raise ConfigError(
            f"dose_order must be 'descending', 'ascending' or a list of doses, got {dose_order!r}"
        )
    return list(dose_order)


def dose_steps(doses: Sequence[float], order: DoseOrder = DOSE_ORDER) -> list[list[float]]:
    """The cumulative dose sets of incremental addition: ``[[d1], [d1, d2], ...]``.

    Parameters
    ----------
    doses
        The distinct doses present.
    order
        ``"descending"`` (highest dose first, the default of the LCD paper), ``"ascending"``, or an
        explicit sequence of doses (every dose present must be listed).
    """
    present = sorted(set(doses))
    order = check_dose_order(order)
    if isinstance(order, str):
        ordered = present[::-1] if order == "descending" else present
    else:
        ordered = list(order)
        missing = [d for d in present if d not in ordered]
        extra = [d for d in ordered if d not in present]
        if missing or extra or len(set(ordered)) != len(ordered):
            raise InputError(f"dose order {ordered} must list each dose present {present} once")
    return [ordered[: i + 1] for i in range(len(ordered))]


def build_methods(design: Design, dose_key: str, dose_order: DoseOrder = DOSE_ORDER) -> list[Method]:
    """Incremental dose sets (in ``dose_order``) and single doses over the usable conditions.

    Parameters
    ----------
    design
        The layout.
    dose_key
        The dose column of ``design.conditions``.
    dose_order
        See :func:`dose_steps`.
    """
    cond = design.conditions
    usable = design.ok_conditions()
    doses = sorted(set(cond.loc[usable, dose_key].tolist()))
    dose_order = check_dose_order(dose_order)
    if isinstance(dose_order, str):
        order = dose_order
    else:  # user-given doses are matched on the same canonical values as the data
        order = normalize_values(pd.Series(list(dose_order))).tolist()
        order = [d for d in order if d in doses]  # doses that were skipped everywhere drop out
    methods = []
    for i, step in enumerate(dose_steps(doses, order), start=1):
        members = [c for c in usable if cond.loc[c, dose_key] in step]
        methods.append(Method(f"incremental_{i}", "incremental", i, step, members))
    for d in methods[-1].doses if methods else []:
        members = [c for c in usable if cond.loc[c, dose_key] == d]
        methods.append(Method(f"single_{_dose_text([d])}", "single", 1, [d], members))
    return methods


def evaluate_methods(
    design: Design,
    table: pd.DataFrame,
    proba: np.ndarray,
    global_classes: Sequence[str],
    methods: Sequence[Method],
    compounds: pd.DataFrame,
    *,
    allow_control: bool = False,
    top_k: int = TOP_K,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-compound predictions and metrics for every method.

    Parameters
    ----------
    design
        The layout.
    global_classes
        The class list of ``proba``.
    methods
        From :func:`build_methods`.
    allow_control
        Whether a prediction may be the control class.
    top_k
        k of the top-k accuracy.
    table, proba
        Scored compound × condition rows (``compound``, ``condition``, ``weight``) and their
        probabilities over ``global_classes``.
    compounds
        The compounds to evaluate: ``compound``, ``moa`` (may be missing in prediction mode) and
        optionally ``fold``.

    Returns
    -------
    tuple
        ``predictions``: one row per method × compound with ``predicted``, ``correct``,
        ``n_conditions`` and ``p_<class>``; ``metrics``: one row per method with ``n_compounds``
        (those with a prediction), ``coverage`` and the metrics of
        :func:`lcd_moa.classification_metrics` on them.
    """
    names = compounds["compound"].astype(str).tolist()
    moa = compounds["moa"].to_numpy(dtype=object)
    predictions, metrics = [], []
    for m in methods:
        keep = table["condition"].isin(m.conditions).to_numpy()
        sub = table.loc[keep]
        agg = aggregate_compounds(sub, proba[keep], sub["weight"].to_numpy(), names)
        scores, classes = class_scores(agg, global_classes, design.control_label, allow_control)
        has = np.isfinite(scores).all(axis=1)
        predicted = np.full(len(names), None, dtype=object)
        if has.any():
            predicted[has] = np.asarray(classes, dtype=object)[np.argmax(scores[has], axis=1)]
        n_cond = (
            np.bincount(pd.Categorical(sub["compound"], categories=names).codes, minlength=len(names))
            if len(sub)
            else np.zeros(len(names), dtype=int)
        )
        frame = pd.DataFrame(
            {
                "method": m.name,
                "kind": m.kind,
                "step": m.step,
                "doses": _dose_text(m.doses),
                "compound": names,
                "moa": moa,
                "n_conditions": n_cond,
                "predicted": predicted,
            }
        )
        if "fold" in compounds:
            frame.insert(6, "fold", compounds["fold"].to_numpy())
        labeled = pd.notna(moa)
        frame["correct"] = np.where(labeled, predicted == moa, None)
        frame = pd.concat([frame, pd.DataFrame(scores, columns=[f"p_{c}" for c in classes])], axis=1)
        predictions.append(frame)
        ev = has & labeled
        row = {
            "method": m.name,
            "kind": m.kind,
            "step": m.step,
            "doses": _dose_text(m.doses),
            "n_conditions": len(m.conditions),
            "n_compounds": int(ev.sum()),
            "coverage": float(ev.sum() / labeled.sum()) if labeled.any() else float("nan"),
        }
        if labeled.any():
            row.update(
                classification_metrics(moa[ev], predicted[ev], scores[ev], classes=classes, top_k=top_k)
            )
            row.pop("n", None)
        metrics.append(row)
    return pd.concat(predictions, ignore_index=True), pd.DataFrame(metrics)
