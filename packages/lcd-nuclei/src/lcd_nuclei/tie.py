"""Phase from a defocus series: the transport-of-intensity equation, solved with a DCT Poisson solver.

Teague's transport-of-intensity equation (TIE) links the axial intensity derivative of a
paraxial field to its phase: ``k dI/dz = -div(I grad phi)``. With a nearly uniform in-focus
intensity ``I0`` this becomes the Poisson equation ``laplacian(phi) = -k (dI/dz) / I0``. A
microscope's planes at -d, 0, +d give ``dI/dz`` by finite differences, so two out-of-focus planes
are enough to estimate the phase: cell bodies and nuclei are thicker (more phase) than the medium
around them, whatever their absorption.

The Poisson equation is solved on the 5-point Laplacian with mirror (Neumann) boundaries, which
the type-II DCT diagonalises (``scipy.fft.dctn``): no periodic wrap-around between opposite edges
of a field, as an FFT solver would have. Low spatial frequencies are ill-posed (their eigenvalue
goes to 0 and noise and illumination gradients blow up), so the inverse Laplacian is Tikhonov
regularised: ``phi_k = lam_k / (lam_k^2 + alpha) f_k``.
"""

from __future__ import annotations

import numpy as np
from lcd_core import InputError

__all__ = ["intensity_derivative", "laplacian_eigenvalues", "poisson_solve", "tie_phase"]


def laplacian_eigenvalues(shape: tuple[int, int]) -> np.ndarray:
    """Eigenvalues of the 5-point Laplacian with mirror boundaries, in DCT-II order.

    Parameters
    ----------
    shape
        ``(H, W)`` of the grid.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` array ``(2 cos(pi i / H) - 2) + (2 cos(pi j / W) - 2)`` (all <= 0; 0 only at
        ``(0, 0)``, the constant mode).
    """
    h, w = (int(s) for s in shape)
    ly = 2.0 * np.cos(np.pi * np.arange(h) / h) - 2.0
    lx = 2.0 * np.cos(np.pi * np.arange(w) / w) - 2.0
    return ly[:, None] + lx[None, :]


def poisson_solve(rhs: np.ndarray, *, alpha: float = 0.0) -> np.ndarray:
    """Solve ``laplacian(phi) = rhs`` (pixel units) with mirror boundaries, Tikhonov-regularised.

    Parameters
    ----------
    rhs
        ``(H, W)`` right-hand side, per pixel squared.
    alpha
        Tikhonov weight (eigenvalue units, px^-4): each DCT mode is divided by
        ``(lam^2 + alpha) / lam`` instead of ``lam``. ``0`` gives the minimum-norm least-squares
        solution (the constant mode, which the Laplacian cannot see, is set to 0).

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float64 ``phi`` with zero mean; with ``alpha=0`` and a zero-mean ``rhs`` its
        discrete Laplacian equals ``rhs``.
    """
    from scipy.fft import dctn, idctn

    rhs = np.asarray(rhs, dtype=np.float64)
    if rhs.ndim != 2:
        raise InputError(f"rhs must be 2-D (H, W), got shape {rhs.shape}")
    if not np.isfinite(rhs).all():
        raise InputError("rhs contains NaN or inf")
    if not alpha >= 0:  # also refuses NaN
        raise InputError(f"alpha must be >= 0, got {alpha}")
    lam = laplacian_eigenvalues(rhs.shape)
    denominator = lam * lam + alpha
    denominator[0, 0] = 1.0  # the constant mode: gain 0 below
    gain = lam / denominator
    gain[0, 0] = 0.0
    return idctn(dctn(rhs, type=2, norm="ortho") * gain, type=2, norm="ortho")


def intensity_derivative(planes: np.ndarray, defocus) -> tuple[np.ndarray, np.ndarray]:
    """Axial intensity derivative and in-focus intensity of a defocus series.

    The derivative is the least-squares slope of each pixel's intensity over the planes' defocus
    positions (with two planes, or three symmetric ones, the central difference
    ``(I(+d) - I(-d)) / 2d``); the in-focus intensity is the mean over the planes (exact to first
    order in the defocus for planes symmetric about focus).

    Parameters
    ----------
    planes
        ``(Z, H, W)`` intensities, Z >= 2.
    defocus
        ``(Z,)`` defocus of each plane (any length unit; the derivative is per that unit).

    Returns
    -------
    didz, intensity
        Two ``(H, W)`` float64 arrays.
    """
    planes = np.asarray(planes, dtype=np.float64)
    z = np.asarray(defocus, dtype=np.float64).ravel()
    if planes.ndim != 3 or planes.shape[0] < 2:
        raise InputError(f"planes must be (Z, H, W) with at least 2 planes, got shape {planes.shape}")
    if z.size != planes.shape[0]:
        raise InputError(f"{z.size} defocus values for {planes.shape[0]} planes")
    if not (np.isfinite(z).all() and np.isfinite(planes).all()):
        raise InputError("planes or defocus contain NaN or inf")
    dz = z - z.mean()
    spread = float(dz @ dz)
    if spread == 0:
        raise InputError(f"defocus values must differ, got {z.tolist()}")
    didz = np.tensordot(dz, planes, axes=1) / spread  # sum_z dz (I_z - mean) = sum_z dz I_z
    return didz, planes.mean(axis=0)


def tie_phase(
    planes: np.ndarray,
    defocus,
    *,
    wavelength: float = 0.55,
    pixel_size: float = 1.0,
    highpass: float | None = None,
    intensity_floor: float = 0.05,
) -> np.ndarray:
    """Phase (radians) from a defocus series by the transport-of-intensity equation.

    Solves ``laplacian(phi) = -(2 pi / wavelength) (dI/dz) / I0`` with :func:`poisson_solve`,
    ``dI/dz`` and ``I0`` from :func:`intensity_derivative`.

    Parameters
    ----------
    planes
        ``(Z, H, W)`` intensities (Z >= 2), planes of one field, registered.
    defocus
        ``(Z,)`` defocus of each plane, in the unit of ``wavelength`` (e.g. µm; positive = away
        from the objective, as in the paraxial propagator ``exp(-i pi wavelength z f^2)``).
    wavelength, pixel_size
        Illumination wavelength and pixel size (object plane), same unit as ``defocus``. They only
        scale ``phi`` (counting does not depend on them).
    highpass
        Length in pixels above which structures are suppressed: Tikhonov ``alpha = (2 pi /
        highpass)^4``, so a mode of that wavelength gets half its unregularised amplitude and
        longer ones fall off as their squared frequency. ``None`` = no regularisation (only the
        constant mode is removed); illumination gradients and noise at low frequencies then
        dominate real images.
    intensity_floor
        ``I0`` is clipped below at this fraction of its median, so dark pixels do not blow up the
        right-hand side.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float64 phase in radians, zero mean.
    """
    if not (wavelength > 0 and pixel_size > 0):
        raise InputError(f"wavelength and pixel_size must be > 0, got {wavelength} and {pixel_size}")
    if highpass is not None and not highpass > 0:
        raise InputError(f"highpass must be a length > 0 pixels or None, got {highpass}")
    didz, intensity = intensity_derivative(planes, defocus)
    level = float(np.median(intensity))
    if not level > 0:
        raise InputError("the planes' median intensity is not positive: TIE needs intensities, not offsets")
    intensity = np.maximum(intensity, intensity_floor * level)
    k = 2.0 * np.pi / wavelength
    rhs = -k * didz / intensity * pixel_size**2  # per pixel^2
    alpha = 0.0 if highpass is None else (2.0 * np.pi / float(highpass)) ** 4
    return poisson_solve(rhs, alpha=alpha)
