"""Compound-level classification metrics and McNemar's exact test (numpy + scipy only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


def _as_labels(values: Sequence) -> np.ndarray:
    """Labels as an object array; None/NaN stay missing (a missing prediction is always wrong)."""
    return np.array(
        [None if (v is None or (isinstance(v, float) and np.isnan(v))) else str(v) for v in values],
        dtype=object,
    )


def f1_scores(y_true: Sequence, y_pred: Sequence) -> tuple[float, float]:
    """Weighted and macro F1 over the classes present in ``y_true``.

    Per class: precision = TP / predicted, recall = TP / true, F1 = 2PR / (P + R), 0 when undefined
    (scikit-learn's ``zero_division=0``). Predictions of other classes (or none) count as misses.
    """
    t, p = _as_labels(y_true), _as_labels(y_pred)
    classes = sorted(set(t.tolist()) - {None})
    f1 = np.zeros(len(classes))
    support = np.zeros(len(classes))
    for i, c in enumerate(classes):
        tp = np.sum((t == c) & (p == c))
        n_pred = np.sum(p == c)
        n_true = np.sum(t == c)
        support[i] = n_true
        if tp > 0:
            precision, recall = tp / n_pred, tp / n_true
            f1[i] = 2 * precision * recall / (precision + recall)
    if not classes:
        return float("nan"), float("nan")
    return float(np.sum(f1 * support) / support.sum()), float(f1.mean())


def top_k_correct(proba: np.ndarray, true_index: np.ndarray, k: int) -> np.ndarray:
    """Whether each row's true class is among its ``k`` most probable classes.

    ``proba`` has one column per class of a global class list, so classes absent from a fold or a
    condition simply have probability 0 and never break the computation. A tie at the k-th place
    counts as a hit (only strictly larger probabilities push the true class out). Rows with NaN
    probabilities or a negative ``true_index`` (label not in the class list) are misses.
    """
    proba = np.asarray(proba, dtype=np.float64)
    true_index = np.asarray(true_index)
    ok = (true_index >= 0) & np.isfinite(proba).all(axis=1)
    out = np.zeros(len(true_index), dtype=bool)
    rows = np.flatnonzero(ok)
    if rows.size:
        p_true = proba[rows, true_index[rows]]
        n_greater = (proba[rows] > p_true[:, None]).sum(axis=1)
        out[rows] = n_greater < k
    return out


def classification_metrics(
    y_true: Sequence,
    y_pred: Sequence,
    proba: np.ndarray | None = None,
    classes: Sequence[str] | None = None,
    *,
    k: int = 3,
) -> dict[str, float]:
    """Accuracy, weighted F1, macro F1 and (with ``proba``) top-k accuracy.

    Parameters
    ----------
    y_true, y_pred
        True and predicted class per compound (a missing prediction counts as wrong).
    proba, classes
        Optional ``(n, n_classes)`` probabilities over ``classes`` for top-k accuracy.
    k
        The k of top-k accuracy.
    """
    t, p = _as_labels(y_true), _as_labels(y_pred)
    if len(t) != len(p):
        raise ValueError(f"y_true has {len(t)} entries, y_pred {len(p)}")
    out: dict[str, float] = {"n": float(len(t))}
    out["accuracy"] = float(np.mean(t == p)) if len(t) else float("nan")
    out["f1_weighted"], out["f1_macro"] = f1_scores(t, p)
    if proba is not None:
        index = {c: i for i, c in enumerate(classes)}
        true_index = np.array([index.get(v, -1) for v in t])
        out[f"top{k}_accuracy"] = (
            float(top_k_correct(proba, true_index, k).mean()) if len(t) else float("nan")
        )
    return out


def confusion_table(y_true: Sequence, y_pred: Sequence, labels: Sequence[str] | None = None) -> pd.DataFrame:
    """Counts with true classes as rows and predicted classes as columns ("(none)" = no prediction)."""
    t, p = _as_labels(y_true), _as_labels(y_pred)
    p = np.array(["(none)" if v is None else v for v in p], dtype=object)
    rows = list(labels) if labels is not None else sorted(set(t.tolist()) - {None})
    cols = rows + sorted(set(p.tolist()) - set(rows))
    table = pd.DataFrame(0, index=pd.Index(rows, name="true"), columns=pd.Index(cols, name="predicted"))
    for a, b in zip(t, p, strict=True):
        if a in table.index:
            table.loc[a, b] += 1
    return table


@dataclass
class McNemarResult:
    """McNemar's exact test on paired per-compound correctness.

    ``only_a``: compounds method A gets right and B wrong; ``only_b`` the reverse. Under the null of
    equal error rates, ``only_a ~ Binomial(only_a + only_b, 1/2)``; ``p_value`` is the two-sided exact
    binomial p-value (McNemar 1947; exact form as in Edwards 1948 / Fagerland et al. 2013).
    """

    both: int
    only_a: int
    only_b: int
    neither: int
    p_value: float

    def table(self) -> pd.DataFrame:
        """The 2 × 2 table (rows: A correct/wrong; columns: B correct/wrong)."""
        return pd.DataFrame(
            [[self.both, self.only_a], [self.only_b, self.neither]],
            index=pd.Index(["A correct", "A wrong"]),
            columns=pd.Index(["B correct", "B wrong"]),
        )


def mcnemar_exact(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> McNemarResult:
    """McNemar's exact test between two methods' correctness on the same compounds.

    Parameters
    ----------
    correct_a, correct_b
        Booleans, one per compound, in the same compound order.
    """
    from scipy.stats import binomtest

    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired test needs equal lengths, got {a.size} and {b.size}")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = only_a + only_b
    p = 1.0 if n == 0 else float(binomtest(only_a, n, 0.5, alternative="two-sided").pvalue)
    return McNemarResult(int(np.sum(a & b)), only_a, only_b, int(np.sum(~a & ~b)), p)
