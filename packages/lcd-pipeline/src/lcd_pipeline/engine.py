"""The stage engine behind ``lcd run`` and ``lcd demo``: one results folder, each stage skipped when done.

Every stage reads the files of earlier stages and writes its own outputs atomically (a temporary
name, then a rename), so a run that stops can be started again and continues where it stopped. A
stage is skipped only when its outputs exist and were made from the same config values, inputs and
package versions (its fingerprint, in ``stages.jsonl``); a changed stage re-runs with everything
downstream (:func:`plan`, ``lcd run --dry-run``).
Outputs are AnnData (``.h5ad``) or parquet files that the packages (and users) can reuse:

=============  ==========================================  =========================================
stage          output (in the results folder)              made with
=============  ==========================================  =========================================
simulate       ``plate/``                                  :func:`lcd_pipeline.simulate.simulate_plate`
manifest       ``manifest.parquet``                        :func:`lcd_embed.manifest_from_opera`
train          ``model/`` (and ``ssl_run/``)               :func:`lcd_ssl.train`, :func:`lcd_ssl.export_backbone`
embed          ``embeddings.parquet/`` (tile store)        :func:`lcd_embed.embed`
normalize      ``profiles_fov.h5ad``, ``norm_compare.parquet``  :func:`lcd_norm.aggregate_tiles`, :func:`lcd_norm.compare`
wells          ``profiles_well.h5ad`` (X: the chosen correction)  :func:`lcd_norm.aggregate` per representation
nuclei         ``nuclei/`` (counts.h5ad, overlays/)        :func:`lcd_nuclei.count_nuclei` on every field (or a sample per well)
activity       ``activity.parquet``, ``activity_none.parquet``, ``ap_samples.parquet``, ``cell_count.parquet``, ``inhibition.parquet``  :func:`lcd_metrics.map_es`, :func:`lcd_metrics.cell_count_activity`, :func:`lcd_metrics.inhibition`
moa            ``moa/``                                    :func:`lcd_moa.cross_validate`
attention      ``attention/``                              :func:`lcd_embed.field_attention_maps`
report         ``report.html``                             :mod:`lcd_pipeline.report`
=============  ==========================================  =========================================

Under torchrun (``lcd run --nproc N``) train and embed run on every process and the other stages on
rank 0 (:mod:`lcd_pipeline.distributed`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import distributed
from .distributed import Ranks

COUNT_KEY = "nuclei_count"
TILES = "embeddings.parquet"  # the embed stage's tile store (lcd_core.tiles)


def _always(ctx: Context) -> bool:
    return True


@dataclass(frozen=True)
class Stage:
    """One step of a run: what it writes, what it reads, and the function that does it.

    Attributes
    ----------
    name
        Stage name (``lcd run --stop-after NAME``).
    outputs
        Paths relative to the results folder; all must exist for the stage to count as done.
    run
        Does the work (reads earlier outputs, writes its own atomically).
    reads
        Config keys (dotted) whose values the outputs depend on.
    after
        Stages whose outputs it reads (their fingerprints are part of its own).
    packages
        Distributions whose versions are part of the fingerprint.
    external
        The external files it reads (their size and mtime are part of the fingerprint).
    when
        Whether the stage applies to this config.
    """

    name: str
    outputs: tuple[str, ...]
    run: Callable[[Context], None]
    reads: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    external: Callable[[Context], list[str]] | None = None
    when: Callable[[Context], bool] = _always


class Context:
    """The resolved config, the results folder and helpers to write there atomically."""

    def __init__(self, cfg: dict, log: Callable[[str], None]):
        self.cfg = cfg
        self.root = Path(cfg["results"])
        self.log = log
        self.fingerprint = ""  # of the stage being run (set by run_pipeline)
        self.ranks = Ranks()  # torchrun: this process's rank (set by run_pipeline)

    @property
    def is_main(self) -> bool:
        """Whether this process writes shared files (always, without torchrun)."""
        return self.ranks.is_main

    def path(self, name: str) -> Path:
        """A path inside the results folder."""
        return self.root / name

    @contextmanager
    def atomic(self, name: str):
        """Yield a temporary path beside ``name``; renamed onto it when the block succeeds."""
        from lcd_core import atomic_dir

        with atomic_dir(self.path(name)) as tmp:
            yield tmp

    @property
    def input(self) -> dict:
        """The config's input section."""
        return self.cfg["input"]

    @property
    def model_dir(self) -> Path:
        """The backbone to embed with: the given checkpoint, else the trained ``model/``."""
        return Path(self.cfg["checkpoint"]) if self.cfg["checkpoint"] else self.path("model")


