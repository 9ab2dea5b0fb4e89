"""Pure numpy kernels of MAD robustization (no AnnData, no pandas)."""

from __future__ import annotations

import numpy as np

#: Scale that makes the MAD a consistent estimator of the standard deviation for normal data
#: (1 / Φ⁻¹(3/4)); the same constant pycytominer's RobustMAD and R's ``mad()`` use.
MAD_NORMAL_SCALE = 1.4826


def robust_location_scale(controls: np.ndarray, *, raw_mad: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature median and MAD of control profiles (rows).

    The MAD is ``median(|x - median(x)|)``, multiplied by :data:`MAD_NORMAL_SCALE` unless ``raw_mad``
    (the unscaled variant used by Arevalo et al. 2024). Computed in float64.
    """
    controls = np.asarray(controls, dtype=np.float64)
    median = np.median(controls, axis=0)
    mad = np.median(np.abs(controls - median), axis=0)
    if not raw_mad:
        mad = mad * MAD_NORMAL_SCALE
    return median, mad


def robustize(values: np.ndarray, median: np.ndarray, scale: np.ndarray, eps: float) -> np.ndarray:
    """``(values - median) / (scale + eps)``, feature-wise, in float64."""
    return (np.asarray(values, dtype=np.float64) - median) / (scale + eps)
