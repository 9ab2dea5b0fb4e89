"""The image the classical counter reads: a field's planes turned into one channel, and its noise.

``"grey"``: the mean of the planes (one plane: the plane itself). ``"defocus"``:
:func:`lcd_nuclei.defocus.defocus_contrast` (the normalised difference of the out-of-focus
planes). ``"tie"``: :func:`lcd_nuclei.tie.tie_phase` (the phase from the transport-of-intensity
equation), high-passed at ``highpass`` pixels. Plane positions default to equally spaced planes
symmetric about the middle one (:func:`lcd_nuclei.defocus.default_defocus`), the layout of the LCD
paper's screens (-3.6, 0, +3.6 µm); their unit does not matter for counting (the phase scales, the
counter's response is in noise units).

:func:`channel_noise` is one realisation of the channel's noise: white noise of each plane's own
level (:func:`lcd_nuclei.noise.estimate_noise`) pushed through the same channel computation. The
TIE phase of white noise is not white (the inverse Laplacian piles it up at long wavelengths), so a
noise level estimated on the channel itself would be wrong; pushing the planes' noise through the
computation gives the channel's noise with its own spectrum.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from lcd_core import InputError

__all__ = ["CHANNELS", "channel_noise", "nucleus_channel"]

#: Channels of the classical counter.
CHANNELS = ("grey", "defocus", "tie")


def _planes(image: np.ndarray, planes: Sequence[int] | None) -> np.ndarray:
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3:
        raise InputError(f"image must be (H, W) or (planes, H, W), got shape {image.shape}")
    if not np.isfinite(image).all():
        raise InputError("image contains NaN or inf")
    if planes is not None:
        planes = [int(p) for p in planes]
        bad = [p for p in planes if not -image.shape[0] <= p < image.shape[0]]
        if bad or not planes:
            raise InputError(f"planes {planes} do not index the field's {image.shape[0]} planes")
        image = image[planes]
    return image


def nucleus_channel(
    image: np.ndarray,
    channel: str = "grey",
    *,
    planes: Sequence[int] | None = None,
    defocus: Sequence[float] | None = None,
    highpass: float | None = None,
) -> np.ndarray:
    """One field's channel for the classical counter.

    Parameters
    ----------
    image
        ``(P, H, W)`` or ``(H, W)`` raw intensities of one field.
    channel
        ``"grey"``, ``"defocus"`` or ``"tie"`` (the last two need at least 2 planes).
    planes
        Plane indices used (default: all, in order).
    defocus
        Position of each used plane along z (default: equally spaced, symmetric about the middle).
    highpass
        TIE only: structures longer than this many pixels are suppressed (see
        :func:`lcd_nuclei.tie.tie_phase`); required for ``"tie"`` (illumination gradients dominate
        an unregularised phase).

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float64.
    """
    from .defocus import default_defocus, defocus_contrast
    from .tie import tie_phase

    if channel not in CHANNELS:
        raise InputError(f"channel must be one of {', '.join(CHANNELS)}, got {channel!r}")
    stack = _planes(image, planes)
    if channel == "grey":
        return stack.mean(axis=0)
    if stack.shape[0] < 2:
        raise InputError(f"channel {channel!r} needs at least 2 planes (a defocus series), got 1")
    z = default_defocus(stack.shape[0]) if defocus is None else np.asarray(defocus, dtype=np.float64)
    if z.shape != (stack.shape[0],):
        raise InputError(f"{z.size} defocus positions for {stack.shape[0]} planes")
    if channel == "defocus":
        return defocus_contrast(stack, z)
    if highpass is None:
        raise InputError("channel 'tie' needs highpass (pixels), e.g. 4 x the nucleus diameter")
    return tie_phase(stack, z, highpass=highpass)


def channel_noise(
    image: np.ndarray,
    channel: str = "grey",
    *,
    planes: Sequence[int] | None = None,
    defocus: Sequence[float] | None = None,
    highpass: float | None = None,
    seed: int = 0,
) -> np.ndarray:
    """One realisation of the noise of :func:`nucleus_channel` for this field.

    Each plane gets white Gaussian noise of its own estimated level
    (:func:`lcd_nuclei.noise.estimate_noise`); the result is ``channel(image + noise) -
    channel(image)``, which for the grey mean is exactly the mean of the noise planes and for the
    defocus and TIE channels is the noise's transport through them (to first order: their
    in-focus intensity moves by the noise too).

    Parameters
    ----------
    image
        ``(P, H, W)`` or ``(H, W)`` raw intensities of one field.
    channel, planes, defocus, highpass
        As for :func:`nucleus_channel`.
    seed
        Seed of the noise draw (numpy ``default_rng``).

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float64 noise in the channel's units.
    """
    from .noise import estimate_noise

    if channel not in CHANNELS:
        raise InputError(f"channel must be one of {', '.join(CHANNELS)}, got {channel!r}")
    stack = _planes(image, planes)
    sigma = np.array([estimate_noise(p) for p in stack])
    noise = np.random.default_rng(seed).standard_normal(stack.shape) * sigma[:, None, None]
    if channel == "grey":
        return noise.mean(axis=0)
    options = {"defocus": defocus, "highpass": highpass}
    return nucleus_channel(stack + noise, channel, **options) - nucleus_channel(stack, channel, **options)
