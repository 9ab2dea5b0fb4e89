"""Fit one probe per condition on chosen compounds, and score other compounds with them.

Shared by cross-validation (:mod:`lcd_moa.cv`) and holdout fitting/prediction (:mod:`lcd_moa.model`),
so the training set of every probe is built in one place: wells of the *given* training compounds that
are active at the condition, plus the condition's control wells as the control class.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from lcd_moa import probe as _probe
from lcd_moa.aggregate import drop_column, group_mean, map_to_classes, weighted_average
from lcd_moa.design import Design
from lcd_moa.folds import assign_folds

WEIGHTS = ("equal", "wells", "accuracy")
SCORE_MODES = ("active", "all")


def check_options(weights: str, score: str) -> None:
    """One-line errors for unknown weighting or scoring modes."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    if score not in SCORE_MODES:
        raise ValueError(f"score must be one of {SCORE_MODES}, got {score!r}")


def fit_condition_probes(
    design: Design,
    train: Iterable[str],
    labels: pd.Series,
    *,
    C: float = 1.0,
    max_iter: int = 1000,
) -> tuple[dict[int, _probe.LinearProbe], list[dict]]:
    """Fit a probe at every usable condition on the active wells of ``train`` plus control wells.

    Returns the probes by condition index and one record per condition (``condition``, ``status``,
    ``reason``, ``n_train_compounds``, ``n_train_wells``, ``n_control_wells``).
    """
    train = sorted(set(train))
    records = []
    probes: dict[int, _probe.LinearProbe] = {}
    for c in design.ok_conditions():
        comps = [k for k in train if (k, c) in design.active]
        rec = {
            "condition": c,
            "n_train_compounds": len(comps),
            "n_control_wells": len(design.control_rows[c]),
        }
        if not comps:
            records.append(
                {
                    **rec,
                    "n_train_wells": 0,
                    "status": "skipped",
                    "reason": "no active training compound at this condition",
                }
            )
            continue
        rows = [design.wells[(k, c)] for k in comps]
        y = np.concatenate([np.repeat(labels[k], len(r)) for k, r in zip(comps, rows, strict=True)])
        ctrl = design.control_rows[c]
        X = design.X[np.concatenate([*rows, ctrl])]
        y = np.concatenate([y, np.repeat(design.control_label, len(ctrl))])
        probes[c] = _probe.fit_probe(X, y, C=C, max_iter=max_iter)
        records.append({**rec, "n_train_wells": int(len(y) - len(ctrl)), "status": "ok", "reason": ""})
    return probes, records


def score_compounds(
    design: Design,
    probes: dict[int, _probe.LinearProbe],
    compounds: Iterable[str],
    global_classes: Sequence[str],
    *,
    score: str = "active",
) -> tuple[pd.DataFrame, np.ndarray]:
    """Per compound × condition probabilities: the mean of the compound's well probabilities.

    Parameters
    ----------
    score
        ``"active"``: score a compound only at conditions where it is active; ``"all"``: wherever
        it has wells.

    Returns
    -------
    A table (``compound``, ``condition``, ``n_wells``) and the matching ``(rows, n_global_classes)``
    probabilities on ``global_classes``.
    """
    if score not in SCORE_MODES:
        raise ValueError(f"score must be one of {SCORE_MODES}, got {score!r}")
    compounds = sorted(set(compounds))
    frames, blocks = [], []
    for c, probe in sorted(probes.items()):
        chosen = [
            k for k in compounds if (k, c) in design.wells and (score == "all" or (k, c) in design.active)
        ]
        if not chosen:
            continue
        rows = [design.wells[(k, c)] for k in chosen]
        group = np.repeat(np.arange(len(chosen)), [len(r) for r in rows])
        proba = probe.predict_proba(design.X[np.concatenate(rows)])
        mean = group_mean(map_to_classes(proba, probe.classes, global_classes), group, len(chosen))
        frames.append(pd.DataFrame({"compound": chosen, "condition": c, "n_wells": [len(r) for r in rows]}))
        blocks.append(mean)
    if not frames:
        return pd.DataFrame({"compound": [], "condition": [], "n_wells": []}), np.zeros(
            (0, len(global_classes))
        )
    return pd.concat(frames, ignore_index=True), np.vstack(blocks)


