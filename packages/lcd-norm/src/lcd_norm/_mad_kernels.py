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


def robustize_by_group(
    X: np.ndarray, codes: np.ndarray, medians: np.ndarray, scales: np.ndarray, eps: float, block: int = 4096
) -> np.ndarray:
    """``(x - median[g]) / (scale[g] + eps)`` for every row x of group g = ``codes[row]``.

    Computed in X's precision (float32 stays float32, anything else float64) over blocks of rows, so
    memory traffic stays a few passes over the matrix whatever the number or layout of the groups.
    """
    dtype = np.float32 if X.dtype == np.float32 else np.float64
    centre = medians.astype(dtype)
    denominator = (scales + eps).astype(dtype)
    out = np.empty(X.shape, dtype=dtype)
    for start in range(0, len(X), block):
        rows = slice(start, start + block)
        group = codes[rows]
        np.subtract(X[rows], centre[group], out=out[rows], dtype=dtype)
        np.divide(out[rows], denominator[group], out=out[rows])
    return out
