"""Paired comparison of two methods' per-compound predictions with McNemar's test.

Two forms of the same test on the discordant pairs (McNemar 1947): the exact binomial test (scipy's
``binomtest``; exact form as in Fagerland, Lydersen & Laake 2013) and the chi-square statistic with
Edwards' continuity correction, ``(|b - c| - 1)² / (b + c)`` on 1 degree of freedom (the form the LCD
paper names). tests/moa/test_metrics.py checks both against statsmodels' ``mcnemar(exact=True)`` and
``mcnemar(exact=False, correction=True)`` and the exact one against the closed-form binomial sum.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from lcd_core import InputError, read_table


@dataclass
class McNemarResult:
    """McNemar's test on paired per-compound correctness.

    ``only_a``: compounds method A gets right and B wrong; ``only_b`` the reverse. Under the null of
    equal error rates, ``only_a ~ Binomial(only_a + only_b, 1/2)``; ``p_value`` is the two-sided exact
    binomial p-value. ``chi2`` is the continuity-corrected statistic ``(|b - c| - 1)² / (b + c)`` and
    ``p_value_chi2`` its upper tail on 1 degree of freedom (both NaN without discordant pairs: the
    statistic is undefined there, while the exact p-value is 1).

    Parameters
    ----------
    both, only_a, only_b, neither
        The four cells of the paired 2 × 2 table.
    p_value
        Two-sided exact p-value.
    chi2
        Continuity-corrected chi-square statistic.
    p_value_chi2
        Its p-value (chi-square, 1 degree of freedom).
    """

    both: int
    only_a: int
    only_b: int
    neither: int
    p_value: float
    chi2: float = float("nan")
    p_value_chi2: float = float("nan")

    def table(self) -> pd.DataFrame:
        """The 2 × 2 table (rows: A correct/wrong; columns: B correct/wrong)."""
        return pd.DataFrame(
            [[self.both, self.only_a], [self.only_b, self.neither]],
            index=pd.Index(["A correct", "A wrong"]),
            columns=pd.Index(["B correct", "B wrong"]),
        )


def mcnemar_exact(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> McNemarResult:
    """McNemar's test between two methods' correctness on the same compounds: exact and chi-square.

    Parameters
    ----------
    correct_a
        Whether method A is right, one boolean per compound.
    correct_b
        The same for method B, in the same compound order.

    Returns
    -------
    McNemarResult
        The 2 × 2 table, the exact p-value (``p_value``) and the continuity-corrected chi-square
        (``chi2``, ``p_value_chi2``).
    """
    from scipy.stats import binomtest, chi2

    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise InputError(f"paired test needs equal lengths, got {a.size} and {b.size}")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = only_a + only_b
    p = 1.0 if n == 0 else float(binomtest(only_a, n, 0.5, alternative="two-sided").pvalue)
    stat = float("nan") if n == 0 else (abs(only_a - only_b) - 1.0) ** 2 / n
    p_chi2 = float("nan") if n == 0 else float(chi2.sf(stat, df=1))
    return McNemarResult(int(np.sum(a & b)), only_a, only_b, int(np.sum(~a & ~b)), p, stat, p_chi2)


def final_method(predictions: pd.DataFrame, source: str = "predictions") -> str:
    """The method using all doses (last incremental step), or the only method present.

    Parameters
    ----------
    predictions
        A predictions table.
    source
        Named in messages.
    """
    inc = predictions[predictions["kind"] == "incremental"]
    if len(inc):
        return str(inc.loc[inc["step"].idxmax(), "method"])
    methods = predictions["method"].unique()
    if len(methods) != 1:
        raise InputError(
            f"{source}: several methods and no incremental one: pass a method among {list(methods)}"
        )
    return str(methods[0])


def _pick(predictions: pd.DataFrame, name: str, method: str | None) -> pd.DataFrame:
    for col in ("method", "compound", "moa", "predicted"):
        if col not in predictions.columns:
            raise InputError(f"{name}: column {col!r} missing; is this a predictions table of lcd-moa?")
    method = method or final_method(predictions, name)
    sub = predictions[predictions["method"] == method]
    if sub.empty:
        raise InputError(
            f"{name}: method {method!r} not found; methods: {predictions['method'].unique().tolist()}"
        )
    sub = sub[sub["moa"].notna()]
    return sub.assign(correct=(sub["predicted"] == sub["moa"]).to_numpy(dtype=bool)).set_index("compound")


def _load(predictions: pd.DataFrame | str | os.PathLike, default: str) -> tuple[pd.DataFrame, str]:
    if isinstance(predictions, pd.DataFrame):
        return predictions, default
    return read_table(predictions, what="predictions table"), str(predictions)


def compare_predictions(
    predictions_a: pd.DataFrame | str | os.PathLike,
    predictions_b: pd.DataFrame | str | os.PathLike,
    *,
    method_a: str | None = None,
    method_b: str | None = None,
    intersect: bool = False,
) -> pd.DataFrame:
    """McNemar's exact test between two methods on the same labeled compounds.

    Parameters
    ----------
    predictions_a
        The ``predictions`` table of a :class:`lcd_moa.MoAResult` (or its file) for method A.
    predictions_b
        The same for method B (may be the same table).
    method_a
        Method of table A to compare (default: its all-doses method).
    method_b
        Method of table B (default: its all-doses method).
    intersect
        Compare on the compounds both tables hold instead of refusing different compound sets.

    Returns
    -------
    pandas.DataFrame
        One row: ``method_a``, ``method_b``, ``n_compounds``, ``accuracy_a``, ``accuracy_b``, ``both``,
        ``only_a``, ``only_b``, ``neither``, ``p_value`` (exact), ``chi2`` and ``p_value_chi2``
        (continuity-corrected chi-square). When both tables have a ``fold`` column the
        fold of every compound must agree (the comparison is only paired if one fold assignment was
        reused).
    """
    a = _pick(*_load(predictions_a, "table A"), method_a)
    b = _pick(*_load(predictions_b, "table B"), method_b)
    if set(a.index) != set(b.index):
        if not intersect:
            raise InputError(
                f"the tables hold different labeled compounds ({len(a)} vs {len(b)}, "
                f"{len(set(a.index) ^ set(b.index))} differ); pass intersect=True to compare the shared ones"
            )
    shared = sorted(set(a.index) & set(b.index))
    if not shared:
        raise InputError("no labeled compound is shared by the two tables")
    a, b = a.loc[shared], b.loc[shared]
    if "fold" in a.columns and "fold" in b.columns:
        differ = a["fold"].to_numpy() != b["fold"].to_numpy()
        if differ.any():
            raise InputError(
                f"fold assignments differ for {int(differ.sum())} compounds (e.g. {a.index[differ][0]!r}): "
                "rerun one method with the other's folds (folds= / --folds)"
            )
    test = mcnemar_exact(a["correct"].to_numpy(), b["correct"].to_numpy())
    return pd.DataFrame(
        [
            {
                "method_a": str(a["method"].iloc[0]),
                "method_b": str(b["method"].iloc[0]),
                "n_compounds": len(shared),
                "accuracy_a": float(a["correct"].mean()),
                "accuracy_b": float(b["correct"].mean()),
                "both": test.both,
                "only_a": test.only_a,
                "only_b": test.only_b,
                "neither": test.neither,
                "p_value": test.p_value,
                "chi2": test.chi2,
                "p_value_chi2": test.p_value_chi2,
            }
        ]
    )
