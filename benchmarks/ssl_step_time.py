"""lcd-ssl step time: `pa+dino+barlow+xb` vs plain `dino` (same model, crops, batch), and bf16 vs fp32.

Runs lcd_ssl.train on synthetic in-memory fields and reads each step's ``step_seconds`` (forward,
loss, backward, clipping, optimizer, EMA; data loading excluded) from metrics.jsonl. Configurations
are interleaved (A, B, A, B) so machine-load drift hits both; the median step time per configuration
is reported with the ratio to plain DINO.

    .venv/bin/python benchmarks/ssl_step_time.py [--model vit_small_patch16_224] [--global-crop 112]
        [--local-crop 48] [--batch 8] [--steps 6] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from lcd_ssl import InMemoryImages, TrainConfig, train


def fields(n: int, size: int, seed: int = 0) -> InMemoryImages:
    rng = np.random.default_rng(seed)
    images = rng.normal(1000, 100, (n, 3, size, size)).astype(np.float32)
    obs = pd.DataFrame(
        {
            "replica": np.repeat(["R1", "R2"], n // 2),
            "compound": np.tile(["a", "b", "c", "d"], n // 4),
            "dose": 1.0,
            "timepoint": 0,
        }
    )
    return InMemoryImages(images, obs)


def median_step(images, config: TrainConfig, steps: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        train(images, config, tmp, max_steps=steps)
        recs = [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines()][1:]
    return statistics.median(r["step_seconds"] for r in recs[1:])  # step 1 pays one-off allocations


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="vit_small_patch16_224")
    p.add_argument("--global-crop", type=int, default=112)
    p.add_argument("--local-crop", type=int, default=48)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--out-dim", type=int, default=4096)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precisions", default="fp32,bf16")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    images = fields(16, 2 * args.global_crop)
    base = dict(
        model=args.model, out_dim=args.out_dim, global_crop_size=args.global_crop, local_crop_size=args.local_crop,
        window_size=None, batch_size=args.batch, epochs=1, steps_per_epoch=args.steps, checkpoint_every=10_000,
        progress=False, device=args.device, warmup_epochs=0.5,
    )  # fmt: skip
    results: dict[tuple[str, str], list[float]] = {}
    for precision in args.precisions.split(","):
        for _ in range(args.repeats):
            for variant in ("dino", "pa+dino+barlow+xb"):
                cfg = TrainConfig(variant=variant, precision=precision, **base)
                results.setdefault((precision, variant), []).append(median_step(images, cfg, args.steps))
    print(f"# {time.strftime('%Y-%m-%d %H:%M %Z')}, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.threads} threads, device {args.device}")  # fmt: skip
    print(
        f"# {args.model}, global {args.global_crop} px x2, local {args.local_crop} px x6, batch {args.batch}, out_dim {args.out_dim}"
    )
    print("| precision | variant | step (s) | vs dino (same precision) | vs dino fp32 |")
    print("|---|---|---|---|---|")
    ref32 = statistics.median(results.get(("fp32", "dino"), [float("nan")]))
    for (precision, variant), times in results.items():
        t = statistics.median(times)
        ref = statistics.median(results[(precision, "dino")])
        print(f"| {precision} | {variant} | {t:.3f} | {t / ref:.3f} | {t / ref32:.3f} |")


if __name__ == "__main__":
    main()
