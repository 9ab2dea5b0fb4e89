"""One optimization step, shared by the training loop and the step-time benchmark."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from torch import nn

from .losses import MultiCropLoss, barlow_term
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


def chunked_backward(
    nets: Networks, crops: list[torch.Tensor], replicas: torch.Tensor, teacher_temp: float, chunks: int
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One process doing what ``chunks`` DDP processes do with the same global batch; fills the gradients.

    Chunk ``k`` holds rows ``[k*b, (k+1)*b)`` of the batch, the rows rank ``k`` of a ``chunks``-process
    run gets from the sampler. Each chunk is forwarded on its own (same shapes as on that rank); its
    DINO term is its own; the Barlow term is computed once on the rows of every chunk, laid out as
    the all-gather lays them out, and its gradient is multiplied by ``chunks`` as the gather's
    backward all-reduces ``chunks`` identical copies; each chunk is then backpropagated alone and its
    parameter gradients are multiplied by ``1 / chunks`` and added in chunk order, as DDP's reducer
    does; the teacher centers get the sum of the chunks' sums. With two chunks every sum that DDP
    computes across processes has two terms, whose order does not matter: the gradients, hence the
    weights, equal a 2-process run's bit for bit (at the same thread count; measured in
    tests/pipeline/test_distributed.py). Memory is that of the whole batch (every chunk's graph is
    kept until the Barlow gradient is known).

    Parameters
    ----------
    nets
        The run's networks (``nets.model`` is the plain student: one process).
    crops
        The global batch's crops (global crops first), ``(rows, C, H, W)`` each.
    replicas
        (rows, 2) replica ids of the two global crops.
    teacher_temp
        Sharpening temperature of this step.
    chunks
        Number of chunks (divides the rows).

    Returns
    -------
    tuple
        ``(out, teacher_out)`` as :func:`forward_losses`: ``loss``, ``dino``, ``barlow`` averaged over
        the chunks (for the log), ``teacher_probs`` of every row; the teacher outputs of every row.
    """
    loss_fn, n = nets.loss_fn, crops[0].shape[0]
    b = n // chunks
    crops = [(c - nets.mean) / nets.std for c in crops]
    parts = []
    for k in range(chunks):
        rows = slice(k * b, (k + 1) * b)
        mine = [c[rows] for c in crops]
        ids = torch.cat([replicas[rows, 0], replicas[rows, 1]])
        with nets.autocast:
            with torch.no_grad():
                teacher_out = nets.teacher_fwd(mine[:2])
            student_out = nets.model(mine)
        terms = loss_fn.dino_terms(
            student_out, teacher_out, ids, teacher_temp=teacher_temp, n_student_views=len(crops)
        )
        parts.append((terms, teacher_out.detach().float(), ids))
    barlow = torch.zeros((), device=crops[0].device)
    upstream = [None] * chunks
    if loss_fn.use_barlow:
        # the layout of lcd_ssl.distributed's all-gather: rows of rank 0, then rank 1, ...
        t_all = torch.cat(
            [centered.reshape(2, b, -1).transpose(0, 1).contiguous() for (_, centered, _, _), _, _ in parts]
        ).transpose(0, 1)
        gathered = torch.cat([s.detach().transpose(0, 1).contiguous() for (s, _, _, _), _, _ in parts])
        gathered.requires_grad_(True)
        with torch.enable_grad():
            barlow = barlow_term(t_all, gathered.transpose(0, 1), lambd=loss_fn.barlow_lambda)
            (grad,) = torch.autograd.grad(loss_fn.barlow_scale * barlow, gathered)
        grad = grad * chunks  # the gather's backward: an all-reduce of `chunks` identical gradients
        upstream = [grad[k * b : (k + 1) * b].transpose(0, 1) for k in range(chunks)]
        barlow = barlow.detach()
    params = [p for p in nets.student.parameters() if p.requires_grad]
    total: list[torch.Tensor | None] = [None] * len(params)
    for k, ((student, _, _, dino), _, _) in enumerate(parts):
        for p in params:
            p.grad = None
        if upstream[k] is None:
            dino.backward()
        else:
            torch.autograd.backward([dino, student], [None, upstream[k]])
        for i, p in enumerate(params):  # DDP's reducer: grad * (1 / world), then the all-reduce's sum
            if p.grad is not None:
                part = p.grad * (1.0 / chunks)
                total[i] = part if total[i] is None else total[i] + part
    for p, g in zip(params, total, strict=True):
        p.grad = g
    sums = [loss_fn.centers.sums(t_out, ids) for _, t_out, ids in parts]
    loss_fn.centers.apply_sums(sum_in_order([s for s, _ in sums]), sum_in_order([c for _, c in sums]))
    dinos = torch.stack([dino.detach() for (_, _, _, dino), _, _ in parts])
    losses = dinos + loss_fn.barlow_scale * barlow if loss_fn.use_barlow else dinos
    out = {
        "loss": losses.mean(),
        "dino": dinos.mean(),
        "barlow": barlow,
        "teacher_probs": torch.cat([probs for (_, _, probs, _), _, _ in parts], dim=1),
    }
    return out, torch.cat([t for _, t, _ in parts])


def sum_in_order(values: list[torch.Tensor]) -> torch.Tensor:
    """``((v0 + v1) + v2) + ...``: the order an all-reduce of two processes cannot change.

    Parameters
    ----------
    values
        Tensors of one shape.
    """
    total = values[0]
    for v in values[1:]:
        total = total + v
    return total


def apply_update(
    nets: Networks,
    loss: torch.Tensor | None,
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
    if loss is not None:  # None: the gradients are already there (chunked_backward)
        nets.optimizer.zero_grad(set_to_none=True)
        loss.backward()
    if nets.clip_grad > 0:
        clip_gradients(nets.student, nets.clip_grad)
    if freeze_last_layer:
        nets.student.head.last_layer.grad = None
    nets.optimizer.step()
    with torch.no_grad():  # ModelEmaV3.update is no_grad; apply_update_ (the per-step decay) is not
        nets.ema.apply_update_(nets.student, decay=momentum)
