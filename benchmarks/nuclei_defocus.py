"""Issue 17: nuclei counts on the ISL phase z-stack vs DAPI from defocus channels, with honest choices.

Fields: the 1024² ISL well cut into ``--tiles`` x ``--tiles`` fields (4: 16 fields of 256², as
``nuclei_quality.py``). Reference: :func:`lcd_nuclei.stain.nuclei_from_stain` on the DAPI field with
one threshold (Otsu over the whole DAPI image) and one diameter (estimated on the whole image), so
an empty field stays empty; 0.2.0's per-field ``reference_from_stain`` counts are printed beside.

Channels, each computed on the whole 1024² acquisition and then cut into the fields:

- ``z06``: the in-focus plane (no defocus information);
- ``defocus a/b``: :func:`lcd_nuclei.defocus.defocus_contrast` of planes a, 6, b (the paper has 3
  planes; which ISL planes correspond to its ±3.6 µm is unknown, so several spans are reported);
- ``TIE a/b``: :func:`lcd_nuclei.tie.tie_phase` of the same planes, ``highpass`` in the grid.

Counter: :func:`lcd_nuclei.classical.classical_nuclei`. ``--floor-unit noise`` (default since
0.5.0 of this script; the counter's default unit): each channel is computed by the package's own
``nucleus_channel`` with its defaults (TIE high-pass 4 x diameter) and its floor is counted in SDs of
the channel's noise (``channel_noise``, one realisation per ``--noise-seeds`` seed; the first seed's
rows are the main table, the others show how much the draw moves them), grid ``NOISE_GRID``.
``--floor-unit mad`` reproduces phase 1's table (robust SDs of each field's response,
``COUNTER_GRID``, highpass {64, 32, 128}). Each channel row gives

- ``fixed``: diameter 20 px (what a user would enter for this objective: the DAPI nuclei are
  ~22 px across), polarity ``auto``, the counter's other defaults, highpass 64 (noise unit: the
  package default 4 x diameter = 80) — no choice made
  on any reference;
- ``LOFO``: for each field, every option (grid below) chosen on the 15 other fields by the
  smallest mean absolute count error against their DAPI counts (``--criterion mae``) or the
  largest Lin's CCC (``ccc``), then applied to the held-out field (the choice rule of the
  stain-calibrated mode; never sees the field's own reference);
- ``best on all`` (upper bound, NOT a valid estimate): the single option best on all fields.

The ViT rows run :func:`lcd_nuclei.discover_field` on each field with a trained and a random-init
model per seed (the recipe of ``nuclei_quality.py``), default params and LOFO over polarity x
n_clusters: on plane z06; on z06 with the bilateral solver guided by the TIE channel instead of
the grey image (prototype: discovery unrefined, then ``bilateral_solve`` with the TIE guide); and
with the TIE channel as the input image (``--vit-tie``, highpass 64).
Finally the stain-calibrated learning curve: for the channel with the best LOFO r, how many
stained fields it takes (random draws) for the chosen option to reach r >= 0.8 on the rest.

Usage: ``python benchmarks/nuclei_defocus.py [--tiles 4] [--seeds 0 1 2] [--steps 600] [--no-vit]
[--criterion mae|ccc] [--floor-unit noise|mad] [--noise-seeds 0 1 2] [--out FILE]``
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from _nuclei_common import field_metrics, fmt, grid, grid_fields, load_dsb, load_isl, loo_select, summarize

PLANE_SETS = {"0/12": (0, 12), "3/9": (3, 9), "5/7": (5, 7)}
CRITERION = "mae"  # set by --criterion
COUNTER_GRID = {
    "diameter": [20, 12, 16, 24],
    "polarity": ["auto", "bright", "dark"],
    "floor": [6.0, 4.0, 8.0, 2.0],
    "threshold_method": ["otsu", "mad"],
    # phase 1's unit (robust SDs of the field's response): the noise unit of 0.3.0 needs each derived
    # channel's own noise realisation (lcd_nuclei.channel_noise), which these 1024² channels do not carry
    "floor_unit": ["mad"],
}


def channels(planes):
    """Name -> (list of (highpass, channel) options); the first option is the fixed default."""
    from lcd_nuclei.defocus import defocus_contrast
    from lcd_nuclei.tie import tie_phase

    out = {"z06 (in focus)": [(None, planes[6])]}
    for name, (a, b) in PLANE_SETS.items():
        sel = [a, 6, b]
        z = np.array([a, 6, b], float) - 6.0
        out[f"defocus {name}"] = [(None, defocus_contrast(planes[sel], z))]
        out[f"TIE {name}"] = [(hp, tie_phase(planes[sel], z, highpass=hp)) for hp in (64, 32, 128)]
    z = np.arange(13, dtype=float) - 6.0
    out["defocus all 13"] = [(None, defocus_contrast(planes, z))]
    out["TIE all 13"] = [(hp, tie_phase(planes, z, highpass=hp)) for hp in (64, 32, 128)]
    return out


#: ``--floor-unit noise`` (the package default since 0.3.0): channels through the package's own
#: ``nucleus_channel`` with its defaults (TIE high-pass 4 x diameter), each with its noise realisation
#: from ``channel_noise`` (what ``lcd-nuclei count`` does); floors in noise SDs
#: (``lcd_nuclei.calibrate.FLOORS``); the first option of every list is the fixed default.
NOISE_GRID = {
    "diameter": [20, 12, 16, 24],
    "polarity": ["auto", "bright", "dark"],
    "floor": [6.0, 3.0, 10.0, 20.0],
    "split_depth": [0.0, 0.5],
}


def noise_specs():
    """Name -> ``nucleus_channel`` options of the channels compared (plane indices of z00..z12)."""
    specs = {"z06 (in focus)": {"channel": "grey", "planes": [6]}}
    for name, (a, b) in PLANE_SETS.items():
        sel, z = [a, 6, b], [a - 6.0, 0.0, b - 6.0]
        specs[f"defocus {name}"] = {"channel": "defocus", "planes": sel, "defocus": z}
        specs[f"TIE {name}"] = {"channel": "tie", "planes": sel, "defocus": z}
    z13 = [z - 6.0 for z in range(13)]
    specs["defocus all 13"] = {"channel": "defocus", "planes": list(range(13)), "defocus": z13}
    specs["TIE all 13"] = {"channel": "tie", "planes": list(range(13)), "defocus": z13}
    return specs


def classical_rows_noise(planes, fields, refs, noise_seed=0):
    """As :func:`classical_rows`, with the noise floor unit: every option gets its channel's noise."""
    from lcd_nuclei.channels import channel_noise, nucleus_channel
    from lcd_nuclei.classical import classical_nuclei

    results, matrices = [], {}
    for name, spec in noise_specs().items():
        t0 = time.perf_counter()
        metrics, labels, cache = [], [], {}
        for opts in grid(**NOISE_GRID):
            hp = 4.0 * opts["diameter"] if spec["channel"] == "tie" else None  # the package default
            if hp not in cache:
                cache[hp] = (
                    nucleus_channel(planes, **spec, highpass=hp),
                    channel_noise(planes, **spec, highpass=hp, seed=noise_seed),
                )
            channel, noise = cache[hp]
            metrics.append(
                [
                    field_metrics(classical_nuclei(channel[f], noise=noise[f], **opts)["labels"], ref)
                    for f, ref in zip(fields, refs, strict=True)
                ]
            )
            labels.append({"highpass": hp, **opts})
        results.append(_row(name, metrics, labels, time.perf_counter() - t0))
        matrices[name] = (metrics, labels)
    return results, matrices


