"""The stage engine behind ``lcd run`` and ``lcd demo``: one results folder, each stage skipped when done.

Every stage reads the files of earlier stages and writes its own outputs atomically (a temporary
name, then a rename), so a run that stops can be started again and continues where it stopped.
Outputs are AnnData (``.h5ad``) or parquet files that the packages (and users) can reuse:

=============  ==========================================  =========================================
stage          output (in the results folder)              made with
=============  ==========================================  =========================================
simulate       ``plate/``                                  :func:`lcd_pipeline.simulate.simulate_plate`
manifest       ``manifest.parquet``                        :func:`lcd_embed.manifest_from_opera`
train          ``model/`` (and ``ssl_run/``)               :func:`lcd_ssl.train`, :func:`lcd_ssl.export_backbone`
embed          ``embeddings.h5ad`` (tiles)                 :func:`lcd_embed.embed`
normalize      ``profiles_fov.h5ad``, ``norm_compare.parquet``  :func:`lcd_norm.aggregate`, :func:`lcd_norm.compare`
wells          ``profiles_well.h5ad``                      :func:`lcd_norm.aggregate` per representation
activity       ``activity.parquet``, ``activity_none.parquet``, ``ap_samples.parquet``, ``cell_count.parquet``  :func:`lcd_metrics.map_es`, :func:`lcd_metrics.cell_count_activity`
moa            ``moa/``                                    :func:`lcd_moa.cross_validate`
attention      ``attention/``                              :func:`lcd_embed.field_attention_maps`
nuclei         ``nuclei/`` (counts.h5ad, overlays/)        :func:`lcd_nuclei.count_nuclei` on a sample of fields
report         ``report.html``                             :mod:`lcd_pipeline.report`
=============  ==========================================  =========================================
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .config import DEMO_SSL

KEYS = {"replica": "replica", "plate": "plate", "well": "well", "fov": "fov", "timepoint": "timepoint"}
COUNT_KEY = "nuclei_count"


@dataclass
class Stage:
    name: str
    outputs: tuple[str, ...]  # relative paths; the stage is done when all exist
    run: Callable[[Context], None]
    when: Callable[[Context], bool] = lambda ctx: True


class Context:
    """The resolved config, the results folder and helpers to write there atomically."""

    def __init__(self, cfg: dict, log: Callable[[str], None]):
        self.cfg = cfg
        self.root = Path(cfg["results"])
        self.log = log

    def path(self, name: str) -> Path:
        return self.root / name

    @contextmanager
    def atomic(self, name: str):
        """Yield a temporary path beside ``name``; renamed onto it when the block succeeds."""
        target = self.path(name)
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{target.name}.tmp-"))
        inner = tmp / target.name
        try:
            yield inner
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            os.replace(inner, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @property
    def input(self) -> dict:
        return self.cfg["input"]

    @property
    def model_dir(self) -> Path:
        return Path(self.cfg["checkpoint"]) if self.cfg["checkpoint"] else self.path("model")


# --------------------------------------------------------------------------------------------- stages


def _simulate(ctx: Context) -> None:
    from .simulate import preset_config, simulate_plate

    opts = dict(ctx.input["simulate"])
    preset = opts.pop("preset", "demo")
    simulate_plate(ctx.path("plate"), preset_config(preset, **opts), progress=False)


def _manifest(ctx: Context) -> None:
    from lcd_embed import manifest_from_opera, read_manifest

    if "simulate" in ctx.input:
        from .simulate import SimulatedPlate

        plate = SimulatedPlate(ctx.path("plate"))
        man = manifest_from_opera(plate.image_dirs, plate.plate_map)
        fields = plate.truth("fields")[["plate", "well", "fov", "timepoint", COUNT_KEY]]
        man = man.merge(fields, on=["plate", "well", "fov", "timepoint"], how="left", validate="one_to_one")
    elif "opera" in ctx.input:
        opera = ctx.input["opera"]
        man = manifest_from_opera(opera["image_dirs"], opera["plate_map"])
    else:
        man = read_manifest(ctx.input["manifest"])
        folder = Path(ctx.input["manifest"]).parent
        for col in [c for c in man.columns if c == "path" or c.startswith("path_z")]:
            man[col] = [str((folder / p).resolve()) for p in man[col]]
    with ctx.atomic("manifest.parquet") as tmp:
        man.to_parquet(tmp, index=False)


def _train(ctx: Context) -> None:
    import torch
    from lcd_ssl import TrainConfig, export_backbone, train

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    opts = {**DEMO_SSL, **ctx.cfg["ssl"]} if ctx.cfg["ssl"] else dict(DEMO_SSL)
    steps = opts.pop("steps", None)
    opts.setdefault("seed", ctx.cfg["seed"])
    run_dir = train(
        str(ctx.path("manifest.parquet")), TrainConfig(**opts), ctx.path("ssl_run"), max_steps=steps
    )
    with ctx.atomic("model") as tmp:
        export_backbone(run_dir, tmp)


def _embed(ctx: Context) -> None:
    import torch
    from lcd_embed import embed

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    opts = {"num_workers": 0, "progress": False, "seed": ctx.cfg["seed"], "device": "cpu", **ctx.cfg["embed"]}
    with ctx.atomic("embeddings.h5ad") as tmp:
        embed(str(ctx.path("manifest.parquet")), str(ctx.model_dir), out=tmp, **opts)


def _tiles_path(ctx: Context) -> Path:
    return Path(ctx.input["embeddings"]) if "embeddings" in ctx.input else ctx.path("embeddings.h5ad")


def _normalize(ctx: Context) -> None:
    import anndata as ad
    from lcd_norm import aggregate, compare

    tiles = ad.read_h5ad(_tiles_path(ctx))
    fov = aggregate(tiles, by="fov") if tiles.uns.get("lcd", {}).get("level", "tile") == "tile" else tiles
    for col in fov.obs.columns:  # h5ad cannot hold mixed object columns; paths are not needed further
        if fov.obs[col].dtype == object:
            fov.obs[col] = fov.obs[col].astype(str)
    norm = ctx.cfg["norm"]
    table = compare(
        fov,
        methods=norm["methods"],
        control=ctx.cfg["control"],
        null_size=norm.get("null_size", 200),
        seed=ctx.cfg["seed"],
    )
    with ctx.atomic("profiles_fov.h5ad") as tmp:
        fov.write_h5ad(tmp)
    with ctx.atomic("norm_compare.parquet") as tmp:
        table.to_parquet(tmp, index=False)


def _wells(ctx: Context) -> None:
    import anndata as ad
    from lcd_norm import OBSM_KEYS, aggregate

    fov = ad.read_h5ad(ctx.path("profiles_fov.h5ad"))
    counts = None
    if COUNT_KEY in fov.obs:
        counts = fov.obs.groupby(["plate", "well", "timepoint"], observed=True)[COUNT_KEY].sum()
        fov.obs = fov.obs.drop(columns=[COUNT_KEY])
    well = aggregate(fov, by="well")
    for key in OBSM_KEYS.values():
        if key is None or key not in fov.obsm:
            continue
        part = aggregate(fov, by="well", use_rep=key)
        if not (part.obs_names == well.obs_names).all():
            raise RuntimeError(f"aggregating {key} changed the well order")
        well.obsm[key] = np.asarray(part.X, dtype=np.float32)
    well.uns["lcd_pipeline"] = {"method": choose_method(ctx, fov)}
    if counts is not None:
        idx = pd.MultiIndex.from_frame(well.obs[["plate", "well", "timepoint"]])
        well.obs[COUNT_KEY] = counts.reindex(idx).to_numpy()
    with ctx.atomic("profiles_well.h5ad") as tmp:
        well.write_h5ad(tmp)


def choose_method(ctx: Context, fov) -> str:
    """``norm.use`` when it ran; else (logged) the method with the best replicate mAP that did."""
    from lcd_norm import OBSM_KEYS

    table = pd.read_parquet(ctx.path("norm_compare.parquet"))
    ok = table[table["status"] == "ok"]
    wanted = ctx.cfg["norm"]["use"]
    if wanted in set(ok["method"]):
        return wanted
    ok = ok[[OBSM_KEYS[m] is None or OBSM_KEYS[m] in fov.obsm for m in ok["method"]]]
    if ok.empty:
        raise RuntimeError("no normalization method succeeded; see norm_compare.parquet")
    best = str(ok.sort_values("map", ascending=False)["method"].iloc[0])
    reason = table.loc[table["method"] == wanted, "reason"]
    ctx.log(f"norm.use={wanted!r} did not run ({'; '.join(reason) or 'not in methods'}); using {best!r}")
    return best


def use_rep(ctx: Context) -> str | None:
    """The obsm key of the normalization the activity and MoA stages use (recorded by the wells stage)."""
    import h5py
    from lcd_norm import OBSM_KEYS

    with h5py.File(ctx.path("profiles_well.h5ad"), "r") as fh:
        method = fh["uns/lcd_pipeline/method"][()]
    return OBSM_KEYS[method.decode() if isinstance(method, bytes) else str(method)]


def _activity(ctx: Context) -> None:
    import anndata as ad
    from lcd_metrics import cell_count_activity, map_es

    well = ad.read_h5ad(ctx.path("profiles_well.h5ad"))
    opts = {"control": ctx.cfg["control"], "seed": ctx.cfg["seed"], **ctx.cfg["metrics"]}
    table, samples = map_es(well, use_rep=use_rep(ctx), return_samples=True, **opts)
    none = map_es(well, **opts)
    for name, df in (
        ("activity.parquet", table),
        ("ap_samples.parquet", samples),
        ("activity_none.parquet", none),
    ):
        with ctx.atomic(name) as tmp:
            df.to_parquet(tmp, index=False)
    if COUNT_KEY in well.obs and well.obs[COUNT_KEY].notna().all():
        cc = cell_count_activity(well.obs, control=ctx.cfg["control"], seed=ctx.cfg["seed"])
        with ctx.atomic("cell_count.parquet") as tmp:
            cc.to_parquet(tmp, index=False)


def _moa(ctx: Context) -> None:
    import anndata as ad
    from lcd_moa import cross_validate

    well = ad.read_h5ad(ctx.path("profiles_well.h5ad"))
    if "moa" not in well.obs:
        raise RuntimeError("profiles have no 'moa' column: add it to the plate map to run the MoA stage")
    activity = pd.read_parquet(ctx.path("activity.parquet"))
    result = cross_validate(
        well,
        activity,
        use_rep=use_rep(ctx),
        control=ctx.cfg["control"],
        seed=ctx.cfg["seed"],
        **ctx.cfg["moa"],
    )
    with ctx.atomic("moa") as tmp:
        result.write(tmp)


def attention_rows(ctx: Context, n: int) -> list[int]:
    """Manifest rows shown in the attention figure: a control field and the most active fields."""
    man = pd.read_parquet(ctx.path("manifest.parquet"))
    last = man["timepoint"].max()
    late = man[man["timepoint"] == last]
    rows = [int(late.query(ctx.cfg["control"]).index[0])] if len(late.query(ctx.cfg["control"])) else []
    act = pd.read_parquet(ctx.path("activity.parquet"))
    act = act[(act["timepoint"] == last) & act["active"]].sort_values("map_es", ascending=False)
    for r in act.itertuples(index=False):
        hit = late[(late["compound"] == r.compound) & (late["dose"] == r.dose)]
        if len(hit) and len(rows) < n:
            rows.append(int(hit.index[0]))
    return rows[:n]


def _attention(ctx: Context) -> None:
    from lcd_embed import field_attention_maps

    rows = attention_rows(ctx, int(ctx.cfg["attention"]["n_fields"]))
    with ctx.atomic("attention") as tmp:
        tmp.mkdir()
        field_attention_maps(str(ctx.path("manifest.parquet")), str(ctx.model_dir), tmp, rows=rows)
        (tmp / "rows.json").write_text(json.dumps(rows))


def _nuclei(ctx: Context) -> None:
    """Count nuclei with lcd-nuclei on ``nuclei.n_fields`` fields spread over the manifest.

    Attention-based discovery costs seconds per field on a CPU, so the pipeline counts a sample for
    the report's overlays and count agreement; a manifest's own ``nuclei_count`` (the simulator's
    truth) is kept as ``reference_nuclei_count``.
    """
    import torch
    from lcd_nuclei import count_nuclei

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    man = pd.read_parquet(ctx.path("manifest.parquet"))
    n = min(int(ctx.cfg["nuclei"]["n_fields"]), len(man))
    rows = np.unique(np.linspace(0, len(man) - 1, n).round().astype(int))
    sub = man.iloc[rows].rename(columns={COUNT_KEY: f"reference_{COUNT_KEY}"})
    with ctx.atomic("nuclei") as tmp:
        tmp.mkdir()
        counts = count_nuclei(sub, str(ctx.model_dir), overlays_dir=tmp / "overlays", progress=False)
        counts.obs["manifest_row"] = rows[counts.obs["manifest_row"].to_numpy(int)]
        counts.write_h5ad(tmp / "counts.h5ad")


def _report(ctx: Context) -> None:
    from .report import build_report

    with ctx.atomic("report.html") as tmp:
        build_report(ctx.root, tmp, cfg=ctx.cfg)


def _has_images(ctx: Context) -> bool:
    return "embeddings" not in ctx.input


STAGES: list[Stage] = [
    Stage("simulate", ("plate",), _simulate, lambda ctx: "simulate" in ctx.input),
    Stage("manifest", ("manifest.parquet",), _manifest, _has_images),
    Stage("train", ("model",), _train, lambda ctx: _has_images(ctx) and not ctx.cfg["checkpoint"]),
    Stage("embed", ("embeddings.h5ad",), _embed, _has_images),
    Stage("normalize", ("profiles_fov.h5ad", "norm_compare.parquet"), _normalize),
    Stage("wells", ("profiles_well.h5ad",), _wells),
    Stage("activity", ("activity.parquet", "ap_samples.parquet", "activity_none.parquet"), _activity),
    Stage("moa", ("moa",), _moa),
    Stage("attention", ("attention",), _attention, _has_images),
    Stage("nuclei", ("nuclei",), _nuclei, lambda ctx: _has_images(ctx) and ctx.cfg["nuclei"]["n_fields"] > 0),
    Stage("report", ("report.html",), _report),
]


def run_pipeline(cfg: dict, *, log: Callable[[str], None] = print, stop_after: str | None = None) -> Path:
    """Run every stage of a resolved config (see :mod:`lcd_pipeline.config`) that has not run yet.

    Returns the results folder; ``stop_after`` ends the run after the named stage. A stage's timing
    and whether it ran or was skipped are appended to ``stages.jsonl``.
    """
    ctx = Context(cfg, log)
    ctx.root.mkdir(parents=True, exist_ok=True)
    names = [s.name for s in STAGES]
    if stop_after is not None and stop_after not in names:
        raise ValueError(f"unknown stage {stop_after!r}; stages: {names}")
    (ctx.root / "config.json").write_text(json.dumps(cfg, indent=2, default=str))
    for stage in STAGES:
        if not stage.when(ctx):
            continue
        if all(ctx.path(o).exists() for o in stage.outputs):
            log(f"[skip] {stage.name}: {', '.join(stage.outputs)} present")
            status, seconds = "skipped", 0.0
        else:
            log(f"[run ] {stage.name}")
            start = time.perf_counter()
            stage.run(ctx)
            seconds = time.perf_counter() - start
            status = "ran"
            log(f"[done] {stage.name} in {seconds:.1f} s")
        with open(ctx.root / "stages.jsonl", "a") as fh:
            fh.write(json.dumps({"stage": stage.name, "status": status, "seconds": round(seconds, 2)}) + "\n")
        if stage.name == stop_after:
            break
    return ctx.root
