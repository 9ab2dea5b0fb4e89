"""Pure numpy kernels of the model-input recipe: intensity normalization, downscaling, channels, tiling.

Everything here works on one field (C, H, W) or (H, W) at a time and has no I/O. The order in which
they are applied, and with which options, is :mod:`lcd_embed.recipe`'s (``model_input``); the
per-plate control statistics (which read images) live in :mod:`lcd_embed.controls`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from lcd_core import InputError

NORMALIZATION_METHODS = ("percentile", "control", "none")
EDGES = ("drop", "shift")


def normalize_intensity(
    image: np.ndarray,
    *,
    method: str = "percentile",
    low: float = 1.0,
    high: float = 99.0,
    stats: Mapping[str, float | np.ndarray] | None = None,
    per_plane: bool = False,
    clip: bool = False,
) -> np.ndarray:
    """Map intensities so the low/high reference levels become 0 and 1.

    ``out = (image - lo) / (hi - lo)``, with ``lo, hi`` the ``low``/``high`` percentiles of this image
    (``method="percentile"``), or taken from ``stats`` (``method="control"``: per-plate percentiles of
    control wells, see :func:`lcd_embed.control_stats`). Passing ``stats`` always uses them.

    Parameters
    ----------
    image
        (P, H, W) or (H, W) array of any real dtype.
    method
        ``"percentile"`` (per image), ``"control"`` (given stats) or ``"none"`` (cast only).
    low, high
        Percentiles in [0, 100] defining 0 and 1 (``method="percentile"``).
    stats
        ``{"low": lo, "high": hi}``, scalars or one value per plane (length P).
    per_plane
        Percentiles per plane instead of over the whole stack (``method="percentile"``).
    clip
        Clip the result to [0, 1].

    Returns
    -------
    numpy.ndarray
        float32, same shape. A constant image (hi == lo) maps to zeros, never NaN.
    """
    raw = np.asarray(image)
    bad = ~np.isfinite(raw) if raw.dtype.kind == "f" else np.zeros(raw.shape, bool)
    if bad.any():
        # np.percentile of an image holding one NaN is NaN, and the NaN span then mapped the whole field
        # to zeros: an embedding of nothing, with no failure recorded
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(
            f"{int(bad.sum())} non-finite (NaN/inf) pixels in the image (first at index {first}); the field cannot be "
            "normalized"
        )
    with np.errstate(over="ignore"):
        x = np.asarray(raw, dtype=np.float32)
    if not np.isfinite(x).all():
        raise InputError(
            f"pixel values up to {float(np.abs(raw).max()):.3g} exceed the float32 range; rescale the image"
        )
    if stats is not None:
        method = "control"
    if method not in NORMALIZATION_METHODS:
        raise InputError(f"unknown normalization {method!r}; choose one of {NORMALIZATION_METHODS}")
    if method == "none":
        return np.array(x, dtype=np.float32, copy=True)
    if method == "control":
        if stats is None or "low" not in stats or "high" not in stats:
            raise InputError(
                "normalization 'control' needs stats={'low': ..., 'high': ...} (see control_stats)"
            )
        lo, hi = _per_plane(stats["low"], x), _per_plane(stats["high"], x)
    else:
        if not 0.0 <= low < high <= 100.0:
            raise InputError(f"percentiles must satisfy 0 <= low < high <= 100, got low={low}, high={high}")
        if per_plane and x.ndim == 3:
            q = np.percentile(x.reshape(x.shape[0], -1), [low, high], axis=1).astype(np.float32)
            lo, hi = q[0][:, None, None], q[1][:, None, None]
        else:
            lo, hi = (np.float32(v) for v in np.percentile(x, [low, high]))
    span = np.asarray(hi - lo, dtype=np.float32)
    safe = np.where(span > 0, span, np.float32(1.0))
    out = (x - lo) / safe
    out = np.where(span > 0, out, np.float32(0.0)).astype(np.float32, copy=False)
    if not np.all(np.isfinite(out)):
        raise InputError(
            f"normalization produced {int(np.sum(~np.isfinite(out)))} non-finite pixels (NaN/inf in the image?)"
        )
    return np.clip(out, 0.0, 1.0, out=out) if clip else out


def downscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Block-mean downscaling by an integer factor; trailing rows/columns that do not fill a block are dropped.

    Parameters
    ----------
    image
        (..., H, W) array.
    factor
        Positive integer block side (1: the image as float32).
    """
    if int(factor) != factor or factor < 1:
        raise InputError(f"downscale factor must be a positive integer, got {factor}")
    factor = int(factor)
    x = np.asarray(image, dtype=np.float32)
    if factor == 1:
        return x
    h, w = x.shape[-2] // factor, x.shape[-1] // factor
    if h == 0 or w == 0:
        raise InputError(f"image of size {x.shape[-2:]} is smaller than the downscale factor {factor}")
    x = x[..., : h * factor, : w * factor]
    return x.reshape(*x.shape[:-2], h, factor, w, factor).mean(axis=(-3, -1), dtype=np.float32)


