"""Issue 17: can the defocus channel count nuclei on the simulator's demo fields (its plane physics).

Reads a plate written by ``lcd simulate OUT --preset demo`` (or any preset): the three brightfield
planes of each field (p01 = -1, p02 = 0, p03 = +1 plane spacing, plus a per-plate focus shift the
counter does not know) and the true nuclei count per field (``truth/fields.parquet``).
Channels: the in-focus plane p02, :func:`lcd_nuclei.defocus.defocus_contrast` of p01..p03, and
:func:`lcd_nuclei.tie.tie_phase` (highpass 4 x the nucleus diameter). Counter:
:func:`lcd_nuclei.classical.classical_nuclei`:

- ``fixed``: diameter = 2 x 0.45 x ``cell_radius`` of ``simulation.json`` (the simulator's mean
  nucleus diameter: what a user knows from the objective), polarity ``auto``, defaults;
- ``chosen on replica 1``: options (grid below) chosen by count MAE on ``--calibration`` random
  fields of the first replica, evaluated on all fields of the other replicas (disjoint cells,
  plates and technical effects).

Pearson r (95 % CI), CCC, slope/bias against the true counts; seconds per field. Also: the learning
curve of the choice within the calibration fields (how many counted fields it needs), and the
simulator's stain channel through :func:`lcd_nuclei.stain.nuclei_from_stain` against the truth.
Usage: ``python benchmarks/nuclei_simulated.py /tmp/sim_demo [--calibration 150] [--max-fields N]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _nuclei_common import grid


def main() -> None:
    import pandas as pd
    import tifffile
    from lcd_nuclei.calibrate import calibration_curve, choose_candidate
    from lcd_nuclei.classical import classical_nuclei
    from lcd_nuclei.defocus import defocus_contrast
    from lcd_nuclei.evaluate import count_agreement
    from lcd_nuclei.stain import nuclei_from_stain, stain_threshold
    from lcd_nuclei.tie import tie_phase
    from lcd_pipeline.simulate import opera_name

    parser = argparse.ArgumentParser()
    parser.add_argument("plate", type=Path)
    parser.add_argument("--calibration", type=int, default=150)
    parser.add_argument("--max-fields", type=int, default=None, help="evaluate a random subset (seeded)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    cfg = json.loads((args.plate / "simulation.json").read_text())
    fields = pd.read_parquet(args.plate / "truth" / "fields.parquet")
    diameter = 2 * 0.45 * cfg["cell_radius"]
    z = np.arange(cfg["n_planes"], dtype=float) - (cfg["n_planes"] - 1) / 2
    mid = cfg["n_planes"] // 2

    def planes(row):
        folder = args.plate / "images" / row.plate
        return np.stack(
            [
                tifffile.imread(folder / opera_name(row.row, row.column, row.fov, p + 1, 1, row.timepoint))
                for p in range(cfg["n_planes"])
            ]
        ).astype(np.float64)

    rng = np.random.default_rng(0)
    first = fields["replica"] == fields["replica"].min()
    calib = fields[first].sample(n=min(args.calibration, int(first.sum())), random_state=0)
    test = fields[~first]
    if args.max_fields and len(test) > args.max_fields:
        test = test.iloc[np.sort(rng.choice(len(test), args.max_fields, replace=False))]
    print(
        f"{args.plate}: {len(fields)} fields of {cfg['image_size']}², {cfg['n_planes']} planes; nucleus diameter "
        f"{diameter:.1f} px; calibration {len(calib)} fields of replica 1, test {len(test)} fields of the others"
    )

    def channel_set(p):
        return {
            "in-focus plane": p[mid],
            "defocus contrast": defocus_contrast(p, z),
            "TIE phase": tie_phase(p, z, highpass=4 * diameter),
        }

    options = grid(
        diameter=[diameter, 0.75 * diameter, 1.5 * diameter],
        polarity=["auto", "bright", "dark"],
        floor=[6.0, 4.0, 8.0, 2.0],
        threshold_method=["otsu", "mad"],
        floor_unit=["mad"],  # phase 1's unit; the demo's noise-unit counts are measured by `lcd demo` itself
    )
    calib_counts = {}
    for row in calib.itertuples(index=False):
        for name, ch in channel_set(planes(row)).items():
            calib_counts.setdefault(name, []).append(
                [classical_nuclei(ch, **o)["nuclei_count"] for o in options]
            )
    calib_truth = calib["nuclei_count"].to_numpy(float)
    chosen = {
        name: choose_candidate(np.array(c).T, calib_truth, criterion="mae")
        for name, c in calib_counts.items()
    }
    # How many counted fields does the choice need? Learning curve within the calibration fields
    # (choice on m of them, r on the rest), options pooled over the three channels.
    pooled = np.concatenate([np.array(c).T for c in calib_counts.values()])
    curve = calibration_curve(pooled, calib_truth, [1, 2, 3, 5, 10, 20], n_repeats=100, seed=0)
    curve_summary = []
    for m, g in curve.groupby("n_stained"):
        r = g["pearson_r"]
        curve_summary.append(
            {
                "n_stained": int(m),
                "median_r": float(r.median()),
                "q10_r": float(r.quantile(0.1)),
                "p_r_ge_0.9": float((r >= 0.9).mean()),
                "nan_r": int(r.isna().sum()),
            }
        )
        print(
            f"  calibration on {m:2d} counted fields: median r on the other {len(calib) - m} "
            f"{r.median():.3f} (10th pct {r.quantile(0.1):.3f}), P(r >= 0.9) {(r >= 0.9).mean():.2f}"
        )
    # The simulator's stain channel through the size-prior reference, vs the true counts.
    stains = [
        tifffile.imread(
            args.plate
            / "truth"
            / "stain"
            / row.plate
            / opera_name(row.row, row.column, row.fov, 1, 2, row.timepoint)
        )
        for row in calib.itertuples(index=False)
    ]
    threshold = stain_threshold(stains)
    stain_counts = np.array([nuclei_from_stain(s, threshold=threshold).max() for s in stains], float)
    stain_agree = count_agreement(stain_counts, calib_truth)
    print(
        f"stain reference (nuclei_from_stain, shared threshold) vs truth on the {len(calib)} calibration fields: "
        f"r {stain_agree['pearson_r']:.3f}, bias {stain_agree['bias']:+.2f}"
    )
    results = {}
    counts = {(name, kind): [] for name in chosen for kind in ("fixed", "chosen")}
    t0 = time.perf_counter()
    for row in test.itertuples(index=False):
        for name, ch in channel_set(planes(row)).items():
            counts[(name, "fixed")].append(
                classical_nuclei(ch, diameter=diameter, polarity="auto", floor_unit="mad")["nuclei_count"]
            )
            counts[(name, "chosen")].append(classical_nuclei(ch, **options[chosen[name]])["nuclei_count"])
    seconds = (time.perf_counter() - t0) / max(len(test), 1) / 6
    truth = test["nuclei_count"].to_numpy(float)
    print(
        f"true counts per field: {truth.min():.0f}-{truth.max():.0f} (mean {truth.mean():.1f}); "
        f"{seconds * 1000:.1f} ms per field and counter"
    )
    for (name, kind), c in counts.items():
        c = np.asarray(c, float)
        agree = count_agreement(c, truth) if c.std() > 0 else {"pearson_r": float("nan")}
        extra = f"  option {options[chosen[name]]}" if kind == "chosen" else ""
        print(
            f"{name:17s} {kind:7s} r {agree['pearson_r']:.3f} [{agree.get('r_ci_low', np.nan):.3f}, "
            f"{agree.get('r_ci_high', np.nan):.3f}]  CCC {agree.get('ccc', np.nan):.3f}  slope "
            f"{agree.get('slope', np.nan):.2f}  bias {agree.get('bias', np.nan):+.1f}{extra}"
        )
        results[f"{name} / {kind}"] = agree | ({"option": options[chosen[name]]} if kind == "chosen" else {})
    if args.out:
        from lcd_core import write_json

        write_json(
            {
                "plate": str(args.plate),
                "n_test": len(test),
                "results": results,
                "curve": curve_summary,
                "stain_vs_truth": stain_agree,
                "ms_per_field": seconds * 1000,
            },
            args.out,
        )


if __name__ == "__main__":
    main()
