"""One optimization step, shared by the training loop and the step-time benchmark."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from torch import nn

from .losses import MultiCropLoss
from .model import clip_gradients


@dataclass
class Networks:
    """Student (``model``: possibly DDP/compile-wrapped), EMA teacher, loss and optimizer of a run.

    ``teacher`` is ``ema.module`` (timm ``ModelEmaV3``, see :mod:`lcd_ssl.model`).
    """

    student: nn.Module
    teacher: nn.Module
    model: nn.Module
    teacher_fwd: nn.Module
    loss_fn: MultiCropLoss
    optimizer: torch.optim.Optimizer
    autocast: AbstractContextManager
    mean: torch.Tensor
    std: torch.Tensor
    clip_grad: float
    ema: nn.Module


def forward_losses(nets: Networks, crops: list[torch.Tensor], teacher_ids: torch.Tensor, teacher_temp: float):
    """Standardize crops, run teacher (global crops) and student (all crops), compute the loss terms.

    Returns ``(out, teacher_out)`` with ``out`` from :meth:`MultiCropLoss.forward` (centers updated).
    """
    crops = [(c - nets.mean) / nets.std for c in crops]
    with nets.autocast:
        with torch.no_grad():
            teacher_out = nets.teacher_fwd(crops[:2])
        student_out = nets.model(crops)
    out = nets.loss_fn(
        student_out, teacher_out, teacher_ids, teacher_temp=teacher_temp, n_student_views=len(crops)
    )
    return out, teacher_out


def apply_update(
    nets: Networks,
    loss: torch.Tensor,
    *,
    lr: float,
    weight_decay: float,
    momentum: float,
    freeze_last_layer: bool,
) -> None:
    """Backward, per-parameter clipping, optional last-layer freeze, AdamW step, EMA teacher update (timm)."""
    for i, group in enumerate(nets.optimizer.param_groups):
        group["lr"] = lr
        if i == 0:  # group 0 holds the weights; biases and norms are never decayed
            group["weight_decay"] = weight_decay
    nets.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if nets.clip_grad > 0:
        clip_gradients(nets.student, nets.clip_grad)
    if freeze_last_layer:
        nets.student.head.last_layer.grad = None
    nets.optimizer.step()
    with torch.no_grad():  # ModelEmaV3.update is no_grad; apply_update_ (the per-step decay) is not
        nets.ema.apply_update_(nets.student, decay=momentum)
