"""The paper's paired tests between models and normalizations: Wilcoxon signed-rank with Holm correction.

Tables SM3/SM4 of the LCD paper test, for every pair of models (or of normalizations), whether one
scores the same compound × condition higher than the other: a Wilcoxon signed-rank test
(``scipy.stats.wilcoxon``, two-sided, zero differences dropped as in Wilcoxon's original procedure)
paired over the compound × conditions both scored, with the p-values of a table Holm-corrected
(``statsmodels.stats.multitest.multipletests(method="holm")``). McNemar's tests between models' MoA
predictions are lcd-moa's (:func:`lcd_moa.mcnemar_exact`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd

WILCOXON_COLUMNS = (
    "a",
    "b",
    "n_pairs",
    "n_nonzero",
    "mean_a",
    "mean_b",
    "median_difference",
    "statistic",
    "p_value",
    "p_holm",
    "significant",
    "better",
    "status",
    "reason",
)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN entries are left out of the family and stay NaN).

    Parameters
    ----------
    p_values
        Unadjusted p-values of one family of tests.

    Returns
    -------
    numpy.ndarray
        Adjusted p-values, same order.
    """
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out


def wilcoxon_pairs(
    scores: pd.DataFrame,
    *,
    by: str,
    pair_keys: Sequence[str],
    value: str = "map_mean",
    levels: Sequence[str] | None = None,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Wilcoxon signed-rank test for every pair of levels of ``by``, paired on ``pair_keys``.

    Parameters
    ----------
    scores
        Long table: one row per level of ``by`` × paired unit (e.g. model × compound × condition)
        with the score in ``value``; rows with a missing score are left out of the pairs.
    by
        The column whose levels are compared (``model`` or ``normalization``).
    pair_keys
        Columns identifying a paired unit (compound and condition keys).
    value
        The score compared (mean AP ``map_mean`` by default; ``map_es`` works the same way).
    levels
        Levels in order (default: order of appearance); pair (a, b) is tested once with a before b.
    alpha
        Level at which a Holm-adjusted p-value is ``significant``.

    Returns
    -------
    pandas.DataFrame
        One row per pair: ``a``, ``b``, ``n_pairs`` (units both scored), ``n_nonzero`` (pairs with a
        difference), ``mean_a``, ``mean_b``, ``median_difference`` (a − b), the Wilcoxon
        ``statistic`` and two-sided ``p_value``, ``p_holm`` (Holm over the table's pairs),
        ``significant``, ``better`` (the level with the higher median score when significant, else
        empty), ``status`` (``ok``/``failed``) and ``reason`` (why a pair could not be tested: fewer
        than one non-zero difference).
    """
    from scipy.stats import wilcoxon

    keys = list(pair_keys)
    data = scores.dropna(subset=[value])
    wide = data.pivot_table(index=keys, columns=by, values=value, aggfunc="first", observed=True)
    order = list(levels) if levels is not None else list(pd.unique(data[by]))
    rows = []
    for a, b in itertools.combinations(order, 2):
        row = {"a": a, "b": b, "status": "ok", "reason": ""}
        if a not in wide.columns or b not in wide.columns:
            row.update(n_pairs=0, n_nonzero=0, status="failed", reason="no scored unit for one of the two")
            rows.append(row)
            continue
        pair = wide[[a, b]].dropna()
        diff = (pair[a] - pair[b]).to_numpy()
        row.update(
            n_pairs=len(pair),
            n_nonzero=int(np.count_nonzero(diff)),
            mean_a=float(pair[a].mean()) if len(pair) else np.nan,
            mean_b=float(pair[b].mean()) if len(pair) else np.nan,
            median_difference=float(np.median(diff)) if len(pair) else np.nan,
        )
        if row["n_nonzero"] == 0:
            row.update(status="failed", reason=f"{len(pair)} paired units and no non-zero difference")
        else:
            res = wilcoxon(pair[a].to_numpy(), pair[b].to_numpy(), zero_method="wilcox")
            row.update(statistic=float(res.statistic), p_value=float(res.pvalue))
        rows.append(row)
    table = pd.DataFrame(rows).reindex(columns=list(WILCOXON_COLUMNS))
    table["p_holm"] = holm(table["p_value"].to_numpy(dtype=float))
    table["significant"] = table["p_holm"] < alpha
    table["better"] = np.where(
        table["significant"], np.where(table["median_difference"] > 0, table["a"], table["b"]), ""
    )
    return table
