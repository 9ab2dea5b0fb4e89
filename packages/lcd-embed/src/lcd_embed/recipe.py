"""The model-input recipe: one field of raw intensities -> the tiles a ViT checkpoint expects.

Every consumer of a checkpoint (``embed``, ``field_attention_maps``, lcd-ssl's field reader and
lcd-nuclei's ``discover_field``) turns a field into model input here and nowhere else, the way timm's
``resolve_data_config`` + ``create_transform`` do for natural images. The recipe a model was trained
with is recorded in its ``config.json`` (``preprocessing``: written by ``save_checkpoint`` and
``lcd_ssl.export_backbone``) and read back by :func:`resolve_input_config`, so nothing has to be
repeated by hand when embedding.

========  ========================  ==============================================  ===================
step      what                      options                                         gives
========  ========================  ==============================================  ===================
1         plane selection           ``planes``                                      (P', H, W)
2         intensity normalization   ``method``, ``low``, ``high``, ``per_plane``,   (P', H, W), ~[0, 1]
                                    ``clip`` (``stats`` for ``method="control"``)
3         block-mean downscale      ``downscale``                                   (P', H/d, W/d)
(field)   :func:`field_input` ends here: the normalized field lcd-ssl cuts crops from
4         channel matching          ``in_chans`` (a single plane is repeated)       (C, H', W')
5         tiling                    ``tile_size``, ``stride``, ``edge``             (N, C, t, t)
6         standardization           ``(x - mean) / std`` per channel                (N, C, t, t)
(model)   :func:`model_input` = steps 1-6; tile coordinates are in original field pixels
========  ========================  ==============================================  ===================

Normalization comes before downscaling, so percentiles are those of the full-resolution field.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from lcd_core import DEFAULT_CONTROL, ConfigError, InputError

from .preprocess import (
    EDGES,
    NORMALIZATION_METHODS,
    downscale,
    match_channels,
    normalize_intensity,
    tile_image,
)

#: The keys of a checkpoint's ``preprocessing`` block: everything a model's training saw.
CHECKPOINT_KEYS = (
    "planes",
    "method",
    "low",
    "high",
    "per_plane",
    "clip",
    "downscale",
    "in_chans",
    "mean",
    "std",
)
#: Keys of lcd-embed 0.1 / lcd-ssl 0.1 checkpoints' ``normalization`` block (read, never written).
_LEGACY_NORMALIZATION = ("method", "low", "high", "per_plane", "clip", "mean", "std")


def _floats(value: Any, name: str) -> tuple[float, ...]:
    values = value if isinstance(value, list | tuple | np.ndarray) else [value]
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ConfigError(f"preprocessing.{name}: expected numbers, got {value!r}") from None
    if not out or not all(math.isfinite(v) for v in out):
        raise ConfigError(f"preprocessing.{name}: expected finite numbers, got {value!r}")
    return out


def _int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ConfigError(f"preprocessing.{name}: expected an integer, got {value!r}")
    if int(value) != value or int(value) < minimum:
        raise ConfigError(f"preprocessing.{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class InputConfig:
    """How a field of view becomes model input (the steps are listed in :mod:`lcd_embed.recipe`).

    Build it with :func:`resolve_input_config` from a checkpoint config (the recorded recipe plus
    overrides); constructing it directly is for code that defines a recipe (lcd-ssl's trainer).
    Values are checked and normalized on construction (``planes`` and ``mean``/``std`` become
    tuples; a scalar mean/std is repeated to ``in_chans``); a bad value is a
    :class:`lcd_core.ConfigError` naming ``preprocessing.<key>``.

    Attributes
    ----------
    planes
        Plane indices stacked as channels, in this order; ``None``: every plane of the field.
    method
        ``"percentile"`` (per field), ``"control"`` (per-group references of control fields, see
        :func:`lcd_embed.control_stats`) or ``"none"`` (intensities used as they are).
    low, high
        Percentiles mapped to 0 and 1.
    per_plane
        Percentiles per plane instead of over the whole stack.
    clip
        Clip normalized intensities to [0, 1].
    downscale
        Integer block-mean downscaling after normalization.
    in_chans
        The model's input channels (``None``: the field's planes, no channel matching).
    mean, std
        Per-channel standardization ``(x - mean) / std`` of the normalized tiles.
    tile_size, stride, edge
        Tiling of the (downscaled) field, see :func:`lcd_embed.tile_image` (``stride=None``: no overlap).
    control, measurement_keys
        Control selection and the columns grouping control references (``method="control"``).
    """

    planes: tuple[int, ...] | None = None
    method: str = "percentile"
    low: float = 1.0
    high: float = 99.0
    per_plane: bool = False
    clip: bool = False
    downscale: int = 1
    in_chans: int | None = None
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)
    tile_size: int = 224
    stride: int | None = None
    edge: str = "drop"
    control: str = DEFAULT_CONTROL
    measurement_keys: tuple[str, ...] = ("plate",)

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        if self.planes is not None:
            planes = [self.planes] if isinstance(self.planes, int | np.integer) else list(self.planes)
            if not planes:
                raise ConfigError("preprocessing.planes: empty; use None for every plane")
            put("planes", tuple(_int(p, "planes", minimum=-(2**31)) for p in planes))
        if self.method not in NORMALIZATION_METHODS:
            raise ConfigError(
                f"preprocessing.method: {self.method!r} is not one of {', '.join(NORMALIZATION_METHODS)}"
            )
        low, high = _floats(self.low, "low")[0], _floats(self.high, "high")[0]
        if not 0.0 <= low < high <= 100.0:
            raise ConfigError(f"preprocessing.low/high: need 0 <= low < high <= 100, got {low}, {high}")
        put("low", low)
        put("high", high)
        for name in ("per_plane", "clip"):
            value = getattr(self, name)
            if not isinstance(value, bool | np.bool_):
                raise ConfigError(f"preprocessing.{name}: expected true or false, got {value!r}")
            put(name, bool(value))
        put("downscale", _int(self.downscale, "downscale"))
        if self.in_chans is not None:
            put("in_chans", _int(self.in_chans, "in_chans"))
        for name in ("mean", "std"):
            values = _floats(getattr(self, name), name)
            if name == "std" and min(values) <= 0:
                raise ConfigError(f"preprocessing.std: must be positive, got {list(values)}")
            if self.in_chans is not None:
                if len(values) == 1:
                    values = values * self.in_chans
                elif len(values) != self.in_chans:
                    raise ConfigError(
                        f"preprocessing.{name}: {len(values)} values but the model has {self.in_chans} "
                        "input channels"
                    )
            put(name, values)
        put("tile_size", _int(self.tile_size, "tile_size"))
        if self.stride is not None:
            put("stride", _int(self.stride, "stride"))
        if self.edge not in EDGES:
            raise ConfigError(f"preprocessing.edge: {self.edge!r} is not one of {', '.join(EDGES)}")
        if not isinstance(self.control, str) or not self.control.strip():
            raise ConfigError(
                f"preprocessing.control: expected a column name or a query, got {self.control!r}"
            )
        keys = self.measurement_keys
        put("measurement_keys", (keys,) if isinstance(keys, str) else tuple(str(k) for k in keys))

    def replace(self, **changes: Any) -> InputConfig:
        """A copy with ``changes`` applied (and checked).

        Parameters
        ----------
        **changes
            Fields to change.
        """
        return dataclasses.replace(self, **changes)

    def checkpoint_block(self) -> dict[str, Any]:
        """The ``preprocessing`` block of a checkpoint's ``config.json`` (the keys of :data:`CHECKPOINT_KEYS`)."""
        return {
            "planes": None if self.planes is None else list(self.planes),
            "method": self.method,
            "low": self.low,
            "high": self.high,
            "per_plane": self.per_plane,
            "clip": self.clip,
            "downscale": self.downscale,
            "in_chans": self.in_chans,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    def as_dict(self) -> dict[str, Any]:
        """Every field as plain values, for ``uns`` (``planes`` is ``"all"`` when every plane is used)."""
        out = dataclasses.asdict(self)
        out["planes"] = "all" if self.planes is None else list(self.planes)
        for name in ("mean", "std", "measurement_keys"):
            out[name] = list(out[name])
        return out

    def channel_stats(self, n_channels: int) -> tuple[np.ndarray, np.ndarray]:
        """``mean`` and ``std`` as float32 arrays of shape (1, n_channels, 1, 1).

        Parameters
        ----------
        n_channels
            Channels of the tiles they apply to (a single value is repeated).
        """
        out = []
        for name in ("mean", "std"):
            values = getattr(self, name)
            if len(values) == 1:
                values = values * n_channels
            if len(values) != n_channels:
                raise InputError(
                    f"preprocessing.{name} has {len(values)} values but the tiles have {n_channels} channels"
                )
            out.append(np.asarray(values, dtype=np.float32).reshape(1, n_channels, 1, 1))
        return out[0], out[1]


_FIELDS = tuple(f.name for f in dataclasses.fields(InputConfig))


def recorded_preprocessing(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The recipe a checkpoint config records, as :class:`InputConfig` keyword arguments.

    Reads the ``preprocessing`` block; a checkpoint written before it existed (lcd-embed 0.1,
    lcd-ssl 0.1) has a ``normalization`` block and, when exported by lcd-ssl, the training
    ``planes`` and ``downscale`` under ``lcd_ssl``: they are read with the meaning they had in
    training. The model's ``in_chans`` and ``img_size`` (the default tile size) come from the
    architecture keys.

    Parameters
    ----------
    config
        A checkpoint config (``load_backbone``'s second value, or ``config.json``); ``None``: nothing
        recorded.
    """
    if config is None:
        return {}
    out: dict[str, Any] = {}
    block = config.get("preprocessing")
    if block is not None:
        if not isinstance(block, Mapping):
            raise ConfigError(
                f"checkpoint config: preprocessing must be a mapping, got {type(block).__name__}"
            )
        unknown = sorted(set(block) - set(CHECKPOINT_KEYS))
        if unknown:
            raise ConfigError(
                f"checkpoint config: unknown preprocessing key {unknown[0]!r}; known: {', '.join(CHECKPOINT_KEYS)}"
            )
        out.update({k: v for k, v in block.items() if v is not None})
    else:
        legacy = config.get("normalization") or {}
        out.update({k: legacy[k] for k in _LEGACY_NORMALIZATION if legacy.get(k) is not None})
        trained = config.get("lcd_ssl") or {}
        for key in ("planes", "downscale"):
            if trained.get(key) is not None:
                out[key] = trained[key]
    if config.get("in_chans") is not None:
        model_chans = int(config["in_chans"])
        if out.get("in_chans") is not None and int(out["in_chans"]) != model_chans:
            raise ConfigError(
                f"checkpoint config: preprocessing.in_chans {out['in_chans']} differs from the model's "
                f"in_chans {model_chans}"
            )
        out["in_chans"] = model_chans
    if config.get("img_size") is not None:
        size = config["img_size"]
        out["tile_size"] = int(size[0] if isinstance(size, list | tuple) else size)
    return out


def resolve_input_config(config: Mapping[str, Any] | None = None, **overrides: Any) -> InputConfig:
    """The model-input recipe of a checkpoint, with the options a user gave on top.

    Parameters
    ----------
    config
        A checkpoint config (``lcd_embed.load_backbone``'s second value); ``None``: the defaults.
    **overrides
        Any :class:`InputConfig` field. ``None`` means "not given": the recorded value (or the
        default) is kept. ``in_chans`` belongs to the model and cannot be changed.

    Returns
    -------
    InputConfig
        With ``stride`` resolved (``tile_size`` when not given).

    Raises
    ------
    lcd_core.ConfigError
        An unknown option (named), an invalid value, or a different ``in_chans``.
    """
    values = recorded_preprocessing(config)
    for key, value in overrides.items():
        if key not in _FIELDS:
            raise ConfigError(f"preprocessing.{key}: unknown option; known: {', '.join(_FIELDS)}")
        if value is None:
            continue
        if key == "in_chans" and values.get("in_chans") is not None and int(value) != values["in_chans"]:
            raise ConfigError(
                f"preprocessing.in_chans: the model takes {values['in_chans']} input channels, got {value}"
            )
        values[key] = value
    recipe = InputConfig(**values)
    patch = (config or {}).get("patch_size")
    if isinstance(patch, int) and patch > 0 and recipe.tile_size % patch:
        # timm's patch embedding asserts this on the first forward pass (a traceback mid-run)
        raise ConfigError(
            f"preprocessing.tile_size {recipe.tile_size} is not a multiple of the model's patch size {patch}; "
            f"choose a tile size (--tile-size) that is"
        )
    return recipe if recipe.stride is not None else recipe.replace(stride=recipe.tile_size)


@contextlib.contextmanager
def _named(source: str) -> Iterator[None]:
    """Re-raise an :class:`InputError` with ``source`` in front when the message does not name it."""
    try:
        yield
    except InputError as exc:
        if source in str(exc):
            raise
        raise type(exc)(f"{source}: {exc}") from exc


def field_input(
    image: np.ndarray,
    input_config: InputConfig,
    *,
    stats: Mapping[str, float | Sequence[float]] | None = None,
    planes_selected: bool = False,
    source: str = "image",
) -> np.ndarray:
    """Steps 1-3 of the recipe: plane selection, intensity normalization, downscaling.

    Parameters
    ----------
    image
        (P, H, W) or (H, W) raw intensities of one field.
    input_config
        The recipe (:func:`resolve_input_config`).
    stats
        ``{"low", "high"}`` control references of this field's group (``method="control"``), scalars or
        one value per selected plane.
    planes_selected
        ``image`` already holds only ``input_config.planes``, in that order (read with
        ``read_field(..., planes=input_config.planes)``, which skips the files of other planes).
    source
        Named in errors (the image path).

    Returns
    -------
    numpy.ndarray
        float32 (P', H', W'): the normalized field, before channel matching (lcd-ssl's plane-agnostic
        crops draw one plane of it).
    """
    cfg = input_config
    x = np.asarray(image)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise InputError(f"{source}: expected a (planes, H, W) or (H, W) image, got shape {x.shape}")
    if cfg.planes is not None and not planes_selected:
        bad = [p for p in cfg.planes if not -x.shape[0] <= p < x.shape[0]]
        if bad:
            raise InputError(f"plane {bad[0]} requested but {source} has {x.shape[0]} planes")
        x = x[list(cfg.planes)]
    with _named(source):
        x = normalize_intensity(
            x,
            method=cfg.method,
            low=cfg.low,
            high=cfg.high,
            stats=stats,
            per_plane=cfg.per_plane,
            clip=cfg.clip,
        )
        return downscale(x, cfg.downscale)


def model_input(
    image: np.ndarray,
    input_config: InputConfig,
    *,
    stats: Mapping[str, float | Sequence[float]] | None = None,
    planes_selected: bool = False,
    source: str = "image",
) -> tuple[np.ndarray, np.ndarray]:
    """The whole recipe: :func:`field_input`, channel matching, tiling, per-channel standardization.

    Parameters
    ----------
    image
        (P, H, W) or (H, W) raw intensities of one field.
    input_config
        The recipe (:func:`resolve_input_config`).
    stats
        Control references (see :func:`field_input`).
    planes_selected
        ``image`` holds only the selected planes already (see :func:`field_input`).
    source
        Named in errors (the image path).

    Returns
    -------
    tiles : numpy.ndarray
        float32 (N, C, tile_size, tile_size), row-major tile order: what the model takes.
    coords : numpy.ndarray
        (N, 2) int64 top-left (y, x) of each tile in original (not downscaled) field pixels; a tile
        spans ``tile_size * downscale`` field pixels.
    """
    cfg = input_config
    x = field_input(image, cfg, stats=stats, planes_selected=planes_selected, source=source)
    with _named(source):
        if cfg.in_chans is not None:
            x = match_channels(x, cfg.in_chans, source=source)
        tiles, coords = tile_image(x, tile_size=cfg.tile_size, stride=cfg.stride, edge=cfg.edge)
        mean, std = cfg.channel_stats(tiles.shape[1])
    tiles = np.ascontiguousarray(tiles, dtype=np.float32)
    tiles -= mean
    tiles /= std
    return tiles, coords * cfg.downscale
