"""Manifest -> tile embeddings (AnnData): DataLoader workers apply the model-input recipe, the ViT embeds.

One code path for one process and for torchrun, in four steps: *resolve* the manifest, model and
recipe; *plan* the shards (and the control references, and the resume fingerprint); *run* this
rank's shards; *merge* them in manifest order into one AnnData (rank 0). Features are pooled from
the CLS token and/or the mean patch token of the last n blocks (DINO's linear-evaluation features
concatenate the CLS tokens of the last blocks: Caron et al. 2021).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from lcd_core import (
    InputError,
    finish_tile_store,
    open_tiles,
    progress,
    remove_stale_temps,
    write_h5ad,
    write_table,
)

from . import distributed as dd
from .checkpoint import load_backbone, unwrap
from .dataset import FieldRun, FieldTiles, field_run
from .manifest import plane_columns, read_manifest, validate_manifest
from .output import (
    build_tile_adata,
    check_embedding_path,
    check_finite,
    failures_csv,
    feature_names,
    is_store_path,
    var_columns,
)
from .recipe import InputConfig, _named, resolve_input_config

POOLINGS = ("cls", "mean", "cls+mean")
PRECISIONS = ("auto", "fp32", "bf16")
ON_ERROR = ("raise", "skip")


def tile_features(
    model: torch.nn.Module, x: torch.Tensor, *, pooling: str = "cls", n_last_blocks: int = 1
) -> torch.Tensor:
    """Pooled features of a batch of model-input tiles.

    For each of the last ``n_last_blocks`` blocks (earliest first), its output after the final
    LayerNorm is pooled to the CLS token, the mean patch token, or both (``"cls+mean"``), and the
    pieces are concatenated: dim = n_last_blocks x (1 or 2) x embed_dim.

    Parameters
    ----------
    model
        A timm VisionTransformer (wrappers are unwrapped).
    x
        (B, C, H, W) tiles from :func:`lcd_embed.model_input`, on the model's device.
    pooling
        ``"cls"``, ``"mean"`` or ``"cls+mean"``.
    n_last_blocks
        Blocks whose outputs are pooled and concatenated.
    """
    vit = unwrap(model)
    if pooling not in POOLINGS:
        raise InputError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if not 1 <= n_last_blocks <= len(vit.blocks):
        raise InputError(f"n_last_blocks must be in 1..{len(vit.blocks)}, got {n_last_blocks}")
    n_prefix = vit.num_prefix_tokens
    if n_last_blocks == 1:
        layers = [vit.forward_features(x)]
    else:
        inter = vit.forward_intermediates(
            x,
            indices=n_last_blocks,
            norm=True,
            output_fmt="NLC",
            intermediates_only=True,
            return_prefix_tokens=True,
        )
        layers = [torch.cat([prefix, patches], dim=1) for patches, prefix in inter]
    parts = []
    for t in layers:
        if pooling in ("cls", "cls+mean"):
            parts.append(t[:, 0])
        if pooling in ("mean", "cls+mean"):
            parts.append(t[:, n_prefix:].mean(dim=1))
    return torch.cat(parts, dim=-1)


def embed(
    manifest: str | os.PathLike | pd.DataFrame,
    model: str | os.PathLike | tuple[torch.nn.Module, dict[str, Any]],
    *,
    out: str | os.PathLike | None = None,
    weights: str | os.PathLike | None = None,
    preprocessing: Mapping[str, Any] | InputConfig | None = None,
    pooling: str = "cls",
    n_last_blocks: int = 1,
    batch_size: int = 64,
    num_workers: int = 2,
    device: str | torch.device = "auto",
    precision: str = "auto",
    on_error: str = "raise",
    shard_size: int = 256,
    keep_shards: bool = False,
    progress: bool = True,
    seed: int = 0,
):
    """Embed every tile of every field of a manifest.

    Parameters
    ----------
    manifest
        Manifest file or DataFrame (see :func:`lcd_embed.read_manifest`).
    model
        Checkpoint folder, timm model name (with ``weights``), or ``(module, config)`` from
        :func:`lcd_embed.load_backbone`. A timm name without weights is randomly initialised from
        ``seed`` (identically on every rank).
    out
        Where the embeddings go (required under torchrun): a tile store ``<name>.parquet`` (a folder of
        parquet parts, one per shard, that is never loaded whole: any number of tiles; see
        :mod:`lcd_core.tiles`), or one AnnData ``.h5ad`` / ``.zarr`` (merged in memory). Finished
        shards are kept in ``<out>.shards/`` until the end, so a re-run skips them; a store is made
        by renaming that folder, without a copy.
    weights
        Local weights for a timm model name (see :func:`lcd_embed.load_backbone`).
    preprocessing
        Changes to the checkpoint's recorded model-input recipe: a dict of
        :class:`lcd_embed.InputConfig` fields (``None`` values keep the recorded ones), or a whole
        :class:`~lcd_embed.InputConfig` used as it is. By default the recipe the checkpoint records
        (planes, normalization, downscale, mean/std; tile size = its ``img_size``).
    pooling, n_last_blocks
        ``"cls"``, ``"mean"`` (mean patch token) or ``"cls+mean"``, for each of the last n blocks.
    batch_size
        Tiles per forward pass.
    num_workers
        DataLoader worker processes reading and preprocessing fields (0: in the main process).
    device
        ``"auto"``: ``cuda:LOCAL_RANK`` when CUDA is available, else CPU (:func:`lcd_embed.resolve_device`).
    precision
        ``"auto"`` (bf16 autocast on GPUs that support it, fp32 on CPU), ``"fp32"`` or ``"bf16"``.
        ``X`` is float32 either way.
    on_error
        ``"raise"``: a missing/corrupt/undersized/inconsistent field stops the run with its name;
        ``"skip"``: it is left out and listed in ``uns["lcd_embed"]["failures"]`` and
        ``<out stem>.failures.csv``.
    shard_size
        Manifest rows per shard (the unit of distribution and resume).
    keep_shards
        Keep ``<out>.shards/`` after merging into an ``.h5ad`` / ``.zarr`` (a tile store *is* the shards).
    progress
        Show a progress bar in tiles per second (rank 0).
    seed
        Seed of a random initialisation and of control pixel sampling.

    Returns
    -------
    anndata.AnnData, lcd_core.TileStore or None
        An AnnData (for no ``out``, ``.h5ad`` or ``.zarr``): X float32 (tiles x features); obs =
        manifest columns + ``manifest_row, tile, tile_y, tile_x``; uns["lcd_embed"] = model config,
        spec, preprocessing, pooling, failures; uns["lcd"]["level"] = "tile". For a ``.parquet``
        output, the opened :class:`lcd_core.TileStore` (same content, read in chunks;
        ``lcd_core.read_tiles`` loads it as this AnnData). ``None`` on ranks other than 0.
    """
    if on_error not in ON_ERROR:
        raise InputError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if pooling not in POOLINGS:
        raise InputError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    for name, value, least in (
        ("batch_size", batch_size, 1),
        ("shard_size", shard_size, 1),
        ("n_last_blocks", n_last_blocks, 1),
        ("num_workers", num_workers, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise InputError(f"{name} must be an integer >= {least}, got {value!r}")
    if out is not None:
        out = check_embedding_path(out)
    ctx = dd.setup(device)
    try:
        if ctx.world > 1 and out is None:
            raise InputError("under torchrun, embed needs an output path (out=... / --out)")
        job = _resolve(
            ctx,
            manifest,
            model,
            weights=weights,
            preprocessing=preprocessing,
            pooling=pooling,
            n_last_blocks=n_last_blocks,
            precision=precision,
            seed=seed,
        )
        plan = _plan(ctx, job, out=out, shard_size=shard_size)
        embedder = _Embedder(job, ctx.device, batch_size)
        in_memory = _run(
            ctx, job, plan, embedder, num_workers=num_workers, on_error=on_error, progress=progress
        )
        if not ctx.is_main:
            return None
        return _merge(ctx, job, plan, embedder.dim, in_memory, out=out, keep_shards=keep_shards)
    finally:
        dd.teardown(ctx)


@dataclass
class _Job:
    """What :func:`_resolve` settles: the manifest, the model and its recipe, the run's metadata."""

    df: pd.DataFrame
    net: torch.nn.Module
    config: dict[str, Any]
    spec: str
    weights: str
    recipe: InputConfig
    run: FieldRun
    pooling: str
    n_last_blocks: int
    precision: str
    seed: int

    def use_bf16(self, device: torch.device) -> bool:
        return self.precision == "bf16" or (
            self.precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()
        )

    def meta(self, device: torch.device) -> dict[str, Any]:
        """``uns["lcd_embed"]`` (without failures); also the resume fingerprint's content."""
        return {
            "spec": self.spec,
            "weights": self.weights,
            "model": self.config,
            "preprocessing": self.recipe.as_dict(),
            "pooling": self.pooling,
            "n_last_blocks": self.n_last_blocks,
            "precision": "bf16" if self.use_bf16(device) else "fp32",
            "seed": self.seed,
            "n_fields": len(self.df),
        }


