"""Reading fields of view: one image per plane (TIFF/PNG) or one multi-page TIFF, as float32 (P, H, W)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from lcd_core import ImageReadError

from .manifest import plane_paths

TIFF_SUFFIXES = (".tif", ".tiff")


def read_field(
    source: Mapping | pd.Series | Sequence[str | os.PathLike] | str | os.PathLike,
    *,
    planes: Sequence[int] | None = None,
) -> np.ndarray:
    """Read one field of view as a float32 stack of planes.

    Parameters
    ----------
    source
        A manifest row (``path_z0..`` or ``path``), a list of per-plane image paths, or one path
        (a multi-page TIFF whose pages are planes, a TIFF with a leading plane axis, or a 2-D image).
    planes
        Plane indices to keep, in this order (e.g. ``[1]`` for the middle of 3 planes). Per-plane files
        that are not selected are not read.

    Returns
    -------
    numpy.ndarray
        float32, shape (P, H, W), raw intensities (a uint16 pixel of 4000 stays 4000.0). RGB(A) images
        are converted to grey (mean of R, G, B).

    Raises
    ------
    FileNotFoundError
        A file is missing (the message names it).
    ImageReadError
        A file cannot be decoded, has an unsupported shape, a selected plane does not exist, or the
        planes have different sizes.
    """
    if isinstance(source, (pd.Series, Mapping)):
        paths = plane_paths(source)
    elif isinstance(source, (str, os.PathLike)):
        paths = [str(source)]
    else:
        paths = [str(p) for p in source]
        if not paths:
            raise ImageReadError("read_field: empty list of plane paths")
    if len(paths) == 1:
        stack = _read_stack(paths[0], planes)
    else:
        idx = list(range(len(paths))) if planes is None else list(planes)
        for i in idx:
            if not -len(paths) <= i < len(paths):
                raise ImageReadError(
                    f"plane {i} requested but the field has {len(paths)} planes ({paths[0]}, ...)"
                )
        arrays = []
        for i in idx:
            a = _read_2d(paths[i])
            if arrays and a.shape != arrays[0].shape:
                raise ImageReadError(
                    f"{paths[i]}: plane shape {a.shape} differs from {arrays[0].shape} of {paths[idx[0]]}"
                )
            arrays.append(a)
        stack = np.stack(arrays)
    if stack.dtype.kind == "f" and stack.dtype.itemsize > 4:
        finite = np.isfinite(stack)
        big = np.abs(stack[finite]).max(initial=0.0)
        if big > np.finfo(np.float32).max:  # would become inf as float32: the field is not usable
            raise ImageReadError(f"{paths[0]}: pixel values up to {big:.3g} exceed the float32 range")
    return np.ascontiguousarray(stack, dtype=np.float32)


def _read_stack(path: str, planes: Sequence[int] | None) -> np.ndarray:
    """A single file: multi-page TIFF / 3-D TIFF -> (P, H, W); 2-D image -> (1, H, W)."""
    p = _check_exists(path)
    if p.suffix.lower() in TIFF_SUFFIXES:
        arr = _read_tiff(p, path)
    else:
        arr = _read_pillow(p)
    arr = _to_grey_or_stack(arr, path)
    idx = list(range(arr.shape[0])) if planes is None else list(planes)
    _check_planes(idx, arr.shape[0], path)
    return arr[idx]


class _TiffComplaints(logging.Handler):
    """Collects what tifffile logs about a file while this thread reads it.

    tifffile logs, rather than raises, when a damaged header leaves a readable but wrong image.
    """

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.messages.append(record.getMessage())


def _read_tiff(p: Path, path: str) -> np.ndarray:
    """The first series of a TIFF; a damaged file is an :class:`ImageReadError` naming it.

    Damage that tifffile reads through is refused too: a warning it logs about the file (a series
    that no longer matches its recorded shape), or an uncompressed page whose stored byte count is not
    its pixel count times the sample size (a header saying 8 bits where 16 were written decodes other
    numbers).
    """
    import tifffile

    complaints = _TiffComplaints()
    logger = logging.getLogger("tifffile")
    logger.addHandler(complaints)
    try:
        # the first series is the image (multi-page TIFFs written as a plane stack form one series)
        with tifffile.TiffFile(p) as tif:
            series = tif.series[0]
            arr = series.asarray()
            damaged = complaints.messages[0] if complaints.messages else _inconsistent_page(series.pages)
    except Exception as exc:  # tifffile raises many types for damaged files; name the file
        raise ImageReadError(f"cannot read image {path}: {exc}") from exc
    finally:
        logger.removeHandler(complaints)
    if damaged:
        raise ImageReadError(f"cannot read image {path}: damaged TIFF ({damaged.strip()})")
    return arr


def _inconsistent_page(pages) -> str:
    """Why an uncompressed, stripped page's byte counts do not fit its shape ("" when they do)."""
    for page in pages:
        # a multi-page series holds TiffFrames (offsets and counts only) after its first TiffPage
        keyframe = getattr(page, "keyframe", page)
        counts = getattr(page, "databytecounts", None)
        if counts is None or getattr(keyframe, "is_tiled", True):
            continue
        if getattr(keyframe, "compression", None) != 1 or getattr(keyframe, "bitspersample", 0) not in (
            8,
            16,
            32,
            64,
        ):
            continue
        stored, expected = int(sum(counts)), int(keyframe.nbytes)
        if stored != expected:
            return (
                f"page {getattr(page, 'index', '?')} stores {stored} bytes but its header describes "
                f"{expected} ({keyframe.shape} x {keyframe.bitspersample} bits)"
            )
    return ""