def class_scores(
    proba: np.ndarray, global_classes: Sequence[str], control_label: str, allow_control: bool
) -> tuple[np.ndarray, list[str]]:
    """Probabilities over the classes a compound may be assigned to (control dropped unless allowed)."""
    if allow_control:
        return proba, list(global_classes)
    j = list(global_classes).index(control_label)
    return drop_column(proba, j), [c for c in global_classes if c != control_label]


def condition_accuracy(
    design: Design,
    train: Iterable[str],
    labels: pd.Series,
    global_classes: Sequence[str],
    *,
    inner_folds: int = 3,
    seed: int = 0,
    score: str = "active",
    allow_control: bool = False,
    C: float = 1.0,
    max_iter: int = 1000,
) -> np.ndarray:
    """Accuracy of each condition's probe estimated by an inner cross-validation on ``train`` only.

    The training compounds are split into ``inner_folds`` folds (grouped by compound, stratified by
    MoA); each inner test compound is scored at each condition by a probe fitted without it, and a
    condition's accuracy is the fraction of those per-condition predictions that name the right MoA.
    No compound outside ``train`` is touched, so using this as weights in an outer fold leaks nothing.

    Returns ``(n_conditions,)`` accuracies, NaN where no inner compound could be scored.
    """
    train = sorted(set(train))
    inner = assign_folds(labels[train], n_folds=inner_folds, seed=seed, check_class_sizes=False)
    hits = np.zeros(len(design.conditions))
    count = np.zeros(len(design.conditions))
    for i in range(inner_folds):
        held = inner.loc[inner["fold"] == i, "compound"].tolist()
        probes, _ = fit_condition_probes(design, set(train) - set(held), labels, C=C, max_iter=max_iter)
        table, proba = score_compounds(design, probes, held, global_classes, score=score)
        if not len(table):
            continue
        scores, classes = class_scores(proba, global_classes, design.control_label, allow_control)
        predicted = np.asarray(classes, dtype=object)[scores.argmax(axis=1)]
        correct = predicted == labels[table["compound"]].to_numpy()
        np.add.at(hits, table["condition"].to_numpy(dtype=int), correct)
        np.add.at(count, table["condition"].to_numpy(dtype=int), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, hits / count, np.nan)


def fill_weights(accuracy: np.ndarray) -> np.ndarray:
    """Accuracy weights with missing estimates set to the mean of the others (1 if none exist)."""
    known = accuracy[np.isfinite(accuracy)]
    fill = float(known.mean()) if known.size else 1.0
    return np.where(np.isfinite(accuracy), accuracy, fill)


def row_weights(kind: str, table: pd.DataFrame, condition_weight: np.ndarray | None = None) -> np.ndarray:
    """The weight of each compound × condition row for aggregation.

    ``equal``: 1; ``wells``: the compound's well count at the condition; ``accuracy``: the
    condition's estimated accuracy (``condition_weight`` indexed by condition).
    """
    if kind == "equal":
        return np.ones(len(table))
    if kind == "wells":
        return table["n_wells"].to_numpy(dtype=np.float64)
    if kind == "accuracy":
        if condition_weight is None:
            raise ValueError("accuracy weights need per-condition accuracies")
        return np.asarray(condition_weight, dtype=np.float64)[table["condition"].to_numpy(dtype=int)]
    raise ValueError(f"weights must be one of {WEIGHTS}, got {kind!r}")


def aggregate_compounds(
    table: pd.DataFrame,
    proba: np.ndarray,
    weights: np.ndarray,
    compounds: Sequence[str],
) -> np.ndarray:
    """Weighted mean of each compound's condition probabilities (``(len(compounds), n_classes)``)."""
    index = {k: i for i, k in enumerate(compounds)}
    group = np.array([index[k] for k in table["compound"]], dtype=int)
    return weighted_average(proba, group, weights, len(compounds))