@dataclass
class _Plan:
    """Shards of the manifest, this rank's unfinished ones, where finished ones go, the fingerprint."""

    ranges: list[tuple[int, int]]
    todo: list[int]
    shard_dir: Path | None
    fingerprint: str | None


def _resolve(
    ctx: dd.DistContext, manifest, model, *, weights, preprocessing, pooling, n_last_blocks, precision, seed
) -> _Job:
    """Read the manifest, load the model, resolve the recipe against its config, plan the fields."""
    df = read_manifest(manifest) if not isinstance(manifest, pd.DataFrame) else validate_manifest(manifest)
    if isinstance(model, tuple):
        if weights is not None:
            raise InputError(
                "weights= goes with a timm model name, not with an already built (module, config)"
            )
        net, config = model
        net = net.to(ctx.device).eval()
        spec = config.get("timm_name", "module")
    else:
        torch.manual_seed(seed)
        net, config = load_backbone(model, weights=weights, device=ctx.device)
        spec = str(model)
    if isinstance(preprocessing, InputConfig):
        recipe = preprocessing
    else:
        with _named(spec):  # a recipe the checkpoint cannot take names the checkpoint
            recipe = resolve_input_config(config, **dict(preprocessing or {}))
    run = field_run(df, recipe, seed=seed)
    weights = str(weights) if weights else ""
    return _Job(
        df, net, config, spec, weights, recipe, run, pooling, int(n_last_blocks), precision, int(seed)
    )


