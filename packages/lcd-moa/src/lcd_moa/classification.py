"""Compound-level classification metrics: accuracy, F1 (weighted and macro), top-k accuracy, confusion.

Accuracy, F1 and the confusion matrix come from ``sklearn.metrics`` (issue #14); top-k accuracy is
hand-written for its tie rule (:func:`top_k_hits` says why). What this module adds is the treatment
of compounds without a usable prediction, which scikit-learn has no notion of:

- a missing prediction (``None``: the compound could not be scored by a method) counts as wrong;
- F1 is averaged over the classes present in ``y_true`` (predictions of other classes, the control
  class or none, are false positives of no class and misses of the true one);
- top-k: rows whose probabilities are not finite, or whose true class is not in the class list (a
  holdout compound of a class the model never saw), count as misses.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from lcd_core import ConfigError, InputError

#: k of the top-k accuracy reported beside accuracy and F1.
TOP_K = 3
#: Column of the confusion table for compounds without a prediction.
NO_PREDICTION = "(none)"
#: Stand-in label for a missing true label: sklearn needs one label type, and this one is never a class.
_MISSING_TRUE = "\x00missing true label"
_MISSING_PRED = "\x00missing prediction"


def check_top_k(top_k: int) -> None:
    """One line when ``top_k`` is not an integer of at least 1.

    Parameters
    ----------
    top_k
        The option's value.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 1:
        raise ConfigError(f"top_k must be an integer >= 1, got {top_k!r}")


def _as_labels(values: Sequence, missing: str) -> np.ndarray:
    """Labels as str, with ``missing`` for None/NaN (never equal to a real class)."""
    return np.array(
        [missing if (v is None or (isinstance(v, float) and np.isnan(v))) else str(v) for v in values],
        dtype=object,
    )


def f1_scores(y_true: Sequence, y_pred: Sequence) -> tuple[float, float]:
    """Weighted and macro F1 over the classes present in ``y_true`` (``zero_division=0``).

    Parameters
    ----------
    y_true
        True class per compound.
    y_pred
        Predicted class per compound (``None``: no prediction, a miss).
    """
    from sklearn.metrics import f1_score

    t, p = _as_labels(y_true, _MISSING_TRUE), _as_labels(y_pred, _MISSING_PRED)
    classes = sorted(set(t.tolist()) - {_MISSING_TRUE})
    if not classes:
        return float("nan"), float("nan")
    weighted = f1_score(t, p, labels=classes, average="weighted", zero_division=0)
    macro = f1_score(t, p, labels=classes, average="macro", zero_division=0)
    return float(weighted), float(macro)


def top_k_hits(proba: np.ndarray, true_index: np.ndarray, top_k: int) -> np.ndarray:
    """Whether each row's true class is among its ``top_k`` most probable classes.

    A tie at the k-th place counts as a hit (only strictly larger probabilities push the true class
    out), except that a true class of probability 0 is never a hit: none of the compound's probes had
    that class, so it was never a candidate. Rows with non-finite probabilities or a negative
    ``true_index`` (label not in the class list) are misses.

    Hand-written (numpy) rather than ``sklearn.metrics.top_k_accuracy_score``, which breaks ties by the
    order of the class names. Ties are systematic here: a class a condition's probe never saw gets
    probability exactly 0. Measured on cell_injury (tests/moa/test_cell_injury.py's run): the four
    single-dose methods at 0.63, 0.31, 0.08 and 0.02 µM (2-3 compounds, every true class at probability
    0) get top-3 accuracy 0.0 from sklearn, and 1.0 / 0.667 from sklearn once the classes are renamed
    so that they sort in reverse; this rule gives 0.0 whatever the names. Without ties it equals
    sklearn's (tests/moa/test_metrics.py).

    Parameters
    ----------
    proba
        ``(n, n_classes)`` probabilities.
    true_index
        Column of each row's true class, ``-1`` when it has none.
    top_k
        How many classes count as a hit.
    """
    check_top_k(top_k)
    proba = np.asarray(proba, dtype=np.float64)
    true_index = np.asarray(true_index)
    ok = (true_index >= 0) & np.isfinite(proba).all(axis=1)
    out = np.zeros(len(true_index), dtype=bool)
    rows = np.flatnonzero(ok)
    if rows.size:
        p_true = proba[rows, true_index[rows]]
        n_greater = (proba[rows] > p_true[:, None]).sum(axis=1)
        out[rows] = (n_greater < top_k) & (p_true > 0)
    return out


