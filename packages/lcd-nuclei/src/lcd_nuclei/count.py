"""Manifest of fields -> AnnData of nuclei counts and confluency per field of view.

Inhibition % per well is :func:`lcd_metrics.inhibition` (one implementation for every package).
A stain-calibrated choice of settings stored beside the checkpoint (``lcd-nuclei calibrate``,
:mod:`lcd_nuclei.calibrate`) is applied when the checkpoint folder has one.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import lcd_core
import numpy as np
import pandas as pd
from lcd_core import InputError, atomic_write, write_h5ad

from .field import DiscoveryParams, classical_field, discover_field, nuclei_input_config

__all__ = ["calibrate_nuclei", "count_nuclei", "resolve_calibration", "write_labels", "write_overlay"]

MEASURES = ("nuclei_count", "confluency")
#: per-field columns added to ``obs`` (without a model: no ``outside_cells_dropped``, and ``confluency``
#: only when every field has >= 2 planes: :func:`lcd_nuclei.cell_area`)
FIELD_COLUMNS = (
    "nuclei_count",
    "confluency",
    "mean_nucleus_area",
    "median_nucleus_area",
    "large_objects_dropped",
    "outside_cells_dropped",
)
NO_MODEL = ("confluency", "outside_cells_dropped")


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
        Figure title (default: the count, the confluency when measured and the objects dropped by
        the size prior).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.segmentation import find_boundaries

    grey = result["grey"]
    rgb = np.repeat(grey[..., None], 3, axis=2).astype(np.uint8)
    if "cell_mask" in result:  # the classical counter without a model has no cell area
        rgb[find_boundaries(result["cell_mask"], mode="inner")] = (0, 200, 255)
    rgb[find_boundaries(result["labels"], mode="inner")] = (255, 0, 0)
    fig, ax = plt.subplots(figsize=(6, 6), dpi=120)
    ax.imshow(rgb)
    ax.set_axis_off()
    dropped = result.get("large_objects_dropped", 0)
    default_title = f"{result['nuclei_count']} nuclei"
    if "confluency" in result:
        default_title += f", confluency {result['confluency']:.1%}"
    if dropped:
        default_title += f" ({dropped} objects > max_area_ratio x median area dropped)"
    ax.set_title(title or default_title, fontsize=9)
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight"))
    finally:
        plt.close(fig)


def resolve_calibration(calibration, model=None) -> tuple[dict | None, str | None]:
    """The stain-calibrated settings to apply and where they came from.

    Parameters
    ----------
    calibration
        ``"auto"``: the checkpoint folder's ``nuclei_calibration.json`` when ``model`` is a folder
        that has one; ``None`` (or an empty dict): none; a folder or a ``.json`` file written by
        :func:`lcd_nuclei.write_calibration`; or a dict (that document, or the settings alone).
    model
        The ``model`` given to :func:`count_nuclei` (a folder is searched with ``"auto"``).

    Returns
    -------
    calibration, source
        ``{"params": ..., "evidence": ...}`` (or ``None``) and its file (or ``"dict"``).
    """
    from lcd_core import read_json

    from .calibrate import CALIBRATION_FILE, read_calibration

    if calibration is None or (isinstance(calibration, dict) and not calibration):
        return None, None
    if isinstance(calibration, dict):
        doc = calibration if isinstance(calibration.get("params"), dict) else {"params": calibration}
        source = "dict"
    elif isinstance(calibration, str) and calibration == "auto":
        if not (isinstance(model, str | os.PathLike) and Path(model).is_dir()):
            return None, None
        doc = read_calibration(model)
        source = str(Path(model) / CALIBRATION_FILE)
    else:
        path = Path(calibration)
        if path.is_dir():
            doc = read_calibration(path)
            if doc is None:
                raise InputError(f"{path}: no {CALIBRATION_FILE} in this folder (run `lcd-nuclei calibrate`)")
            path = path / CALIBRATION_FILE
        else:
            doc = read_json(path, what="nuclei calibration")
            if not isinstance(doc, dict) or not isinstance(doc.get("params"), dict):
                raise InputError(f"{path}: not a nuclei calibration (no 'params' object)")
        source = str(path)
    if doc is None:
        return None, None
    unknown = sorted(set(doc["params"]) - set(DiscoveryParams.field_names()))
    if unknown:
        raise InputError(
            f"{source}: calibration sets unknown option(s) {unknown}; options: {DiscoveryParams.field_names()}"
        )
    return doc, source


def _params(params, calibration: dict | None) -> DiscoveryParams:
    """Defaults < calibration < a dict's entries; a DiscoveryParams instance is overridden by the calibration."""
    chosen = dict(calibration["params"]) if calibration else {}
    if isinstance(params, DiscoveryParams):
        return replace(params, **chosen) if chosen else params
    if params is not None and not isinstance(params, dict):
        raise InputError(f"params must be a DiscoveryParams or a dict, got {type(params).__name__}")
    return DiscoveryParams(**{**chosen, **(params or {})})