def _plan(ctx: dd.DistContext, job: _Job, *, out: Path | None, shard_size: int) -> _Plan:
    """Cut the manifest into shards; with an output, skip shards a previous identical run finished."""
    ranges = dd.shard_ranges(len(job.df), shard_size)
    fp, shard_dir = None, None
    if out is not None:  # only sharded runs need it (resume); hashing the weights costs ~0.2 s for a ViT-S
        fp = dd.fingerprint(
            {
                **job.meta(ctx.device),
                "paths": job.df[plane_columns(job.df.columns) or ["path"]].to_numpy().tolist(),
                "state": dd.state_dict_digest(job.net),
                "shard_size": shard_size,
                "expected_planes": job.run.expected_planes,
            }
        )
        # created by the first finished shard (write_shard's atomic writer makes the folder): a run that
        # stops before any shard is done (bad input, a kill) leaves no empty <out>.shards/ behind
        shard_dir = Path(f"{out}.shards")
        if ctx.is_main:  # what a killed run left half-written (its pid is gone) is deleted, not resumed
            remove_stale_temps(shard_dir)
            remove_stale_temps(out.parent, name=out.name)
    dd.barrier(ctx)
    mine = dd.shards_of_rank(len(ranges), ctx.rank, ctx.world)
    todo = (
        mine if shard_dir is None else [k for k in mine if not dd.shard_done(shard_dir, k, len(ranges), fp)]
    )
    return _Plan(ranges, todo, shard_dir, fp)