# --------------------------------------------------------------------------------------------- stages


def _simulate(ctx: Context) -> None:
    from .simulate import preset_config, simulate_plate

    opts = dict(ctx.input["simulate"])
    preset = opts.pop("preset", "demo")
    from lcd_core import show_progress

    simulate_plate(ctx.path("plate"), preset_config(preset, **opts), progress=show_progress())


def _manifest(ctx: Context) -> None:
    from lcd_core import write_table
    from lcd_embed import manifest_from_opera, read_manifest

    if "simulate" in ctx.input:
        from .simulate import SimulatedPlate

        plate = SimulatedPlate(ctx.path("plate"))
        # the simulator's true counts stay in plate/truth/ (the report's agreement plot); the
        # manifest carries only what an instrument export would
        hours = plate.config().timepoint_hours[0]
        man = manifest_from_opera(plate.image_dirs, plate.plate_map, hours_offset=hours)
    elif "opera" in ctx.input:
        opera = dict(ctx.input["opera"])
        man = manifest_from_opera(opera.pop("image_dirs"), opera.pop("plate_map", None), **opera)
    else:
        man = read_manifest(ctx.input["manifest"])
    write_table(man, ctx.path("manifest.parquet"))


def _train(ctx: Context) -> None:
    import shutil

    from lcd_core import show_progress
    from lcd_ssl import TrainConfig, export_backbone, train

    opts = dict(ctx.cfg["ssl"])
    steps = opts.pop("steps", None)
    opts.setdefault("seed", ctx.cfg["seed"])
    opts.setdefault("progress", show_progress())
    run_dir = ctx.path("ssl_run")
    # ssl_run/ holds the resumable training state; it may only be resumed by the same training
    # (same config, data and versions). A run for another fingerprint is deleted, not resumed.
    marker = run_dir / ".lcd-fingerprint"
    if ctx.is_main:  # under torchrun every rank trains (DDP); rank 0 owns the folder
        if run_dir.exists() and (not marker.is_file() or marker.read_text().strip() != ctx.fingerprint):
            ctx.log(f"[train] {run_dir.name}/ was made for another training config: starting a new run")
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(ctx.fingerprint)
    distributed.barrier(ctx.ranks)
    run_dir = train(str(ctx.path("manifest.parquet")), TrainConfig(**opts), run_dir, max_steps=steps)
    if ctx.is_main:
        with ctx.atomic("model") as tmp:
            export_backbone(run_dir, tmp)


def _embed(ctx: Context) -> None:
    from lcd_core import show_progress
    from lcd_embed import embed

    opts = {"num_workers": 0, "progress": show_progress(), "seed": ctx.cfg["seed"], **ctx.cfg["embed"]}
    # a tile store (sharded parquet): written shard by shard on every rank, never merged in memory
    embed(str(ctx.path("manifest.parquet")), str(ctx.model_dir), out=ctx.path(TILES), **opts)


def _tiles_path(ctx: Context) -> Path:
    return Path(ctx.input["embeddings"]) if "embeddings" in ctx.input else ctx.path(TILES)


def _normalize(ctx: Context) -> None:
    from lcd_core import is_tile_store, read_h5ad, show_progress, write_h5ad, write_table
    from lcd_norm import aggregate, aggregate_tiles, compare

    path = _tiles_path(ctx)
    if is_tile_store(path):  # streamed in chunks: memory = the FOV table + one chunk
        fov = aggregate_tiles(path, by="fov", progress=show_progress())
    else:
        tiles = read_h5ad(path, what="tile embeddings")
        fov = aggregate(tiles, by="fov") if tiles.uns.get("lcd", {}).get("level", "tile") == "tile" else tiles
    norm = ctx.cfg["norm"]
    table = compare(
        fov,
        methods=norm["methods"],
        control=ctx.cfg["control"],
        null_size=norm.get("null_size", 200),
        seed=ctx.cfg["seed"],
        progress=show_progress(),
    )
    write_h5ad(fov, ctx.path("profiles_fov.h5ad"))
    write_table(table, ctx.path("norm_compare.parquet"))


