"""Schedules against their closed forms (DINO's warmup + cosine, per iteration)."""

import math

import numpy as np
import pytest
from lcd_ssl import TrainConfig
from lcd_ssl.schedules import Schedules


def test_schedules_follow_closed_forms():
    cfg = TrainConfig(epochs=4, lr=1e-3, min_lr=1e-6, warmup_epochs=1, batch_size=128, scale_lr=True,
                      warmup_teacher_temp=0.04, teacher_temp=0.07, warmup_teacher_temp_epochs=2)  # fmt: skip
    spe = 5
    s = Schedules.build(cfg, spe)
    total, warm = 20, 5
    peak = 1e-3 * 128 / 256
    for i in range(total):
        if i < warm:
            want = peak * i / warm
        else:
            want = 1e-6 + 0.5 * (peak - 1e-6) * (1 + math.cos(math.pi * (i - warm) / (total - warm)))
        assert s.lr[i] == pytest.approx(want, rel=1e-12, abs=1e-15)
        assert s.weight_decay[i] == pytest.approx(
            0.4 + 0.5 * (0.04 - 0.4) * (1 + math.cos(math.pi * i / total))
        )
        assert s.momentum[i] == pytest.approx(1 + 0.5 * (0.996 - 1) * (1 + math.cos(math.pi * i / total)))
    np.testing.assert_allclose(s.teacher_temp, np.repeat([0.04, 0.07, 0.07, 0.07], spe))
    assert s.momentum[0] == pytest.approx(0.996) and np.all(np.diff(s.momentum) > 0)


def _numpy_cosine(base, final, total_steps, *, warmup_steps=0, warmup_start=0.0):
    """lcd-ssl 0.2.0's hand-written schedule, kept as the oracle of timm's scheduler."""
    warmup_steps = int(min(max(warmup_steps, 0), total_steps))
    warm = np.linspace(warmup_start, base, warmup_steps, endpoint=False) if warmup_steps else np.zeros(0)
    rest = total_steps - warmup_steps
    i = np.arange(rest)
    cos = final + 0.5 * (base - final) * (1 + np.cos(np.pi * i / max(rest, 1)))
    return np.concatenate([warm, cos]).astype(np.float64)


@pytest.mark.parametrize(
    ("epochs", "spe", "warmup_epochs", "lr", "min_lr", "momentum"),
    [(4, 5, 1, 5e-4, 1e-6, 0.996), (60, 100, 10, 1e-3, 1e-6, 0.996), (1, 60, 0.1, 2e-4, 1e-6, 0.99),
     (100, 37, 10, 5e-4, 1e-5, 0.9995), (1, 1, 0, 1e-3, 1e-6, 0.996), (2, 3, 5, 1e-3, 0.0, 0.996)],
)  # fmt: skip
def test_timm_schedules_equal_the_hand_written_ones_bit_for_bit(
    epochs, spe, warmup_epochs, lr, min_lr, momentum
):
    cfg = TrainConfig(
        epochs=epochs, warmup_epochs=warmup_epochs, lr=lr, min_lr=min_lr, momentum_teacher=momentum
    )
    s = Schedules.build(cfg, spe)
    total = epochs * spe
    warm = min(round(warmup_epochs * spe), max(total - 1, 0))
    np.testing.assert_array_equal(s.lr, _numpy_cosine(lr, min_lr, total, warmup_steps=warm))
    np.testing.assert_array_equal(s.weight_decay, _numpy_cosine(0.04, 0.4, total))
    np.testing.assert_array_equal(s.momentum, _numpy_cosine(momentum, 1.0, total))
    assert len(s.lr) == len(s.teacher_temp) == total
