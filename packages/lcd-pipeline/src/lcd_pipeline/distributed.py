"""``lcd run`` under torchrun: train and embed on every process, every other stage on rank 0.

``torchrun --nproc_per_node N -m lcd_pipeline run CONFIG`` (or ``lcd run --nproc N CONFIG``, which
starts exactly that) runs N copies of the engine. They join one process group here (gloo on CPU, NCCL
with GPUs), and the engine then:

- lets rank 0 alone take the results-folder lock, clean stale temporaries, decide which stages run
  (the fingerprints) and write ``stages.jsonl`` / ``config.json``; the other ranks get its decision;
- runs the stages in :data:`DISTRIBUTED_STAGES` on every rank: lcd-ssl trains one model with the
  global batch split over the processes (DDP), lcd-embed embeds shard k on rank k mod N into the tile
  store (``embeddings.parquet.shards/`` until rank 0 finishes it, so a killed run resumes per shard);
- runs every other stage on rank 0 while the others wait;
- after every stage, agrees on the outcome: a stage that failed on any rank stops every rank with
  that rank's one-line reason (the failing rank keeps its own traceback).

One process (no torchrun) takes none of these paths: every helper here is then a plain call.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lcd_core import InputError

#: Stages that run on every process under torchrun (the others run on rank 0 only).
DISTRIBUTED_STAGES = ("train", "embed")


@dataclass(frozen=True)
class Ranks:
    """Where this process stands in the run: rank, number of processes, whether it made the group."""

    rank: int = 0
    world: int = 1
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes the run's records."""
        return self.rank == 0


class RankFailed(InputError):
    """Another rank's stage failed: its one-line reason, raised on the ranks that did not fail.

    An :class:`lcd_core.InputError`, so ``lcd run`` on those ranks prints one line and exits 2 while
    the failing rank reports its own error (or traceback).
    """


def launched_by_torchrun() -> bool:
    """Whether torchrun's environment describes more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def join() -> Ranks:
    """Join torchrun's process group (gloo on CPU, NCCL when CUDA is available); one process: rank 0 of 1.

    Returns
    -------
    Ranks
        This process's rank and the number of processes.
    """
    if not launched_by_torchrun():
        return Ranks()
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size(), owns_group=False)
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl")
    else:
        dist.init_process_group(backend="gloo")
    return Ranks(dist.get_rank(), dist.get_world_size(), owns_group=True)


def leave(ranks: Ranks) -> None:
    """Leave the process group when :func:`join` made it.

    Parameters
    ----------
    ranks
        What :func:`join` returned.
    """
    if ranks.owns_group:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def barrier(ranks: Ranks) -> None:
    """Wait for every rank (nothing in one process).

    Parameters
    ----------
    ranks
        The run's ranks.
    """
    if ranks.world > 1:
        import torch.distributed as dist

        dist.barrier()


def _broadcast(value: Any) -> Any:
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _gather(value: Any, world: int) -> list[Any]:
    import torch.distributed as dist

    out: list[Any] = [None] * world
    dist.all_gather_object(out, value)
    return out


def _reason(exc: BaseException) -> str:
    from lcd_core import one_line

    text = one_line(str(exc)) if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def on_main(ranks: Ranks, work: Callable[[], Any], *, shared: Callable[[Any], Any] | None = None) -> Any:
    """Run ``work`` on rank 0 only and hand its outcome to every rank.

    Parameters
    ----------
    ranks
        The run's ranks.
    work
        The call (its exceptions propagate on rank 0; the other ranks raise :class:`RankFailed`).
    shared
        What the other ranks receive instead of the result (a picklable summary); default the result.

    Returns
    -------
    object
        The result on rank 0, ``shared(result)`` on the others.
    """
    if ranks.world == 1:
        return work()
    result, error = None, None
    if ranks.is_main:
        try:
            result = work()
        except BaseException as exc:
            error = exc
    payload = None
    if ranks.is_main:
        payload = (None, _reason(error)) if error is not None else ((shared or _same)(result), None)
    payload = _broadcast(payload)
    if error is not None:
        raise error
    if payload[1] is not None:
        raise RankFailed(f"rank 0 failed: {payload[1]}")
    return result if ranks.is_main else payload[0]


def _same(value: Any) -> Any:
    return value


def everywhere(ranks: Ranks, work: Callable[[], Any]) -> Any:
    """Run ``work`` on every rank; when it fails on any rank, every rank stops.

    Parameters
    ----------
    ranks
        The run's ranks.
    work
        The call (collective inside is fine: every rank makes it).

    Returns
    -------
    object
        This rank's result.
    """
    if ranks.world == 1:
        return work()
    result, error = None, None
    try:
        result = work()
    except BaseException as exc:
        error = exc
    reasons = _gather(None if error is None else _reason(error), ranks.world)
    if error is not None:
        raise error
    failed = [(r, why) for r, why in enumerate(reasons) if why is not None]
    if failed:
        raise RankFailed(f"rank {failed[0][0]} failed: {failed[0][1]}")
    return result


def run_stage(ranks: Ranks, name: str, work: Callable[[], Any]) -> Any:
    """Run one stage where it belongs: every rank for :data:`DISTRIBUTED_STAGES`, else rank 0.

    Parameters
    ----------
    ranks
        The run's ranks.
    name
        Stage name.
    work
        The stage's call.

    Returns
    -------
    object
        The stage's result on the ranks that ran it.
    """
    if name in DISTRIBUTED_STAGES:
        return everywhere(ranks, work)
    return on_main(ranks, work, shared=lambda _: None)


def torchrun_command(nproc: int, args: Sequence[str]) -> list[str]:
    """The torchrun command line that runs ``python -m lcd_pipeline <args>`` on ``nproc`` processes.

    Parameters
    ----------
    nproc
        Processes on this machine (one per GPU, or CPU processes with gloo).
    args
        The ``lcd`` arguments (``run CONFIG ...``), without ``--nproc``.
    """
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={int(nproc)}",
        "-m",
        "lcd_pipeline",
        *args,
    ]


def launch(nproc: int, args: Sequence[str]) -> int:
    """Start ``lcd <args>`` under torchrun on ``nproc`` local processes and wait; its exit code.

    ``OMP_NUM_THREADS`` is set to the cores per process when unset (torchrun would set 1 and warn).

    Parameters
    ----------
    nproc
        Processes.
    args
        The ``lcd`` arguments.
    """
    if nproc < 1:
        raise InputError(f"--nproc must be at least 1, got {nproc}")
    if launched_by_torchrun():
        raise InputError("--nproc starts torchrun itself: drop it when running under torchrun")
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(nproc))))
    return subprocess.call(torchrun_command(nproc, args), env=env)
