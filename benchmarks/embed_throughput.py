"""Throughput of the full lcd-embed run (read -> preprocess -> model) vs the bare model forward.

Both sides use the same model, the same tiles, the same batch size and the same feature function
(``tile_features``); the bare side gets the tiles preloaded and already normalized as one tensor.
The ratio full/bare (tiles per second) is what the issue asks for (target >= 0.9).

Data: the real 3-plane phase-contrast z-stack of ../shared/data/images/isl_phase_zstack_dapi
(planes 4, 6, 8; 1024 x 1024 uint16), written as N multi-page TIFFs (each with a different
small intensity offset, so the manifest holds N distinct files): 16 tiles of 224 px per field.

    .venv/bin/python benchmarks/embed_throughput.py [--fields 4] [--model vit_small_patch16_224]
        [--batch-size 32] [--workers 0 1] [--repeats 3] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
import torch
from lcd_embed import embed, load_backbone, model_input, read_field, resolve_input_config, tile_features
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


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (DataLoader workers), all threads."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one call."""
    w, c = time.perf_counter(), cpu_seconds()
    fn()
    return time.perf_counter() - w, cpu_seconds() - c


def bare_forward(model, tiles: torch.Tensor, batch_size: int, device) -> None:
    with torch.inference_mode():
        for s in range(0, len(tiles), batch_size):
            tile_features(model, tiles[s : s + batch_size].to(device))
        if device.type == "cuda":
            torch.cuda.synchronize()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fields", type=int, default=4)
    ap.add_argument("--model", default="vit_small_patch16_224")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model, config = load_backbone(args.model, in_chans=3, device=device)
    with tempfile.TemporaryDirectory() as tmp:
        man = make_fields(Path(tmp), args.fields)
        # preloaded model input for the bare forward (the same recipe as the full run)
        recipe = resolve_input_config(config, tile_size=224)
        tiles = np.concatenate([model_input(read_field(r), recipe)[0] for _, r in man.iterrows()])
        preloaded = torch.from_numpy(tiles).to(device)
        n_tiles = len(preloaded)

        def run_full(workers: int) -> None:
            a = embed(
                man,
                (model, config),
                batch_size=args.batch_size,
                num_workers=workers,
                progress=False,
                precision="fp32",
                device=device,
            )
            assert a.n_obs == n_tiles

        bare_forward(model, preloaded[: args.batch_size], args.batch_size, device)  # warm-up
        run_full(0)  # warm-up: first-call imports (anndata, ...)
        bare, full = [], {w: [] for w in args.workers}
        for _ in range(args.repeats):  # interleaved so load changes on the shared machine hit both sides
            bare.append(timed(lambda: bare_forward(model, preloaded, args.batch_size, device)))
            for w in args.workers:
                full[w].append(timed(lambda w=w: run_full(w)))
    load = os.getloadavg()
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {cpu_name()}; {os.cpu_count()} cores; torch threads "
        f"{torch.get_num_threads()}; device {device}; {args.model}; {args.fields} fields x 3 planes 1024^2 -> "
        f"{n_tiles} tiles of 224; batch {args.batch_size}; {args.repeats} interleaved repeats; load average after "
        f"the run {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}"
    )
    print(
        "| run | wall s (median) | tiles/s (median) | wall ratio to bare (median) | wall ratio (best of each) "
        "| CPU s (median) | CPU-time ratio to bare |"
    )
    print("|---|---|---|---|---|---|---|")
    wb, cb = statistics.median(t[0] for t in bare), statistics.median(t[1] for t in bare)
    best = min(t[0] for t in bare)
    rows = [("bare forward (preloaded tensors)", bare)] + [
        (f"full run, {w} worker(s)", t) for w, t in full.items()
    ]
    for name, times in rows:
        wall, cpu_s = statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)
        print(
            f"| {name} | {wall:.2f} | {n_tiles / wall:.2f} | {wb / wall:.2f} | {best / min(t[0] for t in times):.2f} "
            f"| {cpu_s:.2f} | {cb / cpu_s:.2f} |"
        )


if __name__ == "__main__":
    main()
