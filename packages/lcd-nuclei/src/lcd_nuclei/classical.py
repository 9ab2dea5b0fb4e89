"""A no-ViT nuclei counter: band-pass at the nucleus scale, robust threshold, marker watershed.

The baseline every learned method has to beat, and the counter for the defocus channels
(:func:`lcd_nuclei.defocus.defocus_contrast`, :func:`lcd_nuclei.tie.tie_phase`), where a nucleus is a
compact bump of one sign. Steps:

1. Gaussian smoothing at ``diameter / 8`` (pixel noise), then a morphological top-hat
   (``scipy.ndimage.white_tophat``) with a square of side ``2 * diameter``: whatever a square
   larger than a nucleus fits into (cell bodies, illumination, the field's level) is removed, a
   nucleus keeps its full contrast to its surroundings, also beside another nucleus. (A
   difference of Gaussians at sigma ``diameter`` was tried first: the response of two touching
   nuclei fell to 40 % of an isolated one's, since each is part of the other's surround, and cell
   outlines passed the threshold.)
2. Threshold, two-stage: a floor, then Otsu's threshold of the pixels above the floor
   (``threshold_method="otsu"``), which separates nuclei from the weaker band-pass response of
   cell outlines and halos. Otsu on the whole response splits cells from background instead, and
   splits a field in two even when it holds nothing; the floor keeps an empty field empty. The
   floor is counted in standard deviations of the response to the image's own noise
   (``floor_unit="noise"``, the default: :func:`lcd_nuclei.noise.estimate_noise` of the channel, or
   a realisation of a derived channel's noise from :func:`lcd_nuclei.channels.channel_noise`,
   pushed through the same band-pass), so it does not move with the field's content. The first
   version counted it in robust SDs of the field's own response (``floor_unit="mad"``: median and
   1.4826 MAD), which a field dense with nuclei and cells inflates: on the simulated demo plate,
   floor 6 in those units gave count r -0.77 against the truth, floors 3-20 in noise units 0.998
   (200 fields; README "Quality").
3. Markers at local maxima of the response at least ``diameter / 2`` apart (two touching nuclei of
   that diameter have centres one diameter apart), watershed of the negated response inside the
   mask; mask components without a marker become one nucleus each.
4. Size prior: objects under ``min_area_fraction`` of a disc of that diameter are dropped (specks),
   and so are objects over ``max_area_ratio`` times the field's median area
   (:func:`lcd_nuclei.instances.drop_large_objects`).
5. Optional (both off by default; chosen leave-one-image-out on DSB, README "Quality"):
   ``class_prior="multiotsu"`` drops objects whose mean channel value is not in the channel's most
   extreme of three intensity classes (:func:`lcd_nuclei.priors.class_prior_filter`: on stained
   brightfield the false objects are stretches of cytoplasm, a middle class);
   ``split_depth > 0`` re-splits the objects' union at the maxima of its distance transform
   deeper than ``split_depth * diameter / 2`` (:func:`lcd_nuclei.instances.split_touching`:
   touching nuclei of any size, where marker spacing at one diameter merges small ones).
6. Optional, off by default (DSB brightfield, README "Quality"): ``split_contrast > 0`` re-splits
   the objects at the extrema of the channel smoothed at ``diameter / 8`` that are at least
   ``split_contrast`` noise SDs (of the same smoothing of the channel's noise) deep
   (:func:`lcd_nuclei.instances.split_at_extrema`: touching small nuclei are one round blob to
   the band-pass and to the distance transform, but each is its own dark spot where a lighter
   seam separates them);
   ``min_axis_ratio > 0`` then drops objects thinner than that minor / major axis ratio
   (:func:`lcd_nuclei.priors.axis_ratio_filter`: folds, cell edges, debris strands).
"""

from __future__ import annotations

import math

import numpy as np
from lcd_core import InputError

from .instances import drop_large_objects, instance_stats, split_at_extrema, split_touching
from .priors import axis_ratio_filter, class_prior_filter

__all__ = ["blob_response", "classical_nuclei", "resolve_polarity", "split_blobs"]

POLARITIES = ("bright", "dark", "auto")
FLOOR_UNITS = ("noise", "mad")
CLASS_PRIORS = ("none", "multiotsu")


