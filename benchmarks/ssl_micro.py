r"""Micro-benchmarks of lcd-ssl's per-step pieces with pytest-benchmark (not part of the test run).

    heavy uv run pytest benchmarks/ssl_micro.py --benchmark-only -q           # a quick look
    exclusive uv run pytest benchmarks/ssl_micro.py --benchmark-only \\
        --benchmark-json /tmp/ssl_micro.json                                   # numbers to keep

ViT-S/16 with the DINO head (28 M parameters), one CPU thread: the teacher EMA update through timm
(``ModelEmaV3.apply_update_``) beside the 0.2.0 hand-written ``_foreach_mul_`` + ``_foreach_add_``
it replaced, the schedules of a 100-epoch run, and the multi-crop loss. The whole training step
(forward + backward + update, per precision and variant) is ``benchmarks/ssl_step_time.py``.
"""

from __future__ import annotations

import pytest
import torch
from lcd_ssl import MultiCropLoss, TrainConfig
from lcd_ssl.model import build_student_teacher
from lcd_ssl.schedules import Schedules

pytest.importorskip("pytest_benchmark")


@pytest.fixture(scope="module")
def vit_s():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    student, ema = build_student_teacher(TrainConfig(), 3)
    yield student, ema
    torch.set_num_threads(old)


def test_ema_update_timm(benchmark, vit_s):
    """One teacher update through timm: one fused lerp over the state dict."""
    student, ema = vit_s

    @torch.no_grad()
    def update():
        ema.apply_update_(student, decay=0.996)

    benchmark(update)


def test_ema_update_hand_written(benchmark, vit_s):
    """lcd-ssl 0.2.0's update (two passes over the weights), for comparison."""
    student, ema = vit_s
    teacher = [p.detach().clone() for p in ema.module.parameters()]

    @torch.no_grad()
    def update():
        s = [p.detach() for p in student.parameters()]
        torch._foreach_mul_(teacher, 0.996)
        torch._foreach_add_(teacher, s, alpha=0.004)

    benchmark(update)


def test_schedules_of_a_100_epoch_run(benchmark):
    """LR, weight decay, momentum and temperature arrays for 100 epochs x 500 steps (timm scheduler)."""
    cfg = TrainConfig(epochs=100)
    benchmark.pedantic(Schedules.build, args=(cfg, 500), rounds=3, iterations=1)


def test_multicrop_loss(benchmark):
    """DINO loss of 2 global + 6 local crops, batch 32, out_dim 4096."""
    gen = torch.Generator().manual_seed(0)
    loss = MultiCropLoss(4096)
    student = torch.randn(8 * 32, 4096, generator=gen)
    teacher = torch.randn(2 * 32, 4096, generator=gen)
    ids = torch.zeros(2 * 32, dtype=torch.int64)
    with torch.no_grad():
        benchmark(lambda: loss(student, teacher, ids, teacher_temp=0.04, n_student_views=8))
