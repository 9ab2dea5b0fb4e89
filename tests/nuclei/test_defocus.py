"""Defocus contrast: closed forms for linear and symmetric stacks; the TIE identity on a propagated object."""

import numpy as np
import pytest
from lcd_core import InputError
from lcd_nuclei.defocus import default_defocus, defocus_contrast


def test_linear_stack_gives_its_relative_slope():
    rng = np.random.default_rng(0)
    i0 = rng.uniform(500, 2000, size=(6, 5))
    c = rng.normal(scale=0.01, size=(6, 5))
    z = np.array([-3.6, 0.0, 3.6])  # the paper's planes (µm)
    planes = np.stack([i0 * (1 + c * zi) for zi in z])
    np.testing.assert_allclose(defocus_contrast(planes, z), c, rtol=1e-10, atol=1e-14)


def test_three_planes_is_the_normalised_difference_of_the_outer_planes():
    rng = np.random.default_rng(1)
    planes = rng.uniform(100, 200, size=(3, 7, 8))
    expected = (planes[2] - planes[0]) / 2 / planes.mean(0)  # unit step: (I(+1) - I(-1)) / (2 I0)
    np.testing.assert_allclose(defocus_contrast(planes), expected, rtol=1e-12)


def test_default_defocus_is_symmetric_unit_step():
    np.testing.assert_array_equal(default_defocus(3), [-1, 0, 1])
    np.testing.assert_array_equal(default_defocus(4), [-1.5, -0.5, 0.5, 1.5])
    with pytest.raises(InputError, match="at least 2 planes"):
        default_defocus(1)


def test_phase_bump_is_positive_in_the_middle():
    # TIE: (dI/dz) / I0 = -laplacian(phase) / k, positive at the centre of a phase bump
    n, pixel, wavelength, dz = 96, 0.5, 0.55, 0.4
    yy, xx = np.mgrid[:n, :n] - n / 2 + 0.5
    phase = 0.5 * np.exp(-(yy**2 + xx**2) / (2 * 6.0**2))
    f = np.fft.fftfreq(n, d=pixel)
    transfer = lambda z: np.exp(-1j * np.pi * wavelength * z * (f[:, None] ** 2 + f[None, :] ** 2))  # noqa: E731
    planes = np.stack(
        [np.abs(np.fft.ifft2(np.fft.fft2(np.exp(1j * phase)) * transfer(z))) ** 2 for z in (-dz, dz)]
    )
    contrast = defocus_contrast(planes, [-dz, dz])
    r2 = (yy**2 + xx**2) * pixel**2
    s2 = (6.0 * pixel) ** 2
    laplacian = 0.5 * np.exp(-r2 / (2 * s2)) * (r2 / s2**2 - 2 / s2)  # closed form, per µm^2
    expected = -laplacian / (2 * np.pi / wavelength)
    assert contrast[48, 48] > 0
    np.testing.assert_allclose(contrast, expected, atol=0.03 * np.abs(expected).max())


def test_bad_planes():
    with pytest.raises(InputError, match=r"\(Z, H, W\)"):
        defocus_contrast(np.ones((8, 8)))
    with pytest.raises(InputError, match="not positive"):
        defocus_contrast(np.zeros((3, 4, 4)))