def _discover(image, module, config, params, recipe, *, source: str, planes_selected: bool) -> dict:
    """One field counted (:func:`classical_field` without a model, else :func:`discover_field`).

    Its bad input is named by the field's file: NaN pixels, too few planes or a field smaller than a
    tile are then reported (and skipped with ``on_error="skip"``) like an unreadable file.
    """
    try:
        if module is None:
            return classical_field(image, params=params)
        return discover_field(
            image, module, config, params=params, input_config=recipe, planes_selected=planes_selected
        )
    except InputError as exc:
        if source in str(exc):
            raise
        raise type(exc)(f"{source}: {exc}") from exc


def count_nuclei(
    manifest,
    model=None,
    *,
    weights: str | os.PathLike | None = None,
    params: DiscoveryParams | dict | None = None,
    planes: list[int] | None = None,
    calibration: str | os.PathLike | dict | None = "auto",
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
        ``None``: no ViT, only with ``nuclei_step="classical"``: the classical counter on the
        whole field; the cell area and confluency come from the defocus contrast of the planes
        (:func:`lcd_nuclei.cell_area`, fields of >= 2 planes; with one plane none is measured).
    weights
        Local weights for a timm model name (``lcd_embed.load_backbone``).
    params
        :class:`DiscoveryParams`, or a dict of its fields (its entries win over the calibration's).
    planes
        Plane indices to read (default: with ``nuclei_step="classical"`` all planes of the
        manifest, the ViT seeing the checkpoint's recorded planes among them; with the other steps
        the checkpoint's planes, else all; they are averaged into the grey guide).
    calibration
        Stain-calibrated settings (:func:`lcd_nuclei.calibrate_counter`) that replace those of
        ``params``: ``"auto"`` (default) = the checkpoint folder's ``nuclei_calibration.json`` if
        there is one; ``None`` = none; a folder or file; a dict. Recorded in ``uns``.
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
        removed by the ``max_area_ratio`` size prior), ``outside_cells_dropped`` (classical objects
        outside the cell area); ``X`` = ``nuclei_count, confluency``; without a model
        ``outside_cells_dropped`` is absent, and so is ``confluency`` (``X`` = ``nuclei_count``)
        when the fields have one plane; ``uns["lcd_nuclei"]["confluency"]`` names the no-model
        method and its settings. ``uns["lcd_nuclei"]``: ``params``, ``preprocessing`` (the model-input
        recipe used), ``model``, ``calibration`` (source, settings, evidence), ``failures``.
    """
    import anndata as ad
    import lcd_embed as le

    if on_error not in ("raise", "skip"):
        raise InputError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if out is not None and Path(out).suffix.lower() not in (".h5ad", ".zarr"):
        raise InputError(f"{out}: an AnnData output must end in .h5ad or .zarr")
    cal, cal_source = resolve_calibration(calibration, model)
    params = _params(params, cal)
    classical = params.nuclei_step == "classical"
    if model is None and not classical:
        raise InputError(
            f"nuclei_step {params.nuclei_step!r} needs a model; only 'classical' counts without one"
        )
    df = (
        le.read_manifest(manifest)
        if isinstance(manifest, str | os.PathLike)
        else le.validate_manifest(manifest, source="manifest DataFrame")
    )
    module = config = recipe = None
    read_planes = None if planes is None else [int(p) for p in planes]
    if model is not None:
        module, config = (
            model if isinstance(model, tuple) else le.load_backbone(model, weights=weights, device=device)
        )
        recipe = nuclei_input_config(config, params, planes=None if planes is None else tuple(planes))
        if not classical:
            read_planes = None if recipe.planes is None else list(recipe.planes)
    columns = [c for c in FIELD_COLUMNS if model is not None or c not in NO_MODEL]
    several_planes: dict[bool, int] = {}  # without a model: has a cell area -> first manifest row

    rows, records, failures = [], [], []
    with lcd_core.progress(len(df), "counting nuclei", enabled=progress, unit="fields") as advance:
        for i in range(len(df)):
            row = df.iloc[i]
            try:
                image = le.read_field(row, planes=read_planes)
                source = le.plane_paths(row)[0]
                result = _discover(
                    image,
                    module,
                    config,
                    params,
                    recipe,
                    source=source,
                    planes_selected=read_planes is not None,
                )
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
            records.append({k: result[k] for k in (*columns, "confluency") if k in result})
            several_planes.setdefault("confluency" in result, i)
            advance()
    if model is None and True in several_planes:
        if False in several_planes:  # a column half NaN would pass unmeasured fields on silently
            raise InputError(
                f"manifest row {several_planes[False]} has one plane and row {several_planes[True]} "
                "several: the confluency without a model needs >= 2 planes per field "
                "(lcd_nuclei.cell_area); count the two kinds of field separately"
            )
        columns.insert(1, "confluency")
    obs = df.iloc[rows].reset_index(drop=True).copy()
    obs.insert(0, "manifest_row", rows)
    measures = pd.DataFrame.from_records(records, columns=columns)
    for col in measures:
        obs[col] = measures[col].to_numpy()
    obs.index = pd.Index(obs["manifest_row"].astype(str).to_numpy(), name=None)
    var = [m for m in MEASURES if m in columns]
    adata = ad.AnnData(
        X=obs[var].to_numpy(np.float32).reshape(len(obs), len(var)),
        obs=obs,
        var=pd.DataFrame(index=var),
    )
    adata.uns["lcd"] = {"level": "fov"}
    info = {
        "params": params.as_dict(),
        "calibration": {"source": cal_source, **cal} if cal else {"source": "none"},
        "failures": pd.DataFrame(failures, columns=["manifest_row", "error"]).astype(str).to_dict("list"),
    }
    if model is not None:
        info["preprocessing"] = recipe.as_dict()
        info["model"] = {k: v for k, v in config.items() if isinstance(v, str | int | float | bool)}
    else:
        measured = "confluency" in columns
        info["model"] = {
            "name": "none: classical counter on the whole field, "
            + (
                "confluency from the defocus contrast (cell_area)"
                if measured
                else "confluency not measured (1 plane)"
            )
        }
        if measured:
            info["confluency"] = {
                "method": "cell_area",
                "window": float(params.cell_window),
                "floor": float(params.cell_floor),
            }
    adata.uns["lcd_nuclei"] = info
    if out is not None:
        write_h5ad(adata, out)
    return adata


def calibrate_nuclei(
    manifest,
    model=None,
    *,
    stain_key: str,
    rows: list[int] | None = None,
    weights: str | os.PathLike | None = None,
    params: DiscoveryParams | dict | None = None,
    criterion: str | None = None,
    out: str | os.PathLike | None = None,
    device: str = "auto",
    progress: bool = True,
) -> dict:
    """Choose the classical counter's settings on a manifest's stained fields; store them for ``count_nuclei``.

    Parameters
    ----------
    manifest
        Path of an lcd-embed manifest or a DataFrame in that layout.
    model
        Checkpoint folder, timm name or ``(module, config)``: with one (and ``inside_cells``), the
        candidates count inside the ViT's cell area as :func:`count_nuclei` will. ``None``: whole fields.
    stain_key
        Manifest column with each stained field's nuclear-stain image (relative paths are relative
        to the manifest's folder); rows where it is empty are not stained and are skipped.
    rows
        Manifest rows to calibrate on (default: every stained row).
    weights
        Local weights for a timm model name.
    params
        :class:`DiscoveryParams` or a dict (the settings not chosen: diameter scale, planes, ...).
    criterion
        ``"ccc"`` or ``"mae"`` (default: ``"ccc"``, ``"mae"`` for one field).
    out
        Folder to write ``nuclei_calibration.json`` into (default: ``model`` when it is a folder;
        ``None`` and no folder: nothing is written).
    device
        ``"auto"``: CUDA when available, else CPU.
    progress
        Show a progress bar.

    Returns
    -------
    dict
        :func:`lcd_nuclei.calibrate_counter`'s result (``params``, ``evidence``), the evidence with
        the manifest rows used; ``"file"``: the written path (or ``None``).
    """
    import lcd_embed as le

    from .calibrate import calibrate_counter, write_calibration

    df = (
        le.read_manifest(manifest)
        if isinstance(manifest, str | os.PathLike)
        else le.validate_manifest(manifest, source="manifest DataFrame")
    )
    if stain_key not in df.columns:
        raise InputError(f"manifest: stain column {stain_key!r} not found; columns: {list(df.columns)}")
    stained = df[stain_key].notna() & (df[stain_key].astype(str).str.strip() != "")
    use = np.flatnonzero(stained.to_numpy()) if rows is None else np.asarray(rows, dtype=int)
    if len(use) == 0:
        raise InputError(f"manifest: no row has a stain image in column {stain_key!r}")
    bad = [int(i) for i in use if not (0 <= i < len(df) and stained.iloc[i])]
    if bad:
        raise InputError(
            f"manifest rows {bad[:5]} have no stain image in column {stain_key!r} (or do not exist)"
        )
    params = _params(params, None)
    base = Path(manifest).parent if isinstance(manifest, str | os.PathLike) else Path(".")
    images, stains, masks = [], [], []
    module = config = None
    if model is not None and params.inside_cells:
        module, config = (
            model if isinstance(model, tuple) else le.load_backbone(model, weights=weights, device=device)
        )
        # only the cell area is needed from the ViT: the cheapest nuclei step, same background discovery
        cell_params = replace(params, nuclei_step="foreground", channel="grey", polarity="dark")
    for i in use:
        image = le.read_field(df.iloc[i])
        stain_path = Path(str(df[stain_key].iloc[i]))
        stain = le.read_field([str(stain_path if stain_path.is_absolute() else base / stain_path)])[0]
        images.append(image)
        stains.append(stain)
        if module is not None:
            masks.append(discover_field(image, module, config, params=cell_params)["cell_mask"])
    result = calibrate_counter(
        images, stains, params=params, cell_masks=masks or None, criterion=criterion, progress=progress
    )
    result["evidence"]["manifest_rows"] = [int(i) for i in use]
    result["evidence"]["inside_cells"] = bool(masks)
    folder = (
        out
        if out is not None
        else (model if isinstance(model, str | os.PathLike) and Path(model).is_dir() else None)
    )
    result["file"] = None
    if folder is not None:
        result["file"] = str(write_calibration(folder, result["params"], evidence=result["evidence"]))
    return result
