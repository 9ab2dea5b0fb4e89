"""Per-plate intensity references from negative-control wells (for ``normalization="control"``).

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

from .errors import InputError
from .read import read_field


def select_controls(df: pd.DataFrame, control: str) -> pd.Series:
    """Boolean mask of control rows: ``control`` is a boolean column name or a pandas query string."""
    if control in df.columns:
        col = df[control]
        if col.dtype != bool:
            raise InputError(f"control column {control!r} must be boolean, found dtype {col.dtype}")
        return col
    try:
        mask = df.eval(control)
    except Exception as exc:  # pandas raises many types for a bad expression
        raise InputError(f"control query {control!r} failed on the manifest: {exc}") from exc
    if not isinstance(mask, pd.Series) or mask.dtype != bool:
        raise InputError(f"control query {control!r} does not give one True/False per row")
    return mask


def control_stats(
    manifest: pd.DataFrame,
    *,
    control: str = "compound == 'DMSO'",
    by: Sequence[str] = ("plate",),
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
        Query string or boolean column selecting negative controls (data-model convention).
    by
        Group columns: ``("plate",)`` by default; ``("plate", "timepoint")`` for one reference per
        measurement.
    planes
        Planes to read (as in :func:`lcd_embed.read_field`).
    max_images
        Control images used per group, evenly spaced in manifest order.
    pixels_per_image
        Pixels drawn (seeded, without replacement) from each image; the percentiles are taken over
        the pooled draws.

    Returns
    -------
    pandas.DataFrame
        One row per group: the ``by`` columns, ``n_images``, ``low`` and ``high`` (floats, or lists
        with one value per plane when ``per_plane``).

    Raises
    ------
    InputError
        A group without control images (named), a bad query or missing group column.
    """
    missing = [c for c in by if c not in manifest.columns]
    if missing:
        raise InputError(f"manifest has no column(s) {missing} to group control statistics by")
    is_control = select_controls(manifest, control)
    rng = np.random.default_rng(seed)
    rows = []
    for key, group in manifest.groupby(list(by), sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        ctrl = group[is_control.loc[group.index]]
        if len(ctrl) == 0:
            raise InputError(f"no control images ({control}) in group {dict(zip(by, key, strict=True))}")
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
        rows.append({**dict(zip(by, key, strict=True)), "n_images": len(take), "low": lo, "high": hi})
    return pd.DataFrame(rows)


def stats_for_rows(manifest: pd.DataFrame, stats: pd.DataFrame, by: Sequence[str]) -> list[dict]:
    """The ``{"low", "high"}`` reference of each manifest row (in manifest order)."""
    lookup = {tuple(r[c] for c in by): {"low": r["low"], "high": r["high"]} for _, r in stats.iterrows()}
    out = []
    for i, row in manifest.iterrows():
        key = tuple(row[c] for c in by)
        if key not in lookup:
            raise InputError(f"manifest row {i}: no control statistics for {dict(zip(by, key, strict=True))}")
        out.append(lookup[key])
    return out
