"""Pure numpy kernels on class probabilities.

Place them on one class list, average them per compound (with weights), drop the control class.

They work on the arrays the probes return (no DataFrame round trip); tests/moa/test_aggregate.py checks
them against loop re-implementations.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def map_to_classes(proba: np.ndarray, classes: Sequence[str], global_classes: Sequence[str]) -> np.ndarray:
    """Place the columns of ``proba`` (one per ``classes``) on the global class list.

    A class a condition's probe never saw gets probability 0 there, so rows still sum to 1.
    """
    index = {c: i for i, c in enumerate(global_classes)}
    unknown = [c for c in classes if c not in index]
    if unknown:
        raise KeyError(f"classes {unknown} are not in the global class list")
    out = np.zeros((proba.shape[0], len(global_classes)), dtype=np.float64)
    out[:, [index[c] for c in classes]] = proba
    return out


def group_mean(values: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Row mean of ``values`` per integer ``group`` (NaN rows for empty groups)."""
    out = np.zeros((n_groups, values.shape[1]), dtype=np.float64)
    np.add.at(out, group, values)
    counts = np.bincount(group, minlength=n_groups).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return out / counts[:, None]


def weighted_average(proba: np.ndarray, group: np.ndarray, weights: np.ndarray, n_groups: int) -> np.ndarray:
    """Weighted mean of probability rows per group.

    Parameters
    ----------
    proba
        ``(m, n_classes)`` rows, one per compound × condition.
    group
        ``(m,)`` integer group (compound) of each row.
    weights
        ``(m,)`` non-negative weight of each row. A group whose weights are all zero falls back to
        equal weights (a zero weight means "least trusted", never "drop the compound").
    n_groups
        Number of groups; groups without rows get NaN.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if (weights < 0).any() or not np.isfinite(weights).all():
        raise ValueError("weights must be finite and non-negative")
    wsum = np.bincount(group, weights=weights, minlength=n_groups)
    counts = np.bincount(group, minlength=n_groups)
    fallback = (wsum == 0) & (counts > 0)
    w = np.where(fallback[group], 1.0, weights)
    out = np.zeros((n_groups, proba.shape[1]), dtype=np.float64)
    np.add.at(out, group, proba * w[:, None])
    total = np.bincount(group, weights=w, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return out / total[:, None]


def drop_column(proba: np.ndarray, column: int) -> np.ndarray:
    """Remove one class (e.g. the control class) and renormalize rows to sum to 1.

    A row whose remaining mass is 0 becomes uniform (a visible tie, not an arbitrary class); a NaN
    row (a compound with nothing to aggregate) stays NaN.
    """
    kept = np.delete(proba, column, axis=1)
    total = kept.sum(axis=1, keepdims=True)
    uniform = np.full_like(kept, 1.0 / max(kept.shape[1], 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(total > 0, kept / total, uniform)
    out[~np.isfinite(total[:, 0])] = np.nan
    return out


def class_scores(
    proba: np.ndarray, global_classes: Sequence[str], control_label: str, allow_control: bool
) -> tuple[np.ndarray, list[str]]:
    """Probabilities over the classes a compound may be assigned to (control dropped unless allowed).

    Parameters
    ----------
    proba
        ``(n, len(global_classes))`` probabilities.
    global_classes
        The class list, control class included.
    control_label
        The control class.
    allow_control
        Keep the control class as a possible answer.
    """
    if allow_control:
        return proba, list(global_classes)
    j = list(global_classes).index(control_label)
    return drop_column(proba, j), [c for c in global_classes if c != control_label]


def aggregate_compounds(
    table: pd.DataFrame,
    proba: np.ndarray,
    weights: np.ndarray,
    compounds: Sequence[str],
) -> np.ndarray:
    """Weighted mean of each compound's condition probabilities (``(len(compounds), n_classes)``).

    Parameters
    ----------
    table
        Scored compound × condition rows (``compound`` column).
    proba
        Their probabilities.
    weights
        Their weights.
    compounds
        Output row order; a compound without rows gets NaN.
    """
    index = {k: i for i, k in enumerate(compounds)}
    group = np.array([index[k] for k in table["compound"]], dtype=int)
    return weighted_average(proba, group, weights, len(compounds))
