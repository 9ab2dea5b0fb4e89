"""The classical counter's channels from a field's planes, and their noise."""

import numpy as np
import pytest
from lcd_core import InputError
from lcd_nuclei import channel_noise, classical_nuclei, nucleus_channel, tie_phase


def planes(seed=0, shape=(3, 96, 96), sigma=10.0):
    rng = np.random.default_rng(seed)
    _, xx = np.mgrid[: shape[1], : shape[2]]
    return 1000.0 + 50 * np.sin(xx / 40.0)[None] + rng.normal(scale=sigma, size=shape)


def test_grey_is_the_plane_mean():
    stack = planes()
    np.testing.assert_allclose(nucleus_channel(stack), stack.mean(0))
    np.testing.assert_allclose(nucleus_channel(stack[1]), stack[1])
    np.testing.assert_allclose(nucleus_channel(stack, planes=[2]), stack[2])


def test_defocus_is_the_normalised_plane_difference():
    """Three planes at -1, 0, +1 (the default positions): (I(+1) - I(-1)) / 2 / mean(I)."""
    stack = planes()
    expected = (stack[2] - stack[0]) / 2 / stack.mean(0)
    np.testing.assert_allclose(nucleus_channel(stack, "defocus"), expected, rtol=1e-9, atol=1e-15)
    # explicit positions: planes 0 and 2 at -3.6 and +3.6 um
    np.testing.assert_allclose(
        nucleus_channel(stack, "defocus", planes=[0, 2], defocus=[-3.6, 3.6]),
        (stack[2] - stack[0]) / 7.2 / stack[[0, 2]].mean(0),
        rtol=1e-9,
        atol=1e-15,
    )


def test_tie_uses_the_given_planes_positions_and_highpass():
    stack = planes()
    got = nucleus_channel(stack, "tie", planes=[0, 2], defocus=[-2.0, 2.0], highpass=30)
    np.testing.assert_allclose(got, tie_phase(stack[[0, 2]], [-2.0, 2.0], highpass=30))
    np.testing.assert_allclose(
        nucleus_channel(stack, "tie", highpass=30), tie_phase(stack, [-1.0, 0.0, 1.0], highpass=30)
    )


def test_grey_noise_has_the_planes_level_over_sqrt_planes():
    stack = planes(sigma=10.0)
    noise = channel_noise(stack, seed=3)
    assert noise.std() == pytest.approx(10.0 / np.sqrt(3), rel=0.05)
    np.testing.assert_array_equal(noise, channel_noise(stack, seed=3))
    assert not np.array_equal(noise, channel_noise(stack, seed=4))


def test_tie_noise_keeps_a_noise_only_field_empty():
    """Planes of shading and noise only: their TIE phase is smooth long-wavelength noise. Counted
    against its own noise (channel_noise) it holds no nucleus; treating the phase as white noise of
    its own finest-scale level (what the counter does when given no noise) finds dozens."""
    stack = planes(seed=1, shape=(3, 128, 128))
    phase = nucleus_channel(stack, "tie", highpass=32)
    noise = channel_noise(stack, "tie", highpass=32)
    for polarity in ("bright", "dark"):
        assert classical_nuclei(phase, diameter=8, polarity=polarity, noise=noise)["nuclei_count"] == 0
        assert classical_nuclei(phase, diameter=8, polarity=polarity)["nuclei_count"] > 20


def test_bad_input():
    stack = planes()
    with pytest.raises(InputError, match="channel must be"):
        nucleus_channel(stack, "phase")
    with pytest.raises(InputError, match="channel must be"):
        channel_noise(stack, "phase")
    with pytest.raises(InputError, match="at least 2 planes"):
        nucleus_channel(stack[:1], "defocus")
    with pytest.raises(InputError, match="highpass"):
        nucleus_channel(stack, "tie")
    with pytest.raises(InputError, match="defocus positions"):
        nucleus_channel(stack, "defocus", defocus=[-1.0, 1.0])
    with pytest.raises(InputError, match="do not index"):
        nucleus_channel(stack, planes=[3])
    with pytest.raises(InputError, match="NaN"):
        nucleus_channel(np.full((2, 8, 8), np.nan), "defocus")
