"""Manifest rows -> preprocessed tiles: the preprocessing settings and the Dataset the DataLoader workers run."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from .errors import InputError
from .manifest import plane_columns
from .preprocess import preprocess_field
from .read import read_field


@dataclass(frozen=True)
class Preprocessing:
    """How a field becomes model input. ``None`` fields take the model config's values.

    Attributes
    ----------
    planes
        Plane indices stacked as channels (default: all planes; 3 planes -> 3 channels, the LCD
        setting); one index = a chosen plane (repeated to the model's channels if it needs more).
    normalization
        ``"percentile"`` (per image), ``"control"`` (per group of ``control_by`` from control wells,
        see :func:`lcd_embed.control_stats`) or ``"none"``.
    low, high, per_plane, clip
        Percentile levels mapped to 0 and 1, per plane or per stack, optional clipping.
    control, control_by
        Control selection (query or boolean column) and grouping for ``normalization="control"``.
    downscale
        Integer block-mean downscaling before tiling (tile coordinates stay in original pixels).
    tile_size, stride, edge
        Tiling (see :func:`lcd_embed.tile_image`); ``tile_size`` defaults to the model's img_size.
    """

    planes: tuple[int, ...] | None = None
    normalization: str | None = None
    low: float | None = None
    high: float | None = None
    per_plane: bool | None = None
    clip: bool = False
    control: str = "compound == 'DMSO'"
    control_by: tuple[str, ...] = ("plate",)
    downscale: int = 1
    tile_size: int | None = None
    stride: int | None = None
    edge: str = "drop"

    def resolve(self, config: dict[str, Any]) -> Preprocessing:
        norm = config.get("normalization", {}) or {}
        tile = int(self.tile_size or config.get("img_size", 224))
        return replace(
            self,
            planes=None if self.planes is None else tuple(int(p) for p in self.planes),
            normalization=self.normalization or norm.get("method", "percentile"),
            low=float(self.low if self.low is not None else norm.get("low", 1.0)),
            high=float(self.high if self.high is not None else norm.get("high", 99.0)),
            per_plane=bool(self.per_plane if self.per_plane is not None else norm.get("per_plane", False)),
            control_by=tuple(self.control_by),
            tile_size=tile,
            stride=int(self.stride or tile),
        )


@dataclass
class FieldRun:
    """Everything a worker needs to turn manifest rows into tiles."""

    manifest: pd.DataFrame
    prep: Preprocessing
    in_chans: int
    expected_planes: int
    stats: list[dict] | None = field(default=None)


class FieldTiles(torch.utils.data.Dataset):
    """Dataset over manifest rows: each item is one field's tiles, or the error that prevented them."""

    def __init__(self, run: FieldRun, rows: list[int]):
        self.run, self.rows = run, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        r = self.rows[i]
        row = self.run.manifest.iloc[r]
        try:
            tiles, coords = load_tiles(row, self.run, r)
        except (InputError, OSError) as exc:  # FileNotFoundError is an OSError; both name the file
            return {"row": r, "tiles": None, "coords": None, "error": str(exc), "path": _first_path(row)}
        return {"row": r, "tiles": torch.from_numpy(tiles), "coords": coords, "error": None, "path": None}


def load_tiles(row: pd.Series, run: FieldRun, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Read, check the plane count, preprocess and tile one manifest row."""
    prep = run.prep
    source = _first_path(row)
    if "path" in row.index and not plane_columns(row.index):
        image = read_field(row)  # one file: count its planes before choosing
        if image.shape[0] != run.expected_planes:
            raise InputError(
                f"{source}: {image.shape[0]} planes, but the first field of the manifest has {run.expected_planes}"
            )
        if prep.planes is not None:
            bad = [p for p in prep.planes if not -image.shape[0] <= p < image.shape[0]]
            if bad:
                raise InputError(f"plane {bad[0]} requested but {source} has {image.shape[0]} planes")
            image = image[list(prep.planes)]
    else:
        image = read_field(row, planes=prep.planes)
    stats = run.stats[r] if run.stats is not None else None
    return preprocess_field(
        image,
        in_chans=run.in_chans,
        normalization=prep.normalization,
        low=prep.low,
        high=prep.high,
        per_plane=prep.per_plane,
        clip=prep.clip,
        stats=stats,
        downscale_factor=prep.downscale,
        tile_size=prep.tile_size,
        stride=prep.stride,
        edge=prep.edge,
        source=source,
    )


def _first_path(row: pd.Series) -> str:
    cols = plane_columns(row.index) or ["path"]
    return str(row[cols[0]])
