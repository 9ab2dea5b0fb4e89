"""Defocus contrast: what the out-of-focus planes of a brightfield z-stack show that one plane does not.

In transmitted light a transparent cell is nearly invisible in focus; above and below focus its
outline and its nucleus appear with halos of opposite sign (the intensity change is proportional to
the defocus times the Laplacian of the phase, see :mod:`lcd_nuclei.tie`). The difference of two
planes symmetric about focus cancels what does not change with focus (absorption, illumination,
dust) and keeps the phase term; divided by the in-focus intensity it no longer depends on the lamp.
"""

from __future__ import annotations

import numpy as np
from lcd_core import InputError

from .tie import intensity_derivative

__all__ = ["default_defocus", "defocus_contrast"]


def default_defocus(n_planes: int) -> np.ndarray:
    """Plane positions when none are given: equally spaced, symmetric about the middle plane, step 1.

    Parameters
    ----------
    n_planes
        Number of planes.

    Returns
    -------
    numpy.ndarray
        ``arange(n) - (n - 1) / 2`` (e.g. ``[-1, 0, 1]`` for the paper's three planes).
    """
    n = int(n_planes)
    if n < 2:
        raise InputError(f"a defocus series needs at least 2 planes, got {n}")
    return np.arange(n, dtype=np.float64) - (n - 1) / 2


def defocus_contrast(planes: np.ndarray, defocus=None, *, smooth: float = 0.0) -> np.ndarray:
    """Relative intensity change per unit defocus, ``(dI/dz) / I0``, of one field.

    Parameters
    ----------
    planes
        ``(Z, H, W)`` intensities of one field (Z >= 2), registered.
    defocus
        ``(Z,)`` plane positions; default :func:`default_defocus` (unit step, symmetric). With
        planes at -d, 0, +d this is ``(I(+d) - I(-d)) / (2 d I0)``.
    smooth
        Gaussian sigma in pixels applied to the result (0 = none).

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float64. By the transport-of-intensity equation it equals
        ``-laplacian(phase) / k``: positive in the middle of a phase bump (a nucleus, a cell body)
        when ``defocus`` grows away from the objective; a microscope whose z axis runs the other
        way flips the sign (a polarity the counter chooses, see :mod:`lcd_nuclei.classical`).
    """
    planes = np.asarray(planes, dtype=np.float64)
    if planes.ndim != 3:
        raise InputError(f"planes must be (Z, H, W), got shape {planes.shape}")
    z = default_defocus(planes.shape[0]) if defocus is None else defocus
    didz, intensity = intensity_derivative(planes, z)
    level = float(np.median(intensity))
    if not level > 0:
        raise InputError("the planes' median intensity is not positive: defocus contrast needs intensities")
    out = didz / np.maximum(intensity, 0.05 * level)
    if smooth:
        from scipy import ndimage as ndi

        out = ndi.gaussian_filter(out, float(smooth))
    return out
