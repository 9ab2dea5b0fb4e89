"""Paper scale: time and peak memory of each stage after embedding, on synthetic screens of 1x to 8x a base size.

    python benchmarks/scale.py generate --scale 1 --root /work/scale-data     # tile store on disk
    python benchmarks/scale.py run --scale 1 --root /work/scale-data [--stages aggregate,normalize]
    python benchmarks/scale.py table                                          # markdown + exponents
    python benchmarks/scale.py clean --scale 1 --root /work/scale-data

The screen is shaped like the LCD paper's: plates x 384 wells x 4 fields x 5 timepoints x ``tiles``
tiles per field, 384 features (ViT-S/16 CLS), 4 replicas, 32 DMSO wells per plate, compounds at 4
doses, one well per compound x dose per replica, MoA directions for half of the compounds. The base (1x)
is 12 plates x 30 tiles = 2.76 M tiles (a paper-sized evaluation set); 8x is 22.1 M tiles (34 GB of
float32 features). ``generate`` writes the tile store part by part (``lcd_core.write_tile_part``, 256
fields per part like ``lcd-embed``'s default shard): the whole matrix never exists in memory.

``run`` times each stage in its own child process (``os.wait4`` gives the child's peak RSS and CPU
time), reading the previous stage's file like ``lcd run`` does:

- ``aggregate``: tiles -> fields, ``lcd_norm.aggregate_tiles`` (exact median, streamed), written as h5ad;
- ``normalize``: MAD per plate x timepoint + Harmony on replica x FOV (``lcd_norm.mad_harmony_fov``);
- ``activity``: fields -> wells, ``lcd_metrics.map_es`` with 1000 draws;
- ``moa``: ``lcd_moa.cross_validate`` (5 folds) on the active compounds.

Results are appended to ``benchmarks/results/scale.json`` with the date and machine; ``table`` fits
the growth exponent of time and of peak RSS against the number of tiles (least squares on log-log).
``LCD_SCALE_BASE_PLATES=1 ... --tiles-per-field 2`` makes a tiny screen to try the script.
``--tiles-per-field`` builds the density series: same fields, more tiles per field (what changes for
the tile stage alone when fields are cut finer).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "scale.json"
STAGES = ("aggregate", "normalize", "activity", "moa")

BASE = {
    "plates_per_replica": 3,
    "replicas": 4,
    "wells": 384,
    "dmso_wells": 32,
    "fovs": 4,
    "timepoints": 5,
    "tiles": 30,
    "features": 384,
    "doses": 4,
    "n_moa": 20,
    "fields_per_part": 256,
}


# ------------------------------------------------------------------------------------------ design


def design(scale: int, tiles: int | None = None) -> dict:
    """The screen at ``scale`` x the base (more plates per replica), optionally another tile density."""
    d = dict(BASE)
    d["plates_per_replica"] = int(os.environ.get("LCD_SCALE_BASE_PLATES", BASE["plates_per_replica"])) * scale
    if tiles is not None:
        d["tiles"] = tiles
    d["plates"] = d["plates_per_replica"] * d["replicas"]
    d["n_fields"] = d["plates"] * d["wells"] * d["fovs"] * d["timepoints"]
    d["n_tiles"] = d["n_fields"] * d["tiles"]
    treated = d["plates_per_replica"] * (d["wells"] - d["dmso_wells"])
    d["n_compounds"] = treated // d["doses"]
    return d


def layout(d: dict, seed: int = 0) -> pd.DataFrame:
    """One row per plate x well: replica, plate, well, compound, dose, moa.

    Every replica holds every compound x dose once, on its own random layout over its plates.
    """
    rng = np.random.default_rng(seed)
    n_cpd, doses = d["n_compounds"], [0.156, 0.625, 2.5, 10.0]
    moas = np.array(
        [f"moa{m:02d}" if i % 2 == 0 else None for i, m in enumerate(rng.integers(0, d["n_moa"], n_cpd))],
        dtype=object,
    )
    slots = pd.DataFrame(
        {
            "compound": np.repeat([f"cpd{i:05d}" for i in range(n_cpd)], d["doses"]),
            "dose": np.tile(doses, n_cpd),
        }
    )
    slots["moa"] = np.repeat(moas, d["doses"])
    wells = [f"{chr(65 + r)}{c + 1:02d}" for r in range(16) for c in range(24)]
    rows = []
    per_plate = d["wells"] - d["dmso_wells"]
    for r in range(d["replicas"]):
        order = slots.iloc[rng.permutation(len(slots))].reset_index(drop=True)
        for p in range(d["plates_per_replica"]):
            plate = f"R{r}P{p:03d}"
            well_ids = rng.permutation(wells)
            block = order.iloc[p * per_plate : (p + 1) * per_plate]
            for w, (_, s) in zip(well_ids[: len(block)], block.iterrows(), strict=True):
                rows.append((f"rep{r}", plate, w, s["compound"], s["dose"], s["moa"]))
            for w in well_ids[len(block) :]:
                rows.append((f"rep{r}", plate, w, "DMSO", 0.0, None))
    return pd.DataFrame(rows, columns=["replica", "plate", "well", "compound", "dose", "moa"])


def fields_table(d: dict, plates: pd.DataFrame) -> pd.DataFrame:
    """The manifest: plate x well x fov x timepoint, sorted as an export is (plate, timepoint, well, fov)."""
    n_t, n_f = d["timepoints"], d["fovs"]
    base = plates.sort_values(["plate", "well"]).reset_index(drop=True)
    idx = np.arange(len(base))
    grid = pd.MultiIndex.from_product(
        [idx, range(1, n_t + 1), range(n_f)], names=["i", "timepoint", "fov"]
    ).to_frame(index=False)
    out = base.iloc[grid["i"]].reset_index(drop=True)
    out["timepoint"] = grid["timepoint"].to_numpy()
    out["timepoint_h"] = 12.0 * out["timepoint"]
    out["fov"] = grid["fov"].to_numpy()
    out["path"] = (
        "/data/screen/"
        + out["plate"]
        + "/r"
        + out["well"].str[0]
        + "c"
        + out["well"].str[1:]
        + "f"
        + out["fov"].astype(str)
        + "sk"
        + out["timepoint"].astype(str)
        + ".tiff"
    )
    return out.sort_values(["plate", "timepoint", "well", "fov"], kind="stable").reset_index(drop=True)


class Effects:
    """Field means: replica, plate, FOV position and compound effects (MoA direction x dose x time)."""

    def __init__(self, d: dict, fields: pd.DataFrame, seed: int = 0):
        rng = np.random.default_rng(seed + 1)
        k = d["features"]
        self.replica = {r: rng.normal(0, 1.0, k).astype(np.float32) for r in fields["replica"].unique()}
        self.plate = {p: rng.normal(0, 0.5, k).astype(np.float32) for p in fields["plate"].unique()}
        self.fov = rng.normal(0, 0.3, (d["fovs"], k)).astype(np.float32)
        self.moa = {f"moa{m:02d}": rng.normal(0, 1.0, k).astype(np.float32) for m in range(d["n_moa"])}
        self.rng = rng

    def means(self, f: pd.DataFrame) -> np.ndarray:
        """Mean profile of each field of ``f`` (float32, fields x features)."""
        out = np.stack([self.replica[r] for r in f["replica"]]) + np.stack(
            [self.plate[p] for p in f["plate"]]
        )
        out += self.fov[f["fov"].to_numpy()]
        strength = (f["dose"].to_numpy() / 10.0) ** 0.5 * (1 - np.exp(-f["timepoint_h"].to_numpy() / 24.0))
        for i, (m, s) in enumerate(zip(f["moa"], strength, strict=True)):
            if m is not None and m == m:
                out[i] += 2.0 * s * self.moa[m]
        out += self.rng.normal(0, 0.3, out.shape).astype(np.float32)  # well x field noise
        return out.astype(np.float32)


def generate(scale: int, root: Path, tiles: int | None = None) -> dict:
    """Write the tile store part by part; the whole matrix never exists in memory."""
    from lcd_core import finish_tile_store, part_name, write_tile_part

    d = design(scale, tiles)
    out = store_path(root, scale, tiles)
    if out.exists():
        print(f"{out} exists; delete it first (clean)")
        return d
    start = time.perf_counter()
    fields = fields_table(d, layout(d))
    effects = Effects(d, fields)
    names = [f"emb_{j}" for j in range(d["features"])]
    # tile noise from a fixed pool read at a random offset per part: generation runs at disk speed
    pool = np.random.default_rng(7).standard_normal((1 << 16, d["features"]), dtype=np.float32)
    per_part = d["fields_per_part"]
    n_parts = -(-len(fields) // per_part)
    shards = Path(f"{out}.shards")
    shards.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    t = d["tiles"]
    for k in range(n_parts):
        lo, hi = k * per_part, min((k + 1) * per_part, len(fields))
        means = effects.means(fields.iloc[lo:hi])
        rows = np.repeat(np.arange(lo, hi), t)
        offset = int(rng.integers(0, len(pool)))
        noise_idx = (offset + np.arange(len(rows))) % len(pool)
        X = np.repeat(means, t, axis=0) + pool[noise_idx]
        tile = np.tile(np.arange(t), hi - lo)
        side = int(np.ceil(np.sqrt(t)))
        ids = {
            "manifest_row": rows,
            "tile": tile,
            "tile_y": (tile // side) * 224,
            "tile_x": (tile % side) * 224,
        }
        write_tile_part(shards / part_name(k, n_parts), ids, X, feature_names=names)
        if k % 200 == 0:
            print(f"  part {k}/{n_parts} ({time.perf_counter() - start:.0f} s)", flush=True)
    finish_tile_store(
        shards, out, fields=fields, feature_names=names, uns={"lcd": {"level": "tile"}, "benchmark": d}
    )
    seconds = time.perf_counter() - start
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"wrote {out}: {d['n_tiles']:,} tiles, {size / 1e9:.1f} GB in {seconds:.0f} s")
    return {**d, "generate_seconds": seconds, "store_bytes": size}


def store_path(root: Path, scale: int, tiles: int | None = None) -> Path:
    return root / (f"x{scale}" + (f"-t{tiles}" if tiles else "")) / "tiles.parquet"


# ------------------------------------------------------------------------------------------ stages


def stage_aggregate(folder: Path) -> dict:
    from lcd_core import write_h5ad
    from lcd_norm import aggregate_tiles

    fov = aggregate_tiles(folder / "tiles.parquet", by="fov")
    write_h5ad(fov, folder / "fov.h5ad")
    return {
        "rows_out": fov.n_obs,
        "table_mb": fov.X.nbytes / 1e6,
        "max_buffered_tiles": fov.uns["aggregate"]["params"]["max_buffered_tiles"],
    }


def stage_normalize(folder: Path) -> dict:
    from lcd_core import read_h5ad, write_h5ad
    from lcd_norm import mad_harmony_fov

    fov = read_h5ad(folder / "fov.h5ad")
    mad_harmony_fov(fov, replica_key="replica", fov_key="fov", seed=0)
    write_h5ad(fov, folder / "fov_norm.h5ad")
    return {"rows_out": fov.n_obs, "table_mb": fov.obsm["X_mad_harmony_fov"].nbytes / 1e6}


def stage_activity(folder: Path) -> dict:
    from lcd_core import read_h5ad, write_h5ad, write_table
    from lcd_metrics import map_es
    from lcd_norm import aggregate

    fov = read_h5ad(folder / "fov_norm.h5ad")
    well = aggregate(fov, by="well", use_rep="X_mad_harmony_fov")
    del fov
    table = map_es(well, n_draws=1000, seed=0)
    write_table(table, folder / "activity.parquet")
    write_h5ad(well, folder / "well.h5ad")
    return {
        "rows_out": well.n_obs,
        "n_groups": len(table),
        "n_active": int(table["active"].sum()),
        "status": table["status"].value_counts().to_dict(),
    }


def stage_moa(folder: Path) -> dict:
    from lcd_core import read_h5ad
    from lcd_moa import cross_validate

    well = read_h5ad(folder / "well.h5ad")
    activity = pd.read_parquet(folder / "activity.parquet")
    result = cross_validate(well, activity, n_folds=5, seed=0, drop_small_classes=True)
    final = result.metrics[result.metrics["method"] == result.final_method]
    return {
        "rows_out": well.n_obs,
        "n_compounds_scored": int(final["n_compounds"].iloc[0]) if len(final) else 0,
        "f1_weighted": float(final["f1_weighted"].iloc[0]) if len(final) else None,
    }


STAGE_FUNCS = {
    "aggregate": stage_aggregate,
    "normalize": stage_normalize,
    "activity": stage_activity,
    "moa": stage_moa,
}


def child(stage: str, folder: Path) -> None:
    """Run one stage in this (child) process; print its timing as JSON on the last line."""
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    import anndata  # noqa: F401  (imports before the clock: the stage, not Python start-up, is timed)
    import lcd_metrics  # noqa: F401
    import lcd_moa  # noqa: F401
    import lcd_norm  # noqa: F401
    import pyarrow  # noqa: F401

    import_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start, cpu = time.perf_counter(), time.process_time()
    info = STAGE_FUNCS[stage](folder)
    info.update(
        seconds=time.perf_counter() - start,
        cpu_seconds=time.process_time() - cpu,
        python_rss_mb=base_rss,
        import_rss_mb=import_rss,
    )
    print("RESULT " + json.dumps(info, default=str), flush=True)


def measure_wait4(stage: str, folder: Path) -> dict:
    """Spawn the child and reap it with os.wait4: peak RSS (ru_maxrss) of that child alone."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: exec the stage with stdout into the pipe
        os.close(read)
        os.dup2(write, 1)
        os.execv(sys.executable, [sys.executable, __file__, "_child", stage, str(folder)])
    os.close(write)
    chunks = []
    with os.fdopen(read) as fh:
        for line in fh:
            chunks.append(line)
            if not line.startswith("RESULT "):
                print("   ", line.rstrip(), flush=True)
    _, status, usage = os.wait4(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    info = next((json.loads(line[7:]) for line in chunks if line.startswith("RESULT ")), None)
    if code != 0 or info is None:
        raise SystemExit(f"stage {stage} failed (exit {code})")
    info["peak_rss_mb"] = usage.ru_maxrss / 1024
    info["child_cpu_seconds"] = usage.ru_utime + usage.ru_stime
    return info


def machine() -> dict:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {mem:.0f} GB RAM, no GPU",
        "python": platform.python_version(),
    }


