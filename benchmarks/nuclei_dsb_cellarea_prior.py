"""Issue 17: DSB, the 0.4.0 classical grid (class prior, split) inside a random-init ViT's cell area.

The grid is ``nuclei_dsb_loo.PRIOR_GRID`` (120 options, noise floor unit); its labels are computed
once per image, then kept whole ("classical alone") or restricted to the cell area
(:func:`lcd_nuclei.discover_field`'s ``cell_mask``, default params) of a random-init ViT of the
benchmark shape (depth 2, 64-dim, patch 8; seeds 0 / 1 / 2: ``_nuclei_common.train_vits``' random-init
row, lcd-ssl with learning rate 1e-12 for one step, exported as a checkpoint). Rows:
fixed d 16 / floor 6 without and with the class prior, and leave-one-image-out over the grid by F1,
count MAE and CCC, with the per-image errors (pred - true).

Usage: ``python benchmarks/nuclei_dsb_cellarea_prior.py`` (~20 min on 2 shared cores).
"""

from __future__ import annotations

import time

import numpy as np
from _nuclei_common import field_metrics, fmt, grid, load_dsb, loo_select, summarize, train_vits
from nuclei_dsb_loo import PRIOR_GRID, inside


def report(name, metrics, options):
    """Print the fixed rows and the LOO rows of one set of per-option, per-image metrics."""
    with_prior = options.index({**options[0], "class_prior": "multiotsu"})
    print(f"{name:34s} fixed d16 f6        {fmt(summarize(metrics[0]))}")
    errors = [m["pred"] - m["ref"] for m in metrics[with_prior]]
    print(f"{'':34s} fixed d16 f6 prior  {fmt(summarize(metrics[with_prior]))}  err {errors}")
    for criterion in ("f1", "mae", "ccc"):
        _, held = loo_select(metrics, criterion)
        errors = [m["pred"] - m["ref"] for m in held]
        print(f"{'':34s} LOO {criterion:4s}            {fmt(summarize(held))}  err {errors}", flush=True)


def main() -> None:
    from lcd_nuclei import discover_field
    from lcd_nuclei.classical import classical_nuclei

    cases = load_dsb()
    images = [(img if img.ndim == 2 else img[..., 0]) for _, img, _ in cases]
    options = grid(**PRIOR_GRID)
    t0 = time.time()
    labels = [[classical_nuclei(img, **opts)["labels"] for img in images] for opts in options]
    print("classical grid", round(time.time() - t0), "s", flush=True)
    refs = [ref for _, _, ref in cases]
    report(
        "classical alone",
        [[field_metrics(p, r) for p, r in zip(row, refs, strict=True)] for row in labels],
        options,
    )
    for seed in (0, 1, 2):
        # train_vits' random-init row (lr 1e-12 for one step, exported); its 1-step "trained" row is unused
        models, _ = train_vits([img.astype(np.float32) for img in images], steps=1, seed=seed, threads=1)
        model = models["random init"]
        masks = [discover_field(img.astype(np.float32), *model)["cell_mask"] for img in images]
        metrics = [
            [field_metrics(inside(p, m), r) for p, m, r in zip(row, masks, refs, strict=True)]
            for row in labels
        ]
        report(f"in random-init cell area, seed {seed}", metrics, options)


if __name__ == "__main__":
    main()
