"""The distribution-based activity call of the LCD paper's SM3: the compound's AP interval above the null's.

mAP-ES calls a compound × condition active from an effect size (Cohen's d ≥ 0.8). The paper's SM3 also
shows the call read straight off the distributions: active when the compound's 95 % AP interval
(2.5-97.5 % quantiles of its resampled APs, ``map_ci_low``/``map_ci_high``) and the null's (the same
quantiles of the DMSO-query APs of its timepoint) do not overlap, the compound's lying above.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CI_COLUMNS = ("null_ci_low", "null_ci_high", "active_ci")


def add_ci_call(
    activity: pd.DataFrame,
    samples: pd.DataFrame,
    *,
    compound_key: str = "compound",
    timepoint_key: str | None = "timepoint",
    level: float = 0.95,
) -> pd.DataFrame:
    """The activity table with the null's AP interval and the distribution-based call added.

    Parameters
    ----------
    activity
        :func:`lcd_metrics.map_es`'s table (``map_ci_low``, ``map_ci_high``, ``status``).
    samples
        Its AP samples (``return_samples=True``): rows of ``kind == "null"``, one null per ``null``
        label (lcd-metrics >= 0.3: timepoint × positive rule; each row's label is read from its
        compound samples), else per timepoint.
    compound_key
        The compound column (missing on null rows).
    timepoint_key
        The timepoint column (``None``: one null for the whole table).
    level
        Interval level (the activity table's compound interval is 95 %).

    Returns
    -------
    pandas.DataFrame
        A copy with ``null_ci_low``, ``null_ci_high`` (quantiles of the APs of the row's null) and ``active_ci`` (``map_ci_low > null_ci_high``; False where either interval is
        missing, e.g. a failed row).
    """
    alpha = (1 - level) / 2
    out = activity.copy()
    null = samples[samples["kind"] == "null"]
    if "null" in samples.columns and null["null"].notna().any():
        # lcd-metrics >= 0.3 draws one null per timepoint × positive rule and names it in ``null``:
        # each row is compared with its own null (the one its compound samples name)
        q = null.groupby("null")["ap"].quantile([alpha, 1 - alpha]).unstack()
        compound = samples[samples["kind"] == "compound"]
        keys = [c for c in samples.columns if c not in ("null", "kind", "ap") and c in out.columns]
        names = compound.drop_duplicates(keys)[[*keys, "null"]]
        label = out[keys].merge(names, on=keys, how="left")["null"].to_numpy()
        out["null_ci_low"] = pd.Series(label).map(q[alpha]).astype(float).to_numpy()
        out["null_ci_high"] = pd.Series(label).map(q[1 - alpha]).astype(float).to_numpy()
    elif timepoint_key is not None and timepoint_key in null.columns and timepoint_key in out.columns:
        q = null.groupby(timepoint_key)["ap"].quantile([alpha, 1 - alpha]).unstack()
        q.columns = ["null_ci_low", "null_ci_high"]
        tp = out[timepoint_key]
        out["null_ci_low"] = tp.map(q["null_ci_low"]).astype(float)
        out["null_ci_high"] = tp.map(q["null_ci_high"]).astype(float)
    elif len(null):
        lo, hi = np.quantile(null["ap"].to_numpy(float), [alpha, 1 - alpha])
        out["null_ci_low"], out["null_ci_high"] = float(lo), float(hi)
    else:
        out["null_ci_low"], out["null_ci_high"] = np.nan, np.nan
    low = out["map_ci_low"].to_numpy(float)
    high = out["null_ci_high"].to_numpy(float)
    with np.errstate(invalid="ignore"):
        out["active_ci"] = np.isfinite(low) & np.isfinite(high) & (low > high)
    return out
