"""Per-iteration schedules (values indexed by global step), as in DINO (Caron et al. 2021)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def cosine_schedule(
    base: float, final: float, total_steps: int, *, warmup_steps: int = 0, warmup_start: float = 0.0
) -> np.ndarray:
    """Linear warmup from ``warmup_start`` to ``base`` over ``warmup_steps``, then a half cosine to ``final``.

    Returns a float64 array of length ``total_steps``; step ``i`` uses ``values[i]``.
    """
    warmup_steps = int(min(max(warmup_steps, 0), total_steps))
    warm = np.linspace(warmup_start, base, warmup_steps, endpoint=False) if warmup_steps else np.zeros(0)
    rest = total_steps - warmup_steps
    i = np.arange(rest)
    cos = final + 0.5 * (base - final) * (1 + np.cos(np.pi * i / max(rest, 1)))
    return np.concatenate([warm, cos]).astype(np.float64)


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