def _row(name, metrics, labels, seconds):
    chosen, held = loo_select(metrics, CRITERION)
    best = int(np.argmin([summarize(m)["mae"] for m in metrics]))
    picked = sorted({json.dumps(labels[c], sort_keys=True) for c in chosen})
    return {
        "channel": name,
        "fixed": summarize(metrics[0]),
        "LOFO": summarize(held),
        "best on all": summarize(metrics[best]),
        "best option": labels[best],
        "LOFO choices": picked[:4],
        "n_choices": len(picked),
        "seconds": round(seconds, 1),
        "candidates": len(metrics),
    }


def classical_rows(chans, fields, refs):
    from lcd_nuclei.classical import classical_nuclei

    results, matrices = [], {}
    for name, options in chans.items():
        t0 = time.perf_counter()
        metrics, labels = [], []
        for hp, channel in options:
            for opts in grid(**COUNTER_GRID):
                per_field = [
                    field_metrics(classical_nuclei(channel[f], **opts)["labels"], ref)
                    for f, ref in zip(fields, refs, strict=True)
                ]
                metrics.append(per_field)
                labels.append({"highpass": hp, **opts})
        matrices[name] = (metrics, labels)
        results.append(_row(name, metrics, labels, time.perf_counter() - t0))
    return results, matrices


def guided(result, guide, params):
    """Re-refine an unrefined discovery with another guide image (prototype of the TIE-guided solver)."""
    from lcd_nuclei import bilateral_solve, drop_large_objects, segment_instances

    lo, hi = np.percentile(guide, [1, 99])
    grey = np.clip((guide - lo) / (hi - lo), 0, 1) * 255.0
    nucleus = bilateral_solve(
        grey,
        result["nucleus_map"],
        0.999,
        sigma_spatial=params.sigma_spatial,
        sigma_luma=params.sigma_luma,
        lam=params.lam,
    )
    labels = segment_instances(nucleus, min_area=params.min_area, min_distance=params.min_distance)
    return drop_large_objects(labels, params.max_area_ratio)[0]


