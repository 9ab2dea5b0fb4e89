"""One field of view -> cell area, nucleus mask and instances.

Two nuclei steps share :class:`DiscoveryParams`:

- ``nuclei_step="classical"`` (default since 0.3.0): the no-ViT counter
  (:func:`lcd_nuclei.classical_nuclei`) on a channel made from the field's planes (grey, defocus
  contrast or TIE phase, :mod:`lcd_nuclei.channels`), with its floor in units of the channel's own
  noise; with a model, objects outside the ViT's cell area are dropped (:func:`discover_field`),
  without one it runs alone (:func:`classical_field`). Why the default changed: on every set
  measured (DSB brightfield, the ISL z-stack, the simulated demo plate) it counts and outlines
  nuclei better than the k-means step, and the ViT's cell area helps it as much at random init as
  after training (README "Quality").
- ``"kmeans"`` / ``"foreground"``: the patch-level discovery on the ViT's keys of 0.2.0.

The ViT's tiles are made by lcd-embed's model-input recipe (``lcd_embed.model_input``) with the
checkpoint's recorded preprocessing, exactly as ``lcd-embed embed`` makes them; only the tiling edge
is nuclei's own (``"shift"``: every pixel of the field is covered).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from lcd_core import ConfigError, InputError

from .bilateral import BilateralGrid, bilateral_solve
from .channels import CHANNELS
from .discovery import field_prototype, nucleus_patches, seed_features
from .instances import drop_large_objects, instance_stats, segment_instances

__all__ = ["DiscoveryParams", "classical_field", "discover_field"]

NUCLEI_STEPS = ("classical", "kmeans", "foreground")


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
        ``"classical"`` (default): the no-ViT counter on ``channel`` (see the options below), its
        objects kept inside the ViT's cell area when a model is used and ``inside_cells``;
        ``"kmeans"``: k-means on foreground patch keys, the cluster whose pixels best match
        ``polarity`` relative to the surrounding cell is nuclei; ``"foreground"``: the whole
        foreground is nuclei (sparse cells).
    n_clusters
        Clusters of foreground patches (``"kmeans"`` step).
    contrast_window
        Side, in patches, of the window over which the surrounding cell's mean grey is taken.
    polarity
        ``"dark"`` (brightfield: nuclei darker than the cytoplasm around them), ``"bright"``
        (phase contrast: phase-bright cell bodies) or, for ``"classical"`` only, ``"auto"`` (the
        sign in which the channel's band-pass is right-skewed; use it for ``"tie"`` and
        ``"defocus"``, whose sign depends on the microscope's z direction).
    sigma_spatial, sigma_luma, lam
        Bilateral solver (see :func:`lcd_nuclei.bilateral_solve`); ``refine=False`` skips it.
    min_area, min_distance
        Instance splitting (see :func:`lcd_nuclei.segment_instances`).
    max_area_ratio
        Drop instances larger than this times the field's median instance area
        (:func:`lcd_nuclei.drop_large_objects`; their number is reported as ``large_objects_dropped``);
        ``math.inf`` keeps every instance.
    batch_size, seed
        Tiles per forward pass; k-means seed and seed of the noise draw of ``"classical"``.
    channel
        ``"classical"``: ``"grey"`` (mean of the planes), ``"defocus"`` (normalised difference of
        the out-of-focus planes) or ``"tie"`` (transport-of-intensity phase; the best channel on
        the simulated plate's 3-plane fields). See :func:`lcd_nuclei.nucleus_channel`.
    channel_planes
        Indices of the field's planes the channel uses (default: all planes read).
    defocus
        z position of each of those planes (default: equally spaced, symmetric about the middle).
    highpass
        ``"tie"``: length in pixels above which the phase is suppressed (default: 4 x
        ``diameter``).
    diameter
        Expected nucleus diameter in pixels (``"classical"``: band-pass scale, marker spacing,
        size prior). Set it from the optics; the default 12 is a middle value, not a measurement.
    floor, threshold_method, floor_unit
        ``"classical"`` threshold (see :func:`lcd_nuclei.classical_nuclei`): pixels below ``floor``
        standard deviations of the response to the channel's noise (``floor_unit="noise"``) are
        never nucleus; ``"otsu"`` thresholds the pixels above the floor by Otsu's method.
    inside_cells
        ``"classical"`` with a model: drop objects whose centre lies outside the ViT's cell area
        (their number is reported as ``outside_cells_dropped``).
    class_prior, split_depth
        ``"classical"``: keep only objects in the channel's most extreme multi-Otsu class
        (``"multiotsu"``; default ``"none"``) and re-split touching objects at distance-transform
        maxima ``split_depth * diameter / 2`` deep (0 = off); see
        :func:`lcd_nuclei.classical_nuclei`. Off by default (for stained or absorbing nuclei in
        brightfield, not for the derived channels).
    split_contrast, min_axis_ratio
        ``"classical"``: re-split objects at extrema of the smoothed channel at least
        ``split_contrast`` noise SDs deep, and drop objects thinner than ``min_axis_ratio``
        (minor / major axis); 0 = off (the default). With the class prior and diameter 12 they
        give DSB brightfield's counts (README "Quality").
    cell_window, cell_floor
        Without a model, the cell area (and the confluency) of a field of 2 or more planes comes
        from :func:`lcd_nuclei.cell_area`: local SD of the defocus contrast in a ``cell_window``
        pixel square above ``cell_floor`` noise SDs (chosen on the simulated demo plate, README
        "Confluency without a model").
    """

    tile_size: int | None = None
    stride: int | None = None
    tau: float = 0.3
    background_seed: str = "field"
    nuclei_step: str = "classical"
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
    channel: str = "grey"
    channel_planes: tuple[int, ...] | None = None
    defocus: tuple[float, ...] | None = None
    highpass: float | None = None
    diameter: float = 12.0
    floor: float = 6.0
    threshold_method: str = "otsu"
    floor_unit: str = "noise"
    inside_cells: bool = True
    class_prior: str = "none"
    split_depth: float = 0.0
    split_contrast: float = 0.0
    min_axis_ratio: float = 0.0
    cell_window: float = 3.0
    cell_floor: float = 8.0

    def __post_init__(self):
        for name in ("channel_planes", "defocus"):  # lists (from JSON or a dict) become tuples
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))
        if self.nuclei_step not in NUCLEI_STEPS:
            raise ConfigError(
                f"nuclei_step must be one of {', '.join(NUCLEI_STEPS)}, got {self.nuclei_step!r}"
            )
        classical = self.nuclei_step == "classical"
        polarities = ("dark", "bright", "auto") if classical else ("dark", "bright")
        if self.polarity not in polarities:
            raise ConfigError(
                f"polarity must be one of {', '.join(polarities)} with nuclei_step {self.nuclei_step!r}, "
                f"got {self.polarity!r}"
            )
        if self.channel not in CHANNELS:
            raise ConfigError(f"channel must be one of {', '.join(CHANNELS)}, got {self.channel!r}")
        if self.channel != "grey" and not classical:
            raise ConfigError(f"channel {self.channel!r} needs nuclei_step 'classical'")
        if not (isinstance(self.diameter, int | float) and self.diameter >= 2):  # also refuses NaN
            raise ConfigError(f"diameter must be at least 2 pixels, got {self.diameter!r}")
        if not (isinstance(self.floor, int | float) and math.isfinite(self.floor)):
            raise ConfigError(f"floor must be a number of standard deviations, got {self.floor!r}")
        if self.threshold_method not in ("otsu", "mad"):
            raise ConfigError(f"threshold_method must be 'otsu' or 'mad', got {self.threshold_method!r}")
        if self.floor_unit not in ("noise", "mad"):
            raise ConfigError(f"floor_unit must be 'noise' or 'mad', got {self.floor_unit!r}")
        if self.class_prior not in ("none", "multiotsu"):
            raise ConfigError(f"class_prior must be 'none' or 'multiotsu', got {self.class_prior!r}")
        if isinstance(self.split_depth, bool) or not (
            isinstance(self.split_depth, int | float) and 0 <= self.split_depth < math.inf
        ):
            raise ConfigError(f"split_depth must be a number >= 0 (0 = off), got {self.split_depth!r}")
        if isinstance(self.split_contrast, bool) or not (
            isinstance(self.split_contrast, int | float) and 0 <= self.split_contrast < math.inf
        ):
            raise ConfigError(
                f"split_contrast must be a number of noise SDs >= 0 (0 = off), got {self.split_contrast!r}"
            )
        if isinstance(self.min_axis_ratio, bool) or not (
            isinstance(self.min_axis_ratio, int | float) and 0 <= self.min_axis_ratio < 1
        ):
            raise ConfigError(
                f"min_axis_ratio must be a number in [0, 1) (0 = off), got {self.min_axis_ratio!r}"
            )
        if not (isinstance(self.cell_window, int | float) and self.cell_window >= 1):  # refuses NaN
            raise ConfigError(f"cell_window must be at least 1 pixel, got {self.cell_window!r}")
        if not (isinstance(self.cell_floor, int | float) and 0 < self.cell_floor < math.inf):
            raise ConfigError(f"cell_floor must be a positive number of noise SDs, got {self.cell_floor!r}")
        if self.highpass is not None and not self.highpass > 0:
            raise ConfigError(f"highpass must be a length > 0 pixels or None, got {self.highpass!r}")
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
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Names of every option (what a calibration or a config may set)."""
        return tuple(f.name for f in fields(cls))

    def classical_options(self) -> dict:
        """Keyword arguments of :func:`lcd_nuclei.classical_nuclei` these options stand for."""
        return {
            "diameter": float(self.diameter),
            "polarity": self.polarity,
            "floor": float(self.floor),
            "threshold_method": self.threshold_method,
            "floor_unit": self.floor_unit,
            "max_area_ratio": self.max_area_ratio,
            "class_prior": self.class_prior,
            "split_depth": float(self.split_depth),
            "split_contrast": float(self.split_contrast),
            "min_axis_ratio": float(self.min_axis_ratio),
            "seed": int(self.seed),
        }

    def channel_options(self) -> dict:
        """Keyword arguments of :func:`lcd_nuclei.nucleus_channel` these options stand for."""
        highpass = self.highpass if self.highpass is not None else 4.0 * float(self.diameter)
        return {
            "planes": self.channel_planes,
            "defocus": self.defocus,
            "highpass": highpass if self.channel == "tie" else None,
        }


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


def _display_grey(image: np.ndarray) -> np.ndarray:
    """The field's planes averaged and stretched to 0-255 between its 1st and 99th percentiles (overlays)."""
    grey = np.asarray(image, dtype=np.float64)
    grey = grey.mean(0) if grey.ndim == 3 else grey
    lo, hi = np.percentile(grey, [1, 99])
    scaled = (grey - lo) / (hi - lo) if hi > lo else np.zeros_like(grey)
    return np.round(np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def keep_inside(labels: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Keep the objects whose centre (rounded centroid) lies in ``mask``; relabel 1..n.

    Parameters
    ----------
    labels
        ``(H, W)`` instance labels (0 = background).
    mask
        ``(H, W)`` bool area the objects must lie in.

    Returns
    -------
    labels, n_dropped
        int32 labels 1..n and the number of objects removed.
    """
    from scipy import ndimage as ndi

    labels = np.asarray(labels)
    n = int(labels.max())
    if n == 0:
        return labels.astype(np.int32), 0
    centres = ndi.center_of_mass(np.ones(labels.shape), labels, np.arange(1, n + 1))
    centres = np.rint(np.asarray(centres)).astype(int)
    present = np.bincount(labels.ravel(), minlength=n + 1)[1:] > 0
    keep = np.zeros(n + 1, dtype=bool)
    keep[1:] = (
        present & mask[centres[:, 0].clip(0, labels.shape[0] - 1), centres[:, 1].clip(0, labels.shape[1] - 1)]
    )
    ids = np.zeros(n + 1, dtype=np.int32)
    ids[keep] = np.arange(1, keep.sum() + 1)
    return ids[labels], int(present.sum() - keep.sum())


def classical_field(
    image: np.ndarray, *, params: DiscoveryParams | None = None, cell_area: bool = True
) -> dict:
    """Count the nuclei of one field with the classical counter alone (no model); cell area from the planes.

    Parameters
    ----------
    image
        ``(P, H, W)`` or ``(H, W)`` raw intensities (``lcd_embed.read_field``); the channel is made
        from ``params.channel_planes`` of them (default: all).
    params
        :class:`DiscoveryParams`; the ``"classical"`` options are used (``channel``,
        ``channel_planes``, ``defocus``, ``highpass``, ``diameter``, ``polarity``, ``floor``,
        ``threshold_method``, ``floor_unit``, ``max_area_ratio``, ``seed``), whatever
        ``nuclei_step`` says; ``cell_window`` and ``cell_floor`` for the cell area.
    cell_area
        Also measure the cell area from the planes (``False`` when a model gives it: the ViT path).

    Returns
    -------
    dict
        ``labels`` (H, W) int32, ``response`` (H, W) float64 (the band-pass in noise units),
        ``grey`` (H, W) uint8 (planes averaged, for overlays), ``nuclei_count``,
        ``mean_nucleus_area``, ``median_nucleus_area``, ``large_objects_dropped``; for a field of
        2 or more planes (those of ``channel_planes``) also ``cell_mask`` (H, W) bool
        (:func:`lcd_nuclei.cell_area`) and ``confluency`` (its mean). Nuclei are counted on the
        whole field, not only inside that mask.
    """
    from .cellarea import cell_area as planes_cell_area
    from .channels import channel_noise, nucleus_channel
    from .classical import classical_nuclei

    params = params or DiscoveryParams()
    image = np.asarray(image, dtype=np.float64)
    options = params.channel_options()
    channel = nucleus_channel(image, params.channel, **options)
    noise = None
    if params.floor_unit == "noise":
        noise = channel_noise(image, params.channel, seed=params.seed, **options)
    out = classical_nuclei(channel, noise=noise, **params.classical_options())
    shown = image[list(params.channel_planes)] if params.channel_planes and image.ndim == 3 else image
    out["grey"] = _display_grey(shown)
    if cell_area and shown.ndim == 3 and shown.shape[0] >= 2:
        out["cell_mask"] = planes_cell_area(
            shown, window=params.cell_window, floor=params.cell_floor, defocus=params.defocus
        )
        out["confluency"] = float(out["cell_mask"].mean())
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
        (P, H, W) or (H, W) raw intensities (``lcd_embed.read_field``). With
        ``nuclei_step="classical"`` and ``planes_selected=False`` the channel is made from all of
        them (or ``params.channel_planes``) and the ViT sees the recipe's planes.
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
        ``large_objects_dropped`` and ``outside_cells_dropped`` (classical objects outside the
        cell area; 0 for the other steps).
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

    classical = params.nuclei_step == "classical"
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
        if not classical:
            nucleus_map = bilateral_solve(grey, nucleus_map, 0.999, lam=params.lam, grid=bgrid)
    cell_mask = cell_map > 0.5
    n_outside = 0
    if classical:
        # the channel from the raw planes (all of them unless the caller read the recipe's only)
        counted = classical_field(image, params=params, cell_area=False)  # the ViT gives the cell area
        labels, n_dropped = counted["labels"], counted["large_objects_dropped"]
        if params.inside_cells:
            labels, n_outside = keep_inside(labels, cell_mask)
        nucleus_map = (labels > 0).astype(np.float32)
    else:
        labels = segment_instances(nucleus_map, min_area=params.min_area, min_distance=params.min_distance)
        labels, n_dropped = drop_large_objects(labels, params.max_area_ratio)
    stats = instance_stats(labels)
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
        "outside_cells_dropped": n_outside,
    }
