"""Cell area and confluency without a model: local defocus contrast above the field's own noise.

A transparent cell is nearly invisible in an in-focus brightfield plane, so a texture measure on
that plane (local standard deviation, the usual classical confluency estimate, e.g. PHANTAST:
Jaccard et al., Biotechnol. Bioeng. 2014) sees little: on the simulated demo plate the local SD of
the planes' mean tracked the true confluency with r 0.04-0.27 whatever the window and threshold
(600 fields, benchmarks/confluency_quality.py). Above and below focus every cell body shows a phase
signal of its own (:mod:`lcd_nuclei.defocus`: ``dI/dz / I0 = -laplacian(phase) / k``), while
background is flat up to pixel noise. Steps:

1. the defocus contrast of the field's planes (:func:`lcd_nuclei.defocus.defocus_contrast`);
2. its slow variations (illumination, focus drift across the field) removed by subtracting a
   Gaussian blur with sigma ``4 * window``;
3. the local standard deviation in a square of side ``window`` pixels (``scipy.ndimage.uniform_filter``
   of the value and of its square);
4. a pixel is cell when that SD exceeds ``floor`` times the channel's white-noise SD
   (:func:`lcd_nuclei.noise.estimate_noise`, Immerkær), so the threshold does not move with how
   many cells a field holds: an empty field stays empty, a full one full.

``window`` defaults to a quarter of the nucleus diameter (3 px for the default 12) and ``floor`` to
8 noise SDs; both were chosen on replicas R1-R2 of the simulated demo plate and reported on R3-R4
(README "Confluency"). Fields with fewer than two planes have no defocus signal: they are refused
(:class:`lcd_core.InputError`), never given a number from the in-focus texture.
"""

from __future__ import annotations

import numpy as np
from lcd_core import InputError

__all__ = ["cell_area"]


def cell_area(
    planes: np.ndarray,
    *,
    window: float = 3.0,
    floor: float = 8.0,
    defocus=None,
) -> np.ndarray:
    """Boolean mask of the pixels covered by cells, from the defocus contrast of a z-stack.

    Parameters
    ----------
    planes
        ``(Z, H, W)`` raw intensities of one field, ``Z >= 2`` (e.g. the paper's -3.6, 0, +3.6 µm).
    window
        Side in pixels of the square over which the local standard deviation is taken (about a
        quarter of a nucleus diameter; the background blur uses ``4 * window``).
    floor
        Threshold in standard deviations of the channel's white pixel noise.
    defocus
        ``(Z,)`` plane positions (default: equally spaced, symmetric about the middle plane).

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` bool; its mean is the field's confluency.
    """
    from .defocus import defocus_contrast

    planes = np.asarray(planes, dtype=np.float64)
    if planes.ndim != 3 or planes.shape[0] < 2:
        raise InputError(
            f"cell area needs a z-stack of at least 2 planes (Z, H, W), got shape {planes.shape}: "
            "one in-focus brightfield plane does not show transparent cells"
        )
    if not window >= 1:
        raise InputError(f"window must be at least 1 pixel, got {window}")
    if not floor > 0:
        raise InputError(f"floor must be positive, got {floor}")
    return local_detail_sd(defocus_contrast(planes, defocus), window) > floor


def local_detail_sd(channel: np.ndarray, window: float) -> np.ndarray:
    """Local SD of a channel's detail (minus a blur of sigma ``4 * window``), in pixel-noise SDs.

    Steps 2-4 of the module docstring without the threshold; also used by
    benchmarks/confluency_quality.py for its in-focus texture baseline.
    """
    from scipy import ndimage as ndi

    from .noise import estimate_noise

    noise = estimate_noise(channel)
    if not noise > 0:  # a field without pixel noise (synthetic, or all planes identical)
        noise = float(np.finfo(np.float64).eps * max(1.0, np.abs(channel).max()))
    detail = channel - ndi.gaussian_filter(channel, 4.0 * window)
    size = max(1, round(window))
    mean = ndi.uniform_filter(detail, size)
    sq = ndi.uniform_filter(detail * detail, size)
    return np.sqrt(np.maximum(sq - mean * mean, 0.0)) / noise