def resolve_polarity(channel: np.ndarray, *, diameter: float = 12.0, polarity: str = "auto") -> str:
    """``"bright"`` or ``"dark"``: ``polarity`` itself, or for ``"auto"`` the sign of the longer tail.

    Parameters
    ----------
    channel
        ``(H, W)`` finite image or derived channel.
    diameter
        Nucleus diameter in pixels (difference of Gaussians, sigmas ``diameter / 8`` and ``diameter``).
    polarity
        ``"bright"``, ``"dark"`` or ``"auto"``: nuclei are a minority of compact pixels, so their side
        of the band-pass distribution has the longer tail (negative skew: ``"dark"``).

    Returns
    -------
    str
        ``"bright"`` or ``"dark"``.
    """
    from scipy.stats import skew
    from skimage.filters import difference_of_gaussians

    if polarity != "auto":
        return polarity
    band = difference_of_gaussians(np.asarray(channel, dtype=np.float64), diameter / 8.0, float(diameter))
    return "dark" if skew(band, axis=None) < 0 else "bright"


def blob_response(
    channel: np.ndarray, *, diameter: float = 12.0, polarity: str = "bright", noise: np.ndarray | None = None
) -> np.ndarray:
    """Band-pass of a channel at the nucleus scale, oriented so that nuclei are positive.

    Parameters
    ----------
    channel
        ``(H, W)`` image or derived channel (grey, defocus contrast, TIE phase).
    diameter
        Expected nucleus diameter in pixels: smoothing sigma ``diameter / 8``, top-hat square of
        side ``2 * diameter``.
    polarity
        ``"bright"`` (nuclei above their surroundings), ``"dark"`` (below, e.g. stained
        brightfield) or ``"auto"``: the sign in which the field's band-pass (difference of
        Gaussians, sigmas ``diameter / 8`` and ``diameter``) is right-skewed (nuclei are a
        minority of compact pixels, so their side of the distribution has the longer tail).
    noise
        ``None``: the response is in robust standard deviations of itself (median 0, MAD-scaled).
        An ``(H, W)`` realisation of the channel's noise: the response is centred and scaled by
        the median and standard deviation of the same band-pass (same polarity) of the noise.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float64 response in the units chosen by ``noise``.
    """
    from scipy import ndimage as ndi

    channel = np.asarray(channel, dtype=np.float64)
    if channel.ndim != 2:
        raise InputError(f"channel must be 2-D (H, W), got shape {channel.shape}")
    if not np.isfinite(channel).all():
        raise InputError("channel contains NaN or inf")
    if not diameter >= 2:  # also refuses NaN
        raise InputError(f"diameter must be at least 2 pixels, got {diameter}")
    if polarity not in POLARITIES:
        raise InputError(f"polarity must be one of {', '.join(POLARITIES)}, got {polarity!r}")
    if noise is not None:
        noise = np.asarray(noise, dtype=np.float64)
        if noise.shape != channel.shape or not np.isfinite(noise).all():
            raise InputError(f"noise must be a finite array of the channel's shape {channel.shape}")
    polarity = resolve_polarity(channel, diameter=diameter, polarity=polarity)

    def band_pass(image):
        smooth = ndi.gaussian_filter(image, diameter / 8.0)
        return ndi.white_tophat(-smooth if polarity == "dark" else smooth, size=max(3, round(2 * diameter)))

    response = band_pass(channel)
    if noise is not None:
        reference = band_pass(noise)
        centre, spread = float(np.median(reference)), float(reference.std())
        if spread > 0:
            return (response - centre) / spread
    # no noise given, or a noise-free image (spread 0): the field's own robust SD
    centre = np.median(response)
    spread = 1.4826 * np.median(np.abs(response - centre))
    if not spread > 0:
        spread = float(response.std()) or 1.0  # a flat field: nothing will pass the threshold
    return (response - centre) / spread


