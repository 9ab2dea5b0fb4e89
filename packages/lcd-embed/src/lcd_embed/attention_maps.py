"""Attention maps of whole fields: per-tile CLS attention stitched back, saved as .npz and PNG overlays."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from lcd_core import InputError, atomic_write

from .attention import stitch_tiles, tile_attention
from .checkpoint import load_backbone
from .dataset import field_run, load_tiles
from .device import resolve_device
from .figures import attention_overlay
from .manifest import read_manifest, validate_manifest
from .read import read_field
from .recipe import resolve_input_config


def field_attention_maps(
    manifest: str | os.PathLike | pd.DataFrame,
    model: str | os.PathLike | tuple[torch.nn.Module, dict[str, Any]],
    out_dir: str | os.PathLike,
    *,
    rows: Sequence[int] = (0,),
    weights: str | os.PathLike | None = None,
    planes: Sequence[int] | None = None,
    tile_size: int | None = None,
    stride: int | None = None,
    downscale: int | None = None,
    device: str | torch.device = "auto",
    seed: int = 0,
) -> list[Path]:
    """Write ``row<k>_attention.npz`` and ``row<k>_attention.png`` for each chosen manifest row.

    The npz holds ``tile_attention`` (T, heads, gh, gw): the last-block CLS->patch attention of each
    tile on its patch grid (softmax over all tokens, see :func:`lcd_embed.attention_and_keys`),
    ``coords`` (T, 2) tile top-left in field pixels, ``tile_size`` in field pixels, and ``field``
    (heads, H, W): the tiles stitched back (mean where tiles overlap, NaN where none covers).
    Tiles are made by the checkpoint's recorded recipe (:func:`lcd_embed.model_input`), exactly as
    ``embed`` makes them.

    Parameters
    ----------
    manifest
        Manifest file or DataFrame.
    model
        Checkpoint folder, timm model name (with ``weights``), or ``(module, config)``.
    out_dir
        Folder for the arrays and overlays (created).
    rows
        Manifest rows to map.
    weights
        Local weights for a timm model name.
    planes, tile_size, stride, downscale
        Changes to the recorded recipe (``None``: the checkpoint's).
    device
        ``"auto"``: CUDA when available, else CPU.
    seed
        Seed of a random initialisation and of control pixel sampling.

    Returns
    -------
    list of pathlib.Path
        The written files.
    """
    df = validate_manifest(manifest) if isinstance(manifest, pd.DataFrame) else read_manifest(manifest)
    bad = [r for r in rows if not 0 <= r < len(df)]
    if bad:
        raise InputError(f"row {bad[0]} is not in the manifest ({len(df)} rows)")
    dev = resolve_device(device)
    if isinstance(model, tuple):
        net, config = model
        net = net.to(dev).eval()
    else:
        torch.manual_seed(seed)
        net, config = load_backbone(model, weights=weights, device=dev)
    recipe = resolve_input_config(
        config,
        planes=None if planes is None else tuple(planes),
        downscale=downscale,
        tile_size=tile_size,
        stride=stride,
    )
    run = field_run(df, recipe, seed=seed)  # the same model input as embed() makes
    # every field is read and mapped before the first file is written: a bad field leaves no partial output
    maps = []
    for r in rows:
        row = df.iloc[r]
        tiles, coords = load_tiles(row, run, r)
        att = tile_attention(net, torch.from_numpy(tiles).to(dev))
        raw = read_field(row, planes=recipe.planes)
        maps.append((r, row, att, coords, raw))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for r, row, att, coords, raw in maps:
        span = recipe.tile_size * recipe.downscale
        field = stitch_tiles(att, coords, raw.shape[-2:], tile_size=span)
        npz = out_dir / f"row{r}_attention.npz"
        atomic_write(
            npz,
            lambda tmp, a=att, c=coords, f=field, s=span: np.savez_compressed(
                tmp, tile_attention=a, coords=c, tile_size=np.int64(s), field=f.astype(np.float16)
            ),
        )
        label = " ".join(f"{k}={row[k]}" for k in ("plate", "well", "fov", "timepoint") if k in row.index)
        png = attention_overlay(
            raw.mean(axis=0), field, out_dir / f"row{r}_attention.png", title=label or f"row {r}"
        )
        written += [npz, png]
    return written
