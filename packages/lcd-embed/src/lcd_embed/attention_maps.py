"""Attention maps of whole fields: per-tile CLS attention stitched back, saved as .npz and PNG overlays."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_write
from .attention import stitch_tiles, tile_attention
from .checkpoint import load_backbone
from .dataset import Preprocessing, load_tiles
from .embedding import field_run
from .errors import InputError
from .figures import attention_overlay
from .manifest import read_manifest
from .read import read_field


def field_attention_maps(
    manifest: str | os.PathLike,
    model: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    rows: Sequence[int] = (0,),
    weights: str | os.PathLike | None = None,
    planes: Sequence[int] | None = None,
    tile_size: int | None = None,
    stride: int | None = None,
    downscale: int = 1,
    device: str = "cpu",
    seed: int = 0,
) -> list[Path]:
    """Write ``row<k>_attention.npz`` and ``row<k>_attention.png`` for each chosen manifest row.

    The npz holds ``tile_attention`` (T, heads, gh, gw): the last-block CLS->patch attention of each
    tile on its patch grid (softmax over all tokens, see :func:`lcd_embed.attention_and_keys`),
    ``coords`` (T, 2) tile top-left in field pixels, ``tile_size`` in field pixels, and ``field``
    (heads, H, W): the tiles stitched back (mean where tiles overlap, NaN where none covers).
    Preprocessing is the model config's (as in ``embed``).
    """
    df = read_manifest(manifest)
    bad = [r for r in rows if not 0 <= r < len(df)]
    if bad:
        raise InputError(f"row {bad[0]} is not in the manifest ({len(df)} rows)")
    torch.manual_seed(seed)
    net, config = load_backbone(model, weights=weights, device=device)
    prep = Preprocessing(
        planes=None if planes is None else tuple(planes),
        downscale=downscale,
        tile_size=tile_size,
        stride=stride,
    ).resolve(config)
    run = field_run(df, prep, config, seed=seed)  # the same preprocessing as embed() would use
    norm = config["normalization"]
    mean = torch.tensor(norm["mean"], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(norm["std"], dtype=torch.float32).view(1, -1, 1, 1)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for r in rows:
        row = df.iloc[r]
        tiles, coords = load_tiles(row, run, r)
        x = ((torch.from_numpy(tiles) - mean) / std).to(device)
        att = tile_attention(net, x)
        raw = read_field(row, planes=prep.planes)
        span = prep.tile_size * prep.downscale
        field = stitch_tiles(att, coords, raw.shape[-2:], span)
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
