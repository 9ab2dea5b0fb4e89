"""The training loop, split as DINO's ``train_dino`` / ``train_one_epoch`` are.

:func:`train` sets up the process group and runs, in order:

- :func:`_build`: device, data (field reader with the run's model-input recipe, partner index,
  crops, sampler), model (seeded), loss, optimizer, schedules;
- :func:`_resume`: the state of ``checkpoint.pt`` when the run folder has one (else a new
  ``train_config.json``);
- :func:`_networks`: DDP / ``torch.compile`` wrappers, standardization, autocast;
- :func:`_train_epoch` per epoch, :func:`_train_step` per step, :func:`_save` for checkpoints.

The order of every random draw is the one of the single function this replaced, so runs and
resumptions are bit-identical to lcd-ssl 0.1.0's.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lcd_core
import numpy as np
import torch
from lcd_core import InputError, progress, remove_stale_temps, write_json
from torch.utils.data import DataLoader

from . import distributed as D
from .augment import MultiCrop
from .checkpoint import STATE_FILE, capture_rng, load_state, restore_rng, save_state
from .config import ConfigError, TrainConfig, schedule_fields_differ
from .data import CropDataset, FieldReader, as_source
from .losses import MultiCropLoss
from .model import build_student_teacher, param_groups
from .monitor import MetricsLog, normalized_std, teacher_entropy, teacher_mutual_information
from .pairing import PartnerIndex, build_partner_index
from .sampler import CrossBatchSampler
from .schedules import Schedules
from .step import Networks, apply_update, chunked_backward, forward_losses

METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "train_config.json"


class NonFiniteLossError(RuntimeError):
    """The loss became NaN/inf; training stopped and the last good checkpoint was kept."""


def _seed_worker(worker_id: int) -> None:
    # torch seeds each worker with base_seed + worker_id (base_seed from the loader's own generator);
    # give numpy and python the same so any library randomness in workers is reproducible too.
    s = torch.initial_seed() % 2**32
    np.random.seed(s)  # noqa: NPY002 (seed the global state libraries may use)
    random.seed(s)


def _device(config: TrainConfig) -> torch.device:
    """``config.device`` by lcd-embed's rule (``"auto"``: CUDA when available); selects the GPU."""
    from lcd_embed import resolve_device

    try:
        device = resolve_device(config.device)
    except lcd_core.ConfigError as exc:
        raise ConfigError(str(exc)) from None
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def train(
    data: Any,
    config: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    max_steps: int | None = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """Train a ViT with DINO (+ Barlow, cross-batch, plane-agnostic crops) and return the run folder.

    Parameters
    ----------
    data
        A manifest (CSV/TSV/parquet path or DataFrame, read with lcd-embed) or :class:`InMemoryImages`.
    config
        The run's :class:`TrainConfig`.
    out_dir
        Run folder: ``checkpoint.pt`` (latest training state), ``metrics.jsonl``,
        ``train_config.json``. When it already holds a checkpoint the run resumes from it (the
        config must match, runtime options excepted); a finished run returns at once.
    max_steps
        Stop (with a checkpoint) once this global step is reached, without changing the schedules:
        the run can be continued later by calling ``train`` again.
    on_step
        Called on every process after each step with that step's metrics record.

    Returns
    -------
    pathlib.Path
        The run folder. Under torchrun, every process must call ``train``; rank 0 writes the files.

    Raises
    ------
    NonFiniteLossError
        The loss became NaN/inf (the last checkpoint is left untouched).
    ConfigError, DataError, MetadataError
        Invalid options, images or metadata (the message names the option, file or column); all
        are :class:`lcd_core.InputError`.
    """
    config.validate()
    device = _device(config)
    started = D.init_from_env(device.type)
    out = Path(out_dir)
    created = _Created(out) if D.rank() == 0 else None
    threads = torch.get_num_threads()
    if config.threads is not None:  # results then do not depend on OMP_NUM_THREADS (see TrainConfig)
        torch.set_num_threads(int(config.threads))
    try:
        if created is not None and out.is_dir():
            remove_stale_temps(out)  # a killed run's half-written checkpoint.pt temporaries
        run = _build(data, config, out, device)
        _resume(run)
        nets = _networks(run)
        log = MetricsLog(run.out_dir / METRICS_FILE, resume_step=run.step, enabled=run.is_main)
        stop_at = run.total_steps if max_steps is None else min(run.total_steps, max_steps)
        if run.is_main and run.step == 0:
            log.write(_start_record(run))
        show = run.is_main and config.progress and run.step < stop_at
        with progress(stop_at - run.step, "lcd-ssl", enabled=show, unit="steps") as advance:
            while run.step < stop_at:
                _train_epoch(run, nets, log, advance, stop_at=stop_at, on_step=on_step)
        return run.out_dir
    except (InputError, OSError):  # bad input (a missing image is a FileNotFoundError), not a bug
        if created is not None:
            created.undo()
        raise
    finally:
        torch.set_num_threads(threads)
        if started:
            torch.distributed.destroy_process_group()


class _Created:
    """What a new run writes before its first checkpoint, removed again when bad input stops it.

    A run refused for its input (an unreadable image, a wrong option found while building) then leaves
    no half-started run folder (``train_config.json`` and a ``metrics.jsonl`` without a checkpoint).
    Once ``checkpoint.pt`` exists, nothing is removed: the run can be resumed.
    """

    def __init__(self, out: Path):
        self.out = out
        self.existed = out.is_dir()
        self.before = set(out.iterdir()) if self.existed else set()
        self.resumable = (out / STATE_FILE).exists()

    def undo(self) -> None:
        if self.resumable or (self.out / STATE_FILE).exists():
            return
        if not self.existed:
            shutil.rmtree(self.out, ignore_errors=True)
            return
        for entry in set(self.out.iterdir()) - self.before:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


@dataclass
class _Run:
    """Everything :func:`_build` makes; ``step`` and ``fallback_total`` advance as the run goes."""

    config: TrainConfig
    out_dir: Path
    device: torch.device
    rank: int
    world: int
    source: Any
    index: PartnerIndex | None
    recipe: Any  # lcd_embed.InputConfig with the model's in_chans: standardization and what export records
    n_planes: int
    in_chans: int
    dataset: CropDataset
    sampler: CrossBatchSampler
    student: torch.nn.Module
    ema: torch.nn.Module  # timm ModelEmaV3; the teacher network is ema.module
    loss_fn: MultiCropLoss
    optimizer: torch.optim.Optimizer
    sched: Schedules
    step: int = 0
    fallback_total: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def teacher(self) -> torch.nn.Module:
        return self.ema.module

    @property
    def steps_per_epoch(self) -> int:
        return self.sampler.steps_per_epoch

    @property
    def total_steps(self) -> int:
        return self.config.epochs * self.steps_per_epoch

    @property
    def n_replicas(self) -> int:
        return 1 if self.index is None else len(self.index.replica_names)

    @property
    def state_path(self) -> Path:
        return self.out_dir / STATE_FILE


def _build(data: Any, config: TrainConfig, out_dir: Path, device: torch.device) -> _Run:
    """Data (reader, partner index, crops, sampler), then the seeded model, loss, optimizer and schedules."""
    rank, world = D.rank(), D.world_size()
    if world > 1 and config.batch_chunks not in (None, world):
        raise ConfigError(
            f"batch_chunks={config.batch_chunks} with {world} processes: under torchrun it must equal the "
            "number of processes (or be unset)"
        )
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    D.barrier()

    source = as_source(data)
    index = None
    if config.cross_batch:
        index = build_partner_index(
            source.obs,
            replica_key=config.replica_key,
            condition_keys=(config.compound_key, config.dose_key, config.timepoint_key),
        )
    reader = FieldReader(source, config.input_config(), cache=config.cache_images)
    n_planes = reader(0).shape[0]
    in_chans = config.in_chans or (1 if config.plane_agnostic else n_planes)
    if not config.plane_agnostic and n_planes not in (1, in_chans):
        raise ConfigError(
            f"fields have {n_planes} planes but in_chans={in_chans}; select planes (planes=[...]) or set in_chans={n_planes}"
        )
    multicrop = MultiCrop(
        global_size=config.global_crop_size,
        local_size=config.local_crop_size,
        global_scale=tuple(config.global_crop_scale),
        local_scale=tuple(config.local_crop_scale),
        n_local=config.n_local_crops,
        window_size=config.window_size,
        in_chans=in_chans,
        plane_agnostic=config.plane_agnostic,
        min_std_fraction=config.crop_min_std,
        blur=config.blur,
    )
    dataset = CropDataset(reader, multicrop, None if index is None else index.replica_ids)
    sampler = CrossBatchSampler(
        len(source),
        batch_size=config.batch_size,
        steps_per_epoch=config.steps_per_epoch,
        seed=config.seed,
        partner_index=index,
        no_partner=config.no_partner,
        rank=rank,
        world_size=world,
    )

    torch.manual_seed(config.seed)
    student, ema = build_student_teacher(config, in_chans)
    student.to(device)
    ema.to(device)
    loss_fn = MultiCropLoss(
        config.out_dim,
        n_replicas=1 if index is None else len(index.replica_names),
        student_temp=config.student_temp,
        center_momentum=config.center_momentum,
        use_barlow=config.use_barlow,
        barlow_lambda=config.barlow_lambda,
        barlow_weight=config.barlow_weight,
    ).to(device)
    optimizer = torch.optim.AdamW(param_groups(student))
    sched = Schedules.build(config, sampler.steps_per_epoch)
    return _Run(
        config=config,
        out_dir=out_dir,
        device=device,
        rank=rank,
        world=world,
        source=source,
        index=index,
        recipe=config.input_config(in_chans),
        n_planes=n_planes,
        in_chans=in_chans,
        dataset=dataset,
        sampler=sampler,
        student=student,
        ema=ema,
        loss_fn=loss_fn,
        optimizer=optimizer,
        sched=sched,
    )


def _resume(run: _Run) -> None:
    """Load ``checkpoint.pt`` (same options required, runtime ones excepted); or record a new run's config."""
    config = run.config
    if run.state_path.exists():
        state = load_state(run.state_path)
        differ = schedule_fields_differ(state["config"], config.to_dict())
        if differ:
            raise ConfigError(
                f"{run.state_path} was trained with different options ({', '.join(differ)}); use another out_dir or the same config"
            )
        run.student.load_state_dict(state["student"])
        run.teacher.load_state_dict(state["teacher"])
        run.optimizer.load_state_dict(state["optimizer"])
        run.loss_fn.load_state_dict(state["loss"])
        run.step, run.fallback_total = int(state["step"]), int(state["fallback_total"])
        rngs = state["rng"]
        if len(rngs) == run.world:
            restore_rng(rngs[run.rank])
        else:  # another process count: the stream cannot continue; reseed deterministically
            torch.manual_seed(config.seed + 1_000_003 * run.step + run.rank)
    elif run.is_main:
        write_json(
            {"config": config.to_dict(), "in_chans": run.in_chans, "n_planes": run.n_planes},
            run.out_dir / CONFIG_FILE,
        )


def _networks(run: _Run) -> Networks:
    """The student as trained (DDP / compiled), the teacher's forward, standardization, autocast."""
    config, device = run.config, run.device
    model = run.student
    if D.is_distributed():
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(
            run.student, device_ids=[device.index] if device.type == "cuda" else None
        )
    teacher_fwd = run.teacher
    if config.compile:
        model, teacher_fwd = torch.compile(model), torch.compile(run.teacher)
    mean, std = (torch.from_numpy(a).to(device) for a in run.recipe.channel_stats(run.in_chans))
    autocast = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        if config.precision == "bf16"
        else nullcontext()
    )
    return Networks(
        run.student,
        run.teacher,
        model,
        teacher_fwd,
        run.loss_fn,
        run.optimizer,
        autocast,
        mean,
        std,
        config.clip_grad,
        run.ema,
    )


