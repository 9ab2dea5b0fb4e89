"""lcd-ssl step time: `pa+dino+barlow+xb` vs plain `dino` on the same model and crops; bf16 vs fp32.

Model side: one optimization step (standardize, teacher and student forward, loss terms, backward,
per-parameter clipping, AdamW, EMA) through the same code the training loop uses
(``lcd_ssl.step``), on one fixed batch of crops. Configurations are interleaved step by step
(A, B, C, D, A, B, ...), so load drift on a shared machine hits all of them; medians of wall time
and of this process's CPU time are reported, with ratios to plain DINO.

Data side: building one sample's crops (``MultiCrop``) with plane-agnostic crops vs DINO's blur.

    .venv/bin/python benchmarks/ssl_step_time.py [--model vit_small_patch16_224] [--global-crop 224]
        [--local-crop 96] [--batch 8] [--steps 8] [--threads 2] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from contextlib import nullcontext

import numpy as np
import torch
from lcd_ssl import MultiCropLoss, TrainConfig
from lcd_ssl.augment import MultiCrop
from lcd_ssl.model import build_student_teacher, param_groups
from lcd_ssl.step import Networks, apply_update, forward_losses

N_REPLICAS = 4


def networks(variant: str, precision: str, args) -> Networks:
    cfg = TrainConfig(
        variant=variant, model=args.model, out_dim=args.out_dim, global_crop_size=args.global_crop, in_chans=3,
        precision=precision, device=args.device,
    )  # fmt: skip
    torch.manual_seed(0)
    student, ema = build_student_teacher(cfg, 3)
    student.to(args.device)
    ema.to(args.device)
    teacher = ema.module
    loss_fn = MultiCropLoss(
        cfg.out_dim, n_replicas=N_REPLICAS if cfg.cross_batch else 1, use_barlow=cfg.use_barlow
    ).to(args.device)
    autocast = (
        torch.autocast(device_type=torch.device(args.device).type, dtype=torch.bfloat16)
        if precision == "bf16"
        else nullcontext()
    )
    half = torch.full((1, 3, 1, 1), 0.5, device=args.device)
    optimizer = torch.optim.AdamW(param_groups(student))
    return Networks(
        student, teacher, student, teacher, loss_fn, optimizer, autocast, half, half, cfg.clip_grad, ema
    )


def crop_batch(args, plane_agnostic: bool) -> list[torch.Tensor]:
    rng = np.random.default_rng(0)
    mc = MultiCrop(args.global_crop, args.local_crop, (0.4, 1.0), (0.05, 0.4), 6, None, 3, plane_agnostic)
    samples = [mc(rng.random((3, 2 * args.global_crop, 2 * args.global_crop), dtype=np.float32), rng.random((3, 2 * args.global_crop, 2 * args.global_crop), dtype=np.float32), i) for i in range(args.batch)]  # fmt: skip
    return [torch.stack([s[v] for s in samples]).to(args.device) for v in range(8)]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="vit_small_patch16_224")
    p.add_argument("--global-crop", type=int, default=224)
    p.add_argument("--local-crop", type=int, default=96)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--out-dim", type=int, default=4096)
    p.add_argument(
        "--steps", type=int, default=8, help="timed steps per configuration (after 1 warm-up step)"
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precisions", default="fp32,bf16")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    crops = crop_batch(args, plane_agnostic=False)
    configs = [(prec, var) for prec in args.precisions.split(",") for var in ("dino", "pa+dino+barlow+xb")]
    nets = {c: networks(c[1], c[0], args) for c in configs}
    gen = torch.Generator().manual_seed(0)
    ids = {
        "dino": torch.zeros(2 * args.batch, dtype=torch.int64),
        "pa+dino+barlow+xb": torch.randint(0, N_REPLICAS, (2 * args.batch,), generator=gen),
    }
    wall: dict = {c: [] for c in configs}
    cpu: dict = {c: [] for c in configs}
    for i in range(args.steps + 1):
        for c in configs:
            sync(args.device)
            t0, c0 = time.perf_counter(), time.process_time()
            out, _ = forward_losses(nets[c], crops, ids[c[1]].to(args.device), 0.04)
            apply_update(
                nets[c], out["loss"], lr=1e-4, weight_decay=0.04, momentum=0.996, freeze_last_layer=False
            )
            sync(args.device)
            if i > 0:  # the first step pays one-off allocations
                wall[c].append(time.perf_counter() - t0)
                cpu[c].append(time.process_time() - c0)

    print(
        f"# {time.strftime('%Y-%m-%d %H:%M %Z')}; {platform.machine()}, {args.threads} threads, device {args.device}; torch {torch.__version__}"
    )
    print(f"# {args.model}, 2 global crops {args.global_crop} px + 6 local {args.local_crop} px, batch {args.batch}, out_dim {args.out_dim}, {args.steps} interleaved steps each")  # fmt: skip
    print(
        "| precision | variant | wall s/step | CPU s/step | images/s (wall) | wall vs dino | CPU vs dino | CPU vs dino fp32 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    ref_fp32 = statistics.median(cpu[configs[0]])
    for c in configs:
        w, u = statistics.median(wall[c]), statistics.median(cpu[c])
        rw, ru = statistics.median(wall[(c[0], "dino")]), statistics.median(cpu[(c[0], "dino")])
        print(
            f"| {c[0]} | {c[1]} | {w:.3f} | {u:.3f} | {args.batch / w:.1f} | {w / rw:.3f} | {u / ru:.3f} | {u / ref_fp32:.3f} |"
        )

    # data side: one sample's 8 crops with plane-agnostic choice vs DINO blur
    rng = np.random.default_rng(1)
    field = rng.random((3, 2 * args.global_crop, 2 * args.global_crop), dtype=np.float32)
    times: dict = {True: [], False: []}
    for i in range(40):
        for pa in (False, True):
            mc = MultiCrop(
                args.global_crop, args.local_crop, (0.4, 1.0), (0.05, 0.4), 6, None, 1 if pa else 3, pa
            )
            c0 = time.process_time()
            mc(field, field, i)
            times[pa].append(time.process_time() - c0)
    blur, pa = statistics.median(times[False]), statistics.median(times[True])
    print(
        f"\ncrops per sample (CPU s): DINO blur {blur:.4f}, plane-agnostic {pa:.4f} (ratio {pa / blur:.2f})"
    )


if __name__ == "__main__":
    main()