def _read_2d(path: str) -> np.ndarray:
    arr = _read_stack(path, None)
    if arr.shape[0] != 1:
        raise ImageReadError(f"{path}: expected one plane per file, found {arr.shape[0]}")
    return arr[0]


def _read_pillow(p: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(p) as im:
            im.load()
            if im.mode in ("P", "PA", "LA", "1"):
                im = im.convert("RGBA" if "A" in im.mode or im.mode == "P" else "L")
            return np.asarray(im)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:  # truncated/garbled files
        raise ImageReadError(f"cannot read image {p}: {exc}") from exc


def _to_grey_or_stack(arr: np.ndarray, path: str) -> np.ndarray:
    """(H, W) -> (1, H, W); (H, W, 3|4) colour -> grey (1, H, W); (P, H, W) kept."""
    if arr.dtype.kind not in "uif" and arr.dtype != bool:
        raise ImageReadError(f"{path}: unsupported pixel type {arr.dtype}")
    if arr.ndim == 2:
        return arr[None]
    if arr.ndim == 3 and arr.shape[-1] in (3, 4) and arr.shape[0] > 4:
        return arr[..., :3].astype(np.float32).mean(axis=-1)[None]
    if arr.ndim == 3:
        return arr
    raise ImageReadError(
        f"{path}: unsupported image shape {arr.shape} (expected (H, W), (H, W, 3) or (P, H, W))"
    )


def _check_planes(idx: Sequence[int], n: int, path: str) -> None:
    for i in idx:
        if not -n <= i < n:
            raise ImageReadError(f"plane {i} requested but {path} has {n} planes")


def _check_exists(path: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    return p


def count_planes(source: Mapping | pd.Series | str | os.PathLike) -> int:
    """Number of planes of a field without decoding pixels when possible (TIFF header only).

    Parameters
    ----------
    source
        A manifest row or one image path.
    """
    paths = plane_paths(source) if isinstance(source, (pd.Series, Mapping)) else [str(source)]
    if len(paths) > 1:
        return len(paths)
    p = _check_exists(paths[0])
    if p.suffix.lower() in TIFF_SUFFIXES:
        import tifffile

        try:
            with tifffile.TiffFile(p) as tif:
                shape = tif.series[0].shape
        except Exception as exc:  # damaged file: name it
            raise ImageReadError(f"cannot read image {paths[0]}: {exc}") from exc
        if len(shape) == 2 or (len(shape) == 3 and shape[-1] in (3, 4) and shape[0] > 4):
            return 1
        if len(shape) == 3:
            return int(shape[0])
        raise ImageReadError(f"{paths[0]}: unsupported image shape {shape}")
    return 1
