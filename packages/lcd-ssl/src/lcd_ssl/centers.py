"""Teacher centers, one per experimental replica (one in total for the non-cross-batch variants).

DINO centering (Caron et al. 2021) subtracts an EMA of the batch mean of teacher outputs before
sharpening, which prevents one prototype from dominating. Haslum et al. 2023 ("Metadata-guided
Consistency Learning for High Content Images") keep one center per batch/replica so the replica's
technical signature is removed from the teacher targets: each teacher row is centered by its own
image's replica center, and each replica's center is updated from the rows of that replica only.
"""

from __future__ import annotations

import torch
from torch import nn

from .distributed import all_reduce_sum


class ReplicaCenters(nn.Module):
    """An (n_replicas, dim) buffer of EMA centers.

    Parameters
    ----------
    n_replicas
        Number of replicas (1: the ordinary DINO center).
    dim
        Output dimension of the head.
    momentum
        EMA momentum (DINO: 0.9): ``center = m * center + (1 - m) * batch_mean``.
    """

    def __init__(self, n_replicas: int, dim: int, *, momentum: float = 0.9):
        super().__init__()
        self.momentum = float(momentum)
        self.register_buffer("centers", torch.zeros(n_replicas, dim))

    def center(self, teacher_out: torch.Tensor, replica_ids: torch.Tensor) -> torch.Tensor:
        """``teacher_out[i] - centers[replica_ids[i]]``."""
        return teacher_out - self.centers[replica_ids]

    @torch.no_grad()
    def update(self, teacher_out: torch.Tensor, replica_ids: torch.Tensor) -> torch.Tensor:
        """EMA update of the centers of the replicas present in this (global) batch.

        Sums and counts are all-reduced under DDP, so every process holds the same centers and the
        result equals one process seeing the whole global batch. Replicas absent from the batch keep
        their centers. Returns the per-replica row counts of the global batch.
        """
        sums, counts = self.sums(teacher_out, replica_ids)
        all_reduce_sum(sums)
        all_reduce_sum(counts)
        return self.apply_sums(sums, counts)

    @torch.no_grad()
    def sums(self, teacher_out: torch.Tensor, replica_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-replica sums and row counts of ``teacher_out`` (this process's rows only).

        Parameters
        ----------
        teacher_out
            (rows, dim) teacher outputs.
        replica_ids
            (rows,) replica index of each row.
        """
        n, dim = self.centers.shape
        x = teacher_out.detach().float()
        sums = torch.zeros(n, dim, dtype=torch.float32, device=x.device).index_add_(0, replica_ids, x)
        counts = torch.bincount(replica_ids, minlength=n).to(torch.float32)
        return sums, counts

    @torch.no_grad()
    def apply_sums(self, sums: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """EMA update from the global batch's per-replica ``sums`` and ``counts``; returns ``counts``.

        Parameters
        ----------
        sums, counts
            What :meth:`sums` gives, summed over processes (or chunks).
        """
        present = counts > 0
        batch_mean = sums[present] / counts[present, None]
        self.centers[present] = self.centers[present] * self.momentum + batch_mean * (1.0 - self.momentum)
        return counts