def vit_rows(planes, tie, fields, refs, seeds, steps):
    from _nuclei_common import train_vits
    from lcd_nuclei import DiscoveryParams, discover_field

    dsb = [img for _, img, _ in load_dsb()]
    out = []
    variants = (
        ("z06", planes[6], None),
        ("z06, solver guided by TIE", planes[6], tie),
        ("TIE as input", tie, None),
    )
    for seed in seeds:
        models, info = train_vits([*dsb, planes[6].astype(np.float32)], steps=steps, seed=seed)
        for model_name, (model, cfg) in models.items():
            for input_name, image, guide in variants:
                metrics, labels = [], []
                for opts in grid(polarity=["dark", "bright"], n_clusters=[4, 2]):
                    params = DiscoveryParams(nuclei_step="kmeans", **opts, refine=guide is None)
                    preds = []
                    for f in fields:
                        res = discover_field(image[f].astype(np.float32), model, cfg, params=params)
                        preds.append(res["labels"] if guide is None else guided(res, guide[f], params))
                    metrics.append([field_metrics(p, r) for p, r in zip(preds, refs, strict=True)])
                    labels.append(opts)
                _, held = loo_select(metrics, CRITERION)
                out.append(
                    {
                        "seed": seed,
                        "model": model_name,
                        "input": input_name,
                        "default (dark, 4)": summarize(metrics[0]),
                        "default bright": summarize(metrics[2]),
                        "LOFO": summarize(held),
                        **info,
                    }
                )
                print(
                    f"ViT seed {seed} {model_name:11s} {input_name:27s} default {fmt(summarize(metrics[0]))}"
                )
                print(f"{'':58s} bright  {fmt(summarize(metrics[2]))}")
                print(f"{'':58s} LOFO    {fmt(summarize(held))}", flush=True)
    return out


