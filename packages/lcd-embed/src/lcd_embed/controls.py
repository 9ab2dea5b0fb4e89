"""Per-plate intensity references from negative-control wells (for ``method="control"``).

Per-image percentile scaling removes real brightness differences between treatments (a compound
that darkens cells looks like DMSO after per-image scaling); scaling every image of a plate by the
same reference, taken from its control wells, keeps them while still removing plate-level gain and
offset. This is the image-level analogue of normalizing profiles to plate controls (Caicedo et al.
2017, "Data-analysis strategies for image-based cell profiling").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from lcd_core import DEFAULT_CONTROL, InputError, check_keys, control_mask, describe_group

from .read import read_field


def control_stats(
    manifest: pd.DataFrame,
    *,
    control: str = DEFAULT_CONTROL,
    measurement_keys: Sequence[str] = ("plate",),
    planes: Sequence[int] | None = None,
    low: float = 1.0,
    high: float = 99.0,
    per_plane: bool = False,
    max_images: int = 8,
    pixels_per_image: int = 65536,
    seed: int = 0,
) -> pd.DataFrame:
    """Low/high intensity percentiles of each group's control images.

    Parameters
    ----------
    manifest
        A validated manifest (see :func:`lcd_embed.read_manifest`).
    control
        Query string or boolean column selecting negative controls (:func:`lcd_core.control_mask`).
    measurement_keys
        Group columns: ``("plate",)`` by default (one reference per plate, whatever the timepoint);
        ``("plate", "timepoint")`` for one reference per measurement.
    planes
        Planes to read (as in :func:`lcd_embed.read_field`).
    low, high
        Percentiles taken (mapped to 0 and 1 by the normalization).
    per_plane
        One pair of percentiles per plane instead of one over all planes.
    max_images
        Control images used per group, evenly spaced in manifest order.
    pixels_per_image
        Pixels drawn (seeded, without replacement) from each image; the percentiles are taken over
        the pooled draws.
    seed
        Seed of the pixel draws.

    Returns
    -------
    pandas.DataFrame
        One row per group: the ``measurement_keys`` columns, ``n_images``, ``low`` and ``high``
        (floats, or lists with one value per plane when ``per_plane``).

    Raises
    ------
    InputError
        A group without control images (named), a bad query or missing group column.
    """
    keys = check_keys(manifest, measurement_keys, source="manifest")
    is_control = control_mask(manifest, control, source="manifest")
    rng = np.random.default_rng(seed)
    rows = []
    for key, group in manifest.groupby(keys, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        ctrl = group[is_control[manifest.index.get_indexer(group.index)]]
        if len(ctrl) == 0:
            raise InputError(f"manifest: no control images ({control}) in group {describe_group(keys, key)}")
        take = np.unique(np.linspace(0, len(ctrl) - 1, min(max_images, len(ctrl))).round().astype(int))
        samples = []
        for _, row in ctrl.iloc[take].iterrows():
            img = read_field(row, planes=planes)
            flat = img.reshape(img.shape[0], -1)
            n = min(pixels_per_image, flat.shape[1])
            idx = rng.choice(flat.shape[1], size=n, replace=False)
            samples.append(flat[:, idx])
        pooled = np.concatenate(samples, axis=1)
        if per_plane:
            lo, hi = np.percentile(pooled, [low, high], axis=1)
            lo, hi = [float(v) for v in lo], [float(v) for v in hi]
        else:
            lo, hi = (float(v) for v in np.percentile(pooled, [low, high]))
        rows.append({**dict(zip(keys, key, strict=True)), "n_images": len(take), "low": lo, "high": hi})
    return pd.DataFrame(rows)


def stats_for_rows(
    manifest: pd.DataFrame, stats: pd.DataFrame, measurement_keys: Sequence[str]
) -> list[dict]:
    """The ``{"low", "high"}`` reference of each manifest row (in manifest order).

    Parameters
    ----------
    manifest
        The manifest.
    stats
        :func:`control_stats` of it.
    measurement_keys
        The columns ``stats`` is grouped by.
    """
    keys = list(measurement_keys)
    lookup = {tuple(r[c] for c in keys): {"low": r["low"], "high": r["high"]} for _, r in stats.iterrows()}
    out = []
    for i, row in manifest.iterrows():
        key = tuple(row[c] for c in keys)
        if key not in lookup:
            raise InputError(f"manifest row {i}: no control statistics for {describe_group(keys, key)}")
        out.append(lookup[key])
    return out
