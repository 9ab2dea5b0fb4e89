"""A CellProfiler-like handcrafted baseline that runs here: per-field features of lcd-nuclei's instances.

The LCD paper's baseline is CellPose-SAM segmentation + CellProfiler features (284 per image), not
installable offline. This module measures, on each field's nucleus instances (lcd-nuclei's label-free
discovery, or any segmentation given as a function), with scikit-image's ``regionprops_table``:

- shape of each nucleus: area, perimeter, eccentricity, solidity, extent, major/minor axis, form
  factor (4π·area/perimeter²);
- intensity on every plane: mean, SD, min, max inside the nucleus;
- texture on every plane (gray-level co-occurrence, 16 levels, distance 1, 4 angles averaged,
  pixels outside the nucleus excluded): contrast, homogeneity, energy, correlation;

then takes the **median over the nuclei of the field** (the paper's features were per image), and
adds the field's nucleus count, cell area (pixels of lcd-nuclei's cell mask), confluency and the
nuclear area fraction. Names follow CellProfiler's ``Compartment_Category_Feature`` pattern.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import pandas as pd

GLCM_LEVELS = 16
SHAPE = (
    "area",
    "perimeter",
    "eccentricity",
    "solidity",
    "extent",
    "major_axis_length",
    "minor_axis_length",
)
TEXTURE = ("contrast", "homogeneity", "energy", "correlation")


def _texture(mask: np.ndarray, intensity: np.ndarray) -> np.ndarray:
    """GLCM properties of one nucleus (bounding box), outside pixels excluded (level 0 dropped)."""
    from skimage.feature import graycomatrix, graycoprops

    img = np.asarray(intensity, dtype=np.float64)  # one plane: scikit-image calls this per channel
    inside = img[mask]
    lo, hi = (float(inside.min()), float(inside.max())) if inside.size else (0.0, 1.0)
    q = np.zeros(img.shape, dtype=np.uint8)
    scaled = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    q[mask] = 1 + np.minimum((scaled[mask] * GLCM_LEVELS).astype(int), GLCM_LEVELS - 1)
    glcm = graycomatrix(
        q, [1], [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4], levels=GLCM_LEVELS + 1, symmetric=True
    )
    glcm = glcm[1:, 1:].astype(np.float64)  # pairs with an outside pixel are not the nucleus's texture
    total = glcm.sum(axis=(0, 1), keepdims=True)
    if not total.all():
        return np.full(len(TEXTURE), np.nan)
    glcm = glcm / total
    return np.array([float(graycoprops(glcm, p).mean()) for p in TEXTURE])


def field_features(
    image: np.ndarray, labels: np.ndarray, cell_mask: np.ndarray | None = None
) -> dict[str, float]:
    """Handcrafted features of one field: the median over its nuclei, plus field-level counts and areas.

    Parameters
    ----------
    image
        (P, H, W) or (H, W) intensities (e.g. ``lcd_embed.read_field``).
    labels
        (H, W) nucleus instances (0 = background).
    cell_mask
        (H, W) boolean cell area (``None``: not measured, NaN).

    Returns
    -------
    dict
        Feature name → value. ``Image_Count_Nuclei`` is the count; with no nucleus the per-nucleus
        medians are NaN (a field without nuclei has no nuclear shape).
    """
    from skimage.measure import regionprops_table

    stack = np.asarray(image, dtype=np.float64)
    if stack.ndim == 2:
        stack = stack[None]
    labels = np.asarray(labels)
    n_planes = stack.shape[0]
    props = regionprops_table(
        labels,
        intensity_image=stack[0] if n_planes == 1 else np.moveaxis(stack, 0, -1),
        properties=(*SHAPE, "intensity_mean", "intensity_min", "intensity_max"),
        extra_properties=(_intensity_std, _texture),
    )
    table = pd.DataFrame(props)
    out: dict[str, float] = {}
    n = len(table)

    def median(column: str) -> float:
        return float(np.median(table[column].to_numpy(float))) if n else float("nan")

    names = {
        "area": "Nuclei_AreaShape_Area",
        "perimeter": "Nuclei_AreaShape_Perimeter",
        "eccentricity": "Nuclei_AreaShape_Eccentricity",
        "solidity": "Nuclei_AreaShape_Solidity",
        "extent": "Nuclei_AreaShape_Extent",
        "major_axis_length": "Nuclei_AreaShape_MajorAxisLength",
        "minor_axis_length": "Nuclei_AreaShape_MinorAxisLength",
    }
    for prop, name in names.items():
        out[name] = median(prop)
    if n:
        per = table["perimeter"].to_numpy(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            ff = np.where(per > 0, 4 * np.pi * table["area"].to_numpy(float) / per**2, np.nan)
        out["Nuclei_AreaShape_FormFactor"] = (
            float(np.nanmedian(ff)) if np.isfinite(ff).any() else float("nan")
        )
    else:
        out["Nuclei_AreaShape_FormFactor"] = float("nan")
    for p in range(n_planes):
        for stat, col in (("Mean", "intensity_mean"), ("Min", "intensity_min"), ("Max", "intensity_max")):
            out[f"Nuclei_Intensity_{stat}Intensity_Plane{p}"] = median(f"{col}-{p}" if n_planes > 1 else col)
        out[f"Nuclei_Intensity_StdIntensity_Plane{p}"] = median(
            f"_intensity_std-{p}" if n_planes > 1 else "_intensity_std"
        )
    for k, name in enumerate(TEXTURE):
        for p in range(n_planes):  # scikit-image calls the texture function once per plane
            col = f"_texture-{k}-{p}" if n_planes > 1 else f"_texture-{k}"
            ok = n and table[col].notna().any()
            value = float(np.nanmedian(table[col].to_numpy(float))) if ok else np.nan
            out[f"Nuclei_Texture_{name.capitalize()}_Plane{p}"] = value
    area = float(labels.size)
    out["Image_Count_Nuclei"] = float(n)
    out["Image_AreaOccupied_Nuclei"] = float((labels > 0).sum()) / area
    if cell_mask is None:
        out["Image_AreaOccupied_Cells"] = float("nan")
    else:
        out["Image_AreaOccupied_Cells"] = float(np.asarray(cell_mask, bool).sum()) / area
    return out


def _intensity_std(mask: np.ndarray, intensity: np.ndarray) -> np.ndarray | float:
    values = intensity[mask]
    return values.std(axis=0) if values.size else np.nan


def lcd_nuclei_segmenter(model: str | os.PathLike, *, device: str = "cpu") -> Callable:
    """A segmentation function from lcd-nuclei's label-free discovery with a checkpoint.

    Parameters
    ----------
    model
        lcd-embed checkpoint folder (e.g. ``lcd-ssl export``).
    device
        Torch device.

    Returns
    -------
    callable
        ``segment(image, row) -> (labels, cell_mask)`` (the manifest row is not used).
    """
    from lcd_embed import load_backbone
    from lcd_nuclei import discover_field

    module, config = load_backbone(model, device=device)

    def segment(image: np.ndarray, row: pd.Series | None = None) -> tuple[np.ndarray, np.ndarray]:
        result = discover_field(image, module, config)
        return result["labels"], result["cell_mask"]

    return segment


def handcrafted_profiles(
    manifest,
    model: str | os.PathLike | None = None,
    *,
    segment: Callable | None = None,
    progress: bool = False,
):
    """Per-field handcrafted profiles of every field of a manifest (the ``cellprofiler`` row of a comparison).

    Parameters
    ----------
    manifest
        An lcd-embed manifest (path or DataFrame): one row per field × timepoint.
    model
        Checkpoint folder for lcd-nuclei's segmentation (used when ``segment`` is not given).
    segment
        ``segment(image, row) -> (labels, cell_mask)`` with the field's manifest row, e.g. a classical
        segmenter or reference masks found from the row.
    progress
        Show a progress bar.

    Returns
    -------
    anndata.AnnData
        FOV level (``uns["lcd"]["level"] = "fov"``): ``obs`` = the manifest's columns of the fields
        kept, ``X`` = the features. Fields where no nucleus was found are left out (their shape
        features are undefined), counted in ``uns["handcrafted"]["fields_without_nuclei"]``; every
        feature column that is constant or undefined everywhere is dropped (listed there too).
    """
    import anndata as ad
    import lcd_core
    import lcd_embed as le

    if segment is None:
        if model is None:
            raise lcd_core.InputError(
                "handcrafted_profiles needs a model (checkpoint folder) or a segment function"
            )
        segment = lcd_nuclei_segmenter(model)
    man = (
        le.read_manifest(manifest)
        if isinstance(manifest, str | os.PathLike)
        else manifest.reset_index(drop=True)
    )
    records = []
    with lcd_core.progress(len(man), "handcrafted features", enabled=progress, unit="fields") as advance:
        for i in range(len(man)):
            row = man.iloc[i]
            image = le.read_field(row)
            labels, cells = segment(image, row)
            records.append(field_features(image, labels, cells))
            advance()
    feats = pd.DataFrame.from_records(records)
    empty = feats["Image_Count_Nuclei"].to_numpy() == 0
    keep_rows = ~empty
    values = feats.loc[keep_rows]
    usable = values.columns[values.notna().all() & (values.nunique() > 1)]
    dropped = [c for c in feats.columns if c not in usable]
    X = values[usable].to_numpy(np.float64)
    obs = man.loc[keep_rows].reset_index(drop=True).copy()
    obs.index = obs.index.astype(str)
    adata = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=pd.Index(list(usable), dtype=object)))
    adata.uns["lcd"] = {"level": "fov"}
    adata.uns["handcrafted"] = {
        "fields_without_nuclei": int(empty.sum()),
        "dropped_features": dropped,
        "segmentation": "lcd-nuclei discover_field" if model is not None else "given segment function",
    }
    return adata