def tile_positions(size: int, tile_size: int, stride: int, edge: str) -> list[int]:
    """Start offsets along one axis; ``edge="shift"`` adds a last tile flush with the border.

    Parameters
    ----------
    size
        Length of the axis.
    tile_size, stride
        Tile side and step.
    edge
        ``"drop"`` or ``"shift"``.
    """
    starts = list(range(0, size - tile_size + 1, stride))
    if edge == "shift" and starts and starts[-1] + tile_size < size:
        starts.append(size - tile_size)
    return starts


def tile_image(
    image: np.ndarray,
    *,
    tile_size: int = 224,
    stride: int | None = None,
    edge: str = "drop",
) -> tuple[np.ndarray, np.ndarray]:
    """Cut a field into square tiles.

    Parameters
    ----------
    image
        (C, H, W) or (H, W).
    tile_size
        Tile side in pixels.
    stride
        Step between tiles (default ``tile_size``: no overlap; smaller overlaps).
    edge
        ``"drop"``: pixels past the last full tile are not covered; ``"shift"``: one more tile per
        axis flush with the border, so the whole field is covered.

    Returns
    -------
    tiles : numpy.ndarray
        (T, C, tile_size, tile_size), same dtype as the image, row-major order (y, then x).
    coords : numpy.ndarray
        (T, 2) int64 top-left (y, x) of each tile.

    Raises
    ------
    InputError
        The image is smaller than one tile, or bad tile/stride values.
    """
    x = np.asarray(image)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise InputError(f"tile_image expects (C, H, W) or (H, W), got shape {x.shape}")
    stride = tile_size if stride is None else stride
    if tile_size < 1 or stride < 1:
        raise InputError(f"tile_size and stride must be positive, got {tile_size}, {stride}")
    if edge not in EDGES:
        raise InputError(f"edge must be 'drop' or 'shift', got {edge!r}")
    _, h, w = x.shape
    if h < tile_size or w < tile_size:
        raise InputError(f"image of {h}x{w} pixels is smaller than one {tile_size}x{tile_size} tile")
    ys, xs = tile_positions(h, tile_size, stride, edge), tile_positions(w, tile_size, stride, edge)
    coords = np.array([(y, xx) for y in ys for xx in xs], dtype=np.int64)
    tiles = np.stack([x[:, y : y + tile_size, xx : xx + tile_size] for y, xx in coords])
    return tiles, coords


def match_channels(image: np.ndarray, in_chans: int, *, source: str = "image") -> np.ndarray:
    """Give a (C, H, W) field the model's channel count: equal is kept, one plane is repeated, else an error.

    Parameters
    ----------
    image
        (C, H, W) field.
    in_chans
        The model's input channels.
    source
        Named in the error.
    """
    c = image.shape[0]
    if c == in_chans:
        return image
    if c == 1:
        return np.repeat(image, in_chans, axis=0)
    raise InputError(
        f"{source}: {c} planes but the model takes {in_chans} input channels; choose planes (--planes) "
        f"or use a model with in_chans={c}"
    )


def _per_plane(v, x: np.ndarray) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    if a.ndim == 0:
        return a
    if x.ndim != 3 or a.shape != (x.shape[0],):
        raise InputError(f"control stats have shape {a.shape} but the image has shape {x.shape}")
    return a[:, None, None]
