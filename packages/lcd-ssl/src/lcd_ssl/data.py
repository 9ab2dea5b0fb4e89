"""Training images: where fields come from (a manifest or in-memory arrays) and the crop dataset.

A field is read once per DataLoader worker (``cache_images``) and turned into the normalized field by
``lcd_embed.field_input`` (planes, intensity normalization, downscale): the same function, with the
same recipe, that makes embedding input, so an exported model is embedded exactly as it was trained.
:class:`lcd_ssl.augment.MultiCrop` then cuts crops from it with the sample's own seed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from lcd_core import InputError
from torch.utils.data import Dataset

from .augment import MultiCrop


class DataError(InputError):
    """Training images are unusable (the message names the field or file)."""


class InMemoryImages:
    """Fields held in memory, with their metadata.

    Parameters
    ----------
    images
        A sequence of (P, H, W) or (H, W) arrays, or one (N, P, H, W) array. Raw intensities; the
        training config's ``normalization`` is applied when a field is used.
    obs
        Metadata, one row per image (needed by cross-batch variants); default: no columns.
    """

    def __init__(self, images: np.ndarray | Sequence[np.ndarray], obs: pd.DataFrame | None = None):
        arrays = [np.asarray(a) for a in images]
        if not arrays:
            raise DataError("no images given")
        self.arrays = [a[None] if a.ndim == 2 else a for a in arrays]
        for i, a in enumerate(self.arrays):
            if a.ndim != 3:
                raise DataError(f"image {i} has shape {a.shape}; expected (P, H, W) or (H, W)")
        self.obs = (
            pd.DataFrame(index=pd.RangeIndex(len(self.arrays))) if obs is None else obs.reset_index(drop=True)
        )
        if len(self.obs) != len(self.arrays):
            raise DataError(f"{len(self.arrays)} images but {len(self.obs)} metadata rows")

    def __len__(self) -> int:
        return len(self.arrays)

    def read(self, i: int, planes: Sequence[int] | None) -> np.ndarray:
        """Field ``i`` as float32 (P, H, W), only ``planes`` (in that order) when given.

        Parameters
        ----------
        i
            Field index.
        planes
            Plane indices, or ``None`` for all.
        """
        a = self.arrays[i]
        if planes is not None:
            bad = [p for p in planes if not -a.shape[0] <= p < a.shape[0]]
            if bad:
                raise DataError(f"image {i}: plane(s) {bad} requested but it has {a.shape[0]} planes")
            a = a[list(planes)]
        return np.asarray(a, dtype=np.float32)

    def describe(self, i: int) -> str:
        """How field ``i`` is named in errors.

        Parameters
        ----------
        i
            Field index.
        """
        return f"image {i}"


class ManifestImages:
    """Fields listed in an lcd-embed manifest (one row per field of view × timepoint)."""

    def __init__(self, manifest: pd.DataFrame | str | os.PathLike):
        import lcd_embed

        if isinstance(manifest, (str, os.PathLike)):
            self.obs = lcd_embed.read_manifest(Path(manifest))
        else:
            self.obs = lcd_embed.validate_manifest(manifest, source="manifest DataFrame")
        self.rows = self.obs.to_dict("records")

    def __len__(self) -> int:
        return len(self.obs)

    def read(self, i: int, planes: Sequence[int] | None) -> np.ndarray:
        """Field ``i`` read from its image file(s) (unselected per-plane files are not read).

        Parameters
        ----------
        i
            Manifest row.
        planes
            Plane indices, or ``None`` for all.
        """
        import lcd_embed

        return lcd_embed.read_field(self.rows[i], planes=planes)

    def describe(self, i: int) -> str:
        """How field ``i`` is named in errors (its row and first image path).

        Parameters
        ----------
        i
            Manifest row.
        """
        import lcd_embed

        return f"manifest row {i} ({lcd_embed.plane_paths(self.rows[i])[0]})"


def as_source(data: Any) -> InMemoryImages | ManifestImages:
    """A manifest path / DataFrame, or :class:`InMemoryImages`, as a field source.

    Parameters
    ----------
    data
        What :func:`lcd_ssl.train` was given.
    """
    if isinstance(data, (InMemoryImages, ManifestImages)):
        return data
    if isinstance(data, (str, os.PathLike, pd.DataFrame)):
        return ManifestImages(data)
    raise DataError(
        f"training data must be a manifest path, a manifest DataFrame or InMemoryImages, got {type(data).__name__}"
    )


class FieldReader:
    """Reads and checks fields, turns them into normalized fields (``lcd_embed.field_input``); keeps them when ``cache``.

    Parameters
    ----------
    source
        :class:`InMemoryImages` or a manifest source.
    recipe
        The run's ``lcd_embed.InputConfig`` (:meth:`lcd_ssl.TrainConfig.input_config`).
    cache
        Keep normalized fields in memory.
    """

    def __init__(self, source, recipe, *, cache: bool):
        self.source = source
        self.recipe = recipe
        self.planes = None if recipe.planes is None else list(recipe.planes)
        self.cache = cache
        self._store: dict[int, np.ndarray] = {}
        self.n_planes: int | None = None

    def __call__(self, i: int) -> np.ndarray:
        """The normalized field ``i`` (P', H', W') float32, from the cache when kept."""
        if i in self._store:
            return self._store[i]
        import lcd_embed

        field = self.source.read(i, self.planes)
        if self.n_planes is None:
            self.n_planes = field.shape[0]
        elif field.shape[0] != self.n_planes:
            raise DataError(
                f"{self.source.describe(i)} has {field.shape[0]} planes, the first field had {self.n_planes}"
            )
        if not np.all(np.isfinite(field)):
            raise DataError(
                f"{self.source.describe(i)} contains {int(np.sum(~np.isfinite(field)))} NaN/inf pixels"
            )
        field = lcd_embed.field_input(
            field, self.recipe, planes_selected=True, source=self.source.describe(i)
        )
        if self.cache:
            self._store[i] = field
        return field


class CropDataset(Dataset):
    """Maps a sampler item ``(anchor, partner, seed, has_partner)`` to its crops and replica ids."""

    def __init__(self, reader: FieldReader, multicrop: MultiCrop, replica_ids: np.ndarray | None):
        self.reader = reader
        self.multicrop = multicrop
        self.replica_ids = replica_ids

    def __len__(self) -> int:
        return len(self.reader.source)

    def __getitem__(self, item: tuple[int, int, int, bool]) -> dict[str, Any]:
        """Crops, replica ids and the partner flag of one sampler item ``(anchor, partner, seed, has_partner)``."""
        anchor, partner, seed, has_partner = item
        a = self.reader(anchor)
        p = a if partner == anchor else self.reader(partner)
        crops = self.multicrop(a, p, seed)
        if self.replica_ids is None:
            replicas = torch.zeros(2, dtype=torch.int64)
        else:
            replicas = torch.tensor([self.replica_ids[anchor], self.replica_ids[partner]], dtype=torch.int64)
        return {"crops": crops, "replicas": replicas, "has_partner": torch.tensor(bool(has_partner))}
