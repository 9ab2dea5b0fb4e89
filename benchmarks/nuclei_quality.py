"""Quality and speed of lcd-nuclei on the shared label-free sets, with a tiny ViT trained by lcd-ssl.

Trains a depth-2, 64-dim, patch-8 ViT (lcd-ssl DINO, ``--steps`` steps, CPU) on the 8 DSB 2018
brightfield images plus the ISL phase-contrast mid plane, then:

- DSB 2018 brightfield: 8 fields vs instance masks;
- ISL phase z-stack: plane ``--plane``, cut into 4 quadrants (fields) vs the DAPI stain (Otsu +
  watershed reference), nuclei polarity ``--isl-polarity``.

Prints median foreground IoU, Pearson r (95 % CI), slope, bias, CCC, F1@0.5, and seconds per field.
Usage: ``python benchmarks/nuclei_quality.py --steps 200``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import lcd_embed as le
import numpy as np
import tifffile
import torch
from lcd_nuclei import DiscoveryParams, discover_field, evaluate_fields

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--plane", type=int, default=6)
    parser.add_argument("--isl-polarity", default="dark")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from lcd_ssl import InMemoryImages, TrainConfig, export_backbone, train

    dsb = []
    for path in sorted((DATA / "dsb2018_brightfield").glob("*_image.tif")):
        labels = tifffile.imread(str(path).replace("_image.tif", "_nuclei_labels.tif"))
        dsb.append((tifffile.imread(path).astype(np.float32), labels))
    isl = DATA / "isl_phase_zstack_dapi"
    phase = le.read_field([str(isl / f"phase_z{args.plane:02d}.png")])[0]
    dapi = le.read_field([str(isl / "dapi.png")])[0]
    config = TrainConfig(
        model="vit_tiny_patch16_224",
        model_kwargs={"depth": 2, "embed_dim": 64, "num_heads": 4, "patch_size": 8, "img_size": 64},
        out_dim=256,
        hidden_dim=128,
        bottleneck_dim=64,
        global_crop_size=64,
        local_crop_size=32,
        n_local_crops=2,
        window_size=128,
        batch_size=16,
        epochs=1,
        steps_per_epoch=args.steps,
        warmup_epochs=0.1,
        precision="fp32",
        progress=False,
        seed=0,
    )
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run = train(InMemoryImages([d[0] for d in dsb] + [phase]), config, Path(tmp) / "run")
        model, cfg = le.load_backbone(export_backbone(run, Path(tmp) / "ckpt"))
        t_train = time.perf_counter() - t0
    results = {"train_steps": args.steps, "train_seconds": round(t_train, 1)}

    t0 = time.perf_counter()
    preds = [discover_field(img, model, cfg)["labels"] for img, _ in dsb]
    results["dsb_seconds_per_field_1024"] = round((time.perf_counter() - t0) / len(dsb), 2)
    _, summary = evaluate_fields(preds, [lab for _, lab in dsb])
    results["dsb2018_brightfield"] = summary

    h, w = phase.shape
    quads = [
        (slice(0, h // 2), slice(0, w // 2)),
        (slice(0, h // 2), slice(w // 2, w)),
        (slice(h // 2, h), slice(0, w // 2)),
        (slice(h // 2, h), slice(w // 2, w)),
    ]
    params = DiscoveryParams(polarity=args.isl_polarity)
    preds = [discover_field(phase[q], model, cfg, params)["labels"] for q in quads]
    _, summary = evaluate_fields(preds, [dapi[q] for q in quads], reference="stain")
    results["isl_phase_quadrants"] = summary

    big = np.tile(dsb[0][0], (3, 3))[:2160, :2160]
    t0 = time.perf_counter()
    discover_field(big, model, cfg)
    results["seconds_per_field_2160"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
