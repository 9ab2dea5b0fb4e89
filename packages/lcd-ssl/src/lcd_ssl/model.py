"""Student and teacher networks: a timm ViT backbone with a DINO head; EMA teacher update."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from .config import ConfigError
from .heads import DINOHead, MultiCropModel


def backbone_kwargs(config, in_chans: int) -> dict[str, Any]:
    """The timm ``create_model`` keyword arguments of the backbone (without drop path)."""
    kwargs = {
        "num_classes": 0,
        "dynamic_img_size": True,
        "in_chans": in_chans,
        "img_size": config.global_crop_size,
    }
    kwargs.update(config.model_kwargs)
    return kwargs


def create_backbone(name: str, kwargs: dict[str, Any], *, drop_path_rate: float = 0.0) -> nn.Module:
    """A randomly initialized timm ViT (never downloads weights)."""
    import timm

    try:
        return timm.create_model(name, pretrained=False, drop_path_rate=drop_path_rate, **kwargs)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ConfigError(f"cannot create timm model {name!r} with {kwargs}: {exc}") from exc


def build_student_teacher(config, in_chans: int) -> tuple[MultiCropModel, MultiCropModel]:
    """Student (drop path ``config.drop_path_rate``) and its deep-copied teacher (eval mode, frozen).

    Weights come from the current torch RNG state: seed it first for reproducible initialization.
    """
    backbone = create_backbone(
        config.model, backbone_kwargs(config, in_chans), drop_path_rate=config.drop_path_rate
    )
    head = DINOHead(
        backbone.num_features,
        config.out_dim,
        hidden_dim=config.hidden_dim,
        bottleneck_dim=config.bottleneck_dim,
    )
    student = MultiCropModel(backbone, head)
    teacher = copy.deepcopy(student)
    teacher.eval()  # drop path off; ViTs have no batch norm, so eval only changes stochastic depth
    for p in teacher.parameters():
        p.requires_grad_(False)
    return student, teacher


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """``teacher = m * teacher + (1 - m) * student`` for every parameter."""
    t_params = list(teacher.parameters())
    s_params = [p.detach() for p in student.parameters()]
    torch._foreach_mul_(t_params, momentum)
    torch._foreach_add_(t_params, s_params, alpha=1.0 - momentum)


def param_groups(model: nn.Module) -> list[dict[str, Any]]:
    """Weights decayed; biases and 1-d (norm) parameters not (DINO's get_params_groups)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if name.endswith(".bias") or p.ndim <= 1 else decay).append(p)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


@torch.no_grad()
def clip_gradients(model: nn.Module, clip: float) -> None:
    """Per-parameter gradient-norm clipping (DINO's clip_gradients)."""
    for p in model.parameters():
        if p.grad is not None:
            norm = p.grad.norm(2)
            p.grad.mul_(torch.clamp(clip / (norm + 1e-6), max=1.0))  # no host sync; x * 1.0 is exact
