"""TIE phase: the DCT Poisson solver vs a dense direct solve; a Gaussian phase object propagated by
the Fresnel (paraxial) propagator is recovered by tie_phase."""

import numpy as np
import pytest
from lcd_core import InputError
from lcd_nuclei.tie import intensity_derivative, laplacian_eigenvalues, poisson_solve, tie_phase


def neumann_laplacian(h, w):
    """Dense 5-point Laplacian with mirror boundaries (ghost pixel = edge pixel), row-major."""

    def one_d(n):
        m = -2.0 * np.eye(n) + np.eye(n, k=1) + np.eye(n, k=-1)
        m[0, 0] = m[-1, -1] = -1.0
        return m

    return np.kron(one_d(h), np.eye(w)) + np.kron(np.eye(h), one_d(w))


@pytest.mark.parametrize("shape", [(7, 9), (10, 6)])
def test_poisson_matches_dense_pseudo_inverse(shape):
    rng = np.random.default_rng(1)
    rhs = rng.normal(size=shape)
    lap = neumann_laplacian(*shape)
    direct = (np.linalg.pinv(lap) @ rhs.ravel()).reshape(shape)
    np.testing.assert_allclose(poisson_solve(rhs), direct, atol=1e-10)
    # a zero-mean right-hand side is reproduced exactly by the Laplacian of the solution
    centred = rhs - rhs.mean()
    np.testing.assert_allclose(lap @ poisson_solve(centred).ravel(), centred.ravel(), atol=1e-10)


@pytest.mark.parametrize("alpha", [1e-3, 0.5, 10.0])
def test_poisson_tikhonov_matches_dense_regularised_solve(alpha):
    rng = np.random.default_rng(2)
    shape = (8, 7)
    rhs = rng.normal(size=shape)
    lap = neumann_laplacian(*shape)
    # minimiser of |L phi - f|^2 + alpha |phi|^2 restricted to zero-mean phi: (L^2 + alpha) phi = L f
    direct = np.linalg.solve(lap @ lap + alpha * np.eye(lap.shape[0]), lap @ rhs.ravel()).reshape(shape)
    np.testing.assert_allclose(poisson_solve(rhs, alpha=alpha), direct, atol=1e-10)


def test_laplacian_eigenvalues_are_those_of_the_dense_operator():
    lap = neumann_laplacian(5, 6)
    np.testing.assert_allclose(
        np.sort(laplacian_eigenvalues((5, 6)).ravel()), np.sort(np.linalg.eigvalsh(lap)), atol=1e-10
    )


def fresnel(field, z, wavelength, pixel_size):
    """Paraxial free-space propagation by the angular spectrum, exp(-i pi lambda z f^2)."""
    n, m = field.shape
    fy, fx = np.fft.fftfreq(n, d=pixel_size), np.fft.fftfreq(m, d=pixel_size)
    transfer = np.exp(-1j * np.pi * wavelength * z * (fy[:, None] ** 2 + fx[None, :] ** 2))
    return np.fft.ifft2(np.fft.fft2(field) * transfer)


@pytest.mark.parametrize("n_planes", [2, 3])
def test_tie_recovers_a_propagated_gaussian_phase_object(n_planes):
    n, pixel, wavelength, dz = 128, 0.5, 0.55, 0.4  # µm; Fresnel number (4 µm)^2 / (0.55 * 0.4) >> 1
    yy, xx = np.mgrid[:n, :n] - n / 2 + 0.5
    phase = 0.5 * np.exp(-(yy**2 + xx**2) / (2 * 8.0**2))  # radians, sigma 8 px = 4 µm
    field = np.exp(1j * phase)  # pure phase object, I0 = 1
    z = np.array([-dz, dz]) if n_planes == 2 else np.array([-dz, 0.0, dz])
    planes = np.stack([np.abs(fresnel(field, zi, wavelength, pixel)) ** 2 for zi in z])
    estimate = tie_phase(planes, z, wavelength=wavelength, pixel_size=pixel)
    truth = phase - phase.mean()
    error = np.sqrt(np.mean((estimate - truth) ** 2)) / np.sqrt(np.mean(truth**2))
    assert error < 0.05
    assert np.unravel_index(np.argmax(estimate), estimate.shape) in {(63, 63), (63, 64), (64, 63), (64, 64)}
    # the opposite defocus convention gives the negated phase: the sign is not arbitrary
    flipped = tie_phase(planes, -z, wavelength=wavelength, pixel_size=pixel)
    np.testing.assert_allclose(flipped, -estimate, atol=1e-12)


def test_tie_highpass_suppresses_a_linear_illumination_gradient():
    n = 96
    yy, xx = np.mgrid[:n, :n] - n / 2 + 0.5
    phase = 0.4 * np.exp(-(yy**2 + xx**2) / (2 * 5.0**2))
    field = np.exp(1j * phase)
    z = np.array([-0.4, 0.4])
    planes = np.stack([np.abs(fresnel(field, zi, 0.55, 0.5)) ** 2 for zi in z])
    # a lamp drift between the planes: a ramp in dI/dz that the phase does not explain
    planes = planes * (1 + np.array([-1, 1])[:, None, None] * 0.002 * xx / n)
    plain = tie_phase(planes, z, wavelength=0.55, pixel_size=0.5)
    regularised = tie_phase(planes, z, wavelength=0.55, pixel_size=0.5, highpass=30)
    truth = phase - phase.mean()
    corner = (slice(0, 20), slice(0, 20))
    # without regularisation the ramp becomes a large smooth phase; the high-pass removes it
    assert (
        np.abs(plain[corner] - truth[corner]).mean() > 3 * np.abs(regularised[corner] - truth[corner]).mean()
    )
    # what is left is the phase seen through the Tikhonov filter lam^2 / (lam^2 + alpha) (DCT domain)
    from scipy.fft import dctn, idctn

    ly = 2 * np.cos(np.pi * np.arange(n) / n) - 2
    lam = ly[:, None] + ly[None, :]
    alpha = (2 * np.pi / 30) ** 4
    filtered = idctn(dctn(truth, norm="ortho") * lam**2 / (lam**2 + alpha), norm="ortho")
    assert np.corrcoef(regularised.ravel(), filtered.ravel())[0, 1] > 0.95


def test_intensity_derivative_is_least_squares_slope():
    rng = np.random.default_rng(3)
    planes = rng.uniform(1, 2, size=(5, 4, 3))
    z = np.array([-2.0, -0.5, 0.0, 1.0, 3.0])
    didz, mean = intensity_derivative(planes, z)
    for i in range(4):
        for j in range(3):
            slope = np.polyfit(z, planes[:, i, j], 1)[0]
            assert didz[i, j] == pytest.approx(slope, abs=1e-12)
    np.testing.assert_allclose(mean, planes.mean(0))


def test_bad_inputs_raise_one_line_errors():
    with pytest.raises(InputError, match="at least 2 planes"):
        tie_phase(np.ones((1, 8, 8)), [0.0])
    with pytest.raises(InputError, match="defocus values must differ"):
        tie_phase(np.ones((2, 8, 8)), [1.0, 1.0])
    with pytest.raises(InputError, match="2 defocus values for 3 planes"):
        tie_phase(np.ones((3, 8, 8)), [0.0, 1.0])
    with pytest.raises(InputError, match="highpass"):
        tie_phase(np.ones((2, 8, 8)), [-1.0, 1.0], highpass=0)
    with pytest.raises(InputError, match="NaN"):
        poisson_solve(np.full((4, 4), np.nan))
    with pytest.raises(InputError, match="alpha"):
        poisson_solve(np.zeros((4, 4)), alpha=-1)
