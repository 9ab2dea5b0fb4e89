"""Issue 17: DSB 2018 brightfield (one plane, no defocus channel), every choice leave-one-image-out.

8 images of 1024² against their instance masks. Rows:

- classical (no ViT): :func:`lcd_nuclei.classical.classical_nuclei` on the grey image; ``fixed``
  = diameter 16, polarity ``auto``, defaults (no choice on these images); ``LOO`` = for each image
  the options (grid below) chosen on the 7 others, by count MAE or by mean F1@0.5;
- ViT discovery (:func:`lcd_nuclei.discover_field`), trained and random-init models of the
  ``nuclei_quality.py`` recipe per seed: default params, and LOO over n_clusters x
  contrast_window x max_area_ratio;
- classical inside the ViT's cell area: the classical objects whose centre lies in
  ``discover_field``'s ``cell_mask`` (is the ViT's foreground worth anything to the classical
  counter?), with the classical options chosen LOO.

- ``--priors`` (0.5.0): the classical grid with polarity ``auto``, Otsu, and the two options of
  0.5.0 (``class_prior`` none / multiotsu x ``split_depth`` 0 / 0.25 / 0.5); LOO over the whole
  grid and over its subsets (no new option: the baseline on the same grid), with per-image errors.

Usage: ``python benchmarks/nuclei_dsb_loo.py [--seeds 0 1 2] [--steps 600] [--no-vit] [--floor-unit noise|mad] [--priors]``
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from _nuclei_common import field_metrics, fmt, grid, load_dsb, loo_select, summarize, train_vits

COUNTER_GRID = {
    "diameter": [16, 8, 12, 20, 24],
    "polarity": ["auto", "dark"],
    "floor": [6.0, 4.0, 8.0, 2.0],  # --floor-unit noise: 6, 3, 10, 20 (lcd_nuclei.calibrate.FLOORS)
    "threshold_method": ["otsu", "mad"],
}
PRIOR_GRID = {
    "diameter": [16, 8, 12, 20, 24],
    "polarity": ["auto"],
    "floor": [6.0, 3.0, 10.0, 20.0],
    "threshold_method": ["otsu"],
    "class_prior": ["none", "multiotsu"],
    "split_depth": [0.0, 0.25, 0.5],
}
VIT_GRID = {"n_clusters": [4, 2, 6], "contrast_window": [5, 9], "max_area_ratio": [4.0, math.inf]}


def inside(labels, mask):
    """Keep the objects of ``labels`` whose centroid lies in ``mask``; relabel 1..n."""
    from scipy import ndimage as ndi

    n = int(labels.max())
    if n == 0:
        return labels
    centres = np.rint(ndi.center_of_mass(np.ones_like(labels), labels, np.arange(1, n + 1))).astype(int)
    keep = np.zeros(n + 1, bool)
    keep[1:] = mask[centres[:, 0], centres[:, 1]]
    ids = np.zeros(n + 1, np.int32)
    ids[keep] = np.arange(1, keep.sum() + 1)
    return ids[labels]


def report(name, metrics):
    print(f"{name:44s} fixed    {fmt(summarize(metrics[0]))}")
    for criterion in ("mae", "f1"):
        chosen, held = loo_select(metrics, criterion)
        print(f"{'':44s} LOO {criterion:4s} {fmt(summarize(held))}  (choices {sorted(set(chosen.tolist()))})")
    return {c: summarize(loo_select(metrics, c)[1]) for c in ("mae", "f1")} | {"fixed": summarize(metrics[0])}


def main() -> None:
    from lcd_nuclei.classical import classical_nuclei
    from lcd_nuclei.evaluate import reference_from_stain

    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--no-vit", action="store_true")
    parser.add_argument(
        "--floor-unit",
        choices=["noise", "mad"],
        default="noise",
        help="noise (0.3.0 default) or mad (phase 1's tables: floors 6, 4, 8, 2 robust SDs)",
    )
    parser.add_argument("--priors", action="store_true", help="0.5.0's grid with class_prior x split_depth")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.priors:
        return priors_table(args)
    COUNTER_GRID["floor_unit"] = [args.floor_unit]
    if args.floor_unit == "noise":
        COUNTER_GRID["floor"] = [6.0, 3.0, 10.0, 20.0]
    cases = load_dsb()
    results = {}

    t0 = time.perf_counter()
    options = grid(**COUNTER_GRID)
    classical = [[classical_nuclei(img, **o)["labels"] for _, img, _ in cases] for o in options]
    print(f"classical: {len(options)} options x 8 images in {time.perf_counter() - t0:.0f} s")
    cm = [[field_metrics(p, ref) for p, (_, _, ref) in zip(c, cases, strict=True)] for c in classical]
    results["classical"] = report("classical (no ViT)", cm)
    otsu = [field_metrics(reference_from_stain(255 - img), ref) for _, img, ref in cases]
    print(f"{'Otsu + watershed, inverted grey (0.2.0 baseline)':44s}          {fmt(summarize(otsu))}")
    results["otsu"] = summarize(otsu)

    if not args.no_vit:
        from lcd_nuclei import DiscoveryParams, discover_field

        isl_mid = None
        try:
            from _nuclei_common import load_isl

            isl_mid = load_isl()[0][6].astype(np.float32)
        except FileNotFoundError:
            pass
        for seed in args.seeds:
            images = [img for _, img, _ in cases] + ([isl_mid] if isl_mid is not None else [])
            models, info = train_vits(images, steps=args.steps, seed=seed)
            print(f"seed {seed}: {info}")
            for model_name, (model, cfg) in models.items():
                t0 = time.perf_counter()
                vit_opts = grid(**VIT_GRID)
                outs = [
                    [
                        discover_field(img, model, cfg, params=DiscoveryParams(nuclei_step="kmeans", **o))
                        for _, img, _ in cases
                    ]
                    for o in vit_opts
                ]
                vm = [
                    [field_metrics(o["labels"], ref) for o, (_, _, ref) in zip(row, cases, strict=True)]
                    for row in outs
                ]
                key = f"ViT {model_name}, seed {seed}"
                results[key] = report(key, vm) | info
                masks = [o["cell_mask"] for o in outs[0]]  # default params' cell area
                hybrid = [
                    [
                        field_metrics(inside(p, m), ref)
                        for p, m, (_, _, ref) in zip(c, masks, cases, strict=True)
                    ]
                    for c in classical
                ]
                results[f"classical in ViT cell area, {model_name}, seed {seed}"] = report(
                    f"classical in cell area ({model_name}, s{seed})", hybrid
                )
                print(f"  [{time.perf_counter() - t0:.0f} s]", flush=True)
    if args.out:
        from lcd_core import write_json

        write_json(results, args.out)


def priors_table(args) -> None:
    """LOO over 0.5.0's grid (class prior x split depth) and its subsets, per held-out image."""
    from lcd_nuclei.classical import classical_nuclei

    cases = load_dsb()
    options = grid(**PRIOR_GRID)
    t0 = time.perf_counter()
    metrics = [
        [field_metrics(classical_nuclei(img, **o)["labels"], ref) for _, img, ref in cases] for o in options
    ]
    print(f"classical: {len(options)} options x {len(cases)} images in {time.perf_counter() - t0:.0f} s")
    print("images:", " ".join(name for name, _, _ in cases))
    subsets = {
        "all options (class prior and split chosen too)": lambda o: True,
        "no new option (none, split 0)": lambda o: o["class_prior"] == "none" and o["split_depth"] == 0,
        "class prior multiotsu, split chosen": lambda o: o["class_prior"] == "multiotsu",
        "class prior multiotsu, split 0": lambda o: o["class_prior"] == "multiotsu" and o["split_depth"] == 0,
        "class prior multiotsu, split 0.5": lambda o: (
            o["class_prior"] == "multiotsu" and o["split_depth"] == 0.5
        ),
    }
    results = {}
    fixed = {"diameter": 16, "floor": 6.0}
    for label, keep in subsets.items():
        idx = [i for i, o in enumerate(options) if keep(o)]
        sub = [metrics[i] for i in idx]
        for i in idx:
            if all(options[i][k] == v for k, v in fixed.items()):
                row = metrics[i]
                print(
                    f"{label:52s} fixed d16 f6  {fmt(summarize(row))}  err {[r['pred'] - r['ref'] for r in row]}"
                )
                results[f"{label} | fixed"] = summarize(row)
        for criterion in ("mae", "ccc", "f1"):
            chosen, held = loo_select(sub, criterion)
            picks = [
                "/".join(str(options[idx[c]][k]) for k in ("diameter", "floor", "class_prior", "split_depth"))
                for c in chosen
            ]
            print(
                f"{label:52s} LOO {criterion:4s}     {fmt(summarize(held))}  err {[r['pred'] - r['ref'] for r in held]}"
            )
            print(f"{'':52s}   choices (d/floor/prior/split) {picks}")
            results[f"{label} | LOO {criterion}"] = summarize(held) | {"choices": picks}
    if args.out:
        from lcd_core import write_json

        write_json(results, args.out)


if __name__ == "__main__":
    main()
