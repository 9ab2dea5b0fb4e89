"""Reference nuclei from a nuclear stain with a size prior and a threshold shared by all fields.

:func:`lcd_nuclei.evaluate.reference_from_stain` (Otsu per field, watershed markers 5 px apart)
over-counts on real DAPI: a field without nuclei still gets Otsu's split of its background haze
(26 objects on an empty 256-px field of the ISL DAPI image), and nuclei of ~20 px are cut into
several pieces. Here the threshold can come from all stained fields at once
(:func:`stain_threshold`), markers are at least half a nucleus diameter apart, and objects under a
fraction of a nucleus are dropped; the diameter is estimated from the mask when not given
(:func:`estimate_diameter`).
"""

from __future__ import annotations

import math

import numpy as np
from lcd_core import InputError

from .classical import split_blobs

__all__ = ["estimate_diameter", "nuclei_from_stain", "stain_threshold"]


def stain_threshold(images, *, sigma: float = 1.0, max_pixels: int = 4_000_000) -> float:
    """Otsu's threshold of the smoothed stain over all the given fields together.

    Parameters
    ----------
    images
        One ``(H, W)`` stain image or a sequence of them (the stained fields of a plate or the
        whole image that fields are cut from).
    sigma
        Gaussian smoothing (pixels) before pooling, as in :func:`nuclei_from_stain`.
    max_pixels
        Pooled pixels are subsampled on a regular stride beyond this many (Otsu's histogram does
        not need every pixel).

    Returns
    -------
    float
        The threshold, in the stain's intensity units.
    """
    from skimage.filters import gaussian, threshold_otsu

    arrays = [images] if isinstance(images, np.ndarray) and images.ndim == 2 else list(images)
    if not arrays:
        raise InputError("stain_threshold needs at least one image")
    pooled = []
    for i, img in enumerate(arrays):
        img = np.asarray(img, dtype=np.float64)
        if img.ndim != 2 or not np.isfinite(img).all():
            raise InputError(f"stain image {i}: must be a finite 2-D array, got shape {img.shape}")
        pooled.append(gaussian(img, sigma=sigma, preserve_range=True).ravel())
    pooled = np.concatenate(pooled)
    pooled = pooled[:: max(1, pooled.size // max_pixels)]
    if np.ptp(pooled) == 0:
        raise InputError("the stain images are constant: no threshold separates nuclei")
    return float(threshold_otsu(pooled))


def estimate_diameter(mask: np.ndarray, *, min_area: int = 20) -> float:
    """Typical nucleus diameter (pixels) of a mask: twice the median inscribed radius of its components.

    Parameters
    ----------
    mask
        ``(H, W)`` bool nucleus mask before splitting.
    min_area
        Components smaller than this (specks) are ignored.

    Returns
    -------
    float
        ``2 * median(max of the distance transform per component)``; NaN when no component is large
        enough. The inscribed circle of a chain or clump of touching nuclei is about one nucleus
        wide, so clumps do not inflate the estimate the way their area would (on the ISL DAPI
        image: 22 px, where the median equivalent diameter of the components is 28 px).
    """
    from scipy import ndimage as ndi

    mask = np.asarray(mask, dtype=bool)
    components, n = ndi.label(mask)
    if n == 0:
        return float("nan")
    sizes = np.bincount(components.ravel())[1:]
    radius = ndi.maximum(ndi.distance_transform_edt(mask), components, np.arange(1, n + 1))
    radius = np.asarray(radius)[sizes >= min_area]
    return float(2 * np.median(radius)) if radius.size else float("nan")


def nuclei_from_stain(
    stain: np.ndarray,
    *,
    threshold: float | None = None,
    diameter: float | None = None,
    sigma: float = 1.0,
    min_area_fraction: float = 0.25,
) -> np.ndarray:
    """Nuclei instances from a nuclear-stain image (Hoechst / DAPI) with a size prior.

    Parameters
    ----------
    stain
        ``(H, W)`` stain intensities.
    threshold
        Intensity above which a (smoothed) pixel is nucleus; ``None`` = Otsu of this field alone.
        Pass :func:`stain_threshold` of all the fields when some fields may hold no nucleus.
    diameter
        Nucleus diameter in pixels; ``None`` = :func:`estimate_diameter` of the thresholded mask.
    sigma
        Gaussian smoothing (pixels) before thresholding.
    min_area_fraction
        Objects smaller than this fraction of a disc of ``diameter`` (debris, fragments) are
        dropped. Markers of the watershed are maxima of the stain smoothed at ``diameter / 8``
        (removes texture inside a nucleus, keeps the dip between two touching ones), at least
        ``diameter / 2`` apart (touching nuclei have centres about one diameter apart).

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` int32 labels, 0 = background.
    """
    from skimage.filters import gaussian, threshold_otsu

    stain = np.asarray(stain, dtype=np.float64)
    if stain.ndim != 2:
        raise InputError(f"stain image must be 2-D (H, W), got shape {stain.shape}")
    if not np.isfinite(stain).all():
        raise InputError("stain image contains NaN or inf")
    if diameter is not None and not diameter >= 2:
        raise InputError(f"diameter must be at least 2 pixels or None, got {diameter}")
    if not 0 <= min_area_fraction < 1:
        raise InputError(f"min_area_fraction must be in [0, 1), got {min_area_fraction}")
    smooth = gaussian(stain, sigma=sigma, preserve_range=True)
    if threshold is None:
        if np.ptp(smooth) == 0:
            return np.zeros(stain.shape, dtype=np.int32)
        threshold = float(threshold_otsu(smooth))
    mask = smooth > threshold
    if diameter is None:
        diameter = estimate_diameter(mask)
        if not np.isfinite(diameter):
            return np.zeros(stain.shape, dtype=np.int32)
    min_area = max(1, round(min_area_fraction * math.pi * (diameter / 2) ** 2))
    peaks = gaussian(stain, sigma=max(diameter / 8.0, sigma), preserve_range=True)
    return split_blobs(mask, peaks, diameter=diameter, min_area=min_area)
