"""Thin helpers over torch.distributed that are no-ops in a single process (no process group)."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """Whether a process group is initialized."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """The rank of this process (0 without a process group)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def launched_by_torchrun() -> bool:
    """Whether torchrun's environment describes more than one process."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1


def init_from_env(device: str) -> bool:
    """Join the process group torchrun describes (gloo on CPU, nccl on CUDA); returns whether we did."""
    if is_distributed():
        return False
    if not launched_by_torchrun():
        return False
    backend = "nccl" if device.startswith("cuda") else "gloo"
    dist.init_process_group(backend=backend)
    return True


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """In-place sum over processes (identity without a process group)."""
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_gather_grad(t: torch.Tensor) -> torch.Tensor:
    """Concatenate every process's rows (rank order), keeping the autograd graph.

    The backward pass sums the gradient contributions of all processes for the local rows, so a loss
    computed identically on every rank from the gathered batch, then averaged by DDP, has the
    gradient of that loss on the global batch.
    """
    if not is_distributed():
        return t
    return _GatherRows.apply(t.contiguous())


class _GatherRows(torch.autograd.Function):
    """all_gather along dim 0 whose backward all-reduces (sums) the gradient and keeps the local rows.

    Written out because torch.distributed.nn.functional.all_gather (whose gloo backward goes through
    all-to-all) gave wrong local gradients in our 2-process gloo check (torch 2.15).
    """

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        ctx.n = t.shape[0]
        return all_gather_nograd(t)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        r = rank()
        return grad[r * ctx.n : (r + 1) * ctx.n]


def all_gather_nograd(t: torch.Tensor) -> torch.Tensor:
    """Every process's rows of ``t`` concatenated in rank order (no gradient).

    Parameters
    ----------
    t
        This process's rows.
    """
    if not is_distributed():
        return t
    parts = [torch.empty_like(t) for _ in range(world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts, dim=0)


def barrier() -> None:
    """Wait for every process (a no-op without a process group)."""
    if is_distributed():
        dist.barrier()
