"""Manifest -> tile embeddings (AnnData): DataLoader workers read and preprocess, the ViT embeds.

One code path for one process and for torchrun: rows are processed in shards (see
:mod:`lcd_embed.distributed`), features are pooled from the CLS token and/or mean patch token of
the last n blocks (DINO's linear-evaluation features concatenate the CLS tokens of the last blocks:
Caron et al. 2021), and the AnnData is assembled once, in manifest order.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from . import distributed as dd
from .checkpoint import load_backbone, unwrap
from .controls import control_stats, stats_for_rows
from .dataset import FieldRun, FieldTiles, Preprocessing
from .errors import InputError
from .manifest import plane_columns, read_manifest, validate_manifest
from .output import build_tile_adata, check_output_path, failures_csv, write_adata
from .read import count_planes

POOLINGS = ("cls", "mean", "cls+mean")
PRECISIONS = ("auto", "fp32", "bf16")


def tile_features(
    model: torch.nn.Module, x: torch.Tensor, *, pooling: str = "cls", n_last_blocks: int = 1
) -> torch.Tensor:
    """Pooled features of a batch of normalized tiles.

    For each of the last ``n_last_blocks`` blocks (earliest first), its output after the final
    LayerNorm is pooled to the CLS token, the mean patch token, or both (``"cls+mean"``), and the
    pieces are concatenated: dim = n_last_blocks x (1 or 2) x embed_dim.
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
    preprocessing: Preprocessing | dict[str, Any] | None = None,
    pooling: str = "cls",
    n_last_blocks: int = 1,
    batch_size: int = 64,
    num_workers: int = 2,
    device: str | torch.device | None = None,
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
        ``.h5ad`` or ``.zarr`` to write atomically (required under torchrun). Finished shards are
        kept in ``<out>.shards/`` until the merge, so a re-run skips them.
    preprocessing
        :class:`Preprocessing` or a dict of its fields.
    pooling, n_last_blocks
        ``"cls"``, ``"mean"`` (mean patch token) or ``"cls+mean"``, for each of the last n blocks.
    batch_size
        Tiles per forward pass.
    num_workers
        DataLoader worker processes reading and preprocessing fields (0: in the main process).
    device
        Default: ``cuda:LOCAL_RANK`` when CUDA is available, else CPU.
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
        Keep ``<out>.shards/`` after the merge.
    progress
        Show a rich progress bar (rank 0).

    Returns
    -------
    anndata.AnnData or None
        X float32 (tiles x features); obs = manifest columns + ``manifest_row, tile, tile_y,
        tile_x``; uns["lcd_embed"] = model config, spec, preprocessing, pooling, failures;
        uns["lcd"]["level"] = "tile". ``None`` on ranks other than 0.
    """
    if on_error not in ("raise", "skip"):
        raise InputError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if pooling not in POOLINGS:
        raise InputError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if out is not None:
        out = check_output_path(out)
    ctx = dd.setup(device)
    try:
        return _embed(
            ctx,
            manifest,
            model,
            out=out,
            weights=weights,
            preprocessing=preprocessing,
            pooling=pooling,
            n_last_blocks=n_last_blocks,
            batch_size=batch_size,
            num_workers=num_workers,
            precision=precision,
            on_error=on_error,
            shard_size=shard_size,
            keep_shards=keep_shards,
            progress=progress,
            seed=seed,
        )
    finally:
        dd.teardown(ctx)


def field_run(df: pd.DataFrame, prep: Preprocessing, config: dict, *, seed: int) -> FieldRun:
    """How every field of ``df`` is read and preprocessed (shared by ``embed`` and ``attention_maps``).

    ``prep`` is already resolved against the model ``config``. With control normalization the
    per-plate control references are computed here (seeded pixel sampling), so both callers
    normalize a field identically.
    """
    stats = None
    if prep.normalization == "control":
        table = control_stats(
            df,
            control=prep.control,
            by=prep.control_by,
            planes=prep.planes,
            low=prep.low,
            high=prep.high,
            per_plane=prep.per_plane,
            seed=seed,
        )
        stats = stats_for_rows(df, table, prep.control_by)
    return FieldRun(df, prep, int(config["in_chans"]), count_planes(df.iloc[0]), stats)


def _embed(
    ctx: dd.DistContext,
    manifest,
    model,
    *,
    out,
    weights,
    preprocessing,
    pooling,
    n_last_blocks,
    batch_size,
    num_workers,
    precision,
    on_error,
    shard_size,
    keep_shards,
    progress,
    seed,
):
    """The body of :func:`embed` once the process group (if any) is set up."""
    if ctx.world > 1 and out is None:
        raise InputError("under torchrun, embed needs an output path (out=... / --out)")
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
    prep = (
        Preprocessing(**preprocessing)
        if isinstance(preprocessing, dict)
        else (preprocessing or Preprocessing())
    )
    prep = prep.resolve(config)
    run = field_run(df, prep, config, seed=seed)
    use_bf16 = precision == "bf16" or (
        precision == "auto" and ctx.device.type == "cuda" and torch.cuda.is_bf16_supported()
    )
    meta = {
        "spec": spec,
        "weights": str(weights) if weights else "",
        "model": config,
        "preprocessing": {**asdict(prep), "planes": "all" if prep.planes is None else list(prep.planes)},
        "pooling": pooling,
        "n_last_blocks": int(n_last_blocks),
        "precision": "bf16" if use_bf16 else "fp32",
        "seed": int(seed),
        "n_fields": len(df),
    }
    fp = None
    if out is not None:  # only sharded runs need it (resume); hashing the weights costs ~0.2 s for a ViT-S
        fp = dd.fingerprint(
            {
                **meta,
                "paths": df[plane_columns(df.columns) or ["path"]].to_numpy().tolist(),
                "state": dd.state_dict_digest(net),
                "shard_size": shard_size,
                "expected_planes": run.expected_planes,
            }
        )
    mean = torch.tensor(config["normalization"]["mean"], dtype=torch.float32, device=ctx.device).view(
        1, -1, 1, 1
    )
    std = torch.tensor(config["normalization"]["std"], dtype=torch.float32, device=ctx.device).view(
        1, -1, 1, 1
    )
    embedder = _Embedder(net, mean, std, pooling, n_last_blocks, use_bf16, ctx.device, batch_size)

    ranges = dd.shard_ranges(len(df), shard_size)
    shard_dir = Path(f"{out}.shards") if out is not None else None
    if shard_dir is not None and ctx.is_main:
        shard_dir.mkdir(parents=True, exist_ok=True)
    dd.barrier(ctx)
    mine = dd.shards_of_rank(len(ranges), ctx.rank, ctx.world)
    todo = (
        mine if shard_dir is None else [k for k in mine if not dd.shard_done(shard_dir, k, len(ranges), fp)]
    )
    in_memory: dict[int, tuple[dict, list]] = {}
    error = None
    try:
        with _progress(progress and ctx.is_main, sum(ranges[k][1] - ranges[k][0] for k in todo)) as advance:
            for k in todo:
                rows = list(range(*ranges[k]))
                arrays, failures = embedder.run(run, rows, num_workers, on_error, advance)
                if shard_dir is None:
                    in_memory[k] = (arrays, failures)
                else:
                    dd.write_shard(shard_dir, k, len(ranges), fp, arrays, failures)
    except (InputError, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, InputError) else str(exc)
        if ctx.world == 1:
            raise
    errors = [e for e in dd.gather(ctx, error) if e]
    if errors:
        raise InputError(errors[0])
    dd.barrier(ctx)
    if not ctx.is_main:
        return None
    parts = [
        in_memory[k] if shard_dir is None else dd.read_shard(shard_dir, k, len(ranges))
        for k in range(len(ranges))
    ]
    adata = build_tile_adata(df, parts, meta, embedder.dim)
    if out is not None:
        failures = adata.uns["lcd_embed"]["failures"]
        if len(failures["manifest_row"]):
            from .manifest import write_table

            write_table(pd.DataFrame(failures), failures_csv(out))
        write_adata(adata, out)
        if not keep_shards:
            shutil.rmtree(shard_dir, ignore_errors=True)
    return adata


class _Embedder:
    """Batches tiles across fields, runs the model, keeps features in order."""

    def __init__(self, net, mean, std, pooling, n_last_blocks, use_bf16, device, batch_size):
        self.net, self.mean, self.std = net, mean, std
        self.pooling, self.n_last_blocks, self.use_bf16 = pooling, n_last_blocks, use_bf16
        self.device, self.batch_size = device, int(batch_size)
        vit = unwrap(net)
        per_layer = vit.embed_dim * (2 if pooling == "cls+mean" else 1)
        self.dim = per_layer * n_last_blocks

    @torch.inference_mode()
    def forward(self, tiles: torch.Tensor) -> np.ndarray:
        x = tiles.to(self.device, non_blocking=True)
        x = (x - self.mean) / self.std
        ctx = (
            torch.autocast(self.device.type, dtype=torch.bfloat16)
            if self.use_bf16
            else contextlib.nullcontext()
        )
        with ctx:
            f = tile_features(self.net, x, pooling=self.pooling, n_last_blocks=self.n_last_blocks)
        return f.float().cpu().numpy()

    def run(
        self, run: FieldRun, rows: list[int], num_workers: int, on_error: str, advance
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
            advance(1)
            if item["error"] is not None:
                if on_error == "raise":
                    raise InputError(item["error"])
                failures.append({"manifest_row": item["row"], "path": item["path"], "error": item["error"]})
                continue
            n = item["tiles"].shape[0]
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
def _progress(show: bool, total: int):
    if not show:
        yield lambda n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=False,
    ) as bar:
        task = bar.add_task("embedding fields", total=total)
        yield lambda n: bar.advance(task, n)


__all__ = ["POOLINGS", "embed", "tile_features"]
