"""Paired comparison of two methods' per-compound predictions with McNemar's exact test."""

from __future__ import annotations

import pandas as pd

from lcd_moa.metrics import mcnemar_exact


def final_method(predictions: pd.DataFrame) -> str:
    """The method using all doses (last incremental step), or the only method present."""
    inc = predictions[predictions["kind"] == "incremental"]
    if len(inc):
        return str(inc.loc[inc["step"].idxmax(), "method"])
    methods = predictions["method"].unique()
    if len(methods) != 1:
        raise ValueError(f"several methods and no incremental one: pass a method among {list(methods)}")
    return str(methods[0])


def _pick(predictions: pd.DataFrame, method: str | None, name: str) -> pd.DataFrame:
    for col in ("method", "compound", "moa", "predicted"):
        if col not in predictions.columns:
            raise KeyError(f"{name}: column {col!r} missing; is this a predictions table of lcd-moa?")
    method = method or final_method(predictions)
    sub = predictions[predictions["method"] == method]
    if sub.empty:
        raise KeyError(
            f"{name}: method {method!r} not found; methods: {predictions['method'].unique().tolist()}"
        )
    sub = sub[sub["moa"].notna()]
    return sub.assign(correct=(sub["predicted"] == sub["moa"]).to_numpy(dtype=bool)).set_index("compound")


def compare_predictions(
    predictions_a: pd.DataFrame,
    predictions_b: pd.DataFrame,
    *,
    method_a: str | None = None,
    method_b: str | None = None,
    intersect: bool = False,
) -> pd.DataFrame:
    """McNemar's exact test between two methods on the same labeled compounds.

    Parameters
    ----------
    predictions_a, predictions_b
        ``predictions`` tables of :class:`lcd_moa.result.MoAResult` (may be the same table).
    method_a, method_b
        Methods to compare (default: each table's all-doses method).
    intersect
        Compare on the compounds both tables hold instead of refusing different compound sets.

    Returns
    -------
    One row: ``method_a``, ``method_b``, ``n_compounds``, ``accuracy_a``, ``accuracy_b``, ``both``,
    ``only_a``, ``only_b``, ``neither``, ``p_value``. When both tables have a ``fold`` column the fold
    of every compound must agree (the comparison is only paired if one fold assignment was reused).
    """
    a = _pick(predictions_a, method_a, "table A")
    b = _pick(predictions_b, method_b, "table B")
    if set(a.index) != set(b.index):
        if not intersect:
            raise ValueError(
                f"the tables hold different labeled compounds ({len(a)} vs {len(b)}, "
                f"{len(set(a.index) ^ set(b.index))} differ); pass intersect=True to compare the shared ones"
            )
    shared = sorted(set(a.index) & set(b.index))
    if not shared:
        raise ValueError("no labeled compound is shared by the two tables")
    a, b = a.loc[shared], b.loc[shared]
    if "fold" in a.columns and "fold" in b.columns:
        differ = a["fold"].to_numpy() != b["fold"].to_numpy()
        if differ.any():
            raise ValueError(
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
            }
        ]
    )
