"""Choose the bilateral solver's defaults for nuclei on the shared DSB 2018 brightfield masks.

For each image, the ground-truth nucleus mask is reduced to a ViT-like patch grid (patch fraction
>= 0.25, ``--patch`` px), upsampled back (nearest), refined by ``bilateral_solve`` with the grey image
as guide, thresholded at 0.5 and split by watershed. Reported per setting: median foreground IoU
with the true mask, Pearson r of counts and the mean relative count error. "none" = the unrefined
patch mask. Usage: ``python benchmarks/nuclei_bilateral_params.py [--patch 8]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tifffile
from lcd_nuclei.bilateral import bilateral_solve
from lcd_nuclei.evaluate import count_agreement, foreground_iou
from lcd_nuclei.instances import segment_instances

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images" / "dsb2018_brightfield"
SETTINGS = [None, (16, 16, 256), (8, 16, 64), (8, 8, 32), (4, 8, 16), (4, 4, 8)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patch", type=int, default=8)
    args = parser.parse_args()
    p = args.patch
    cases = []
    for path in sorted(DATA.glob("*_image.tif")):
        grey = tifffile.imread(path).astype(np.float64)
        labels = tifffile.imread(str(path).replace("_image.tif", "_nuclei_labels.tif"))
        h, w = (s // p * p for s in labels.shape)
        grey, labels = grey[:h, :w], labels[:h, :w]
        coarse = (labels > 0).reshape(h // p, p, w // p, p).mean((1, 3)) >= 0.25
        cases.append((grey, labels, np.kron(coarse, np.ones((p, p)))))
    for setting in SETTINGS:
        ious, counts, refs = [], [], []
        for grey, labels, target in cases:
            if setting is None:
                soft = target
            else:
                s, lu, lam = setting
                soft = bilateral_solve(grey, target, 0.999, sigma_spatial=s, sigma_luma=lu, lam=lam)
            pred = segment_instances(soft, min_area=20, min_distance=5)
            ious.append(foreground_iou(pred, labels))
            counts.append(pred.max())
            refs.append(len(np.unique(labels)) - 1)
        agree = count_agreement(counts, refs)
        rel = np.mean(np.abs(np.array(counts) - refs) / np.array(refs))
        name = "none" if setting is None else "sigma_s={} sigma_l={} lam={}".format(*setting)
        print(
            f"{name:32s} IoU {np.median(ious):.3f}  r {agree['pearson_r']:.3f}  count err {rel:.1%}  "
            f"counts {counts} ref {refs}"
        )


if __name__ == "__main__":
    main()