def classical_nuclei(
    channel: np.ndarray,
    *,
    diameter: float = 12.0,
    polarity: str = "bright",
    floor: float = 6.0,
    threshold_method: str = "otsu",
    floor_unit: str = "noise",
    noise: np.ndarray | float | None = None,
    min_area_fraction: float = 0.2,
    max_area_ratio: float = 4.0,
    class_prior: str = "none",
    split_depth: float = 0.0,
    split_contrast: float = 0.0,
    min_axis_ratio: float = 0.0,
    seed: int = 0,
) -> dict:
    """Count nuclei in one channel without any model.

    Parameters
    ----------
    channel
        ``(H, W)`` image or derived channel.
    diameter
        Expected nucleus diameter in pixels (band-pass scale, marker spacing, size prior).
    polarity
        ``"bright"``, ``"dark"`` or ``"auto"`` (see :func:`blob_response`).
    floor
        No pixel whose response is below this many standard deviations (of ``floor_unit``) is
        nucleus. The top-hat of pure noise is right-skewed; at 6 noise SDs a 200-px field of
        shading and noise gives 0 objects (at 3: 7; tests/nuclei/test_classical.py), which is how
        6 was chosen: without any reference count.
    threshold_method
        ``"otsu"``: Otsu's threshold of the pixels above the floor (the floor when fewer than
        a nucleus' worth of pixels pass it); ``"mad"``: the floor alone.
    floor_unit
        ``"noise"``: standard deviations of the response to the channel's noise (see ``noise``);
        ``"mad"``: robust standard deviations of the field's own response (0.3.0's first
        version; depends on how dense the field is).
    noise
        The channel's noise for ``floor_unit="noise"``: ``None`` = white noise at the channel's
        own level (:func:`lcd_nuclei.noise.estimate_noise`; right for a plane or the mean of
        planes), a float = white noise of that SD, or an ``(H, W)`` realisation (a derived
        channel's noise from :func:`lcd_nuclei.channels.channel_noise`).
    min_area_fraction
        Objects smaller than this fraction of a disc of ``diameter`` are dropped.
    max_area_ratio
        Objects larger than this times the field's median object area are dropped
        (``math.inf`` keeps all).
    class_prior
        ``"none"``, or ``"multiotsu"``: drop objects whose mean channel value lies outside the
        channel's most extreme of 3 multi-Otsu classes on the nuclei's side (darkest for
        ``"dark"``, brightest for ``"bright"``; see :func:`lcd_nuclei.priors.class_prior_filter`).
        For a stained or absorbing nucleus in brightfield; not for derived channels whose level
        carries no meaning.
    split_depth
        0: touching nuclei are split only at the response's maxima ``diameter / 2`` apart. > 0:
        the kept objects' union is then re-split at the maxima of its distance transform at least
        ``split_depth * diameter / 2`` pixels deep (:func:`lcd_nuclei.instances.split_touching`).
    split_contrast
        0: off. > 0: the objects are then re-split at the extrema (minima for ``"dark"``) of the
        channel smoothed by a Gaussian of sigma ``diameter / 8`` that are at least this many
        standard deviations of the same smoothing of the channel's noise deep
        (:func:`lcd_nuclei.instances.split_at_extrema`; the noise as for ``floor_unit="noise"``,
        also when the floor is in ``"mad"`` units).
    min_axis_ratio
        0: off. In (0, 1): objects whose minor / major axis ratio is below it are dropped, last
        (:func:`lcd_nuclei.priors.axis_ratio_filter`).
    seed
        Seed of the white-noise draw (``floor_unit="noise"`` without a realisation given).

    Returns
    -------
    dict
        ``labels`` (H, W) int32, ``response`` (H, W) float64, ``nuclei_count``,
        ``mean_nucleus_area``, ``median_nucleus_area``, ``large_objects_dropped``.
    """
    from skimage.filters import threshold_otsu

    from .noise import estimate_noise

    if isinstance(floor, bool) or not (isinstance(floor, (int, float)) and math.isfinite(floor)):
        raise InputError(f"floor must be a number of standard deviations, got {floor!r}")
    if threshold_method not in ("otsu", "mad"):
        raise InputError(f"threshold_method must be 'otsu' or 'mad', got {threshold_method!r}")
    if floor_unit not in FLOOR_UNITS:
        raise InputError(f"floor_unit must be one of {', '.join(FLOOR_UNITS)}, got {floor_unit!r}")
    if not 0 <= min_area_fraction < 1:
        raise InputError(f"min_area_fraction must be in [0, 1), got {min_area_fraction}")
    if class_prior not in CLASS_PRIORS:
        raise InputError(f"class_prior must be one of {', '.join(CLASS_PRIORS)}, got {class_prior!r}")
    if isinstance(split_depth, bool) or not (
        isinstance(split_depth, (int, float)) and math.isfinite(split_depth) and split_depth >= 0
    ):
        raise InputError(f"split_depth must be a number >= 0 (0 = off), got {split_depth!r}")
    if isinstance(split_contrast, bool) or not (
        isinstance(split_contrast, (int, float)) and math.isfinite(split_contrast) and split_contrast >= 0
    ):
        raise InputError(
            f"split_contrast must be a number of noise SDs >= 0 (0 = off), got {split_contrast!r}"
        )
    if isinstance(min_axis_ratio, bool) or not (
        isinstance(min_axis_ratio, (int, float)) and 0 <= min_axis_ratio < 1
    ):
        raise InputError(f"min_axis_ratio must be a number in [0, 1) (0 = off), got {min_axis_ratio!r}")
    channel = np.asarray(channel, dtype=np.float64)
    realisation = None
    if floor_unit == "noise" or split_contrast > 0:
        if noise is None or np.ndim(noise) == 0:
            sigma = estimate_noise(channel) if noise is None else float(noise)
            if not (math.isfinite(sigma) and sigma >= 0):
                raise InputError(f"noise must be a standard deviation >= 0, got {noise!r}")
            realisation = np.random.default_rng(seed).standard_normal(channel.shape) * sigma
        else:
            realisation = noise
    response = blob_response(
        channel, diameter=diameter, polarity=polarity, noise=realisation if floor_unit == "noise" else None
    )
    min_area = max(1, round(min_area_fraction * math.pi * (diameter / 2) ** 2))
    level = float(floor)
    above = response[response > level]
    if threshold_method == "otsu" and above.size >= min_area and np.ptp(above) > 0:
        level = float(threshold_otsu(above))
    labels = split_blobs(response > level, response, diameter=diameter, min_area=min_area)
    labels, n_dropped = drop_large_objects(labels, max_area_ratio)
    if class_prior == "multiotsu":
        labels = class_prior_filter(
            labels, channel, polarity=resolve_polarity(channel, diameter=diameter, polarity=polarity)
        )
    if split_depth > 0:
        labels = split_touching(labels > 0, depth=split_depth * diameter / 2, min_area=min_area)
    if split_contrast > 0:
        labels = _split_by_contrast(
            labels,
            channel,
            realisation,
            diameter=diameter,
            polarity=polarity,
            contrast=split_contrast,
            min_area=min_area,
        )
    if min_axis_ratio > 0:
        labels = axis_ratio_filter(labels, min_ratio=min_axis_ratio)
    stats = instance_stats(labels)
    return {
        "labels": labels,
        "response": response,
        "nuclei_count": stats["nuclei_count"],
        "mean_nucleus_area": stats["mean_nucleus_area"],
        "median_nucleus_area": stats["median_nucleus_area"],
        "large_objects_dropped": n_dropped,
    }


