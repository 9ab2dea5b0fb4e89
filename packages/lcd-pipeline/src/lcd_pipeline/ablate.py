"""``lcd ablate``: the paper's SSL variants trained on one simulated plate with one budget, then compared.

Every variant is trained by the same stage engine (``lcd run``: the quick preset's tiny ViT, steps,
batch and seed; only the variant changes), embedded, and fed to :func:`lcd_pipeline.compare.compare_models`
with the same normalizations, mAP-ES draws, MoA folds and seed:

==================  ==================================================================
label               training
==================  ==================================================================
dino                ``variant="dino"`` (blur on, the DINO recipe)
dino+barlow         ``variant="dino+barlow"``
dino+xb             ``variant="dino+xb"`` (cross-batch pairs, per-replica centers)
dino+barlow+xb      ``variant="dino+barlow+xb"``
pa+dino+barlow+xb   ``variant="pa+dino+barlow+xb"`` (plane-agnostic crops, no blur: the paper's model;
                    embedded on the focal, middle plane)
dino-no-blur        ``variant="dino", blur=False`` (Table SM2: "blur removed, no PA")
random-init         the dino run's initial weights (``lcd_ssl.export_backbone(which="init")``), no training
cellprofiler        optional: handcrafted per-field features of lcd-nuclei's instances
==================  ==================================================================

The simulator plants replica, plate and FOV effects with known truth, so the paper's claims can be
checked: does cross-batch training lower the replica silhouette and raise mAP and sensitivity over
plain DINO, and does anything beat a random-init ViT? The cell-count baseline uses the simulator's
true counts per field (a perfect nuclei segmenter: an upper bound for a label-free count).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from lcd_core import InputError

#: label → lcd-ssl options of each trained variant (the rest of the recipe is the quick preset's)
VARIANTS: dict[str, dict[str, Any]] = {
    "dino": {"variant": "dino"},
    "dino+barlow": {"variant": "dino+barlow"},
    "dino+xb": {"variant": "dino+xb"},
    "dino+barlow+xb": {"variant": "dino+barlow+xb"},
    "pa+dino+barlow+xb": {"variant": "pa+dino+barlow+xb"},
    "dino-no-blur": {"variant": "dino", "blur": False},
}
RANDOM_INIT = "random-init"
CELLPROFILER = "cellprofiler"
ALL = (*VARIANTS, RANDOM_INIT)

#: a plate for tests: 2 doses × 2 timepoints (what tests/integration uses), 2 FOVs per well
REDUCED_PLATE = {"timepoint_hours": [24.0, 48.0], "doses": [1.0, 10.0], "fovs_per_well": 2}


def ablate(
    out: str | os.PathLike,
    *,
    seed: int = 0,
    variants: Sequence[str] = ALL,
    plate: dict | None = None,
    ssl: dict | None = None,
    handcrafted: bool = False,
    compare: dict | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Train the variants on one simulated plate with one budget and compare them.

    Parameters
    ----------
    out
        Folder: ``plate/`` (in the first run), ``runs/<label>/`` (each an ``lcd run`` results folder),
        ``comparison/`` (``lcd compare``'s output and report), ``ablate.json`` (options, wall times).
    seed
        Seed of the plate, of every training and of the comparison.
    variants
        Labels among :data:`VARIANTS` and ``random-init`` (which needs ``dino``).
    plate
        Overrides of the simulator's demo preset (e.g. :data:`REDUCED_PLATE`).
    ssl
        Overrides of the quick preset's training options, the same for every variant (e.g. steps).
    handcrafted
        Add the ``cellprofiler`` row: handcrafted features of lcd-nuclei's instances (segmented with
        the dino model; seconds per hundred fields).
    compare
        Options of :func:`lcd_pipeline.compare.compare_models`.
    log
        Receives progress lines.

    Returns
    -------
    pathlib.Path
        ``out``.
    """
    from lcd_core import write_json, write_table
    from lcd_ssl import export_backbone

    from .compare import compare_models
    from .config import resolve
    from .engine import run_pipeline

    unknown = [v for v in variants if v not in ALL]
    if unknown:
        raise InputError(f"unknown variant {unknown[0]!r}; choose from {list(ALL)}")
    n_draws = (compare or {}).get("n_draws")
    if n_draws is not None and (isinstance(n_draws, bool) or not isinstance(n_draws, int) or n_draws < 2):
        # refused here, not after every variant has trained (map_es needs two draws for a null's SD)
        raise InputError(f"n_draws must be an integer >= 2, got {n_draws!r}")
    if RANDOM_INIT in variants and "dino" not in variants:
        raise InputError("random-init exports the dino run's initial weights: include 'dino' in the variants")
    out = Path(out)
    runs = out / "runs"
    trained = [v for v in variants if v in VARIANTS]
    ordered = sorted(trained, key=lambda v: v != "dino")  # the first run simulates the plate
    # the shared training options (and the plate's) are checked before any folder is made
    resolve(
        {
            "results": str(runs / ordered[0]),
            "seed": seed,
            "preset": "quick",
            "input": {"simulate": {"preset": "demo", "seed": seed, **(plate or {})}},
            "ssl": {**(ssl or {}), **VARIANTS[ordered[0]]},
        }
    )
    runs.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    first = runs / ordered[0]
    manifest = first / "manifest.parquet"
    for label in ordered:
        options = {**(ssl or {}), **VARIANTS[label]}
        inp = (
            {"simulate": {"preset": "demo", "seed": seed, **(plate or {})}}
            if label == ordered[0]
            else {"manifest": str(manifest)}
        )
        raw = {"results": str(runs / label), "seed": seed, "preset": "quick", "input": inp, "ssl": options}
        if label.startswith("pa+"):
            # a plane-agnostic model takes one plane: embed the focal (middle) plane, as the paper does
            planes = (plate or {}).get("n_planes", 3)
            raw["embed"] = {"preprocessing": {"planes": [planes // 2]}}
        cfg = resolve(raw)
        start = time.perf_counter()
        log(f"[ablate] {label}: train + embed")
        run_pipeline(cfg, log=lambda m, label=label: log(f"  {label} {m}"), stop_after="embed")
        times[label] = time.perf_counter() - start
    inputs = {label: str(runs / label / "embeddings.parquet") for label in trained}
    if RANDOM_INIT in variants:
        start = time.perf_counter()
        model = runs / RANDOM_INIT / "model"
        if not (model / "config.json").is_file():
            export_backbone(runs / "dino" / "ssl_run", model, which="init")
        cfg = resolve(
            {
                "results": str(runs / RANDOM_INIT),
                "seed": seed,
                "checkpoint": str(model),
                "input": {"manifest": str(manifest)},
            }
        )
        run_pipeline(cfg, log=lambda m: log(f"  {RANDOM_INIT} {m}"), stop_after="embed")
        inputs[RANDOM_INIT] = str(runs / RANDOM_INIT / "embeddings.parquet")
        times[RANDOM_INIT] = time.perf_counter() - start
    plate_dir = first / "plate"
    if handcrafted:
        start = time.perf_counter()
        path = out / "handcrafted.h5ad"
        if not path.is_file():
            from lcd_core import write_h5ad

            from .handcrafted import handcrafted_profiles

            log("[ablate] cellprofiler: handcrafted features of lcd-nuclei's instances (dino model)")
            write_h5ad(handcrafted_profiles(str(manifest), runs / "dino" / "model"), path)
        inputs[CELLPROFILER] = str(path)
        times[CELLPROFILER] = time.perf_counter() - start
    counts = out / "true_counts.parquet"
    fields = pd.read_parquet(plate_dir / "truth" / "fields.parquet")
    write_table(
        fields[["replica", "plate", "well", "fov", "timepoint", "compound", "dose", "nuclei_count"]], counts
    )
    start = time.perf_counter()
    log(f"[ablate] compare {list(inputs)}")
    options = {"seed": seed, "counts": str(counts), **(compare or {})}
    comp = compare_models(inputs, log=log, **options)
    comp.params["ablate"] = {"seed": seed, "plate": plate or {}, "ssl": ssl or {}, "variants": list(variants)}
    comp.write(out / "comparison")
    times["compare"] = time.perf_counter() - start
    write_json(
        {
            "seed": seed,
            "variants": list(variants),
            "plate": plate or {},
            "ssl": ssl or {},
            "handcrafted": handcrafted,
            "compare": options,
            "seconds": times,
            "counts": "simulator truth (truth/fields.parquet nuclei_count)",
        },
        out / "ablate.json",
    )
    return out
