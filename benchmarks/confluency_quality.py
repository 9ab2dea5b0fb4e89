"""Confluency without a model (``lcd_nuclei.cell_area``) against the simulator's true cell area.

Usage::

    lcd simulate /tmp/sim0 --seed 0 && lcd simulate /tmp/sim3 --seed 3
    python benchmarks/confluency_quality.py --tune /tmp/sim0 --test /tmp/sim3 [--n 600] [--model DIR]

Parameters (``window`` x ``floor``) are chosen on replicas R1-R2 of the ``--tune`` plate by the mean
absolute error of the field's confluency (a fraction: the absolute level matters, not only the
ranking); the chosen setting is reported on replicas R3-R4 of the same plate and on every replica of
the ``--test`` plate (another simulator seed: other compounds, layouts, illumination, focus). Beside
it, the classical texture baseline (local SD of the in-focus planes' mean, PHANTAST-like, its own
best setting chosen the same way) and, with ``--model`` (a checkpoint folder, e.g. the ``model/`` of
``lcd demo`` on the tune plate), the ViT's cell area (``lcd_nuclei.discover_field``: FOUND-style
background seed refined by the bilateral solver; no parameter chosen here). Prints a markdown table: Pearson r, MAE and bias per set.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

WINDOWS = (2.0, 3.0, 4.0, 5.0)
FLOORS = (4.0, 6.0, 8.0, 10.0, 12.0, 16.0)


def load_fields(root: Path, n: int, seed: int) -> tuple[list[np.ndarray], pd.DataFrame]:
    """``n`` random fields (all planes) of a simulated plate with their truth rows."""
    import tifffile

    truth = pd.read_parquet(root / "truth" / "fields.parquet")
    pick = np.sort(np.random.default_rng(seed).choice(len(truth), min(n, len(truth)), replace=False))
    truth = truth.iloc[pick].reset_index(drop=True)
    planes = int(__import__("json").loads((root / "simulation.json").read_text())["n_planes"])
    images = []
    for r in truth.itertuples():
        stem = f"r{r.row:02d}c{r.column:02d}f{r.fov:02d}"
        images.append(
            np.stack(
                [
                    tifffile.imread(
                        root / "images" / r.plate / f"{stem}p{p:02d}-ch1sk{r.timepoint}fk1fl1.tiff"
                    )
                    for p in range(1, planes + 1)
                ]
            ).astype(np.float64)
        )
    return images, truth


def texture_area(planes: np.ndarray, *, window: float, floor: float) -> np.ndarray:
    """Baseline: local SD of the planes' mean (in-focus texture) above ``floor`` noise SDs."""
    from lcd_nuclei.cellarea import local_detail_sd

    return local_detail_sd(planes.mean(0), window) > floor


def scores(pred: np.ndarray, true: np.ndarray) -> dict:
    """Pearson r, mean absolute error and bias of predicted against true confluency."""
    from scipy.stats import pearsonr

    return {
        "r": float(pearsonr(pred, true).statistic),
        "mae": float(np.abs(pred - true).mean()),
        "bias": float((pred - true).mean()),
    }


def main() -> None:
    from lcd_nuclei import cell_area

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tune", type=Path, required=True)
    ap.add_argument("--test", type=Path, required=True)
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--model", type=Path, default=None, help="checkpoint folder: add the ViT cell-area rows")
    args = ap.parse_args()

    tune_imgs, tune_truth = load_fields(args.tune, args.n, 0)
    test_imgs, test_truth = load_fields(args.test, args.n, 1)
    fit = tune_truth["replica"].isin(["R1", "R2"]).to_numpy()
    methods = {
        "cell_area (defocus contrast)": cell_area,
        "texture of the planes' mean (baseline)": texture_area,
    }
    rows = []
    for name, fn in methods.items():
        grid = {}
        for w in WINDOWS:
            for f in FLOORS:
                conf = np.array([fn(im, window=w, floor=f).mean() for im in tune_imgs])
                grid[(w, f)] = conf
        best = min(grid, key=lambda k: np.abs(grid[k][fit] - tune_truth["confluency"].to_numpy()[fit]).mean())
        test_conf = np.array([fn(im, window=best[0], floor=best[1]).mean() for im in test_imgs])
        true_tune = tune_truth["confluency"].to_numpy()
        for label, pred, true in (
            ("tune plate R1-R2 (chosen on)", grid[best][fit], true_tune[fit]),
            ("tune plate R3-R4 (held out)", grid[best][~fit], true_tune[~fit]),
            ("test plate, all (other seed)", test_conf, test_truth["confluency"].to_numpy()),
        ):
            rows.append(
                {"method": name, "window": best[0], "floor": best[1], "set": label, "n": len(true)}
                | scores(pred, true)
            )
    if args.model is not None:
        import lcd_embed as le
        from lcd_nuclei import DiscoveryParams, discover_field

        module, config = le.load_backbone(str(args.model), device="cpu")
        params = DiscoveryParams(nuclei_step="classical")
        true_tune = tune_truth["confluency"].to_numpy()
        vit_tune = np.array(
            [discover_field(im, module, config, params=params)["confluency"] for im in tune_imgs]
        )
        vit_test = np.array(
            [discover_field(im, module, config, params=params)["confluency"] for im in test_imgs]
        )
        for label, pred, true in (
            ("tune plate R1-R2 (chosen on)", vit_tune[fit], true_tune[fit]),
            ("tune plate R3-R4 (held out)", vit_tune[~fit], true_tune[~fit]),
            ("test plate, all (other seed)", vit_test, test_truth["confluency"].to_numpy()),
        ):
            rows.append(
                {
                    "method": f"ViT cell area ({args.model.name})",
                    "window": "-",
                    "floor": "-",
                    "set": label,
                    "n": len(true),
                }
                | scores(pred, true)
            )
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for row in rows:
        print(
            "| "
            + " | ".join(f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in cols)
            + " |"
        )


if __name__ == "__main__":
    main()
