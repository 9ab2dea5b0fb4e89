"""The training loop: data, model, loss, optimizer, schedules, DDP, checkpoints, monitoring."""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from . import distributed as D
from .augment import MultiCrop
from .checkpoint import STATE_FILE, capture_rng, load_state, restore_rng, save_state
from .config import ConfigError, TrainConfig, schedule_fields_differ
from .data import CropDataset, FieldReader, as_source
from .losses import MultiCropLoss
from .model import build_student_teacher, param_groups
from .monitor import MetricsLog, ProgressBar, normalized_std, teacher_entropy, teacher_mutual_information
from .pairing import build_partner_index
from .sampler import CrossBatchSampler
from .schedules import Schedules
from .step import Networks, apply_update, forward_losses

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


def _resolve_device(config: TrainConfig) -> torch.device:
    if config.device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {config.device!r} requested but CUDA is not available")
        if D.is_distributed():
            local = int(os.environ.get("LOCAL_RANK", 0))
            torch.cuda.set_device(local)
            return torch.device("cuda", local)
    return torch.device(config.device)


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
        A manifest (CSV/parquet path or DataFrame, read with lcd-embed) or :class:`InMemoryImages`.
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
        Invalid options, images or metadata (the message names the option, file or column).
    """
    config.validate()
    started = D.init_from_env(config.device)
    try:
        return _train(data, config, Path(out_dir), max_steps=max_steps, on_step=on_step)
    finally:
        if started:
            torch.distributed.destroy_process_group()


def _train(data, config: TrainConfig, out_dir: Path, *, max_steps, on_step) -> Path:
    rank, world = D.rank(), D.world_size()
    device = _resolve_device(config)
    is_main = rank == 0
    if is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    D.barrier()

    # ---- data ------------------------------------------------------------------------------------
    source = as_source(data)
    index = None
    if config.cross_batch:
        index = build_partner_index(
            source.obs,
            replica_key=config.replica_key,
            condition_keys=(config.compound_key, config.dose_key, config.timepoint_key),
        )
    reader = FieldReader(
        source,
        planes=config.planes,
        normalization=config.normalization,
        cache=config.cache_images,
        downscale=config.downscale,
    )
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
    spe = sampler.steps_per_epoch
    total_steps = config.epochs * spe
    n_replicas = 1 if index is None else len(index.replica_names)
    no_partner_images = 0 if index is None else int((index.n_candidates == 0).sum())

    # ---- model, loss, optimizer -----------------------------------------------------------------
    torch.manual_seed(config.seed)
    student, teacher = build_student_teacher(config, in_chans)
    student.to(device)
    teacher.to(device)
    loss_fn = MultiCropLoss(
        config.out_dim,
        n_replicas=n_replicas,
        student_temp=config.student_temp,
        center_momentum=config.center_momentum,
        use_barlow=config.use_barlow,
        barlow_lambda=config.barlow_lambda,
        barlow_weight=config.barlow_weight,
    ).to(device)
    optimizer = torch.optim.AdamW(param_groups(student))
    sched = Schedules.build(config, spe)

    # ---- resume ---------------------------------------------------------------------------------
    step, fallback_total = 0, 0
    state_path = out_dir / STATE_FILE
    if state_path.exists():
        state = load_state(state_path)
        differ = schedule_fields_differ(state["config"], config.to_dict())
        if differ:
            raise ConfigError(
                f"{state_path} was trained with different options ({', '.join(differ)}); use another out_dir or the same config"
            )
        student.load_state_dict(state["student"])
        teacher.load_state_dict(state["teacher"])
        optimizer.load_state_dict(state["optimizer"])
        loss_fn.load_state_dict(state["loss"])
        step, fallback_total = int(state["step"]), int(state["fallback_total"])
        rngs = state["rng"]
        if len(rngs) == world:
            restore_rng(rngs[rank])
        else:  # another process count: the stream cannot continue; reseed deterministically
            torch.manual_seed(config.seed + 1_000_003 * step + rank)
    elif is_main:
        _write_json(
            out_dir / CONFIG_FILE, {"config": config.to_dict(), "in_chans": in_chans, "n_planes": n_planes}
        )

    model = student
    if D.is_distributed():
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(student, device_ids=[device.index] if device.type == "cuda" else None)
    teacher_fwd = teacher
    if config.compile:
        model, teacher_fwd = torch.compile(model), torch.compile(teacher)

    mean, std = (
        channel_values(config.normalization.get(k, d), in_chans, k) for k, d in (("mean", 0.0), ("std", 1.0))
    )
    mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    std = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    log = MetricsLog(out_dir / METRICS_FILE, resume_step=step, enabled=is_main)
    stop_at = total_steps if max_steps is None else min(total_steps, max_steps)
    bar = ProgressBar(total_steps, step, enabled=is_main and config.progress and step < stop_at)
    autocast = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        if config.precision == "bf16"
        else nullcontext()
    )
    nets = Networks(
        student, teacher, model, teacher_fwd, loss_fn, optimizer, autocast, mean, std, config.clip_grad
    )

    def checkpoint(current: int) -> None:
        rngs = [capture_rng()]
        if D.is_distributed():
            rngs = [None] * world
            torch.distributed.all_gather_object(rngs, capture_rng())
        if is_main:
            save_state(
                out_dir,
                {
                    "config": config.to_dict(),
                    "step": current,
                    "epoch": current // spe,
                    "student": student.state_dict(),
                    "teacher": teacher.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "loss": loss_fn.state_dict(),
                    "replica_names": [] if index is None else list(index.replica_names),
                    "in_chans": in_chans,
                    "world_size": world,
                    "fallback_total": fallback_total,
                    "rng": rngs,
                },
            )
        D.barrier()

    if is_main and step == 0:
        log.write(
            {
                "event": "start",
                "step": 0,
                "variant": config.variant,
                "steps_total": total_steps,
                "steps_per_epoch": spe,
                "world_size": world,
                "n_images": len(source),
                "n_replicas": n_replicas,
                "images_without_partner": no_partner_images,
                "dino_loss_uniform": math.log(config.out_dim),
                "teacher_std_reference": 1.0 / math.sqrt(config.out_dim),
            }
        )

    try:
        while step < stop_at:
            epoch, in_epoch = divmod(step, spe)
            sampler.set_epoch(epoch, in_epoch)
            loader = DataLoader(
                dataset,
                batch_size=sampler.local_batch,
                sampler=sampler,
                num_workers=config.num_workers,
                worker_init_fn=_seed_worker,
                generator=torch.Generator().manual_seed(config.seed * 100_003 + epoch),
                pin_memory=device.type == "cuda",
                drop_last=False,
            )
            for batch in loader:
                t0 = time.perf_counter()
                crops = [c.to(device, non_blocking=True) for c in batch["crops"]]
                replicas = batch["replicas"].to(device)
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
                        f"barlow={stats[2]}; stopped without saving, the last good checkpoint is {state_path} "
                        "(try a lower lr, a longer warmup or precision='fp32')"
                    )
                apply_update(
                    nets,
                    out["loss"],
                    lr=float(sched.lr[step]),
                    weight_decay=float(sched.weight_decay[step]),
                    momentum=float(sched.momentum[step]),
                    freeze_last_layer=epoch < config.freeze_last_layer_epochs,
                )
                step += 1
                fallback = round(stats[5])
                fallback_total += fallback
                record = {
                    "step": step,
                    "epoch": epoch,
                    "loss": stats[0],
                    "dino": stats[1],
                    "barlow": stats[2],
                    "teacher_entropy": stats[3],
                    "teacher_std": stats[4],
                    "teacher_mi": stats[6],
                    "lr": float(sched.lr[step - 1]),
                    "weight_decay": float(sched.weight_decay[step - 1]),
                    "momentum": float(sched.momentum[step - 1]),
                    "teacher_temp": float(sched.teacher_temp[step - 1]),
                    "no_partner": fallback,
                    "no_partner_total": fallback_total,
                    "step_seconds": time.perf_counter() - t0,
                }
                if step % config.log_every == 0 or step == stop_at:
                    log.write(record)
                bar.update(
                    step,
                    f"loss {stats[0]:.3f} H {stats[3]:.2f} MI {stats[6]:.2f} std·√d {stats[4] * math.sqrt(config.out_dim):.2f}",
                )
                if step % config.checkpoint_every == 0 or step % spe == 0 or step == stop_at:
                    checkpoint(step)
                if on_step is not None:
                    on_step(record)
                if step >= stop_at:
                    break
    finally:
        bar.close()
    return out_dir


def channel_values(value, in_chans: int, name: str) -> list[float]:
    """A normalization mean/std as one float per input channel (a scalar is repeated)."""
    values = [float(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
    if len(values) == 1:
        values = values * in_chans
    if len(values) != in_chans:
        raise ConfigError(
            f"normalization {name} has {len(values)} values but the model has {in_chans} input channels"
        )
    return values


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)
