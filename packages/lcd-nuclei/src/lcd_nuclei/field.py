"""One field of view -> cell area, nucleus mask and instances (tiles through the ViT, stitched back).

The tiles are made by lcd-embed's model-input recipe (``lcd_embed.model_input``) with the
checkpoint's recorded preprocessing, exactly as ``lcd-embed embed`` makes them; only the tiling edge
is nuclei's own (``"shift"``: every pixel of the field is covered).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from lcd_core import ConfigError, InputError

from .bilateral import BilateralGrid, bilateral_solve
from .discovery import field_prototype, nucleus_patches, seed_features
from .instances import drop_large_objects, instance_stats, segment_instances

__all__ = ["DiscoveryParams", "discover_field"]


@dataclass(frozen=True)
class DiscoveryParams:
    """Options of nucleus discovery (all recorded in ``uns["lcd_nuclei"]["params"]``).

    tile_size, stride
        Tiles cut from the (downscaled) field, changing the checkpoint's recipe (default: the model's
        ``img_size``; stride = tile size); border tiles are shifted flush with the edge so every
        pixel is covered.
    tau
        Cosine threshold to the background seed (FOUND: 0.3).
    background_seed
        ``"field"`` (default): one background prototype per field, the medoid of the tiles' seeds
        (:func:`lcd_nuclei.discovery.field_prototype`); ``"tile"``: FOUND's own per-image seed
        applied to each tile (fails on tiles that lie inside a cell).
    nuclei_step
        ``"kmeans"``: k-means on foreground patch keys, the cluster whose pixels best match
        ``polarity`` relative to the surrounding cell is nuclei; ``"foreground"``: the whole
        foreground is nuclei (sparse cells).
    n_clusters
        Clusters of foreground patches (``"kmeans"`` step).
    contrast_window
        Side, in patches, of the window over which the surrounding cell's mean grey is taken.
    polarity
        ``"dark"`` (brightfield: nuclei darker than the cytoplasm around them) or ``"bright"``
        (phase contrast: phase-bright cell bodies).
    sigma_spatial, sigma_luma, lam
        Bilateral solver (see :func:`lcd_nuclei.bilateral_solve`); ``refine=False`` skips it.
    min_area, min_distance
        Instance splitting (see :func:`lcd_nuclei.segment_instances`).
    max_area_ratio
        Drop instances larger than this times the field's median instance area
        (:func:`lcd_nuclei.drop_large_objects`; their number is reported as ``large_objects_dropped``);
        ``math.inf`` keeps every instance.
    batch_size, seed
        Tiles per forward pass; k-means seed.
    """

    tile_size: int | None = None
    stride: int | None = None
    tau: float = 0.3
    background_seed: str = "field"
    nuclei_step: str = "kmeans"
    n_clusters: int = 4
    contrast_window: int = 5
    polarity: str = "dark"
    refine: bool = True
    sigma_spatial: float = 8.0
    sigma_luma: float = 16.0
    lam: float = 64.0
    min_area: int = 20
    min_distance: int = 5
    max_area_ratio: float = 4.0
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self):
        if self.nuclei_step not in ("kmeans", "foreground"):
            raise ConfigError(f"nuclei_step must be 'kmeans' or 'foreground', got {self.nuclei_step!r}")
        if self.polarity not in ("dark", "bright"):
            raise ConfigError(f"polarity must be 'dark' or 'bright', got {self.polarity!r}")
        if self.background_seed not in ("field", "tile"):
            raise ConfigError(f"background_seed must be 'field' or 'tile', got {self.background_seed!r}")
        if int(self.n_clusters) < 2:
            raise ConfigError(f"n_clusters must be at least 2, got {self.n_clusters}")
        if not self.max_area_ratio > 1:  # also refuses NaN
            raise ConfigError(
                f"max_area_ratio must be > 1 (inf keeps every instance), got {self.max_area_ratio}"
            )
        if int(self.contrast_window) < 1:
            raise ConfigError(f"contrast_window must be at least 1 patch, got {self.contrast_window}")
        # a cosine similarity lies in [-1, 1]: a threshold outside it marks every patch (or none) as
        # background; the other values are sizes, counts and positive scales
        if not -1.0 <= self.tau <= 1.0:  # also refuses NaN
            raise ConfigError(f"tau must be a cosine threshold in [-1, 1], got {self.tau}")
        for name in ("sigma_spatial", "sigma_luma", "lam"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        for name, least in (("min_area", 1), ("min_distance", 1), ("batch_size", 1), ("seed", 0)):
            if int(getattr(self, name)) < least:
                raise ConfigError(f"{name} must be >= {least}, got {getattr(self, name)}")
        for name in ("tile_size", "stride"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")

    def as_dict(self) -> dict:
        """The options that are set, as plain values (for ``uns``)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def nuclei_input_config(config: Mapping[str, Any], params: DiscoveryParams, **overrides: Any):
    """The checkpoint's model-input recipe as nuclei discovery uses it: ``edge="shift"``, params' tiling.

    Parameters
    ----------
    config
        The checkpoint config (``lcd_embed.load_backbone``'s second value).
    params
        Discovery options (``tile_size``, ``stride``).
    **overrides
        Other recipe changes (``planes=...``); ``None`` keeps the recorded value.
    """
    import lcd_embed as le

    return le.resolve_input_config(
        config, tile_size=params.tile_size, stride=params.stride, edge="shift", **overrides
    )