def _start_record(run: _Run) -> dict[str, Any]:
    config = run.config
    return {
        "event": "start",
        "step": 0,
        "variant": config.variant,
        "steps_total": run.total_steps,
        "steps_per_epoch": run.steps_per_epoch,
        "world_size": run.world,
        "n_images": len(run.source),
        "n_replicas": run.n_replicas,
        "images_without_partner": 0 if run.index is None else int((run.index.n_candidates == 0).sum()),
        "dino_loss_uniform": math.log(config.out_dim),
        "teacher_std_reference": 1.0 / math.sqrt(config.out_dim),
    }


def _train_epoch(
    run: _Run,
    nets: Networks,
    log: MetricsLog,
    advance: Callable[..., None],
    *,
    stop_at: int,
    on_step: Callable[[dict[str, Any]], None] | None,
) -> None:
    """The rest of the current epoch (from ``run.step``), or up to ``stop_at``."""
    config, spe = run.config, run.steps_per_epoch
    epoch, in_epoch = divmod(run.step, spe)
    run.sampler.set_epoch(epoch, in_epoch)
    loader = DataLoader(
        run.dataset,
        batch_size=run.sampler.local_batch,
        sampler=run.sampler,
        num_workers=config.num_workers,
        worker_init_fn=_seed_worker,
        generator=torch.Generator().manual_seed(config.seed * 100_003 + epoch),
        pin_memory=run.device.type == "cuda",
        drop_last=False,
    )
    for batch in loader:
        record = _train_step(run, nets, batch, epoch)
        step = run.step
        if step % config.log_every == 0 or step == stop_at:
            log.write(record)
        advance(
            1,
            info=f"loss {record['loss']:.3f} H {record['teacher_entropy']:.2f} MI {record['teacher_mi']:.2f} "
            f"std·√d {record['teacher_std'] * math.sqrt(config.out_dim):.2f}",
        )
        if step % config.checkpoint_every == 0 or step % spe == 0 or step == stop_at:
            _save(run, step)
        if on_step is not None:
            on_step(record)
        if step >= stop_at:
            break


