"""Benchmark lcd_nuclei.bilateral_solve against the TokenCut / FOUND reference implementation.

Usage::

    python benchmarks/nuclei_bilateral.py [--reference /tmp/reference/bilateral_solver.py] [--size 2160]

The reference file is never part of this repository: pass the path of a local copy. Both solvers get
the same grey guide (a real DSB 2018 brightfield image tiled to ``size``², 0-255), the same target
(its block-downsampled foreground, upsampled as a ViT patch mask would be) and confidence 0.999. The
reference receives the grey image as RGB; our guide is the luma it computes (Y of its YUV), so the
grid coordinates are identical. Prints the max absolute difference and the speed ratio.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import time
from pathlib import Path

import numpy as np
import tifffile
from lcd_nuclei.bilateral import bilateral_solve

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images" / "dsb2018_brightfield"


def load_reference(path: str):
    spec = importlib.util.spec_from_file_location("reference_bilateral", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from scipy.sparse.linalg import cg

    def cg_compat(A, b, x0=None, M=None, maxiter=None, tol=1e-5):
        # scipy >= 1.14 renamed cg's `tol` to `rtol`; same semantics
        return cg(A, b, x0=x0, M=M, maxiter=maxiter, rtol=tol)

    module.cg = cg_compat
    return module


def make_inputs(size: int):
    name = sorted(DATA.glob("*_image.tif"))[0]
    image = tifffile.imread(name).astype(np.float64)
    if image.ndim == 3:
        image = image[..., :3].mean(-1)
    labels = tifffile.imread(str(name).replace("_image.tif", "_nuclei_labels.tif"))
    reps = int(np.ceil(size / image.shape[0]))
    grey = np.tile(image, (reps, reps))[:size, :size]
    fg = np.tile(labels > 0, (reps, reps))[:size, :size].astype(np.float64)
    patch = 16
    coarse = fg.reshape(size // patch, patch, size // patch, patch).mean((1, 3)) > 0.5
    target = np.kron(coarse, np.ones((patch, patch))).astype(np.float64)
    return np.round(grey).astype(np.uint8), target


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reference", default=None, help="path of a local copy of bilateral_solver.py")
    parser.add_argument("--size", type=int, default=2160)
    parser.add_argument("--sigma-spatial", type=float, default=16)
    parser.add_argument("--sigma-luma", type=float, default=16)
    parser.add_argument("--lam", type=float, default=256)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each; the median is reported")
    args = parser.parse_args()
    grey, target = make_inputs(args.size)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    conf = np.full(target.shape, 0.999)
    params = dict(sigma_spatial=args.sigma_spatial, sigma_luma=args.sigma_luma, lam=args.lam)
    print(f"{platform.node()} {platform.processor()} size={args.size} {params}")
    if args.reference:
        ref = load_reference(args.reference)
        guide = ref.rgb2yuv(rgb.astype(np.float64))[..., 0]
    else:
        guide = grey.astype(np.float64)
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        ours = bilateral_solve(guide, target, conf, **params)
        times.append(time.perf_counter() - t0)
    t_ours = float(np.median(times))
    print(f"lcd_nuclei.bilateral_solve: {t_ours:.2f} s (median of {args.repeat})")
    if not args.reference:
        return
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        grid = ref.BilateralGrid(
            rgb.astype(np.float64),
            sigma_spatial=args.sigma_spatial,
            sigma_luma=args.sigma_luma,
            sigma_chroma=args.sigma_luma,
        )
        solver = ref.BilateralSolver(
            grid, {"lam": args.lam, "A_diag_min": 1e-5, "cg_tol": 1e-5, "cg_maxiter": 25}
        )
        theirs = solver.solve(target.reshape(-1, 1), conf.reshape(-1, 1)).reshape(target.shape)
        times.append(time.perf_counter() - t0)
    t_ref = float(np.median(times))
    print(f"reference (TokenCut/FOUND):  {t_ref:.2f} s (median of {args.repeat})")
    print(f"max |ours - reference| = {np.abs(ours - theirs).max():.3e}")
    print(f"speed ratio reference / ours = {t_ref / t_ours:.1f}x")


if __name__ == "__main__":
    main()
