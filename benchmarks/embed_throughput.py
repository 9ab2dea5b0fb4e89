"""Throughput of the full lcd-embed run (read -> preprocess -> model) vs the bare model forward.

Both sides use the same model, the same tiles, the same batch size and the same feature function
(``tile_features``); the bare side gets the tiles preloaded and already normalized as one tensor.
The ratio full/bare (tiles per second) is what the issue asks for (target >= 0.9).

Data: the real 3-plane phase-contrast z-stack of ../shared/data/images/isl_phase_zstack_dapi
(planes 4, 6, 8; 1024 x 1024 uint16), written as N multi-page TIFFs (each with a different
small intensity offset, so the manifest holds N distinct files): 16 tiles of 224 px per field.

    .venv/bin/python benchmarks/embed_throughput.py [--fields 8] [--model vit_small_patch16_224]
        [--batch-size 32] [--workers 0 1 2] [--repeats 3] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
import torch
from lcd_embed import embed, load_backbone, preprocess_field, read_field, tile_features
from PIL import Image

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images" / "isl_phase_zstack_dapi"


def make_fields(folder: Path, n: int) -> pd.DataFrame:
    stack = np.stack([np.asarray(Image.open(SHARED / f"phase_z{z:02d}.png")) for z in (4, 6, 8)])
    rows = []
    for i in range(n):
        p = folder / f"field{i:03d}.tif"
        tifffile.imwrite(
            p, np.clip(stack.astype(np.int32) + 7 * i, 0, 65535).astype(np.uint16), photometric="minisblack"
        )
        rows.append({"plate": "P1", "well": f"A{i + 1:02d}", "fov": 0, "path": str(p)})
    return pd.DataFrame(rows)


def bare_forward(model, tiles: torch.Tensor, batch_size: int, device) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, len(tiles), batch_size):
            tile_features(model, tiles[s : s + batch_size].to(device))
        if device.type == "cuda":
            torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fields", type=int, default=8)
    ap.add_argument("--model", default="vit_small_patch16_224")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model, config = load_backbone(args.model, in_chans=3, device=device)
    with tempfile.TemporaryDirectory() as tmp:
        man = make_fields(Path(tmp), args.fields)
        # preloaded, normalized tiles for the bare forward (the same preprocessing as the full run)
        tiles = np.concatenate(
            [preprocess_field(read_field(r), in_chans=3, tile_size=224)[0] for _, r in man.iterrows()]
        )
        mean = torch.tensor(config["normalization"]["mean"]).view(1, -1, 1, 1)
        std = torch.tensor(config["normalization"]["std"]).view(1, -1, 1, 1)
        preloaded = ((torch.from_numpy(tiles) - mean) / std).to(device)
        n_tiles = len(preloaded)
        bare_forward(model, preloaded[: args.batch_size], args.batch_size, device)  # warm-up
        bare, full = [], {w: [] for w in args.workers}
        for _ in range(args.repeats):  # interleaved so load changes on the shared machine hit both sides
            bare.append(bare_forward(model, preloaded, args.batch_size, device))
            for w in args.workers:
                t0 = time.perf_counter()
                a = embed(
                    man,
                    (model, config),
                    batch_size=args.batch_size,
                    num_workers=w,
                    progress=False,
                    precision="fp32",
                    device=device,
                )
                full[w].append(time.perf_counter() - t0)
                assert a.n_obs == n_tiles
    t_bare = statistics.median(bare)
    cpu = platform.processor() or platform.machine()
    try:
        cpu = (
            subprocess.run(
                ["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"],
                capture_output=True,
                text=True,
            ).stdout.strip()
            or cpu
        )
    except OSError:
        pass
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {cpu}; torch threads {torch.get_num_threads()}; "
        f"device {device}; {args.model}; {args.fields} fields x 3 planes 1024^2 -> {n_tiles} tiles of 224; "
        f"batch {args.batch_size}; median of {args.repeats}"
    )
    b_best = min(bare)
    print("| run | median s | tiles/s (median) | ratio to bare (median) | ratio to bare (best of each) |")
    print("|---|---|---|---|---|")
    print(f"| bare forward (preloaded tensors) | {t_bare:.2f} | {n_tiles / t_bare:.1f} | 1.00 | 1.00 |")
    for w, times in full.items():
        t = statistics.median(times)
        print(
            f"| full run, {w} worker(s) | {t:.2f} | {n_tiles / t:.1f} | {t_bare / t:.2f} | {b_best / min(times):.2f} |"
        )


if __name__ == "__main__":
    main()