def _train_step(run: _Run, nets: Networks, batch: dict[str, Any], epoch: int) -> dict[str, Any]:
    """One optimization step on ``batch``; advances ``run.step`` and returns the step's metrics record."""
    config, sched, device, world, step = run.config, run.sched, run.device, run.world, run.step
    t0 = time.perf_counter()
    crops = [c.to(device, non_blocking=True) for c in batch["crops"]]
    replicas = batch["replicas"].to(device)
    chunks = config.batch_chunks or 1
    if world == 1 and chunks > 1:  # the chunks as `chunks` DDP processes would run them (gradients filled)
        out, teacher_out = chunked_backward(nets, crops, replicas, float(sched.teacher_temp[step]), chunks)
    else:
        teacher_ids = torch.cat([replicas[:, 0], replicas[:, 1]])
        out, teacher_out = forward_losses(nets, crops, teacher_ids, float(sched.teacher_temp[step]))
    stats = torch.stack(
        [
            out["loss"].detach(),
            out["dino"],
            out["barlow"],
            teacher_entropy(out["teacher_probs"]),
            normalized_std(teacher_out),
            (~batch["has_partner"]).sum().to(device=device, dtype=torch.float32) * world,
            teacher_mutual_information(out["teacher_probs"]),
        ]
    ).float()
    D.all_reduce_sum(stats)
    stats = (stats / world).tolist()
    if not all(math.isfinite(v) for v in stats[:3]):
        raise NonFiniteLossError(
            f"non-finite loss at step {step + 1} (epoch {epoch}): loss={stats[0]}, dino={stats[1]}, "
            f"barlow={stats[2]}; stopped without saving, the last good checkpoint is {run.state_path} "
            "(try a lower lr, a longer warmup or precision='fp32')"
        )
    apply_update(
        nets,
        None if world == 1 and chunks > 1 else out["loss"],
        lr=float(sched.lr[step]),
        weight_decay=float(sched.weight_decay[step]),
        momentum=float(sched.momentum[step]),
        freeze_last_layer=epoch < config.freeze_last_layer_epochs,
    )
    fallback = round(stats[5])
    run.step = step + 1
    run.fallback_total += fallback
    return {
        "step": run.step,
        "epoch": epoch,
        "loss": stats[0],
        "dino": stats[1],
        "barlow": stats[2],
        "teacher_entropy": stats[3],
        "teacher_std": stats[4],
        "teacher_mi": stats[6],
        "lr": float(sched.lr[step]),
        "weight_decay": float(sched.weight_decay[step]),
        "momentum": float(sched.momentum[step]),
        "teacher_temp": float(sched.teacher_temp[step]),
        "no_partner": fallback,
        "no_partner_total": run.fallback_total,
        "step_seconds": time.perf_counter() - t0,
    }


def _save(run: _Run, step: int) -> None:
    """``checkpoint.pt`` with every process's RNG states (rank 0 writes; all processes wait)."""
    rngs = [capture_rng()]
    if D.is_distributed():
        rngs = [None] * run.world
        torch.distributed.all_gather_object(rngs, capture_rng())
    if run.is_main:
        save_state(
            run.out_dir,
            {
                "config": run.config.to_dict(),
                "step": step,
                "epoch": step // run.steps_per_epoch,
                "student": run.student.state_dict(),
                "teacher": run.teacher.state_dict(),
                "optimizer": run.optimizer.state_dict(),
                "loss": run.loss_fn.state_dict(),
                "replica_names": [] if run.index is None else list(run.index.replica_names),
                "in_chans": run.in_chans,
                "world_size": run.world,
                "fallback_total": run.fallback_total,
                "rng": rngs,
            },
        )
    D.barrier()
