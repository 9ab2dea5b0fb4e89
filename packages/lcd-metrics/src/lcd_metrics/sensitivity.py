"""Sensitivity curves: the fraction of compounds active per condition across mAP-ES thresholds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from lcd_core import InputError


def sensitivity(
    results: pd.DataFrame,
    thresholds: Sequence[float] | np.ndarray | None = None,
    *,
    condition_keys: Sequence[str] | None = None,
    es_key: str = "map_es",
) -> pd.DataFrame:
    """Fraction of compounds active per condition across mAP-ES thresholds (sensitivity curves).

    Parameters
    ----------
    results
        Activity table from :func:`map_es` (or read back from parquet/CSV).
    thresholds
        mAP-ES thresholds; default ``0, 0.1, ..., 3``.
    condition_keys
        Condition columns; default: from the table's metadata, else the columns between the compound
        column (first) and ``status``.
    es_key
        Column with the effect size.

    Returns
    -------
    pandas.DataFrame
        One row per condition × threshold: the condition columns, ``threshold``, ``n_compounds`` (rows
        not failed), ``n_active`` (``es >= threshold``) and ``fraction_active``.
    """
    if es_key not in results.columns or "status" not in results.columns:
        raise InputError(
            f"results need columns {es_key!r} and 'status' (an activity table from map_es); have {list(results.columns)}"
        )
    if thresholds is None:
        thresholds = np.round(np.arange(0, 3.0001, 0.1), 10)
    thr = np.asarray(thresholds, dtype=np.float64)
    if condition_keys is None:
        meta = results.attrs.get("lcd_metrics", {})
        condition_keys = meta.get("condition_keys") or list(
            results.columns[1 : list(results.columns).index("status")]
        )
    cond = list(condition_keys)
    scored = results.loc[results["status"] != "failed"]
    rows = []
    groups = scored.groupby(cond, sort=True, dropna=False) if cond else [((), scored)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        es = g[es_key].to_numpy(dtype=np.float64)
        n_active = (es[None, :] >= thr[:, None]).sum(axis=1)
        for t, a in zip(thr, n_active, strict=True):
            rows.append(
                {
                    **dict(zip(cond, key, strict=True)),
                    "threshold": float(t),
                    "n_compounds": len(g),
                    "n_active": int(a),
                    "fraction_active": a / len(g) if len(g) else np.nan,
                }
            )
    return pd.DataFrame(rows, columns=[*cond, "threshold", "n_compounds", "n_active", "fraction_active"])
