"""The weight of each condition when a compound's per-condition probabilities are averaged.

``equal`` (1), ``wells`` (the compound's well count there) or ``accuracy``: each condition's accuracy
estimated by an inner cross-validation on the training compounds of the outer fold only (nested, so
the outer test fold is never touched).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from lcd_moa.class_probs import class_scores
from lcd_moa.condition_probes import fit_condition_probes, score_compounds
from lcd_moa.design import Design
from lcd_moa.folds import assign_folds
from lcd_moa.spec import ProbeSpec


def condition_accuracy(
    design: Design,
    train: Iterable[str],
    labels: pd.Series,
    global_classes: Sequence[str],
    probe: ProbeSpec,
    *,
    seed: int,
) -> np.ndarray:
    """Accuracy of each condition's probe estimated by an inner cross-validation on ``train`` only.

    The training compounds are split into ``probe.inner_folds`` folds (grouped by compound, stratified
    by MoA); each inner test compound is scored at each condition by a probe fitted without it, and a
    condition's accuracy is the fraction of those per-condition predictions that name the right MoA.
    No compound outside ``train`` is touched, so using this as weights in an outer fold leaks nothing.

    Parameters
    ----------
    design
        The layout.
    train
        The outer fold's training compounds.
    labels
        MoA per compound.
    global_classes
        The class list.
    probe
        Probe options (``inner_folds``, ``score``, ``allow_control_prediction``, fit options).
    seed
        Seed of the inner split.

    Returns
    -------
    numpy.ndarray
        ``(n_conditions,)`` accuracies, NaN where no inner compound could be scored.
    """
    train = sorted(set(train))
    inner = assign_folds(labels[train], n_folds=probe.inner_folds, seed=seed, check_class_sizes=False)
    hits = np.zeros(len(design.conditions))
    count = np.zeros(len(design.conditions))
    for i in range(probe.inner_folds):
        held = inner.loc[inner["fold"] == i, "compound"].tolist()
        probes, _ = fit_condition_probes(design, set(train) - set(held), labels, probe)
        table, proba = score_compounds(design, probes, held, global_classes, probe.score)
        if not len(table):
            continue
        scores, classes = class_scores(
            proba, global_classes, design.control_label, probe.allow_control_prediction
        )
        predicted = np.asarray(classes, dtype=object)[scores.argmax(axis=1)]
        correct = predicted == labels[table["compound"]].to_numpy()
        np.add.at(hits, table["condition"].to_numpy(dtype=int), correct)
        np.add.at(count, table["condition"].to_numpy(dtype=int), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, hits / count, np.nan)


def fill_weights(accuracy: np.ndarray) -> np.ndarray:
    """Accuracy weights with missing estimates set to the mean of the others (1 if none exist).

    Parameters
    ----------
    accuracy
        Per-condition accuracies, NaN where unknown.
    """
    known = accuracy[np.isfinite(accuracy)]
    fill = float(known.mean()) if known.size else 1.0
    return np.where(np.isfinite(accuracy), accuracy, fill)


def row_weights(kind: str, table: pd.DataFrame, condition_weight: np.ndarray | None = None) -> np.ndarray:
    """The weight of each compound × condition row for aggregation.

    Parameters
    ----------
    kind
        ``equal``: 1; ``wells``: the compound's well count at the condition; ``accuracy``: the
        condition's estimated accuracy.
    table
        Scored rows (``condition``, ``n_wells``).
    condition_weight
        Per-condition accuracy weights, indexed by condition (``accuracy`` only).
    """
    if kind == "equal":
        return np.ones(len(table))
    if kind == "wells":
        return table["n_wells"].to_numpy(dtype=np.float64)
    if kind == "accuracy":
        if condition_weight is None:
            raise ValueError("accuracy weights need per-condition accuracies")
        return np.asarray(condition_weight, dtype=np.float64)[table["condition"].to_numpy(dtype=int)]
    raise ValueError(f"unknown weights {kind!r}")  # ProbeSpec admits only the kinds above: a bug
