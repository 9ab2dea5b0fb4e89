"""Per-iteration schedules (values indexed by global step), as in DINO (Caron et al. 2021).

The warmup + half-cosine shape is timm's ``CosineLRScheduler`` (per update, warmup as a prefix),
evaluated once per run into arrays: a schedule is then a pure function of the config, so a resumed
run needs no scheduler state, every process of a DDP run applies the same value, and the metrics log
records exactly the value applied. timm's scheduler writes one field ("lr") into every parameter group
of an optimizer; DINO also schedules the weight decay of the decayed group only, the teacher's EMA
momentum and the teacher temperature, so each shape is evaluated on a private one-parameter optimizer
(``SGD``, never stepped). The arrays equal the hand-written numpy version they replace bit for bit
(tests/ssl/test_schedules.py, which keeps it as the oracle).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def cosine_schedule(
    base: float, final: float, total_steps: int, *, warmup_steps: int = 0, warmup_start: float = 0.0
) -> np.ndarray:
    """Linear warmup from ``warmup_start`` to ``base`` over ``warmup_steps``, then a half cosine to ``final``.

    Parameters
    ----------
    base
        The value after warmup (the cosine's start).
    final
        The value the cosine ends at (reached after the last step).
    total_steps
        Length of the schedule.
    warmup_steps
        Steps of linear warmup (clipped to ``[0, total_steps]``).
    warmup_start
        The value at step 0 when there is a warmup.

    Returns
    -------
    numpy.ndarray
        float64, length ``total_steps``; step ``i`` uses ``values[i]``.
    """
    import torch
    from timm.scheduler import CosineLRScheduler

    total_steps = int(total_steps)
    warmup_steps = int(min(max(warmup_steps, 0), total_steps))
    values = np.empty(total_steps, dtype=np.float64)
    if total_steps == 0:
        return values
    holder = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=float(base))
    scheduler = CosineLRScheduler(
        holder,
        t_initial=max(total_steps - warmup_steps, 1),
        lr_min=float(final),
        warmup_t=warmup_steps,
        warmup_lr_init=float(warmup_start),
        warmup_prefix=True,
        t_in_epochs=False,
    )
    group = holder.param_groups[0]
    for step in range(total_steps):
        scheduler.step_update(step)
        values[step] = group["lr"]
    return values


@dataclass(frozen=True)
class Schedules:
    """lr, weight decay, EMA momentum and teacher temperature for every step."""

    lr: np.ndarray
    weight_decay: np.ndarray
    momentum: np.ndarray
    teacher_temp: np.ndarray

    @classmethod
    def build(cls, config, steps_per_epoch: int) -> Schedules:
        """The schedules of a :class:`lcd_ssl.TrainConfig` (DINO's warmup + cosine shapes).

        Parameters
        ----------
        config
            The run's config.
        steps_per_epoch
            Steps per epoch.
        """
        total = config.epochs * steps_per_epoch
        lr = config.lr * (config.batch_size / 256.0 if config.scale_lr else 1.0)
        warmup = round(config.warmup_epochs * steps_per_epoch)
        # warmup must leave at least one cosine step, so a tiny run with long warmup still reaches lr
        warmup = min(warmup, max(total - 1, 0))
        warm_epochs = min(config.warmup_teacher_temp_epochs, config.epochs)
        per_epoch = np.concatenate(
            [
                np.linspace(config.warmup_teacher_temp, config.teacher_temp, warm_epochs),
                np.full(config.epochs - warm_epochs, config.teacher_temp),
            ]
        )
        return cls(
            lr=cosine_schedule(lr, config.min_lr, total, warmup_steps=warmup),
            weight_decay=cosine_schedule(config.weight_decay, config.weight_decay_end, total),
            momentum=cosine_schedule(config.momentum_teacher, 1.0, total),
            teacher_temp=np.repeat(per_epoch, steps_per_epoch),
        )
