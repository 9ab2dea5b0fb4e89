"""Intensity-class prior: a nucleus lies in the channel's most extreme intensity class.

Why: on the DSB 2018 brightfield images (stained cells on a light background) the classical
counter's false objects are stretches of cytoplasm, whose band-pass response passes the threshold
like a nucleus' but whose grey level does not: median object intensity 140-165 for false objects,
85-108 for true ones, background ~226 (8 images, ``benchmarks/nuclei_dsb_loo.py``, 2026-12-02).
Three classes (background, cytoplasm, nuclei) of a multi-Otsu threshold of the field's own
histogram separate them without any reference count or per-image setting
(``skimage.filters.threshold_multiotsu``).

Shape prior (:func:`axis_ratio_filter`): a nucleus is compact. The other false objects on the same
images are folds and edges of cells and strands of debris: thin and long. Minor / major axis of
the inertia ellipse: median 0.41 for the false objects, 0.71 for the true ones (d 16, class prior;
below 0.4: 69 of 144 false and 13 of 475 true objects; ``benchmarks/nuclei_dsb_shape.py``).
"""

from __future__ import annotations

import numpy as np
from lcd_core import InputError

__all__ = ["axis_ratio_filter", "class_prior_filter"]


def class_prior_filter(labels: np.ndarray, channel: np.ndarray, *, polarity: str = "dark") -> np.ndarray:
    """Keep the objects whose mean channel value lies in the most extreme of 3 multi-Otsu classes.

    Parameters
    ----------
    labels
        ``(H, W)`` instance labels (0 = background).
    channel
        ``(H, W)`` finite channel the objects were found in (its grey levels carry the class).
    polarity
        ``"dark"``: keep objects darker than the lower multi-Otsu threshold; ``"bright"``: brighter
        than the upper one.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` int32 labels renumbered 1..n; unchanged (renumbered) when the channel has fewer
        than 3 distinct levels (no classes to separate).
    """
    from scipy import ndimage as ndi
    from skimage.filters import threshold_multiotsu

    labels = np.asarray(labels)
    channel = np.asarray(channel, dtype=np.float64)
    if labels.ndim != 2 or labels.shape != channel.shape:
        raise InputError(f"labels {labels.shape} and channel {channel.shape} must be 2-D of one shape")
    if polarity not in ("dark", "bright"):
        raise InputError(f"polarity must be 'dark' or 'bright', got {polarity!r}")
    if not np.isfinite(channel).all():
        raise InputError("channel contains NaN or inf")
    n = int(labels.max())
    keep = np.zeros(n + 1, dtype=bool)
    if n == 0:
        return labels.astype(np.int32)
    present = np.bincount(labels.ravel(), minlength=n + 1) > 0
    if np.unique(channel).size < 3:
        keep[1:] = present[1:]
    else:
        low, high = threshold_multiotsu(channel, classes=3)
        mean = np.asarray(ndi.mean(channel, labels, np.arange(1, n + 1)))
        keep[1:] = present[1:] & ((mean < low) if polarity == "dark" else (mean > high))
    new_ids = np.zeros(n + 1, dtype=np.int32)
    new_ids[keep] = np.arange(1, keep.sum() + 1)
    return new_ids[labels]


def axis_ratio_filter(labels: np.ndarray, *, min_ratio: float) -> np.ndarray:
    """Drop objects whose inertia ellipse is thinner than ``min_ratio`` (minor / major axis).

    Parameters
    ----------
    labels
        ``(H, W)`` instance labels (0 = background).
    min_ratio
        In [0, 1): objects with minor axis length below ``min_ratio`` x major axis length
        (``skimage.measure.regionprops``' ellipse of the same second moments) are dropped; 0
        keeps all.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` int32 labels renumbered 1..n.
    """
    from skimage.measure import regionprops_table

    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise InputError(f"labels must be 2-D (H, W), got shape {labels.shape}")
    if isinstance(min_ratio, bool) or not (isinstance(min_ratio, (int, float)) and 0 <= min_ratio < 1):
        raise InputError(f"min_ratio must be a number in [0, 1) (0 = off), got {min_ratio!r}")
    n = int(labels.max())
    keep = np.zeros(n + 1, dtype=bool)
    if n == 0:
        return labels.astype(np.int32)
    props = regionprops_table(labels, properties=("label", "axis_minor_length", "axis_major_length"))
    # a one-pixel object has both axes 0: round, kept (the size prior is another step's job)
    thin = props["axis_minor_length"] < min_ratio * props["axis_major_length"]
    keep[props["label"][~thin]] = True
    new_ids = np.zeros(n + 1, dtype=np.int32)
    new_ids[keep] = np.arange(1, keep.sum() + 1)
    return new_ids[labels]
