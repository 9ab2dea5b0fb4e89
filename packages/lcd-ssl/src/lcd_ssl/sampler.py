"""Epoch plans of training samples and a (distributed, resumable) sampler over them.

A *sample* is ``(anchor, partner, seed, has_partner)``: global crop 1 (and half the local crops)
come from the anchor, global crop 2 (and the other half) from the partner; ``seed`` drives every
random choice of its augmentations. The plan of an epoch depends only on ``(seed, epoch)``; each
step takes the next ``batch_size`` samples, and rank ``r`` of ``W`` processes takes the
``r``-th slice of ``batch_size / W`` of them. So augmentations do not depend on DataLoader
workers, and one process with the global batch sees exactly the samples of W processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from lcd_core import InputError
from torch.utils.data import Sampler

from .pairing import PartnerIndex


@dataclass(frozen=True)
class EpochPlan:
    """The samples of one epoch (all processes): anchor, partner, seed and whether a partner exists."""

    anchors: np.ndarray
    partners: np.ndarray
    seeds: np.ndarray
    has_partner: np.ndarray


class PlanError(InputError):
    """The data cannot fill the requested batches."""


class CrossBatchSampler(Sampler):
    """Yields this process's samples of one epoch, from a given step on.

    Parameters
    ----------
    n_images
        Number of images (fields) in the dataset.
    batch_size
        Global batch size (samples per step over all processes).
    steps_per_epoch
        Steps per epoch; ``None``: ``n_anchors // batch_size``.
    seed
        Base seed.
    partner_index
        Cross-batch index, or ``None`` (partner = anchor: plain DINO, both global crops of one image).
    no_partner
        ``"self"``: anchors without partner are kept and paired with themselves (``has_partner``
        False, counted); ``"drop"``: they are not used as anchors.
    rank, world_size
        This process and the number of processes.
    """

    def __init__(
        self,
        n_images: int,
        *,
        batch_size: int,
        steps_per_epoch: int | None = None,
        seed: int = 0,
        partner_index: PartnerIndex | None = None,
        no_partner: str = "self",
        rank: int = 0,
        world_size: int = 1,
    ):
        if batch_size % world_size:
            raise PlanError(
                f"batch_size {batch_size} is not divisible by the number of processes {world_size}"
            )
        self.partner_index = partner_index
        anchors = np.arange(n_images, dtype=np.int64)
        if partner_index is not None and no_partner == "drop":
            anchors = anchors[partner_index.n_candidates > 0]
            if len(anchors) == 0:
                raise PlanError(
                    "no image has a partner of the same condition in another replica (no_partner='drop')"
                )
        self.anchor_pool = anchors
        if steps_per_epoch is None:
            steps_per_epoch = len(anchors) // batch_size
            if steps_per_epoch == 0:
                raise PlanError(
                    f"{len(anchors)} anchor images cannot fill one batch of {batch_size}; lower batch_size or set steps_per_epoch"
                )
        self.batch_size = batch_size
        self.steps_per_epoch = int(steps_per_epoch)
        self.seed = int(seed)
        self.rank, self.world_size = rank, world_size
        self.local_batch = batch_size // world_size
        self.epoch = 0
        self.start_step = 0

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Select the epoch and the first step to yield (a resumed run starts mid-epoch)."""
        self.epoch, self.start_step = int(epoch), int(start_step)

    def plan(self, epoch: int) -> EpochPlan:
        """The global sample list of an epoch (all processes)."""
        rng = np.random.default_rng([self.seed, int(epoch), 0x5EED])
        total = self.steps_per_epoch * self.batch_size
        reps = -(-total // len(self.anchor_pool))
        anchors = np.concatenate([rng.permutation(self.anchor_pool) for _ in range(reps)])[:total]
        u = rng.random(total)
        seeds = rng.integers(0, 2**62, size=total, dtype=np.int64)
        if self.partner_index is None:
            partners, has = anchors.copy(), np.ones(total, dtype=bool)
        else:
            partners, has = self.partner_index.draw(anchors, u)
        return EpochPlan(anchors, partners, seeds, has)

    def __iter__(self) -> Iterator[tuple[int, int, int, bool]]:
        p = self.plan(self.epoch)
        for step in range(self.start_step, self.steps_per_epoch):
            lo = step * self.batch_size + self.rank * self.local_batch
            for i in range(lo, lo + self.local_batch):
                yield int(p.anchors[i]), int(p.partners[i]), int(p.seeds[i]), bool(p.has_partner[i])

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.start_step) * self.local_batch