def main() -> None:
    from lcd_nuclei.calibrate import calibration_curve
    from lcd_nuclei.evaluate import reference_from_stain
    from lcd_nuclei.stain import estimate_diameter, nuclei_from_stain, stain_threshold
    from skimage.filters import gaussian

    parser = argparse.ArgumentParser()
    parser.add_argument("--tiles", type=int, default=4)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--no-vit", action="store_true")
    parser.add_argument(
        "--criterion", choices=["mae", "ccc"], default="mae", help="LOFO / calibration choice rule"
    )
    parser.add_argument("--vit-tie", default="TIE 3/9", help="TIE channel given to the ViT rows (hp 64)")
    parser.add_argument("--out", default=None, help="write all results as JSON here")
    parser.add_argument(
        "--floor-unit",
        choices=["noise", "mad"],
        default="noise",
        help="noise: the package default (each channel's noise through channel_noise); mad: phase 1's unit",
    )
    parser.add_argument(
        "--noise-seeds",
        type=int,
        nargs="*",
        default=[0, 1, 2],
        help="--floor-unit noise: the fixed and LOFO rows are repeated for these noise realisations",
    )
    args = parser.parse_args()
    global CRITERION
    CRITERION = args.criterion

    planes, dapi = load_isl()
    threshold = stain_threshold(dapi)
    diameter = estimate_diameter(gaussian(dapi, sigma=1.0, preserve_range=True) > threshold)
    fields = grid_fields(dapi.shape, args.tiles)
    refs = [nuclei_from_stain(dapi[f], threshold=threshold, diameter=diameter) for f in fields]
    ref_counts = [int(r.max()) for r in refs]
    old_counts = [int(reference_from_stain(dapi[f]).max()) for f in fields]
    print(
        f"reference: threshold {threshold:.0f}, diameter {diameter:.1f} px; counts {ref_counts} "
        f"(total {sum(ref_counts)}); 0.2.0 reference_from_stain {old_counts} (total {sum(old_counts)})"
    )

    t0 = time.perf_counter()
    chans = channels(planes)
    print(f"channels computed on the 1024² image in {time.perf_counter() - t0:.1f} s", flush=True)
    seed_rows = {}
    if args.floor_unit == "noise":
        results, matrices = classical_rows_noise(planes, fields, refs, noise_seed=args.noise_seeds[0])
        for seed in args.noise_seeds[1:]:  # the floor's noise realisation is a draw: how much does it move?
            seed_rows[seed] = classical_rows_noise(planes, fields, refs, noise_seed=seed)
    else:
        results, matrices = classical_rows(chans, fields, refs)
    otsu = [field_metrics(reference_from_stain(planes[6][f]), r) for f, r in zip(fields, refs, strict=True)]
    otsu_dark = [
        field_metrics(reference_from_stain(-planes[6][f]), r) for f, r in zip(fields, refs, strict=True)
    ]
    print(f"\nISL {len(fields)} fields of {dapi.shape[0] // args.tiles}² vs DAPI (n = {len(fields)})")
    print(f"{'Otsu + watershed on z06, bright':34s} {fmt(summarize(otsu))}")
    print(f"{'Otsu + watershed on z06, dark':34s} {fmt(summarize(otsu_dark))}")
    for row in results:
        print(f"{row['channel']:18s} fixed       {fmt(row['fixed'])}")
        print(
            f"{'':18s} LOFO        {fmt(row['LOFO'])}   ({row['n_choices']} distinct choices, e.g. {row['LOFO choices'][0]})"
        )
        print(
            f"{'':18s} best on all {fmt(row['best on all'])}   {row['best option']}  [{row['seconds']} s, {row['candidates']} options]",
            flush=True,
        )

    # The channel (plane span, defocus vs TIE) is a choice too: choosing it by looking at the rows
    # above is not leave-one-out. Pooled: every channel x option is one candidate of the LOFO choice.
    pooled, pooled_labels = [], []
    for name, (metrics, labels) in matrices.items():
        pooled += metrics
        pooled_labels += [{"channel": name, **lab} for lab in labels]
    chosen, held = loo_select(pooled, CRITERION)
    picked = sorted({json.dumps(pooled_labels[c], sort_keys=True) for c in chosen})
    print(
        f"{'ALL channels pooled':18s} LOFO        {fmt(summarize(held))}   ({len(picked)} distinct choices of {len(pooled)})"
    )
    for p in picked:
        print(f"{'':32s}{p}")
    pooled_summary = summarize(held)
    seed_summary = {}
    for seed, (rows_s, matrices_s) in seed_rows.items():
        pooled_s = [m for metrics, _ in matrices_s.values() for m in metrics]
        pooled_s_summary = summarize(loo_select(pooled_s, CRITERION)[1])
        seed_summary[seed] = {"classical": rows_s, "pooled_lofo": pooled_s_summary}
        print(f"\nnoise realisation seed {seed}:")
        for row in rows_s:
            print(
                f"{row['channel']:18s} fixed r {row['fixed']['pearson_r']:.2f}  LOFO r {row['LOFO']['pearson_r']:.2f}"
            )
        print(f"{'ALL channels pooled':18s} LOFO {fmt(pooled_s_summary)}", flush=True)

    ref = np.array(ref_counts, float)
    sizes = [s for s in (1, 2, 3, 4, 6, 8, 12) if s <= len(fields) - 3]
    curves = {}
    best = max(results, key=lambda r: np.nan_to_num(r["LOFO"]["pearson_r"], nan=-1))
    for title, metrics in (
        ("all channels pooled", pooled),
        (f"{best['channel']} (picked post hoc)", matrices[best["channel"]][0]),
    ):
        pred = np.array([[m["pred"] for m in cand] for cand in metrics], float)
        curve = calibration_curve(pred, ref, sizes, n_repeats=200, seed=0, criterion=CRITERION)
        print(
            f"\nstain-calibrated learning curve, {title} (choice by count {CRITERION} on the stained fields (MAE with 1), "
            f"{len(metrics)} options, 200 random draws per size; r on the other fields)"
        )
        summary_curve = []
        for m, g in curve.groupby("n_stained"):
            r = g["pearson_r"]
            line = {
                "n_stained": int(m),
                "median_r": float(r.median()),
                "q10_r": float(r.quantile(0.1)),
                "p_r_ge_0.8": float((r >= 0.8).mean()),
                "median_mae": float(g["mae"].median()),
                "nan_r": int(r.isna().sum()),
            }
            summary_curve.append(line)
            print(
                f"  {m} stained: median r {line['median_r']:.2f} (10th pct {line['q10_r']:.2f}), P(r >= 0.8) "
                f"{line['p_r_ge_0.8']:.2f}, median MAE {line['median_mae']:.1f}, r undefined {line['nan_r']}"
            )
        curves[title] = summary_curve

    vit = (
        [] if args.no_vit else vit_rows(planes, chans["TIE 0/12"][0][1], fields, refs, args.seeds, args.steps)
    )
    if args.out:
        from lcd_core import write_json

        write_json(
            {
                "tiles": args.tiles,
                "reference_counts": ref_counts,
                "old_reference_counts": old_counts,
                "classical": results,
                "otsu": summarize(otsu),
                "otsu_dark": summarize(otsu_dark),
                "pooled_lofo": pooled_summary,
                "pooled_choices": picked,
                "curves": curves,
                "vit": vit,
                "floor_unit": args.floor_unit,
                "noise_seeds": seed_summary,
            },
            args.out,
        )


if __name__ == "__main__":
    main()