def _run(
    ctx: dd.DistContext, job: _Job, plan: _Plan, embedder: _Embedder, *, num_workers, on_error, progress
) -> dict[int, tuple[dict, list]]:
    """Embed this rank's unfinished shards (kept in memory, or written as shard files); errors reach every rank."""
    in_memory: dict[int, tuple[dict, list]] = {}
    error = None
    n_fields = sum(plan.ranges[k][1] - plan.ranges[k][0] for k in plan.todo)
    try:
        with _tile_progress(progress and ctx.is_main, n_fields) as advance:
            for k in plan.todo:
                rows = list(range(*plan.ranges[k]))
                arrays, failures = embedder.run(job.run, rows, num_workers, on_error, advance)
                check_finite(arrays)  # before anything is written: a store never holds NaN
                if plan.shard_dir is None:
                    in_memory[k] = (arrays, failures)
                else:
                    dd.write_shard(
                        plan.shard_dir,
                        k,
                        len(plan.ranges),
                        plan.fingerprint,
                        arrays,
                        failures,
                        feature_names(embedder.dim),
                    )
    except (InputError, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, InputError) else str(exc)
        if ctx.world == 1:
            raise
    errors = [e for e in dd.gather(ctx, error) if e]
    if errors:
        raise InputError(errors[0])
    dd.barrier(ctx)
    return in_memory


def _merge(
    ctx: dd.DistContext, job: _Job, plan: _Plan, dim: int, in_memory, *, out: Path | None, keep_shards: bool
):
    """Rank 0: the shard folder becomes the tile store, or every shard in manifest order -> one AnnData."""
    n = len(plan.ranges)
    if out is not None and is_store_path(out):
        return _finish_store(ctx, job, plan, dim, out)
    parts = [
        in_memory[k] if plan.shard_dir is None else dd.read_shard(plan.shard_dir, k, n) for k in range(n)
    ]
    adata = build_tile_adata(job.df, parts, job.meta(ctx.device), dim)
    if out is not None:
        failures = adata.uns["lcd_embed"]["failures"]
        if len(failures["manifest_row"]):
            write_table(pd.DataFrame(failures), failures_csv(out))
        write_h5ad(adata, out)
        if not keep_shards:
            shutil.rmtree(plan.shard_dir, ignore_errors=True)
    return adata


def _finish_store(ctx: dd.DistContext, job: _Job, plan: _Plan, dim: int, out: Path):
    """Rank 0: metadata into the shard folder, which is renamed onto ``out`` (no copy of the features)."""
    n = len(plan.ranges)
    failures = [f for k in range(n) for f in dd.read_failures(plan.shard_dir, k, n)]
    n_tiles = sum(
        json.loads(dd.shard_files(plan.shard_dir, k, n)[1].read_text())["n_tiles"] for k in range(n)
    )
    if n_tiles == 0:
        raise InputError(
            f"no field could be embedded ({len(failures)} failed; first: {failures[0]['error'] if failures else '-'})"
        )
    meta = job.meta(ctx.device)
    uns = {"lcd_embed": {**meta, "failures": failures}, "lcd": {"level": "tile"}}
    if failures:
        write_table(pd.DataFrame(failures, columns=["manifest_row", "path", "error"]), failures_csv(out))
    finish_tile_store(
        plan.shard_dir,
        out,
        fields=job.df,
        feature_names=feature_names(dim),
        uns=uns,
        var=var_columns(meta, dim),
    )
    for marker in out.glob("_part-*.json"):  # resume markers: folded into _lcd.json
        marker.unlink()
    return open_tiles(out)


