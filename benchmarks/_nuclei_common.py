"""Shared pieces of the issue-17 nuclei benchmarks: data, tiny ViTs, per-field metrics, LOO choice.

Not a benchmark itself (imported by ``nuclei_defocus.py``, ``nuclei_dsb_loo.py``,
``nuclei_simulated.py``).
"""

from __future__ import annotations

import itertools
import json
import tempfile
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images"


def load_dsb():
    """The 8 DSB 2018 brightfield images (float32) and their instance labels."""
    import tifffile

    cases = []
    for path in sorted((DATA / "dsb2018_brightfield").glob("*_image.tif")):
        labels = tifffile.imread(str(path).replace("_image.tif", "_nuclei_labels.tif"))
        cases.append((path.name[:12], tifffile.imread(path).astype(np.float32), labels))
    return cases


def load_isl():
    """ISL: (13, 1024, 1024) float64 phase planes z00..z12 and the DAPI image."""
    import lcd_embed as le

    isl = DATA / "isl_phase_zstack_dapi"
    planes = np.stack([le.read_field([str(isl / f"phase_z{z:02d}.png")])[0] for z in range(13)])
    dapi = le.read_field([str(isl / "dapi.png")])[0]
    return planes.astype(np.float64), dapi.astype(np.float64)


def grid_fields(shape, n):
    """``n x n`` non-overlapping fields covering an image of ``shape``, row-major."""
    h, w = shape
    return [
        (slice(i * h // n, (i + 1) * h // n), slice(j * w // n, (j + 1) * w // n))
        for i in range(n)
        for j in range(n)
    ]


def train_vits(images, *, steps, seed, depth=2, dim=64, threads=2):
    """Trained and random-init ViTs of the benchmark recipe (README "Quality"), and teacher health.

    Same config as ``benchmarks/nuclei_quality.py``: depth-``depth``, ``dim``-dim, patch 8, 64-px
    tiles, lcd-ssl DINO with its tiny-run recipe, ``steps`` steps of 16 crops, CPU fp32.
    """
    import time

    import lcd_embed as le
    import torch
    from lcd_ssl import InMemoryImages, TrainConfig, export_backbone, train

    torch.set_num_threads(threads)
    config = TrainConfig(
        model="vit_tiny_patch16_224",
        model_kwargs={"depth": depth, "embed_dim": dim, "num_heads": 4, "patch_size": 8, "img_size": 64},
        out_dim=256,
        hidden_dim=128,
        bottleneck_dim=64,
        global_crop_size=64,
        local_crop_size=32,
        n_local_crops=2,
        window_size=128,
        batch_size=16,
        epochs=1,
        steps_per_epoch=steps,
        warmup_epochs=0.1,
        lr=2e-4,
        teacher_temp=0.02,
        warmup_teacher_temp=0.02,
        center_momentum=0.97,
        precision="fp32",
        progress=False,
        seed=seed,
    )
    models, info = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in (("trained", {}), ("random init", {"lr": 1e-12, "min_lr": 1e-13})):
            t0 = time.perf_counter()
            cfg = TrainConfig(**{**config.__dict__, **extra, "steps_per_epoch": steps if not extra else 1})
            run = train(InMemoryImages(list(images)), cfg, Path(tmp) / name)
            models[name] = le.load_backbone(export_backbone(run, Path(tmp) / f"{name}_ckpt"))
            if not extra:
                info["train_seconds"] = round(time.perf_counter() - t0, 1)
                last = json.loads((Path(tmp) / name / "metrics.jsonl").read_text().splitlines()[-1])
                info.update({k: round(last[k], 3) for k in ("teacher_entropy", "teacher_mi")})
    return models, info


def field_metrics(pred, ref):
    """Count, foreground IoU and F1@0.5 of one field's predicted labels against reference labels."""
    from lcd_nuclei.evaluate import foreground_iou, instance_f1

    match = instance_f1(pred, ref)
    iou = foreground_iou(pred, ref)
    return {
        "pred": match["n_pred"],
        "ref": match["n_ref"],
        # both empty: the prediction is right; recorded as 1 (evaluate_fields would give NaN)
        "iou": 1.0 if np.isnan(iou) else iou,
        "f1": match["f1"],
    }


def summarize(rows):
    """Pearson r [95 % CI], CCC, slope, bias, median IoU, mean F1 over per-field metric dicts."""
    from lcd_nuclei.evaluate import count_agreement

    pred = np.array([r["pred"] for r in rows], float)
    ref = np.array([r["ref"] for r in rows], float)
    out = {"n": len(rows)}
    if pred.std() > 0 and ref.std() > 0:
        agree = count_agreement(pred, ref)
        out.update({k: agree[k] for k in ("pearson_r", "r_ci_low", "r_ci_high", "ccc", "slope", "bias")})
    else:  # constant counts: r undefined, recorded as such (never as 0)
        out.update({"pearson_r": float("nan"), "bias": float((pred - ref).mean())})
    out["median_iou"] = float(np.median([r["iou"] for r in rows]))
    out["mean_f1"] = float(np.mean([r["f1"] for r in rows]))
    out["mae"] = float(np.abs(pred - ref).mean())
    return out


def grid(**options):
    """All combinations of the given option lists, as dicts (the first value of each list first)."""
    keys = list(options)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*options.values())]


def loo_select(metrics, criterion="mae"):
    """Leave-one-field-out choice over candidates.

    ``metrics`` is a list (candidates) of lists (fields) of :func:`field_metrics` dicts. For each
    field the candidate is chosen on the other fields only: smallest mean absolute count error
    (``"mae"``), largest Lin's CCC of the counts (``"ccc"``) or largest mean F1 (``"f1"``). Returns the chosen candidate per field and the
    held-out rows (each field evaluated with the candidate chosen without it).
    """
    from lcd_nuclei.calibrate import leave_one_out_choice

    n_fields = len(metrics[0])
    if criterion in ("mae", "ccc"):
        pred = np.array([[m["pred"] for m in cand] for cand in metrics], float)
        ref = np.array([m["ref"] for m in metrics[0]], float)
        chosen, _ = leave_one_out_choice(pred, ref, criterion=criterion)
    elif criterion == "f1":
        f1 = np.array([[m["f1"] for m in cand] for cand in metrics])
        chosen = np.array([int(np.argmax(np.delete(f1, i, axis=1).mean(axis=1))) for i in range(n_fields)])
    else:
        raise ValueError(criterion)
    return chosen, [metrics[c][i] for i, c in enumerate(chosen)]


def fmt(summary):
    """One table line: r [CI], CCC, slope / bias, median IoU, mean F1."""

    def f(key, digits=2):
        value = summary.get(key, float("nan"))
        return "nan" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"

    return (
        f"r {f('pearson_r')} [{f('r_ci_low')}, {f('r_ci_high')}]  CCC {f('ccc')}  "
        f"slope {f('slope')} bias {f('bias', 1)}  IoU {f('median_iou', 3)}  F1 {f('mean_f1')}"
    )