def _wells(ctx: Context) -> None:
    """Well profiles with the chosen correction in ``X`` (scanpy reads it with no ``use_rep``).

    Every representation stays in ``obsm`` (``X_mad``, ``X_harmony`` ...) with its parameters in
    ``uns[key]["params"]``; the uncorrected features are in ``.raw`` (AnnData's place for features
    of another feature set: MAD drops zero-MAD features, so a layer, which must match ``X``'s
    columns, cannot hold them).
    """
    import anndata as ad
    from lcd_core import REP_KEYS, read_h5ad, write_h5ad
    from lcd_norm import aggregate

    fov = read_h5ad(ctx.path("profiles_fov.h5ad"))
    raw = aggregate(fov, by="well")
    method = choose_method(ctx, fov)
    reps = {}
    for name, key in REP_KEYS.items():
        if key is None or key not in fov.obsm:
            continue
        part = aggregate(fov, by="well", use_rep=key)
        if not (part.obs_names == raw.obs_names).all():
            raise RuntimeError(f"aggregating {key} changed the well order")
        reps[name] = np.asarray(part.X, dtype=np.float32)
    key = REP_KEYS[method]
    if key is None:
        X, var_names = np.asarray(raw.X, dtype=np.float32), list(raw.var_names)
    else:
        X = reps[method]
        kept = fov.uns.get(key, {}).get("features")
        var_names = (
            [str(f) for f in kept]
            if kept is not None and len(kept) == X.shape[1]
            else [f"{key}_{i}" for i in range(X.shape[1])]
        )
    well = ad.AnnData(X=X, obs=raw.obs.copy(), var=pd.DataFrame(index=pd.Index(var_names, dtype=object)))
    well.raw = raw
    for name, value in reps.items():
        well.obsm[REP_KEYS[name]] = value
    for k, v in fov.uns.items():
        if k.startswith("X_"):
            well.uns[k] = v
    well.uns["lcd"] = {**dict(raw.uns.get("lcd", {})), "level": "well"}
    well.uns["lcd_pipeline"] = {"method": method, "X": key or "uncorrected"}
    for col in well.obs.columns:  # categorical metadata, as scanpy expects
        if well.obs[col].dtype == object:
            well.obs[col] = well.obs[col].astype("category")
    write_h5ad(well, ctx.path("profiles_well.h5ad"))


def choose_method(ctx: Context, fov) -> str:
    """``norm.use`` when it ran; else (logged) the method with the best replicate mAP that did."""
    from lcd_core import REP_KEYS

    table = pd.read_parquet(ctx.path("norm_compare.parquet"))
    ok = table[table["status"] == "ok"]
    wanted = ctx.cfg["norm"]["use"]
    if wanted in set(ok["method"]):
        return wanted
    ok = ok[[REP_KEYS[m] is None or REP_KEYS[m] in fov.obsm for m in ok["method"]]]
    if ok.empty:
        raise RuntimeError("no normalization method succeeded; see norm_compare.parquet")
    best = str(ok.sort_values("map", ascending=False)["method"].iloc[0])
    reason = table.loc[table["method"] == wanted, "reason"]
    ctx.log(f"norm.use={wanted!r} did not run ({'; '.join(reason) or 'not in methods'}); using {best!r}")
    return best


def field_counts(ctx: Context) -> tuple[pd.DataFrame, str]:
    """Per-field counts for the cell-count baseline, and where they came from.

    Measured counts when the manifest (or given profiles) has them, else lcd-nuclei's label-free counts.
    """
    from lcd_core import read_h5ad

    if ctx.path("manifest.parquet").exists():
        man = pd.read_parquet(ctx.path("manifest.parquet"))
        if COUNT_KEY in man.columns and man[COUNT_KEY].notna().all():
            return man, "manifest (measured)"
    else:  # started from embeddings: counts may come with the profiles
        obs = read_h5ad(ctx.path("profiles_fov.h5ad")).obs
        if COUNT_KEY in obs.columns and obs[COUNT_KEY].notna().all():
            return obs, "profiles (given)"
    counts = ctx.path("nuclei") / "counts.h5ad"
    if not counts.exists():
        return pd.DataFrame(), "none"
    return read_h5ad(counts).obs, "lcd-nuclei (label-free)"