def _split_by_contrast(labels, channel, noise, *, diameter, polarity, contrast, min_area):
    """``split_contrast``: :func:`split_at_extrema` on the smoothed channel, depth in its noise SDs."""
    from scipy import ndimage as ndi

    sigma = diameter / 8.0  # the band-pass's own smoothing: pixel noise off, a small nucleus kept
    sign = -1.0 if resolve_polarity(channel, diameter=diameter, polarity=polarity) == "dark" else 1.0
    spread = float(ndi.gaussian_filter(np.asarray(noise, dtype=np.float64), sigma).std())
    if not spread > 0:  # a noise-free channel: any seam splits
        spread = np.finfo(np.float64).eps
    surface = sign * ndi.gaussian_filter(channel, sigma)
    return split_at_extrema(labels, surface, depth=contrast * spread, min_area=min_area)


def split_blobs(mask: np.ndarray, response: np.ndarray, *, diameter: float, min_area: int) -> np.ndarray:
    """Split a nucleus mask into instances at the maxima of a blob response.

    Parameters
    ----------
    mask
        ``(H, W)`` bool nucleus pixels (holes are filled).
    response
        ``(H, W)`` map that peaks once per nucleus (a band-passed channel, a smoothed stain).
    diameter
        Nucleus diameter in pixels: markers are at least ``diameter / 2`` apart.
    min_area
        Components and final instances below this many pixels are dropped.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` int32 labels 1..n (0 = background); a component without a marker is one
        instance.
    """
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    mask = ndi.binary_fill_holes(np.asarray(mask, dtype=bool))
    mask = _keep_large(ndi.label(mask)[0], min_area) > 0
    if not mask.any():
        return np.zeros(mask.shape, dtype=np.int32)
    components, _ = ndi.label(mask)
    peaks = peak_local_max(
        response, min_distance=max(1, round(diameter / 2)), labels=components, exclude_border=False
    )
    markers = np.zeros(mask.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = watershed(-response, markers, mask=mask).astype(np.int32)
    orphans, _ = ndi.label(mask & (labels == 0))  # components without a marker
    labels[orphans > 0] = orphans[orphans > 0] + labels.max()
    return _keep_large(labels, min_area)


def _keep_large(labels: np.ndarray, min_area: int) -> np.ndarray:
    """Drop labels under ``min_area`` pixels and renumber the rest 1..n (int32)."""
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_area
    keep[0] = False
    new_ids = np.zeros(sizes.size, dtype=np.int32)
    new_ids[keep] = np.arange(1, keep.sum() + 1)
    return new_ids[labels]
