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