def _activity(ctx: Context) -> None:
    import anndata as ad
    from lcd_core import read_h5ad, show_progress, write_table
    from lcd_metrics import cell_count_activity, inhibition, map_es

    well = read_h5ad(ctx.path("profiles_well.h5ad"))
    opts = {
        "control": ctx.cfg["control"],
        "seed": ctx.cfg["seed"],
        "progress": show_progress(),
        **ctx.cfg["metrics"],
    }
    table, samples = map_es(well, return_samples=True, **opts)
    from .activity_ci import add_ci_call  # the paper's SM3 call beside mAP-ES: AP interval above the null's

    table = add_ci_call(table, samples)
    none = map_es(ad.AnnData(X=well.raw.X, obs=well.obs), **opts)
    write_table(table, ctx.path("activity.parquet"))
    write_table(samples, ctx.path("ap_samples.parquet"))
    write_table(none, ctx.path("activity_none.parquet"))
    counts, source = field_counts(ctx)
    if counts.empty:
        ctx.log("[activity] no nuclei counts: the cell-count baseline is skipped")
        return
    # the paper's baseline: per-field z-scores against the plate x timepoint DMSO fields, no prior
    # aggregation (lcd_metrics.cell_count_activity works on whatever rows it is given)
    cc = cell_count_activity(counts, count_key=COUNT_KEY, control=ctx.cfg["control"], seed=ctx.cfg["seed"])
    cc["count_source"] = source
    write_table(cc, ctx.path("cell_count.parquet"))
    keys = ["plate", "timepoint"] if "timepoint" in counts.columns else ["plate"]
    parts = []
    for value in (COUNT_KEY, "confluency"):
        if value not in counts.columns:
            continue
        inh = inhibition(
            counts, count_key=value, measurement_keys=keys, well_key="well", control=ctx.cfg["control"]
        )
        parts.append(inh.assign(value=value))
    write_table(pd.concat(parts, ignore_index=True), ctx.path("inhibition.parquet"))


