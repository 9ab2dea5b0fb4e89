"""Issue 17 item 2: does lcd-ssl training beat random init on the nuclei task (more varied crops, longer budgets).

Trains the tiny ViT of ``nuclei_quality.py`` (depth 2, 64-dim, patch 8, 64-px tiles, lcd-ssl DINO
with its tiny-run recipe, CPU fp32) per seed on one of two image sets:

- ``base``: the 8 DSB 2018 brightfield images + the ISL phase mid plane (the recipe of the README's
  quality tables and of phase 1);
- ``varied``: the 8 DSB images at full and half scale (2 x 2 block mean: nuclei of 5-10 px instead
  of 10-21), all 13 ISL planes, and ``--sim-fields`` in-focus fields of a simulated plate
  (``--sim PLATE``; nuclei of ~7 px) - the "more and more varied crops" of the issue,

with ``--steps`` DINO steps, and a random-init model of the same shape and seed (lr 1e-12, one
step). Each model is evaluated on the 8 DSB images (instance masks):

- ViT discovery (``nuclei_step="kmeans"``, the other parameters at their defaults): median
  foreground IoU, mean F1@0.5, Pearson r of the counts;
- the ViT's cell area: share of the true nucleus pixels inside it (recall) and the fraction of the
  field it covers;
- the classical counter inside the ViT's cell area (``nuclei_step="classical"``, defaults,
  diameter 16 px): is the trained model's cell area worth more than the random one's?

No choice is made on the evaluation images (defaults only). Prints one line per model and seed
and the medians over seeds; ``--out`` writes them as JSON.
Usage: ``python benchmarks/nuclei_ssl_budget.py --crops varied --steps 2000 --seeds 0 1 2 --sim /tmp/sim_demo/plate``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _nuclei_common import field_metrics, fmt, load_dsb, load_isl, summarize, train_vits


def half_scale(image: np.ndarray) -> np.ndarray:
    """2 x 2 block mean (odd edges cropped)."""
    h, w = (s // 2 * 2 for s in image.shape)
    return image[:h, :w].reshape(h // 2, 2, w // 2, 2).mean((1, 3)).astype(np.float32)


def sim_fields(plate: Path, n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` random in-focus fields of a simulated plate (``lcd simulate``)."""
    import json

    import pandas as pd
    import tifffile
    from lcd_pipeline.simulate import opera_name

    cfg = json.loads((plate / "simulation.json").read_text())
    mid = cfg["n_planes"] // 2 + 1
    fields = pd.read_parquet(plate / "truth" / "fields.parquet").sample(n=n, random_state=seed)
    return [
        tifffile.imread(
            plate / "images" / r.plate / opera_name(r.row, r.column, r.fov, mid, 1, r.timepoint)
        ).astype(np.float32)
        for r in fields.itertuples(index=False)
    ]


def training_images(crops: str, dsb, sim: Path | None, n_sim: int) -> list[np.ndarray]:
    planes, _ = load_isl()
    images = [img for _, img, _ in dsb]
    if crops == "base":
        return [*images, planes[6].astype(np.float32)]
    images += [half_scale(img) for img in images]
    images += [p.astype(np.float32) for p in planes]
    if sim is not None:
        images += sim_fields(sim, n_sim)
    return images


def evaluate(model, cfg, dsb):
    from lcd_nuclei import DiscoveryParams, discover_field

    vit, classical, recall, cover = [], [], [], []
    for _, img, ref in dsb:
        out = discover_field(img, model, cfg, params=DiscoveryParams(nuclei_step="kmeans"))
        vit.append(field_metrics(out["labels"], ref))
        recall.append(float((out["cell_mask"] & (ref > 0)).sum() / max((ref > 0).sum(), 1)))
        cover.append(float(out["cell_mask"].mean()))
        hybrid = discover_field(img, model, cfg, params=DiscoveryParams(nuclei_step="classical", diameter=16))
        classical.append(field_metrics(hybrid["labels"], ref))
    return {
        "vit": summarize(vit),
        "classical_in_cell_area": summarize(classical),
        "nucleus_recall_in_cell_area": float(np.median(recall)),
        "cell_area_fraction": float(np.median(cover)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--crops", choices=["base", "varied"], default="varied")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--sim", type=Path, default=None, help="a simulated plate folder (varied crops)")
    parser.add_argument("--sim-fields", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    dsb = load_dsb()
    images = training_images(args.crops, dsb, args.sim, args.sim_fields)
    print(f"{args.crops}: {len(images)} training images, {args.steps} steps, seeds {args.seeds}", flush=True)
    results = {"crops": args.crops, "steps": args.steps, "n_images": len(images), "runs": []}
    for seed in args.seeds:
        t0 = time.perf_counter()
        models, info = train_vits(images, steps=args.steps, seed=seed, threads=args.threads)
        for name, (model, cfg) in models.items():
            res = evaluate(model, cfg, dsb)
            results["runs"].append(
                {"seed": seed, "model": name, **res, **(info if name == "trained" else {})}
            )
            print(
                f"seed {seed} {name:11s} ViT {fmt(res['vit'])}\n"
                f"{'':21s} classical in cell area {fmt(res['classical_in_cell_area'])}  nucleus recall "
                f"{res['nucleus_recall_in_cell_area']:.2f}, cell area {res['cell_area_fraction']:.2f}",
                flush=True,
            )
        print(f"seed {seed}: {info}, {time.perf_counter() - t0:.0f} s", flush=True)
    for name in ("trained", "random init"):
        runs = [r for r in results["runs"] if r["model"] == name]
        med = {
            f"{part} {key}": float(np.median([r[part][key] for r in runs]))
            for part in ("vit", "classical_in_cell_area")
            for key in ("median_iou", "mean_f1", "pearson_r")
        }
        results[f"median {name}"] = med
        print(f"median over seeds, {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in med.items()))
    if args.out:
        from lcd_core import write_json

        write_json(results, args.out)


if __name__ == "__main__":
    main()