class _Embedder:
    """Batches tiles across fields, runs the model, keeps features in order."""

    def __init__(self, job: _Job, device: torch.device, batch_size: int):
        self.net = job.net
        self.pooling, self.n_last_blocks, self.use_bf16 = job.pooling, job.n_last_blocks, job.use_bf16(device)
        self.device, self.batch_size = device, int(batch_size)
        vit = unwrap(job.net)
        per_layer = vit.embed_dim * (2 if job.pooling == "cls+mean" else 1)
        self.dim = per_layer * job.n_last_blocks

    @torch.inference_mode()
    def forward(self, tiles: torch.Tensor) -> np.ndarray:
        x = tiles.to(self.device, non_blocking=True)
        ctx = (
            torch.autocast(self.device.type, dtype=torch.bfloat16)
            if self.use_bf16
            else contextlib.nullcontext()
        )
        with ctx:
            f = tile_features(self.net, x, pooling=self.pooling, n_last_blocks=self.n_last_blocks)
        return f.float().cpu().numpy()

    def run(
        self, run: FieldRun, rows: list[int], num_workers: int, on_error: str, advance: Callable[..., None]
    ) -> tuple[dict, list]:
        loader = torch.utils.data.DataLoader(
            FieldTiles(run, rows),
            batch_size=None,
            num_workers=num_workers,
            pin_memory=self.device.type == "cuda",
            collate_fn=_identity,
        )
        feats, meta_rows, meta_tiles, meta_coords, failures = [], [], [], [], []
        buffer: list[torch.Tensor] = []
        n_buffered = 0
        for item in loader:
            if item["error"] is not None:
                advance(0, fields=1)
                if on_error == "raise":
                    raise InputError(item["error"])
                failures.append({"manifest_row": item["row"], "path": item["path"], "error": item["error"]})
                continue
            n = item["tiles"].shape[0]
            advance(n, fields=1)
            buffer.append(item["tiles"])
            meta_rows.append(np.full(n, item["row"], dtype=np.int64))
            meta_tiles.append(np.arange(n, dtype=np.int64))
            meta_coords.append(item["coords"])
            n_buffered += n
            while n_buffered >= self.batch_size:
                batch = torch.cat(buffer)
                feats.append(self.forward(batch[: self.batch_size]))
                rest = batch[self.batch_size :]
                buffer, n_buffered = ([rest] if len(rest) else []), len(rest)
        if n_buffered:
            feats.append(self.forward(torch.cat(buffer)))
        arrays = {
            "X": np.concatenate(feats) if feats else np.zeros((0, self.dim), np.float32),
            "rows": np.concatenate(meta_rows) if meta_rows else np.zeros(0, np.int64),
            "tiles": np.concatenate(meta_tiles) if meta_tiles else np.zeros(0, np.int64),
            "coords": np.concatenate(meta_coords) if meta_coords else np.zeros((0, 2), np.int64),
        }
        return arrays, failures


def _identity(x):
    return x


@contextlib.contextmanager
def _tile_progress(enabled: bool, n_fields: int):
    """lcd-core's bar in tiles per second, with the fields done out of ``n_fields`` beside it.

    The bar counts tiles (``unit="tiles"``), whose total is only known once every field is read, so
    it is a spinner with a count; ``advance(n_tiles, fields=1)`` also updates ``fields k/n``.
    """
    done = [0]
    with progress(None, "embedding", enabled=enabled, unit="tiles") as bar:

        def advance(n: int = 1, *, fields: int = 0) -> None:
            done[0] += fields
            bar(n, info=f"fields {done[0]}/{n_fields}")

        yield advance


__all__ = ["POOLINGS", "embed", "tile_features"]
