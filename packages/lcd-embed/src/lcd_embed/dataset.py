"""Manifest rows -> model input: what the DataLoader workers of ``embed`` (and ``attention``) run per field."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from lcd_core import InputError

from .controls import control_stats, stats_for_rows
from .manifest import plane_columns
from .read import count_planes, read_field
from .recipe import InputConfig, model_input


@dataclass
class FieldRun:
    """Everything a worker needs to turn manifest rows into model input.

    Attributes
    ----------
    manifest
        The validated manifest.
    recipe
        The model-input recipe (:func:`lcd_embed.resolve_input_config`).
    expected_planes
        Planes of the manifest's first field (every field must have as many).
    stats
        Control references per manifest row (``method="control"``), else ``None``.
    """

    manifest: pd.DataFrame
    recipe: InputConfig
    expected_planes: int
    stats: list[dict] | None = field(default=None)


def field_run(df: pd.DataFrame, recipe: InputConfig, *, seed: int) -> FieldRun:
    """How every field of ``df`` becomes model input (shared by ``embed`` and ``field_attention_maps``).

    With control normalization the per-group control references are computed here (seeded pixel
    sampling), so both callers normalize a field identically.

    Parameters
    ----------
    df
        The validated manifest.
    recipe
        The resolved recipe.
    seed
        Seed of the control pixel sampling.
    """
    stats = None
    if recipe.method == "control":
        table = control_stats(
            df,
            control=recipe.control,
            measurement_keys=recipe.measurement_keys,
            planes=recipe.planes,
            low=recipe.low,
            high=recipe.high,
            per_plane=recipe.per_plane,
            seed=seed,
        )
        stats = stats_for_rows(df, table, recipe.measurement_keys)
    return FieldRun(df, recipe, count_planes(df.iloc[0]), stats)


class FieldTiles(torch.utils.data.Dataset):
    """Dataset over manifest rows: each item is one field's model input, or the error that prevented it."""

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
            return {"row": r, "tiles": None, "coords": None, "error": str(exc), "path": first_path(row)}
        return {"row": r, "tiles": torch.from_numpy(tiles), "coords": coords, "error": None, "path": None}


def load_tiles(row: pd.Series, run: FieldRun, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Read one manifest row, check its plane count, and apply the recipe (:func:`lcd_embed.model_input`).

    Parameters
    ----------
    row
        The manifest row.
    run
        The :class:`FieldRun`.
    r
        Its position in the manifest (for the control references).
    """
    source = first_path(row)
    stats = run.stats[r] if run.stats is not None else None
    if "path" in row.index and not plane_columns(row.index):
        image = read_field(row)  # one file: count its planes before choosing
        if image.shape[0] != run.expected_planes:
            raise InputError(
                f"{source}: {image.shape[0]} planes, but the first field of the manifest has {run.expected_planes}"
            )
        return model_input(image, run.recipe, stats=stats, source=source)
    image = read_field(row, planes=run.recipe.planes)  # per-plane files: unselected planes are not read
    return model_input(image, run.recipe, stats=stats, planes_selected=True, source=source)


def first_path(row: pd.Series) -> str:
    """The first image path of a manifest row (named in errors).

    Parameters
    ----------
    row
        A manifest row.
    """
    cols = plane_columns(row.index) or ["path"]
    return str(row[cols[0]])