def classification_metrics(
    y_true: Sequence,
    y_pred: Sequence,
    proba: np.ndarray | None = None,
    *,
    classes: Sequence[str] | None = None,
    top_k: int = TOP_K,
) -> dict[str, float]:
    """Accuracy, weighted F1, macro F1 and (with ``proba``) top-k accuracy.

    Parameters
    ----------
    y_true
        True class per compound.
    y_pred
        Predicted class per compound (a missing prediction counts as wrong).
    proba
        Optional ``(n, n_classes)`` probabilities over ``classes`` for top-k accuracy.
    classes
        The class of each column of ``proba``.
    top_k
        The k of top-k accuracy (reported as ``top<k>_accuracy``).

    Returns
    -------
    dict
        ``n``, ``accuracy``, ``f1_weighted``, ``f1_macro`` and ``top<k>_accuracy``; NaN when empty.
    """
    from sklearn.metrics import accuracy_score

    t, p = _as_labels(y_true, _MISSING_TRUE), _as_labels(y_pred, _MISSING_PRED)
    if len(t) != len(p):
        raise InputError(f"y_true has {len(t)} entries, y_pred {len(p)}")
    out: dict[str, float] = {"n": float(len(t))}
    out["accuracy"] = float(accuracy_score(t, p)) if len(t) else float("nan")
    out["f1_weighted"], out["f1_macro"] = f1_scores(t, p) if len(t) else (float("nan"), float("nan"))
    if proba is not None:
        if classes is None:
            raise InputError("top-k accuracy needs classes= (the class of each column of proba)")
        proba = np.asarray(proba, dtype=np.float64)
        if proba.shape != (len(t), len(classes)):
            raise InputError(f"proba has shape {proba.shape}; expected ({len(t)}, {len(classes)})")
        index = {str(c): i for i, c in enumerate(classes)}
        true_index = np.array([index.get(v, -1) for v in t], dtype=int)
        hits = top_k_hits(proba, true_index, top_k)
        out[f"top{top_k}_accuracy"] = float(hits.mean()) if len(t) else float("nan")
    return out


def confusion_table(y_true: Sequence, y_pred: Sequence, labels: Sequence[str] | None = None) -> pd.DataFrame:
    """Counts with true classes as rows and predicted classes as columns (``"(none)"`` = no prediction).

    Parameters
    ----------
    y_true
        True class per compound (rows of other classes are left out).
    y_pred
        Predicted class per compound.
    labels
        Row order (default: the true classes, sorted). Predicted classes outside it (the control
        class, no prediction) are extra columns.
    """
    from sklearn.metrics import confusion_matrix

    t = _as_labels(y_true, _MISSING_TRUE)
    p = _as_labels(y_pred, NO_PREDICTION)
    rows = [str(v) for v in labels] if labels is not None else sorted(set(t.tolist()) - {_MISSING_TRUE})
    cols = rows + sorted(set(p.tolist()) - set(rows))
    if not np.isin(t, rows).any():  # sklearn refuses labels none of which is in y_true
        counts = np.zeros((len(rows), len(cols)), dtype=np.int64)
    else:
        # square over cols; samples whose true class is not a row land in rows dropped below
        counts = confusion_matrix(t, p, labels=cols)[: len(rows)]
    return pd.DataFrame(counts, index=pd.Index(rows, name="true"), columns=pd.Index(cols, name="predicted"))
