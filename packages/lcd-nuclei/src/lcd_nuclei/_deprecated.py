"""Names kept for one minor version after they moved; each warns and forwards (not in ``__all__``)."""

from __future__ import annotations

import warnings
from typing import Any

import pandas as pd
from lcd_core import DEFAULT_CONTROL


def inhibition(
    adata_or_obs: Any,
    *,
    value: str = "nuclei_count",
    control: str = DEFAULT_CONTROL,
    plate_key: str = "plate",
    well_key: str = "well",
    timepoint_key: str | None = "timepoint",
) -> pd.DataFrame:
    """Deprecated since lcd-nuclei 0.3.0: use :func:`lcd_metrics.inhibition` (removed in 0.4.0).

    Forwards with ``count_key=value``, ``measurement_keys=(plate_key, timepoint_key)`` (the timepoint
    only when it is a column, as before) and ``well_key``. The result has ``inhibition`` where 0.2
    had ``inhibition_pct``.

    Parameters
    ----------
    adata_or_obs
        The AnnData from :func:`lcd_nuclei.count_nuclei` or its ``obs``.
    value
        Column compared (now ``count_key``).
    control
        Negative controls: a pandas query or a boolean column.
    plate_key, well_key, timepoint_key
        Plate, well and timepoint columns.
    """
    from lcd_metrics import inhibition as metrics_inhibition

    warnings.warn(
        "lcd_nuclei.inhibition is deprecated and will be removed in lcd-nuclei 0.4.0; use "
        "lcd_metrics.inhibition(data, count_key=..., measurement_keys=(plate, timepoint), well_key=...)",
        DeprecationWarning,
        stacklevel=2,
    )
    obs = adata_or_obs.obs if hasattr(adata_or_obs, "obs") else adata_or_obs
    keys = [plate_key] + ([timepoint_key] if timepoint_key and timepoint_key in obs.columns else [])
    return metrics_inhibition(
        adata_or_obs, count_key=value, measurement_keys=keys, well_key=well_key, control=control
    )
