"""Thread policy of the small-kernel paths, measured idle and loaded: 1 vs 2 threads.

    exclusive .venv/bin/python benchmarks/threads.py --load 0 --json idle.json
    exclusive .venv/bin/python benchmarks/threads.py --load 1 --json loaded.json

``--load 1`` starts one single-threaded CPU-bound process (a 256 x 256 float64 matmul loop, one BLAS
thread) for the duration: the "other heavy job" a 2-core machine shared by ``heavy`` slots has. Under
``exclusive`` nothing else heavy runs, so idle means idle and loaded means exactly one other job.

Paths (each timed with 1 and with 2 threads, interleaved, median of ``--repeats``; wall and CPU time):

- ``bilateral``: ``lcd_nuclei.bilateral_solve`` on a 2160 x 2160 guide (a DSB 2018 brightfield image
  tiled) and its ViT patch mask; the PCG's dot products on ~58,000-element vectors go to BLAS ``ddot``;
  threads are set with threadpoolctl (BLAS);
- ``knn``: ``lcd_norm._mnn_kernels.mutual_pairs`` (two brute-force Euclidean kNN searches through
  scikit-learn, k = 20) on 50-dim PCs of 1,344 and 20,000 rows per batch: the demo's FOV count and a
  paper-scale screen; threads set with threadpoolctl (BLAS + OpenMP);
- ``fastmnn``: the whole ``lcd_norm.fastmnn`` on 4 replicas x 1,344 FOVs x 384 features, and the
  first-call cost of ``from sklearn.neighbors import NearestNeighbors`` in a fresh interpreter;
- ``embed``: ViT-S/16 (``vit_small_patch16_224``) bare forward on preloaded 224 px tiles against the
  full ``lcd_embed.embed`` run (read TIFF -> normalize -> tile -> model) on the same 4 fields of the
  shared ISL z-stack (64 tiles), ``num_workers`` 0 and 1, with ``torch.set_num_threads`` 1 and 2.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "images"


def _burn(stop) -> None:
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).random((256, 256))
    with threadpool_limits(1):
        while not stop.is_set():
            a = a @ a
            a /= np.abs(a).max()


def cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn) -> tuple[float, float]:
    w, c = time.perf_counter(), cpu_seconds()
    fn()
    return time.perf_counter() - w, cpu_seconds() - c


def interleaved(cases: dict, repeats: int) -> dict:
    """Each case (name -> (threads, fn)) timed ``repeats`` times, cases interleaved; medians."""
    from threadpoolctl import threadpool_limits

    times = {name: [] for name in cases}
    for _ in range(repeats):
        for name, (threads, fn) in cases.items():
            with threadpool_limits(threads):
                times[name].append(timed(fn))
    return {
        name: {"wall_s": statistics.median(t[0] for t in ts), "cpu_s": statistics.median(t[1] for t in ts)}
        for name, ts in times.items()
    }


def bench_bilateral(repeats: int) -> dict:
    import tifffile
    from lcd_nuclei.bilateral import BilateralGrid, bilateral_solve

    name = sorted((SHARED / "dsb2018_brightfield").glob("*_image.tif"))[0]
    image = tifffile.imread(name).astype(np.float64)
    image = image[..., :3].mean(-1) if image.ndim == 3 else image
    labels = tifffile.imread(str(name).replace("_image.tif", "_nuclei_labels.tif"))
    size, patch = 2160, 16
    reps = int(np.ceil(size / image.shape[0]))
    grey = np.round(np.tile(image, (reps, reps))[:size, :size])
    fg = np.tile(labels > 0, (reps, reps))[:size, :size].astype(np.float64)
    coarse = fg.reshape(size // patch, patch, size // patch, patch).mean((1, 3)) > 0.5
    target = np.kron(coarse, np.ones((patch, patch)))
    grid = BilateralGrid.from_guide(grey, sigma_spatial=8.0, sigma_luma=8.0, center_weight=10.0)

    def solve():
        bilateral_solve(grey, target, grid=grid)

    solve()
    out = interleaved({"1 thread": (1, solve), "2 threads": (2, solve)}, repeats)
    out["vertices"] = int(grid.n_vertices)
    return out


def bench_knn(repeats: int) -> dict:
    from lcd_norm._mnn_kernels import mutual_pairs

    out = {}
    rng = np.random.default_rng(0)
    for n in (1344, 20000):
        ref, cur = rng.standard_normal((n, 50)), rng.standard_normal((n, 50)) + 0.1

        def pairs(ref=ref, cur=cur):
            mutual_pairs(ref, cur, 20)

        pairs()
        res = interleaved(
            {"1 thread": (1, pairs), "2 threads": (2, pairs)}, repeats if n < 10000 else max(1, repeats // 2)
        )
        out[f"{n} rows"] = res
    return out


def bench_fastmnn(repeats: int) -> dict:
    import pandas as pd
    from anndata import AnnData
    from lcd_norm import fastmnn

    rng = np.random.default_rng(0)
    n = 1344
    obs = pd.DataFrame({"replica": np.repeat([f"r{i}" for i in range(4)], n), "compound": "c"})
    X = rng.standard_normal((4 * n, 384)).astype(np.float32) + np.repeat(
        rng.normal(0, 2, (4, 384)), n, axis=0
    )
    adata = AnnData(X=X, obs=obs)
    adata.obs_names = adata.obs_names.astype(str)

    def run():
        fastmnn(adata, replica_key="replica", copy=True)

    run()
    out = interleaved({"1 thread": (1, run), "2 threads": (2, run)}, repeats)
    code = "import time; t=time.perf_counter(); from sklearn.neighbors import NearestNeighbors; print(time.perf_counter()-t)"
    imports = [float(subprocess.check_output([sys.executable, "-c", code], text=True)) for _ in range(3)]
    out["sklearn.neighbors import, fresh process (s)"] = statistics.median(imports)
    return out


def bench_embed(repeats: int) -> dict:
    import pandas as pd
    import tifffile
    import torch
    from lcd_embed import embed, load_backbone, model_input, read_field, resolve_input_config, tile_features
    from PIL import Image

    torch.manual_seed(0)
    model, config = load_backbone("vit_small_patch16_224", in_chans=3, device="cpu")
    stack = np.stack(
        [np.asarray(Image.open(SHARED / "isl_phase_zstack_dapi" / f"phase_z{z:02d}.png")) for z in (4, 6, 8)]
    )
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for i in range(4):
            p = Path(tmp) / f"field{i}.tif"
            tifffile.imwrite(
                p,
                np.clip(stack.astype(np.int32) + 7 * i, 0, 65535).astype(np.uint16),
                photometric="minisblack",
            )
            rows.append({"plate": "P1", "well": f"A{i + 1:02d}", "fov": 0, "path": str(p)})
        man = pd.DataFrame(rows)
        recipe = resolve_input_config(config, tile_size=224)
        tiles = torch.from_numpy(
            np.concatenate([model_input(read_field(r), recipe)[0] for _, r in man.iterrows()])
        )

        def bare():
            with torch.inference_mode():
                for s in range(0, len(tiles), 32):
                    tile_features(model, tiles[s : s + 32])

        def full(workers):
            embed(
                man,
                (model, config),
                batch_size=32,
                num_workers=workers,
                progress=False,
                precision="fp32",
                device="cpu",
            )

        cases = {}
        for threads in (1, 2):
            cases[f"bare, {threads} thread(s)"] = (threads, bare)
            for w in (0, 1):
                cases[f"full run, {w} worker(s), {threads} thread(s)"] = (threads, lambda w=w: full(w))
        times = {name: [] for name in cases}
        bare(), full(0)  # warm-up
        for _ in range(repeats):
            for name, (threads, fn) in cases.items():
                torch.set_num_threads(threads)
                times[name].append(timed(fn))
        for name, ts in times.items():
            wall = statistics.median(t[0] for t in ts)
            out[name] = {
                "wall_s": wall,
                "cpu_s": statistics.median(t[1] for t in ts),
                "tiles_per_s": len(tiles) / wall,
            }
        for threads in (1, 2):
            base = out[f"bare, {threads} thread(s)"]["wall_s"]
            for w in (0, 1):
                key = f"full run, {w} worker(s), {threads} thread(s)"
                out[key]["ratio_to_bare_same_threads"] = base / out[key]["wall_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--load", type=int, default=0, help="single-threaded CPU-bound processes running alongside"
    )
    ap.add_argument("--only", default="bilateral,knn,fastmnn,embed")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    stop = mp.Event()
    burners = [mp.Process(target=_burn, args=(stop,), daemon=True) for _ in range(args.load)]
    for b in burners:
        b.start()
    time.sleep(1.0 if burners else 0)
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, no GPU",
        "load_processes": args.load,
    }
    benches = {"bilateral": bench_bilateral, "knn": bench_knn, "fastmnn": bench_fastmnn, "embed": bench_embed}
    try:
        for name in args.only.split(","):
            start = time.perf_counter()
            result[name] = benches[name](args.repeats)
            print(
                f"[{name}] {time.perf_counter() - start:.0f} s: {json.dumps(result[name], default=float)}",
                flush=True,
            )
    finally:
        stop.set()
        for b in burners:
            b.join(timeout=5)
    result["load_average_after"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