def _moa(ctx: Context) -> None:
    """Cross-validated MoA probes; the ``moa`` section's keys go to MoASpec, ProbeSpec or cross_validate."""
    import dataclasses

    from lcd_core import read_h5ad, show_progress
    from lcd_moa import MoASpec, ProbeSpec, cross_validate

    well = read_h5ad(ctx.path("profiles_well.h5ad"))
    if "moa" not in well.obs:
        raise RuntimeError("profiles have no 'moa' column: add it to the plate map to run the MoA stage")
    activity = pd.read_parquet(ctx.path("activity.parquet"))
    opts = dict(ctx.cfg["moa"])
    spec_fields = {f.name for f in dataclasses.fields(MoASpec)}
    probe_fields = {f.name for f in dataclasses.fields(ProbeSpec)}
    spec = MoASpec(control=ctx.cfg["control"], **{k: opts.pop(k) for k in list(opts) if k in spec_fields})
    probe = ProbeSpec(**{k: opts.pop(k) for k in list(opts) if k in probe_fields})
    result = cross_validate(
        well, activity, spec, probe=probe, seed=ctx.cfg["seed"], progress=show_progress(), **opts
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


N_OVERLAYS = 6  # fields drawn as overlays in the report (counting covers every sampled field)


def nuclei_rows(man: pd.DataFrame, fields_per_well: int | None) -> np.ndarray:
    """Manifest rows whose nuclei are counted: every field, or the first ``fields_per_well`` per well × timepoint."""
    if fields_per_well is None:
        return np.arange(len(man))
    keys = [k for k in ("plate", "well", "timepoint") if k in man.columns]
    order = man.sort_values([*keys, "fov"] if "fov" in man.columns else keys, kind="stable")
    first = order.groupby(keys, sort=False, observed=True).head(int(fields_per_well))
    return np.sort(first.index.to_numpy())


def _nuclei(ctx: Context) -> None:
    """Count nuclei with lcd-nuclei on every field (or ``nuclei.fields_per_well`` per well).

    These label-free counts feed the cell-count baseline unless the manifest carries measured counts
    (``nuclei_count``, kept as ``measured_nuclei_count`` beside lcd-nuclei's). The section's other
    keys are :class:`lcd_nuclei.DiscoveryParams` options; ``use_vit: false`` counts with the
    classical counter alone (cell area and confluency from the planes' defocus contrast,
    ``lcd_nuclei.cell_area``; none with one plane).
    """
    from lcd_core import show_progress
    from lcd_nuclei import count_nuclei

    opts = dict(ctx.cfg["nuclei"])
    man = pd.read_parquet(ctx.path("manifest.parquet"))
    rows = nuclei_rows(man, opts.pop("fields_per_well", None))
    model = str(ctx.model_dir) if opts.pop("use_vit", True) else None
    sub = man.iloc[rows].rename(columns={COUNT_KEY: f"measured_{COUNT_KEY}"}).reset_index(drop=True)
    shown = np.unique(np.linspace(0, len(sub) - 1, min(N_OVERLAYS, len(sub))).round().astype(int))
    with ctx.atomic("nuclei") as tmp:
        tmp.mkdir()
        counts = count_nuclei(sub, model, params=opts, progress=show_progress())
        count_nuclei(
            sub.iloc[shown].reset_index(drop=True),
            model,
            params=opts,
            overlays_dir=tmp / "overlays",
            progress=False,
        )
        counts.obs["manifest_row"] = rows[counts.obs["manifest_row"].to_numpy(int)]
        counts.write_h5ad(tmp / "counts.h5ad")


def _report(ctx: Context) -> None:
    from .report import build_report

    with ctx.atomic("report.html") as tmp:
        build_report(ctx.root, tmp, cfg=ctx.cfg)


def _has_images(ctx: Context) -> bool:
    return "embeddings" not in ctx.input


def _input_files(ctx: Context) -> list[str]:
    inp = ctx.input
    if "manifest" in inp:
        return [inp["manifest"]]
    if "opera" in inp:
        return [
            *inp["opera"]["image_dirs"],
            *([inp["opera"]["plate_map"]] if inp["opera"].get("plate_map") else []),
        ]
    if "embeddings" in inp:
        return [inp["embeddings"]]
    return []


def _checkpoint_files(ctx: Context) -> list[str]:
    return [ctx.cfg["checkpoint"]] if ctx.cfg["checkpoint"] else []


_NORM = ("lcd-norm", "lcd-metrics", "lcd-core")
_TORCH = ("lcd-embed", "lcd-core", "torch", "timm")

STAGES: list[Stage] = [
    Stage(
        "simulate",
        ("plate",),
        _simulate,
        reads=("input.simulate",),
        packages=("lcd-pipeline",),
        when=lambda ctx: "simulate" in ctx.input,
    ),
    Stage(
        "manifest",
        ("manifest.parquet",),
        _manifest,
        reads=("input",),
        after=("simulate",),
        packages=("lcd-embed", "lcd-core"),
        external=_input_files,
        when=_has_images,
    ),
    Stage(
        "train",
        ("model",),
        _train,
        reads=("ssl", "seed"),
        after=("manifest",),
        packages=("lcd-ssl", *_TORCH),
        when=lambda ctx: _has_images(ctx) and not ctx.cfg["checkpoint"],
    ),
    Stage(
        "embed",
        (TILES,),
        _embed,
        reads=("embed", "seed", "checkpoint"),
        after=("manifest", "train"),
        packages=_TORCH,
        external=_checkpoint_files,
        when=_has_images,
    ),
    Stage(
        "normalize",
        ("profiles_fov.h5ad", "norm_compare.parquet"),
        _normalize,
        reads=("norm.methods", "norm.null_size", "control", "seed"),
        after=("embed",),
        packages=_NORM,
        external=lambda ctx: _input_files(ctx) if not _has_images(ctx) else [],
    ),
    Stage(
        "wells", ("profiles_well.h5ad",), _wells, reads=("norm.use",), after=("normalize",), packages=_NORM
    ),
    Stage(
        "nuclei",
        ("nuclei",),
        _nuclei,
        reads=("nuclei",),
        after=("manifest", "train"),
        packages=("lcd-nuclei", *_TORCH),
        external=_checkpoint_files,
        when=_has_images,
    ),
    Stage(
        "activity",
        ("activity.parquet", "ap_samples.parquet", "activity_none.parquet"),
        _activity,
        reads=("metrics", "control", "seed"),
        after=("wells", "nuclei"),
        packages=("lcd-metrics", "lcd-core"),
    ),
    Stage(
        "moa",
        ("moa",),
        _moa,
        reads=("moa", "control", "seed"),
        after=("wells", "activity"),
        packages=("lcd-moa", "lcd-core"),
    ),
    Stage(
        "attention",
        ("attention",),
        _attention,
        reads=("attention", "control"),
        after=("manifest", "train", "activity"),
        packages=_TORCH,
        external=_checkpoint_files,
        when=_has_images,
    ),
    Stage(
        "report",
        ("report.html",),
        _report,
        after=(
            "simulate",
            "manifest",
            "train",
            "embed",
            "normalize",
            "wells",
            "nuclei",
            "activity",
            "moa",
            "attention",
        ),
        packages=("lcd-pipeline",),
    ),
]

STATE_FILE = "stages.jsonl"
LOCK_FILE = ".lcd-run.lock"


@dataclass
class Plan:
    """What a run would do for one stage: run it or skip it, and why."""

    stage: Stage
    fingerprint: str
    parts: dict
    run: bool
    reason: str


def _recorded(root: Path) -> dict[str, dict]:
    """The last record of each stage that ran to completion (from ``stages.jsonl``)."""
    last: dict[str, dict] = {}
    path = root / STATE_FILE
    if not path.is_file():
        return last
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a line cut by a kill: ignore it
            continue
        if rec.get("status") == "ran" and "fingerprint" in rec:
            last[rec["stage"]] = rec
    return last


def plan(cfg: dict) -> list[Plan]:
    """For every applicable stage, whether it must run and why (``lcd run --dry-run`` prints this).

    Parameters
    ----------
    cfg
        A resolved config.

    Returns
    -------
    list of Plan
        In stage order.
    """
    from .fingerprint import changed_keys, digest, file_stats, lookup, package_versions

    ctx = Context(cfg, lambda m: None)
    recorded = _recorded(ctx.root)
    fingerprints: dict[str, str] = {}
    will_run: set[str] = set()
    out = []
    for stage in STAGES:
        if not stage.when(ctx):
            continue
        upstream = {a: fingerprints[a] for a in stage.after if a in fingerprints}
        parts = {
            "stage": stage.name,
            "reads": {key: lookup(cfg, key) for key in stage.reads},
            "upstream": upstream,
            "versions": package_versions(stage.packages),
            "external": file_stats(stage.external(ctx)) if stage.external else [],
        }
        fp = digest(parts)
        fingerprints[stage.name] = fp
        missing = [o for o in stage.outputs if not ctx.path(o).exists()]
        rec = recorded.get(stage.name)
        if missing:
            run, reason = True, f"output {missing[0]} missing"
        elif rec is None:
            run, reason = True, "no fingerprint recorded for its outputs"
        elif rec["fingerprint"] == fp:
            run, reason = False, "outputs match the config, inputs and package versions"
        else:
            old = rec.get("parts", {})
            why = changed_keys(old.get("reads", {}), parts["reads"])
            rerun_up = [a for a in upstream if a in will_run]
            if why:
                reason = "changed " + "; ".join(why)
            elif rerun_up:
                reason = f"upstream stage {rerun_up[0]!r} runs"
            elif old.get("versions") != parts["versions"]:
                reason = "package versions changed: " + "; ".join(
                    changed_keys(old.get("versions", {}), parts["versions"])
                )
            elif old.get("external") != parts["external"]:
                reason = "an input file changed (size or modification time)"
            elif old.get("upstream") != upstream:
                reason = "upstream outputs were made again"
            else:
                reason = "fingerprint differs"
            run = True
        if run:
            will_run.add(stage.name)
        out.append(Plan(stage, fp, parts, run, reason))
    return out


@contextmanager
def _lock(root: Path):
    """Hold the results folder for this run; a second run on it refuses in one line."""
    import fcntl

    from lcd_core import InputError

    path = root / LOCK_FILE
    fh = open(path, "a+")
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise InputError(
                f"{root}: results folder is in use by another lcd run ({holder}; lock {path}); "
                "wait for it to finish or use another results folder"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        yield
    finally:
        fh.close()


def _write_provenance(ctx: Context, made: dict[str, dict]) -> None:
    """``config.json``: the last invocation's config and, per stage, what its outputs were made from."""
    from lcd_core import write_json

    write_json({"last_invocation": ctx.cfg, "stages": made}, ctx.path("config.json"))


def run_pipeline(
    cfg: dict, *, log: Callable[[str], None] = print, stop_after: str | None = None, dry_run: bool = False
) -> Path:
    """Run every stage of a resolved config whose outputs are missing or no longer match it.

    Parameters
    ----------
    cfg
        A resolved config (see :mod:`lcd_pipeline.config`).
    log
        Receives one line per stage.
    stop_after
        End the run after this stage.
    dry_run
        Only print which stages would run and why.

    Returns
    -------
    pathlib.Path
        The results folder. Each stage's timing, status and fingerprint are appended to
        ``stages.jsonl``; ``config.json`` records what each output was made from. Under torchrun
        every process calls this; train and embed run on all of them, the rest on rank 0.
    """
    names = [s.name for s in STAGES]
    if stop_after is not None and stop_after not in names:
        from lcd_core import InputError

        raise InputError(f"unknown stage {stop_after!r}; stages: {names}")
    root = Path(cfg["results"])
    if dry_run:
        if os.environ.get("RANK", "0") != "0":  # under torchrun rank 0 prints the plan
            return root
        for p in plan(cfg):
            log(f"[{'run ' if p.run else 'skip'}] {p.stage.name}: {p.reason}")
            if p.stage.name == stop_after:
                break
        return root
    from .config import check_inputs

    check_inputs(cfg)  # a missing input or a foreign checkpoint: refused before the results folder exists
    ranks = distributed.join()  # torchrun: one process group for the whole run (no-op alone)
    try:
        _run_stages(cfg, root, ranks, log if ranks.is_main else _quiet, stop_after)
    finally:
        distributed.leave(ranks)
    return root


def _quiet(message: str) -> None:
    """The log of ranks other than 0 (rank 0 speaks for the run)."""


def _run_stages(
    cfg: dict, root: Path, ranks: Ranks, log: Callable[[str], None], stop_after: str | None
) -> None:
    """Rank 0 locks the folder and plans; each stage runs where it belongs; rank 0 records it."""
    from contextlib import ExitStack

    from lcd_core import remove_stale_temps

    with ExitStack() as stack:

        def prepare() -> list[Plan]:
            root.mkdir(parents=True, exist_ok=True)
            stack.enter_context(_lock(root))
            for stale in remove_stale_temps(root):
                log(f"[clean] removed {stale.name} left by an interrupted run")
            return plan(cfg)

        # the other ranks get rank 0's decisions (stage name, run or skip), not a plan of their own
        plans = distributed.on_main(ranks, prepare, shared=lambda ps: [(p.stage.name, p.run) for p in ps])
        if not ranks.is_main:
            by_name = {s.name: s for s in STAGES}
            plans = [Plan(by_name[name], "", {}, run, "") for name, run in plans]
        if cfg.get("threads"):
            import torch  # lcd-pipeline depends on torch through lcd-embed; declared for this call

            torch.set_num_threads(int(cfg["threads"]))
        ctx = Context(cfg, log)
        ctx.ranks = ranks
        previous = {}
        if ctx.path("config.json").is_file():
            try:
                previous = json.loads(ctx.path("config.json").read_text()).get("stages", {})
            except (json.JSONDecodeError, AttributeError):
                previous = {}
        made: dict[str, dict] = {}
        for p in plans:
            stage = p.stage
            if not p.run:
                log(f"[skip] {stage.name}: {p.reason}")
                status, seconds = "skipped", 0.0
                made[stage.name] = previous.get(stage.name, {"fingerprint": p.fingerprint, **p.parts})
            else:
                log(f"[run ] {stage.name}: {p.reason}")
                start = time.perf_counter()
                ctx.fingerprint = p.fingerprint
                distributed.run_stage(ranks, stage.name, lambda stage=stage: stage.run(ctx))
                seconds = time.perf_counter() - start
                status = "ran"
                log(f"[done] {stage.name} in {seconds:.1f} s")
                made[stage.name] = {"fingerprint": p.fingerprint, **p.parts}
            if ranks.is_main:
                record = {
                    "stage": stage.name,
                    "status": status,
                    "seconds": round(seconds, 2),
                    "fingerprint": p.fingerprint,
                }
                if status == "ran":
                    record["parts"] = p.parts
                    if ranks.world > 1:  # torchrun: train and embed ran on every process, the rest on rank 0
                        record["processes"] = (
                            ranks.world if stage.name in distributed.DISTRIBUTED_STAGES else 1
                        )
                with open(ctx.root / STATE_FILE, "a") as fh:
                    fh.write(json.dumps(record, default=str) + "\n")
                _write_provenance(ctx, made)
            if stage.name == stop_after:
                break
