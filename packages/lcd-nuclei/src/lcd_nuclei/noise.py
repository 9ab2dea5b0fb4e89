"""Pixel noise of an image, estimated from its finest scale, independent of what the field holds.

Why: the classical counter (:mod:`lcd_nuclei.classical`) thresholds its band-pass response at a
floor. Expressed in robust standard deviations of the field's own response (median / MAD), that
floor depends on how much of the field is signal: on the simulated demo plate (11-32 nuclei and
cells covering most of a 96-px field) the MAD is set by the nuclei themselves, a dense field's
floor rises with its density, and fixed settings gave count r of -0.5 to -0.8 against the truth.
The noise of the camera does not depend on the density, so the floor is expressed in standard
deviations of the response to the image's own noise instead
(:func:`lcd_nuclei.classical.classical_nuclei`, ``floor_unit="noise"``).

The estimate is Immerkær's (1996, "Fast noise variance estimation", CVIU 64:300): the image is
filtered with the difference of two discrete Laplacians,
``[[1, -2, 1], [-2, 4, -2], [1, -2, 1]]``, which cancels intensity that varies linearly or
quadratically over 3 pixels (illumination, cell bodies, the inside of a nucleus); for white noise of
SD sigma the result has SD ``6 sigma``. A median of absolute values (``1.4826 MAD / 6``) replaces
Immerkær's mean so that edges, which survive the filter, do not inflate it. scikit-image's
``estimate_sigma`` (wavelet MAD) does the same job but needs PyWavelets, which no LCD package
depends on.
"""

from __future__ import annotations

import numpy as np
from lcd_core import InputError

__all__ = ["estimate_noise"]

#: Immerkær's kernel: the difference of two discrete Laplacians; L2 norm 6.
IMMERKAER = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])


def estimate_noise(image: np.ndarray) -> float:
    """Standard deviation of white pixel noise in an image (robust Immerkær estimate).

    Parameters
    ----------
    image
        ``(H, W)`` intensities, at least 3 x 3 pixels.

    Returns
    -------
    float
        ``1.4826 * median(|image * M|) / 6`` over the interior pixels, ``M`` the kernel
        :data:`IMMERKAER`; 0 for an image without noise (a constant or a plane).
    """
    from scipy import ndimage as ndi

    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2 or min(image.shape) < 3:
        raise InputError(f"image must be 2-D and at least 3 x 3 pixels, got shape {image.shape}")
    if not np.isfinite(image).all():
        raise InputError("image contains NaN or inf")
    detail = ndi.correlate(image, IMMERKAER, mode="nearest")[1:-1, 1:-1]
    return float(1.4826 * np.median(np.abs(detail)) / 6.0)