def _patch_means(values: np.ndarray, coords: np.ndarray, span: int, grid: tuple[int, int]) -> np.ndarray:
    """Mean of ``values`` (H, W) over each patch of each tile: (T, gh * gw).

    Tiles start at ``coords`` (field pixels) and span ``span`` pixels; a patch spans ``span // gh``.
    """
    gh, gw = grid
    out = np.empty((len(coords), gh * gw), dtype=np.float64)
    for i, (y, x) in enumerate(coords):
        block = np.ascontiguousarray(values[y : y + span, x : x + span])
        out[i] = block.reshape(gh, span // gh, gw, span // gw).mean((1, 3)).reshape(-1)
    return out


def discover_field(
    image: np.ndarray,
    model,
    config: dict,
    *,
    params: DiscoveryParams | None = None,
    input_config: Any = None,
    planes_selected: bool = False,
) -> dict:
    """Discover cells and nuclei in one field.

    Parameters
    ----------
    image
        (P, H, W) or (H, W) raw intensities (``lcd_embed.read_field``).
    model, config
        A backbone and its config from ``lcd_embed.load_backbone``.
    params
        :class:`DiscoveryParams`.
    input_config
        The model-input recipe (``lcd_embed.InputConfig``); default: the checkpoint's, with the
        tiling of ``params`` and ``edge="shift"`` (:func:`nuclei_input_config`).
    planes_selected
        ``image`` holds only the recipe's planes already (read with ``planes=``).

    Returns
    -------
    dict
        ``labels`` (H, W) int32 nuclei, ``cell_mask`` (H, W) bool, ``nucleus_map`` (H, W) float32
        (refined soft nucleus mask), ``grey`` (H, W) uint8 guide, and the statistics
        ``nuclei_count``, ``confluency``, ``mean_nucleus_area``, ``median_nucleus_area``,
        ``large_objects_dropped``.
    """
    import lcd_embed as le
    import torch
    from lcd_embed import stitch_tiles
    from scipy import ndimage as ndi

    params = params or DiscoveryParams()
    recipe = input_config if input_config is not None else nuclei_input_config(config, params)
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3:
        raise InputError(f"image must be (H, W) or (planes, H, W), got shape {image.shape}")
    if not np.isfinite(image).all():
        raise InputError("image contains NaN or inf")
    tile, patch = recipe.tile_size, int(config["patch_size"])
    if tile % patch:
        raise InputError(f"tile_size {tile} is not a multiple of the model's patch size {patch}")
    span = tile * recipe.downscale  # a tile's side in field pixels
    if min(image.shape[-2:]) < span:
        raise InputError(f"field {image.shape[-2:]} is smaller than one tile ({span} px)")
    if recipe.method == "control":
        raise InputError(
            "the checkpoint's recipe normalizes by control wells (method 'control'); nuclei discovery "
            "has no control references: pass a recipe with method 'percentile'"
        )
    # the bilateral guide: the normalized field at full resolution, planes averaged
    full = le.field_input(image, recipe.replace(downscale=1), planes_selected=planes_selected)
    grey = np.clip(full.mean(0), 0, 1) * 255.0
    tiles, coords = le.model_input(image, recipe, planes_selected=planes_selected)

    feats, seeds = [], []
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        for start in range(0, len(tiles), params.batch_size):
            batch = torch.from_numpy(tiles[start : start + params.batch_size]).to(device)
            out = le.attention_and_keys(model, batch)
            f, s, _ = seed_features(
                out["cls_attention"].float().cpu().numpy(), out["keys"].float().cpu().numpy()
            )
            feats.append(f)
            seeds.append(s)
            grid = tuple(out["grid"])
    feats, seeds = np.concatenate(feats), np.concatenate(seeds)
    seed_feats = feats[np.arange(len(feats)), seeds]  # (T, D): one similarity row per tile or field
    if params.background_seed == "field":
        similarity = feats @ field_prototype(seed_feats)
    else:
        similarity = np.einsum("tnd,td->tn", feats, seed_feats)
    background = similarity > params.tau
    foreground = ~background
    gh, gw = grid

    if params.nuclei_step == "kmeans" and foreground.any():
        # How nucleus-like a patch is: the surrounding cell's mean grey minus the patch's own, so
        # dark cytoplasm next to pale cytoplasm does not outrank a nucleus in a dark cell.
        cells = stitch_tiles(
            foreground.reshape(len(tiles), 1, gh, gw).astype(np.float32), coords, grey.shape, tile_size=span
        )[0]
        window = int(params.contrast_window) * patch * recipe.downscale
        cell_level = ndi.uniform_filter(grey * cells, window) / np.maximum(
            ndi.uniform_filter(cells, window), 1e-6
        )
        darkness = _patch_means(cell_level - grey, coords, span, grid)[foreground]
        if params.polarity == "bright":
            darkness = -darkness
        nucleus = np.zeros_like(foreground)
        nucleus[foreground] = nucleus_patches(
            feats[foreground], darkness, n_clusters=int(params.n_clusters), seed=params.seed
        )
    else:
        nucleus = foreground
    maps = np.stack([foreground, nucleus], axis=1).reshape(len(tiles), 2, gh, gw).astype(np.float32)
    field = stitch_tiles(maps, coords, grey.shape, tile_size=span)
    cell_map, nucleus_map = field[0], field[1]
    if params.refine:
        bgrid = BilateralGrid.from_guide(
            grey, sigma_spatial=params.sigma_spatial, sigma_luma=params.sigma_luma
        )
        cell_map = bilateral_solve(grey, cell_map, 0.999, lam=params.lam, grid=bgrid)
        nucleus_map = bilateral_solve(grey, nucleus_map, 0.999, lam=params.lam, grid=bgrid)
    labels = segment_instances(nucleus_map, min_area=params.min_area, min_distance=params.min_distance)
    labels, n_dropped = drop_large_objects(labels, params.max_area_ratio)
    stats = instance_stats(labels)
    cell_mask = cell_map > 0.5
    return {
        "labels": labels,
        "cell_mask": cell_mask,
        "nucleus_map": nucleus_map.astype(np.float32),
        "grey": np.round(grey).astype(np.uint8),
        "nuclei_count": stats["nuclei_count"],
        "confluency": float(cell_mask.mean()),
        "mean_nucleus_area": stats["mean_nucleus_area"],
        "median_nucleus_area": stats["median_nucleus_area"],
        "large_objects_dropped": n_dropped,
    }
