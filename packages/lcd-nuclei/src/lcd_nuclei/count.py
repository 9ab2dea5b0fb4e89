"""Manifest of fields -> AnnData of nuclei counts and confluency per field of view.

Inhibition % per well is :func:`lcd_metrics.inhibition` (one implementation for every package).
"""

from __future__ import annotations

import os
from pathlib import Path

import lcd_core
import numpy as np
import pandas as pd
from lcd_core import InputError, atomic_write, write_h5ad

from .field import DiscoveryParams, discover_field, nuclei_input_config

__all__ = ["count_nuclei", "write_labels", "write_overlay"]

MEASURES = ("nuclei_count", "confluency")
#: per-field columns added to ``obs``
FIELD_COLUMNS = (
    "nuclei_count",
    "confluency",
    "mean_nucleus_area",
    "median_nucleus_area",
    "large_objects_dropped",
)


def write_labels(labels: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a label image as a uint32 TIFF, atomically.

    Parameters
    ----------
    labels
        (H, W) instance labels (0 = background).
    path
        The ``.tif`` to write.
    """
    import tifffile

    return atomic_write(path, lambda tmp: tifffile.imwrite(tmp, labels.astype(np.uint32)))


def write_overlay(result: dict, path: str | os.PathLike, *, title: str = "") -> Path:
    """PNG of the grey field with nucleus outlines (red) and the cell-area outline (cyan), as in the LCD paper's Fig. 5A.

    Parameters
    ----------
    result
        :func:`lcd_nuclei.discover_field`'s result.
    path
        The ``.png`` to write (atomically).
    title
        Figure title (default: the count, the confluency and the objects dropped by the size prior).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.segmentation import find_boundaries

    grey = result["grey"]
    rgb = np.repeat(grey[..., None], 3, axis=2).astype(np.uint8)
    rgb[find_boundaries(result["cell_mask"], mode="inner")] = (0, 200, 255)
    rgb[find_boundaries(result["labels"], mode="inner")] = (255, 0, 0)
    fig, ax = plt.subplots(figsize=(6, 6), dpi=120)
    ax.imshow(rgb)
    ax.set_axis_off()
    dropped = result.get("large_objects_dropped", 0)
    default_title = f"{result['nuclei_count']} nuclei, confluency {result['confluency']:.1%}"
    if dropped:
        default_title += f" ({dropped} objects > max_area_ratio x median area dropped)"
    ax.set_title(title or default_title, fontsize=9)
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight"))
    finally:
        plt.close(fig)


def _discover(image, module, config, params, recipe, *, source: str) -> dict:
    """:func:`discover_field` on one field, its bad input named by the field's file.

    NaN pixels, too few planes or a field smaller than a tile are then reported (and skipped with
    ``on_error="skip"``) like an unreadable file.
    """
    try:
        return discover_field(image, module, config, params=params, input_config=recipe, planes_selected=True)
    except InputError as exc:
        if source in str(exc):
            raise
        raise type(exc)(f"{source}: {exc}") from exc


def count_nuclei(
    manifest,
    model,
    *,
    weights: str | os.PathLike | None = None,
    params: DiscoveryParams | dict | None = None,
    planes: list[int] | None = None,
    out: str | os.PathLike | None = None,
    labels_dir: str | os.PathLike | None = None,
    overlays_dir: str | os.PathLike | None = None,
    on_error: str = "raise",
    device: str = "auto",
    progress: bool = True,
):
    """Count nuclei and measure confluency in every field of a manifest.

    Parameters
    ----------
    manifest
        Path of an lcd-embed manifest (CSV/TSV/parquet) or a DataFrame in that layout.
    model
        Checkpoint folder (``lcd-ssl export``), timm name (with ``weights``), or ``(module, config)``.
    weights
        Local weights for a timm model name (``lcd_embed.load_backbone``).
    params
        :class:`DiscoveryParams` or a dict of its fields.
    planes
        Plane indices to read (default: the checkpoint's recorded planes, else all planes of the
        manifest; they are averaged into the grey guide).
    out
        Optional ``.h5ad`` / ``.zarr`` path, written atomically.
    labels_dir, overlays_dir
        Optional folders for ``row<k>_labels.tif`` and ``row<k>_overlay.png``.
    on_error
        ``"raise"`` (default) or ``"skip"``: an unreadable field is recorded in
        ``uns["lcd_nuclei"]["failures"]`` and left out.
    device
        ``"auto"``: CUDA when available, else CPU (used when ``model`` is loaded here).
    progress
        Show a progress bar.

    Returns
    -------
    anndata.AnnData
        One row per field (``uns["lcd"]["level"] = "fov"``): ``obs`` = the manifest's columns plus
        ``manifest_row``, ``nuclei_count``, ``confluency``, ``mean_nucleus_area``,
        ``median_nucleus_area`` (pixels; NaN when no nucleus), ``large_objects_dropped`` (instances
        removed by the ``max_area_ratio`` size prior); ``X`` = ``nuclei_count, confluency``;
        ``uns["lcd_nuclei"]["params"]`` and ``["preprocessing"]`` (the model-input recipe used).
    """
    import anndata as ad
    import lcd_embed as le

    if on_error not in ("raise", "skip"):
        raise InputError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if out is not None and Path(out).suffix.lower() not in (".h5ad", ".zarr"):
        raise InputError(f"{out}: an AnnData output must end in .h5ad or .zarr")
    if isinstance(params, dict):
        params = DiscoveryParams(**params)
    params = params or DiscoveryParams()
    df = (
        le.read_manifest(manifest)
        if isinstance(manifest, str | os.PathLike)
        else le.validate_manifest(manifest, source="manifest DataFrame")
    )
    module, config = (
        model if isinstance(model, tuple) else le.load_backbone(model, weights=weights, device=device)
    )
    recipe = nuclei_input_config(config, params, planes=None if planes is None else tuple(planes))

    rows, records, failures = [], [], []
    with lcd_core.progress(len(df), "counting nuclei", enabled=progress, unit="fields") as advance:
        for i in range(len(df)):
            row = df.iloc[i]
            try:
                image = le.read_field(row, planes=recipe.planes)
                result = _discover(image, module, config, params, recipe, source=le.plane_paths(row)[0])
            except (InputError, OSError) as exc:  # a missing, unreadable or unusable field (named)
                if on_error == "raise":
                    raise
                failures.append({"manifest_row": i, "error": f"{type(exc).__name__}: {exc}"})
                advance()
                continue
            if labels_dir is not None:
                write_labels(result["labels"], Path(labels_dir) / f"row{i}_labels.tif")
            if overlays_dir is not None:
                write_overlay(result, Path(overlays_dir) / f"row{i}_overlay.png")
            rows.append(i)
            records.append({k: result[k] for k in FIELD_COLUMNS})
            advance()
    obs = df.iloc[rows].reset_index(drop=True).copy()
    obs.insert(0, "manifest_row", rows)
    measures = pd.DataFrame.from_records(records, columns=list(FIELD_COLUMNS))
    for col in measures:
        obs[col] = measures[col].to_numpy()
    obs.index = pd.Index(obs["manifest_row"].astype(str).to_numpy(), name=None)
    adata = ad.AnnData(
        X=obs[list(MEASURES)].to_numpy(np.float32).reshape(len(obs), len(MEASURES)),
        obs=obs,
        var=pd.DataFrame(index=list(MEASURES)),
    )
    adata.uns["lcd"] = {"level": "fov"}
    adata.uns["lcd_nuclei"] = {
        "params": params.as_dict(),
        "preprocessing": recipe.as_dict(),
        "model": {k: v for k, v in config.items() if isinstance(v, str | int | float | bool)},
        "failures": pd.DataFrame(failures, columns=["manifest_row", "error"]).astype(str).to_dict("list"),
    }
    if out is not None:
        write_h5ad(adata, out)
    return adata
