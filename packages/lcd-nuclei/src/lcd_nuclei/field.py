"""One field of view -> cell area, nucleus mask and instances (tiles through the ViT, stitched back)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .bilateral import BilateralGrid, bilateral_solve
from .discovery import field_prototype, nucleus_patches, seed_features
from .instances import drop_large_objects, instance_stats, segment_instances

__all__ = ["DiscoveryParams", "discover_field"]


@dataclass(frozen=True)
class DiscoveryParams:
    """Options of nucleus discovery (all recorded in ``uns["lcd_nuclei"]["params"]``).

    tile_size, stride
        Tiles cut from the field (default: the model's ``img_size``; stride = tile size); border
        tiles are shifted flush with the edge so every pixel is covered.
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
            raise ValueError(f"nuclei_step must be 'kmeans' or 'foreground', got {self.nuclei_step!r}")
        if self.polarity not in ("dark", "bright"):
            raise ValueError(f"polarity must be 'dark' or 'bright', got {self.polarity!r}")
        if self.background_seed not in ("field", "tile"):
            raise ValueError(f"background_seed must be 'field' or 'tile', got {self.background_seed!r}")
        if int(self.n_clusters) < 2:
            raise ValueError(f"n_clusters must be at least 2, got {self.n_clusters}")
        if not self.max_area_ratio > 1:  # also refuses NaN
            raise ValueError(
                f"max_area_ratio must be > 1 (inf keeps every instance), got {self.max_area_ratio}"
            )
        if int(self.contrast_window) < 1:
            raise ValueError(f"contrast_window must be at least 1 patch, got {self.contrast_window}")

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _patch_means(grey_tiles: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Mean grey of each patch: (T, s, s) -> (T, gh * gw)."""
    t, s, _ = grey_tiles.shape
    gh, gw = grid
    return grey_tiles.reshape(t, gh, s // gh, gw, s // gw).mean((2, 4)).reshape(t, gh * gw)


def discover_field(image: np.ndarray, model, config: dict, params: DiscoveryParams | None = None) -> dict:
    """Discover cells and nuclei in one field.

    Parameters
    ----------
    image
        (P, H, W) or (H, W) raw intensities (``lcd_embed.read_field``).
    model, config
        A backbone and its config from ``lcd_embed.load_backbone``.
    params
        :class:`DiscoveryParams`.

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
    from lcd_embed.attention import stitch_tiles
    from scipy import ndimage as ndi

    params = params or DiscoveryParams()
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3:
        raise ValueError(f"image must be (H, W) or (planes, H, W), got shape {image.shape}")
    if not np.isfinite(image).all():
        raise ValueError("image contains NaN or inf")
    norm = config.get("normalization", {})
    x = le.normalize_intensity(image, low=norm.get("low", 1.0), high=norm.get("high", 99.0))
    grey = np.clip(x.mean(0), 0, 1) * 255.0
    tile = int(params.tile_size or config["img_size"])
    patch = int(config["patch_size"])
    if tile % patch:
        raise ValueError(f"tile_size {tile} is not a multiple of the model's patch size {patch}")
    if min(grey.shape) < tile:
        raise ValueError(f"field {grey.shape} is smaller than one tile ({tile} px)")
    x = le.match_channels(x, int(config["in_chans"]))
    tiles, coords = le.tile_image(x, tile_size=tile, stride=params.stride or tile, edge="shift")
    mean = np.asarray(norm.get("mean", [0.5] * tiles.shape[1]), np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(norm.get("std", [0.5] * tiles.shape[1]), np.float32).reshape(1, -1, 1, 1)

    feats, seeds = [], []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(tiles), params.batch_size):
            batch = torch.from_numpy((tiles[start : start + params.batch_size] - mean) / std)
            out = le.attention_and_keys(model, batch)
            f, s, _ = seed_features(out["cls_attention"].float().numpy(), out["keys"].float().numpy())
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
            foreground.reshape(len(tiles), 1, gh, gw).astype(np.float32), coords, grey.shape, tile
        )[0]
        window = int(params.contrast_window) * patch
        cell_level = ndi.uniform_filter(grey * cells, window) / np.maximum(
            ndi.uniform_filter(cells, window), 1e-6
        )
        contrast_tiles, _ = le.tile_image(
            (cell_level - grey)[None], tile_size=tile, stride=params.stride or tile, edge="shift"
        )
        darkness = _patch_means(contrast_tiles[:, 0], grid)[foreground]
        if params.polarity == "bright":
            darkness = -darkness
        nucleus = np.zeros_like(foreground)
        nucleus[foreground] = nucleus_patches(
            feats[foreground], darkness, n_clusters=int(params.n_clusters), seed=params.seed
        )
    else:
        nucleus = foreground
    maps = np.stack([foreground, nucleus], axis=1).reshape(len(tiles), 2, gh, gw).astype(np.float32)
    field = stitch_tiles(maps, coords, grey.shape, tile)
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
