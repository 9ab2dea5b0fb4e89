"""The EMA teacher is timm's ModelEmaV3: each update against the closed form, and a step's use of it."""

import numpy as np
import torch
from lcd_ssl.model import build_student_teacher


def test_timm_ema_update_is_the_dino_momentum_update(tiny_config):
    from timm.utils import ModelEmaV3

    torch.manual_seed(0)
    student, ema = build_student_teacher(tiny_config(), 1)
    assert isinstance(ema, ModelEmaV3)
    teacher = ema.module
    assert teacher is not student and not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())
    for a, b in zip(teacher.state_dict().values(), student.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # the copy starts equal
    gen = torch.Generator().manual_seed(1)
    expected = {k: v.double().clone() for k, v in teacher.state_dict().items()}
    for step, m in enumerate((0.9, 0.99, 0.996, 1.0)):
        with torch.no_grad():
            for p in student.parameters():
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)
        ema.apply_update_(student, decay=m)
        s = student.state_dict()
        # oracle: DINO's t <- m t + (1 - m) s, in float64
        expected = {k: m * v + (1 - m) * s[k].double() for k, v in expected.items()}
        for k, v in teacher.state_dict().items():
            np.testing.assert_allclose(
                v.double().numpy(), expected[k].numpy(), rtol=1e-5, atol=1e-6, err_msg=f"step {step}: {k}"
            )
    # momentum 1 keeps the teacher: exactly, not approximately
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    ema.apply_update_(student, decay=1.0)
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())


def test_a_training_step_moves_the_teacher_toward_the_student(tiny_config):
    from lcd_ssl import MultiCropLoss
    from lcd_ssl.model import param_groups
    from lcd_ssl.step import Networks, apply_update, forward_losses

    cfg = tiny_config()
    torch.manual_seed(0)
    student, ema = build_student_teacher(cfg, 1)
    teacher = ema.module
    half = torch.full((1, 1, 1, 1), 0.5)
    nets = Networks(student, teacher, student, teacher, MultiCropLoss(cfg.out_dim), torch.optim.AdamW(param_groups(student)),
                    torch.autocast("cpu", enabled=False), half, half, cfg.clip_grad, ema)  # fmt: skip
    crops = [torch.rand(4, 1, cfg.global_crop_size, cfg.global_crop_size) for _ in range(2)]
    crops += [torch.rand(4, 1, cfg.local_crop_size, cfg.local_crop_size) for _ in range(2)]
    t0 = {k: v.clone() for k, v in teacher.state_dict().items()}
    out, _ = forward_losses(nets, crops, torch.zeros(8, dtype=torch.int64), 0.04)
    apply_update(nets, out["loss"], lr=1e-3, weight_decay=0.04, momentum=0.9, freeze_last_layer=False)
    s = student.state_dict()
    moved = 0
    for k, v in teacher.state_dict().items():
        want = 0.9 * t0[k].double() + 0.1 * s[k].double()
        np.testing.assert_allclose(v.double().numpy(), want.numpy(), rtol=1e-5, atol=1e-7, err_msg=k)
        moved += int(not torch.equal(v, t0[k]))
    assert moved > 0


def test_timm_ema_differs_from_the_hand_written_update_only_by_float32_rounding(tiny_config):
    """lcd-ssl 0.2.0 updated ``t = m t + (1 - m) s`` (mul + add); timm lerps ``t + (1 - m)(s - t)``.

    The explained difference: both are the same update in exact arithmetic, so after many updates
    they differ by float32 rounding only, and each stays as close to the float64 oracle as the other.
    """
    torch.manual_seed(0)
    student, ema = build_student_teacher(tiny_config(), 1)
    old = [p.detach().clone() for p in ema.module.parameters()]
    exact = [p.double() for p in old]
    gen = torch.Generator().manual_seed(2)
    for m in np.linspace(0.99, 1.0, 50):
        with torch.no_grad():
            for p in student.parameters():
                p.add_(torch.randn(p.shape, generator=gen) * 0.01)
        ema.apply_update_(student, decay=float(m))
        s = [p.detach() for p in student.parameters()]
        torch._foreach_mul_(old, float(m))  # the 0.2.0 code, verbatim
        torch._foreach_add_(old, s, alpha=1.0 - float(m))
        exact = [float(m) * e + (1 - float(m)) * x.double() for e, x in zip(exact, s, strict=True)]
    new = list(ema.module.parameters())
    diff = max((a.double() - b.double()).abs().max().item() for a, b in zip(new, old, strict=True))
    err_new = max((a.double() - e).abs().max().item() for a, e in zip(new, exact, strict=True))
    err_old = max((a.double() - e).abs().max().item() for a, e in zip(old, exact, strict=True))
    assert 0 < diff < 1e-5  # not bit-identical, but float32 rounding apart
    assert err_new < 1e-5 and err_old < 1e-5
