"""Manifest of fields -> AnnData of nuclei counts and confluency per field of view.

Inhibition % per well is :func:`lcd_metrics.inhibition` (one implementation for every package).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from .field import DiscoveryParams, discover_field

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


def _atomic(path: Path, write) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_labels(labels: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a label image as a uint32 TIFF, atomically."""
    import tifffile

    return _atomic(Path(path), lambda tmp: tifffile.imwrite(tmp, labels.astype(np.uint32)))


def write_overlay(result: dict, path: str | os.PathLike, *, title: str = "") -> Path:
    """PNG of the grey field with nucleus outlines (red) and the cell-area outline (cyan), as in
    the LCD paper's Fig. 5A."""
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

    def save(tmp):
        fig.savefig(tmp, format="png", bbox_inches="tight")

    try:
        return _atomic(Path(path), save)
    finally:
        plt.close(fig)


def count_nuclei(
    manifest,
    model,
    *,
    weights: str | None = None,
    params: DiscoveryParams | dict | None = None,
    planes: list[int] | None = None,
    out: str | os.PathLike | None = None,
    labels_dir: str | os.PathLike | None = None,
    overlays_dir: str | os.PathLike | None = None,
    on_error: str = "raise",
    progress: bool = True,
):
    """Count nuclei and measure confluency in every field of a manifest.

    Parameters
    ----------
    manifest
        Path of an lcd-embed manifest (CSV/parquet) or a DataFrame in that layout.
    model
        Checkpoint folder (``lcd-ssl export``), timm name (with ``weights``), or ``(module, config)``.
    params
        :class:`DiscoveryParams` or a dict of its fields.
    planes
        Plane indices to read (default: all planes of the manifest, averaged into the grey guide).
    out
        Optional ``.h5ad`` path, written atomically.
    labels_dir, overlays_dir
        Optional folders for ``row<k>_labels.tif`` and ``row<k>_overlay.png``.
    on_error
        ``"raise"`` (default) or ``"skip"``: an unreadable field is recorded in
        ``uns["lcd_nuclei"]["failures"]`` and left out.
    progress
        Show a rich progress bar.

    Returns
    -------
    anndata.AnnData
        One row per field (``uns["lcd"]["level"] = "fov"``): ``obs`` = the manifest's columns plus
        ``manifest_row``, ``nuclei_count``, ``confluency``, ``mean_nucleus_area``,
        ``median_nucleus_area`` (pixels; NaN when no nucleus), ``large_objects_dropped`` (instances
        removed by the ``max_area_ratio`` size prior); ``X`` = ``nuclei_count, confluency``;
        ``uns["lcd_nuclei"]["params"]``.
    """
    import anndata as ad
    import lcd_embed as le

    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if isinstance(params, dict):
        params = DiscoveryParams(**params)
    params = params or DiscoveryParams()
    df = (
        le.read_manifest(manifest)
        if isinstance(manifest, (str, os.PathLike))
        else manifest.reset_index(drop=True)
    )
    if len(df) == 0:
        raise ValueError("the manifest has no rows")
    module, config = model if isinstance(model, tuple) else le.load_backbone(model, weights=weights)

    rows, records, failures = [], [], []
    iterator = range(len(df))
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task("counting nuclei", total=len(df))
    try:
        for i in iterator:
            row = df.iloc[i]
            try:
                image = le.read_field(row, planes=planes)
            except Exception as exc:
                if on_error == "raise":
                    raise
                failures.append({"manifest_row": i, "error": f"{type(exc).__name__}: {exc}"})
                continue
            result = discover_field(image, module, config, params)
            if labels_dir is not None:
                write_labels(result["labels"], Path(labels_dir) / f"row{i}_labels.tif")
            if overlays_dir is not None:
                write_overlay(result, Path(overlays_dir) / f"row{i}_overlay.png")
            rows.append(i)
            records.append({k: result[k] for k in FIELD_COLUMNS})
            if bar is not None:
                bar.advance(task)
    finally:
        if bar is not None:
            bar.stop()
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
        "model": {k: v for k, v in config.items() if isinstance(v, (str, int, float, bool))},
        "failures": pd.DataFrame(failures, columns=["manifest_row", "error"]).astype(str).to_dict("list"),
    }
    if out is not None:
        le.write_adata(adata, out)
    return adata