def run(scale: int, root: Path, stages: list[str], tiles: int | None, label: str) -> None:
    folder = store_path(root, scale, tiles).parent
    d = design(scale, tiles)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    records = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    for stage in stages:
        print(f"[{label} x{scale}] {stage} ...", flush=True)
        info = measure_wait4(stage, folder)
        rec = {
            "series": label,
            "scale": scale,
            "tiles_per_field": d["tiles"],
            "n_tiles": d["n_tiles"],
            "n_fields": d["n_fields"],
            "stage": stage,
            "date": datetime.now(UTC).strftime("%Y-%m-%d"),
            **machine(),
            **info,
        }
        print(f"    {rec['seconds']:.1f} s, peak RSS {rec['peak_rss_mb']:.0f} MB", flush=True)
        records = [
            r for r in records if not (r["series"] == label and r["scale"] == scale and r["stage"] == stage)
        ]
        records.append(rec)
        RESULTS.write_text(json.dumps(records, indent=1, default=str) + "\n")


def exponent(x, y) -> float:
    """Least-squares slope of log y on log x (the growth exponent)."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    return float(np.polyfit(lx, ly, 1)[0])


def table(series: str = "plates") -> str:
    records = [r for r in json.loads(RESULTS.read_text()) if r["series"] == series]
    frame = pd.DataFrame(records)
    scales = sorted(frame["scale"].unique())
    lines = []
    for stage in [s for s in STAGES if s in set(frame["stage"])]:
        sub = frame[frame["stage"] == stage].sort_values("scale")
        by_scale = {r.scale: f"{r.seconds:.1f} s / {r.peak_rss_mb / 1024:.2f} GB" for r in sub.itertuples()}
        cells = [by_scale.get(s, "—") for s in scales]
        exp_t = exponent(sub["n_tiles"], sub["seconds"]) if len(sub) > 1 else float("nan")
        exp_m = exponent(sub["n_tiles"], sub["peak_rss_mb"]) if len(sub) > 1 else float("nan")
        lines.append(f"| {stage} | " + " | ".join(cells) + f" | {exp_t:.2f} | {exp_m:.2f} |")
    agg = frame[frame["stage"] == "aggregate"].sort_values("scale")
    if len(agg):
        # the tile stage's own memory: peak RSS less what grows with the fields by design (the FOV
        # output X and the field table as pandas holds it) and less the interpreter + imports
        own = []
        for r in agg.itertuples():
            d = design(int(r.scale), int(r.tiles_per_field))
            fields_mb = fields_table(d, layout(d)).memory_usage(deep=True).sum() / 1e6
            own.append((r.peak_rss_mb - r.import_rss_mb - r.table_mb - fields_mb) / 1024)
        by_scale = dict(zip(agg["scale"], own, strict=True))
        cells = [f"{by_scale[s]:.2f} GB" if s in by_scale else "—" for s in scales]
        exp_o = exponent(agg["n_tiles"], own) if len(agg) > 1 else float("nan")
        lines.append("| aggregate: peak RSS − imports − FOV output − field table | " + " | ".join(cells)
                     + f" | | {exp_o:.2f} |")  # fmt: skip
    tiles = [frame[frame["scale"] == s]["n_tiles"].iloc[0] for s in scales]
    head = "| stage | " + " | ".join(
        f"{s}x ({t / 1e6:.2f} M tiles)" for s, t in zip(scales, tiles, strict=True)
    )
    head += " | time exponent | RSS exponent |"
    sep = "|" + "---|" * (len(scales) + 3)
    return "\n".join([head, sep, *lines])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("generate", "run", "clean"):
        p = sub.add_parser(name)
        p.add_argument("--scale", type=int, required=True)
        p.add_argument("--root", type=Path, default=Path("/work/scale-data"))
        p.add_argument("--tiles-per-field", type=int, default=None)
        if name == "run":
            p.add_argument("--stages", default=",".join(STAGES))
            p.add_argument("--series", default=None)
    t = sub.add_parser("table")
    t.add_argument("--series", default="plates")
    c = sub.add_parser("_child")
    c.add_argument("stage")
    c.add_argument("folder", type=Path)
    args = ap.parse_args()
    if args.cmd == "_child":
        child(args.stage, args.folder)
    elif args.cmd == "generate":
        info = generate(args.scale, args.root, args.tiles_per_field)
        (store_path(args.root, args.scale, args.tiles_per_field).parent / "design.json").write_text(
            json.dumps(info, indent=1, default=str)
        )
    elif args.cmd == "run":
        label = args.series or ("plates" if args.tiles_per_field is None else "density")
        run(args.scale, args.root, args.stages.split(","), args.tiles_per_field, label)
    elif args.cmd == "clean":
        shutil.rmtree(store_path(args.root, args.scale, args.tiles_per_field).parent, ignore_errors=True)
    elif args.cmd == "table":
        print(table(args.series))


if __name__ == "__main__":
    main()
