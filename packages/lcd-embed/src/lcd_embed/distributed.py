"""Scale-out under torchrun: process group setup, manifest shards, shard files, resume fingerprints.

The manifest is cut into fixed-size shards of consecutive rows (independent of the number of
processes, so a re-run with another world size still reuses finished shards); shard k goes to rank
k mod world. Each finished shard is a tile-store part (``part-KKKKK-of-NNNNN.parquet``: manifest row,
tile, tile coordinates, features; :mod:`lcd_core.tiles`) plus a JSON done marker written last
(``_part-....json``), both atomically; a re-run skips shards whose marker carries the same
fingerprint. Rank 0 then either makes the shard folder the output tile store (``.parquet``: no copy,
memory independent of the number of tiles) or merges the shards in manifest order into one AnnData
(``.h5ad`` / ``.zarr``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lcd_core import InputError, part_name, read_tile_part, write_json, write_tile_part

from .device import resolve_device


@dataclass
class DistContext:
    """Where this process runs: rank, world size, device; whether we created the process group."""

    rank: int
    world: int
    device: torch.device
    owns_group: bool

    @property
    def is_main(self) -> bool:
        """Whether this process is rank 0 (the one that merges and writes)."""
        return self.rank == 0


def setup(device: str | torch.device | None = "auto") -> DistContext:
    """Join the torchrun process group when there is one (gloo on CPU, nccl on GPU); else a single process.

    Parameters
    ----------
    device
        See :func:`lcd_embed.resolve_device` (``"auto"``: this process's GPU when CUDA is available).
    """
    import torch.distributed as dist

    device = resolve_device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    world_env = int(os.environ.get("WORLD_SIZE", "1"))
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), device, owns_group=False)
    if world_env > 1:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        return DistContext(dist.get_rank(), dist.get_world_size(), device, owns_group=True)
    return DistContext(0, 1, device, owns_group=False)


def teardown(ctx: DistContext) -> None:
    """Leave the process group when :func:`setup` created it.

    Parameters
    ----------
    ctx
        The context :func:`setup` returned.
    """
    import torch.distributed as dist

    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (a no-op in one process).

    Parameters
    ----------
    ctx
        The run's context.
    """
    import torch.distributed as dist

    if ctx.world > 1:
        dist.barrier()


def gather(ctx: DistContext, obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable, small), in rank order, on every rank.

    Parameters
    ----------
    ctx
        The run's context.
    obj
        This rank's value.
    """
    import torch.distributed as dist

    if ctx.world == 1:
        return [obj]
    out: list[Any] = [None] * ctx.world
    dist.all_gather_object(out, obj)
    return out


def shard_ranges(n_rows: int, shard_size: int) -> list[tuple[int, int]]:
    """Consecutive [start, stop) row ranges of at most ``shard_size`` rows.

    Parameters
    ----------
    n_rows
        Manifest rows.
    shard_size
        Rows per shard.
    """
    if shard_size < 1:
        raise InputError(f"shard size must be positive, got {shard_size}")
    return [(s, min(s + shard_size, n_rows)) for s in range(0, n_rows, shard_size)]


def shards_of_rank(n_shards: int, rank: int, world: int) -> list[int]:
    """Shard k goes to rank k mod world.

    Parameters
    ----------
    n_shards
        Number of shards.
    rank, world
        This process and the number of processes.
    """
    return list(range(rank, n_shards, world))


def fingerprint(payload: dict[str, Any]) -> str:
    """Stable hash of everything that determines a run's numbers.

    Parameters
    ----------
    payload
        JSON-able description of the run.
    """
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def state_dict_digest(model: torch.nn.Module) -> str:
    """Hash of a model's weights (names and bytes).

    Parameters
    ----------
    model
        The model.
    """
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def shard_files(shard_dir: Path, k: int, n: int) -> tuple[Path, Path]:
    """The data file (a tile-store part) and the done marker of shard ``k`` of ``n``.

    The marker's name starts with ``_`` so that parquet dataset readers skip it.

    Parameters
    ----------
    shard_dir
        ``<out>.shards``.
    k, n
        Shard index and count.
    """
    data = shard_dir / part_name(k, n)
    return data, shard_dir / f"_{data.stem}.json"


def shard_done(shard_dir: Path, k: int, n: int, fp: str) -> bool:
    """True when shard k has its data and a done marker with this fingerprint.

    Parameters
    ----------
    shard_dir
        ``<out>.shards``.
    k, n
        Shard index and count.
    fp
        This run's fingerprint (a marker with another one is an error, never mixed in).
    """
    data, marker = shard_files(shard_dir, k, n)
    if not (data.is_file() and marker.is_file()):
        return False
    try:
        info = json.loads(marker.read_text())
    except json.JSONDecodeError:
        return False
    if info.get("fingerprint") != fp:
        raise InputError(
            f"{shard_dir} holds shards of a different run (other manifest, model or settings); "
            "delete that folder or choose another output"
        )
    return True


def write_shard(
    shard_dir: Path,
    k: int,
    n: int,
    fp: str,
    arrays: dict[str, np.ndarray],
    failures: list[dict],
    feature_names: list[str],
) -> None:
    """Shard data (a tile-store part) then its done marker, each atomically.

    Parameters
    ----------
    shard_dir
        ``<out>.shards``.
    k, n
        Shard index and count.
    fp
        This run's fingerprint.
    arrays
        ``X``, ``rows``, ``tiles``, ``coords``.
    failures
        Failure records of the shard.
    feature_names
        The feature column names.
    """
    data, marker = shard_files(shard_dir, k, n)
    coords = arrays["coords"].reshape(-1, 2)
    ids = {
        "manifest_row": arrays["rows"],
        "tile": arrays["tiles"],
        "tile_y": coords[:, 0],
        "tile_x": coords[:, 1],
    }
    write_tile_part(data, ids, arrays["X"], feature_names=feature_names)
    info = {"fingerprint": fp, "n_tiles": len(arrays["rows"]), "failures": failures}
    write_json(json.loads(json.dumps(info, default=str)), marker)


def read_shard(shard_dir: Path, k: int, n: int) -> tuple[dict[str, np.ndarray], list[dict]]:
    """The arrays and failures :func:`write_shard` wrote.

    Parameters
    ----------
    shard_dir
        ``<out>.shards``.
    k, n
        Shard index and count.
    """
    ids, X = read_tile_part(shard_files(shard_dir, k, n)[0])
    arrays = {
        "X": X,
        "rows": ids["manifest_row"],
        "tiles": ids["tile"],
        "coords": np.stack([ids["tile_y"], ids["tile_x"]], axis=1),
    }
    return arrays, read_failures(shard_dir, k, n)


def read_failures(shard_dir: Path, k: int, n: int) -> list[dict]:
    """The failure records in shard ``k``'s done marker.

    Parameters
    ----------
    shard_dir
        ``<out>.shards``.
    k, n
        Shard index and count.
    """
    return json.loads(shard_files(shard_dir, k, n)[1].read_text())["failures"]
