"""Training configuration: one dataclass, the five ablation variants, and its validation."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import re
from dataclasses import dataclass, field
from typing import Any

import lcd_core

VARIANTS = ("dino", "dino+barlow", "dino+xb", "dino+barlow+xb", "pa+dino+barlow+xb")

# Fields that may differ between a run and its resumption: they change how, not what, is computed.
RUNTIME_FIELDS = (
    "device",
    "num_workers",
    "compile",
    "checkpoint_every",
    "log_every",
    "progress",
    "threads",
    "batch_chunks",
)
#: The keys of ``TrainConfig.normalization``: the intensity and standardization part of lcd-embed's recipe.
NORMALIZATION_KEYS = ("method", "low", "high", "per_plane", "clip", "mean", "std")


class ConfigError(lcd_core.ConfigError):
    """A training option is invalid or incompatible with the data or with the run being resumed."""


def default_normalization() -> dict[str, Any]:
    """lcd-embed's recipe defaults for the intensity part (they live in ``lcd_embed.InputConfig`` only).

    Percentiles 1/99 over the whole stack, mapped to 0/1, then ``(x - 0.5) / 0.5``.
    """
    from lcd_embed import InputConfig

    d = InputConfig()
    return {
        "method": d.method,
        "low": d.low,
        "high": d.high,
        "per_plane": d.per_plane,
        "mean": d.mean[0],
        "std": d.std[0],
    }


@dataclass
class TrainConfig:
    """Everything that defines an lcd-ssl training run.

    The defaults follow the LCD paper / DINO (Caron et al. 2021) for a ViT-S/16; tiny runs (tests,
    ``lcd demo``) override the model (``model_kwargs``), crop sizes and the step budget.

    Parameters
    ----------
    variant
        One of :data:`VARIANTS`: ``dino``; ``+barlow`` adds the Barlow Twins term; ``+xb`` samples the
        two global crops from two replicas of the same compound/dose/timepoint and centers the teacher
        per replica; ``pa+`` draws each crop's z-plane at random instead of blurring.
    blur
        DINO's Gaussian blur of the crops, independent of the variant: ``None`` (default) blurs unless
        the crops are plane-agnostic (the LCD paper's recipe); ``False`` removes it (Table SM2, "blur
        removed, no PA"); ``True`` blurs plane-agnostic crops too. Without blur the crops are otherwise
        identical to the blurred run's (the same random numbers are drawn).
    model
        timm model name (created with random weights; nothing is downloaded).
    model_kwargs
        timm overrides, e.g. ``{"depth": 2, "embed_dim": 64, "num_heads": 2, "patch_size": 8}``.
    in_chans
        Model input channels. ``None``: the number of selected planes (``planes``), or 1 with
        plane-agnostic crops (a PA crop is one plane; with ``in_chans > 1`` that plane is repeated).
    planes
        Plane indices read from each field (``None``: all planes of the manifest).
    drop_path_rate
        Stochastic depth of the student (the teacher runs in eval mode, without it).
    out_dim, hidden_dim, bottleneck_dim
        DINO head sizes (3-layer MLP, L2-normalized bottleneck, weight-normalized last layer).
    global_crop_size, local_crop_size, global_crop_scale, local_crop_scale, n_local_crops
        Multi-crop: two global crops and ``n_local_crops`` local crops (cross-batch: half from each
        image) as fractions of the sampling window area.
    window_size
        Side of the random window cut from a field before cropping (``None``: the whole field). Crop
        scales are relative to this window, so a 2160² field is not squeezed into 224 pixels.
    crop_min_std
        Content-aware crops: every crop (global and local) is redrawn, at most 10 times, until its
        spatial intensity std reaches this fraction of its field's std (after normalization);
        otherwise the most varied draw is kept. Sparse brightfield fields are mostly flat
        background, and views of background carry no signal to agree on (on the DSB2018 fields it
        roughly doubles a tiny run's teacher MI; it does not prevent collapse by itself, see the
        README's Limits). ``0`` disables the check (plain random resized crops).
    batch_size
        Global batch (anchors per step over all processes; each anchor gives all crops).
    epochs, steps_per_epoch
        Schedule length. ``steps_per_epoch=None``: one pass over the anchors (dropping the last
        incomplete batch); an integer repeats/truncates shuffled passes to that many steps.
    lr, min_lr, scale_lr, warmup_epochs
        AdamW learning rate: linear warmup then cosine to ``min_lr``; ``scale_lr`` multiplies ``lr``
        by ``batch_size / 256``.
    weight_decay, weight_decay_end
        Cosine weight-decay schedule on weights (biases and norm parameters are not decayed).
    momentum_teacher
        EMA momentum, cosine from this value to 1 over all iterations.
    student_temp, teacher_temp, warmup_teacher_temp, warmup_teacher_temp_epochs, center_momentum
        DINO loss temperatures and center momentum.
    barlow_lambda, barlow_weight
        Off-diagonal weight λ of the Barlow term, and its weight relative to DINO after normalization.
    clip_grad
        Per-parameter gradient-norm clip (0 disables it).
    freeze_last_layer_epochs
        Epochs during which the head's last layer gets no update.
    precision
        ``"bf16"`` (autocast) or ``"fp32"``.
    compile
        Wrap the student and teacher with ``torch.compile``.
    seed
        Seeds model initialization, sampling and augmentations; results do not depend on
        ``num_workers`` or on the number of processes.
    checkpoint_every
        Save a checkpoint every this many steps (and always at the end of each epoch).
    no_partner
        Cross-batch anchors without a partner in another replica: ``"self"`` (the second global crop
        comes from the anchor itself, as in plain DINO; counted) or ``"drop"`` (such anchors are not
        used; an error if none is left).
    replica_key, compound_key, dose_key, timepoint_key
        Metadata column names (cross-batch variants).
    normalization
        The intensity part of lcd-embed's model-input recipe (``lcd_embed.InputConfig``): each field is
        normalized when read (``method``, ``low``, ``high``, ``per_plane``, ``clip``: percentiles to
        [0, 1]), and crops are standardized by ``(x - mean) / std`` (scalars or one value per channel)
        before the model. Missing keys take lcd-embed's defaults.
    downscale
        Integer block-mean downscaling of each field after normalization. With ``planes`` and
        ``normalization`` it is the recipe :func:`lcd_ssl.export_backbone` records in the checkpoint,
        so ``lcd-embed embed`` makes the same input without being told.
    cache_images
        Keep normalized fields in memory after the first read (per DataLoader worker).
    device
        ``"auto"``: CUDA when available, else CPU (``lcd_embed.resolve_device``); a runtime option.
    num_workers, log_every, progress
        Runtime options (may change when a run is resumed).
    threads
        CPU threads torch uses while training (``None``: torch's default, from ``OMP_NUM_THREADS`` or
        the cores). torch's CPU kernels sum layer-norm parameter gradients in an order that depends on
        the thread count (measured: 1.9e-8 in a norm bias gradient after one step of a tiny ViT with 1
        vs 2 threads), so CPU runs are bit-identical only at the same count: set ``threads`` to make a
        run independent of the environment. A runtime option (a resumed run may change it).
    batch_chunks
        The global batch as this many equal chunks, one per process under torchrun (``None``: one
        chunk per process, i.e. the number of processes). One process with ``batch_chunks=2`` runs
        the two chunks as two DDP processes would: each chunk's forward on its own rows, the Barlow
        term on the rows of both, each chunk's gradient halved and the two added (the teacher centers
        likewise from the two chunk sums). A sum of two terms does not depend on its order, so that
        run and ``torchrun --nproc_per_node 2`` give bit-identical weights at the same ``threads``
        and device type (tests/pipeline/test_distributed.py); with one chunk the gradient of the
        whole batch is one reduction, whose order differs from two halves added (~1e-6 in the
        weights after 20 steps). Under torchrun it must equal the number of processes. A runtime
        option (only float rounding changes).
    """

    variant: str = "dino"
    blur: bool | None = None
    model: str = "vit_small_patch16_224"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    in_chans: int | None = None
    planes: list[int] | None = None
    drop_path_rate: float = 0.1
    out_dim: int = 4096
    hidden_dim: int = 2048
    bottleneck_dim: int = 256
    global_crop_size: int = 224
    local_crop_size: int = 96
    global_crop_scale: tuple[float, float] = (0.4, 1.0)
    local_crop_scale: tuple[float, float] = (0.05, 0.4)
    n_local_crops: int = 6
    window_size: int | None = 448
    crop_min_std: float = 0.5
    batch_size: int = 64
    epochs: int = 100
    steps_per_epoch: int | None = None
    lr: float = 1e-3
    min_lr: float = 1e-6
    scale_lr: bool = False
    warmup_epochs: float = 10.0
    weight_decay: float = 0.04
    weight_decay_end: float = 0.4
    momentum_teacher: float = 0.996
    student_temp: float = 0.1
    teacher_temp: float = 0.04
    warmup_teacher_temp: float = 0.04
    warmup_teacher_temp_epochs: int = 0
    center_momentum: float = 0.9
    barlow_lambda: float = 0.5
    barlow_weight: float = 1.0
    clip_grad: float = 3.0
    freeze_last_layer_epochs: int = 1
    precision: str = "bf16"
    compile: bool = False
    seed: int = 0
    checkpoint_every: int = 500
    no_partner: str = "self"
    replica_key: str = "replica"
    compound_key: str = "compound"
    dose_key: str = "dose"
    timepoint_key: str = "timepoint"
    normalization: dict[str, Any] = field(default_factory=default_normalization)
    downscale: int = 1
    cache_images: bool = True
    device: str = "auto"
    num_workers: int = 0
    log_every: int = 1
    progress: bool = True
    threads: int | None = None
    batch_chunks: int | None = None

    # ---- derived flags -------------------------------------------------------------------------
    @property
    def use_barlow(self) -> bool:
        """Whether the variant adds the Barlow Twins term."""
        return "barlow" in self.variant.split("+")

    @property
    def cross_batch(self) -> bool:
        """Whether the two global crops come from two replicas (per-replica teacher centers)."""
        return "xb" in self.variant.split("+")

    @property
    def plane_agnostic(self) -> bool:
        """Whether each crop draws one z-plane instead of blurring."""
        return self.variant.startswith("pa+")

    @property
    def use_blur(self) -> bool:
        """Whether crops get DINO's Gaussian blur (``blur``, or by default: unless plane-agnostic)."""
        return (not self.plane_agnostic) if self.blur is None else bool(self.blur)

    def input_config(self, in_chans: int | None = None):
        """The run's model-input recipe, an ``lcd_embed.InputConfig`` (what export records).

        Parameters
        ----------
        in_chans
            The model's input channels (``None`` before they are known: the field reader needs only
            the plane, intensity and downscale steps).
        """
        from lcd_embed import InputConfig

        try:
            return InputConfig(
                planes=None if self.planes is None else tuple(self.planes),
                downscale=self.downscale,
                in_chans=in_chans,
                tile_size=self.global_crop_size,
                **self.normalization,
            )
        except lcd_core.ConfigError as exc:
            raise ConfigError(f"normalization/planes/downscale: {exc}") from None

    def validate(self) -> TrainConfig:
        """Check option values; returns self. Raises :class:`ConfigError` naming the option."""
        if self.variant not in VARIANTS:
            raise ConfigError(f"variant {self.variant!r} is not one of {', '.join(VARIANTS)}")
        if self.blur is not None and not isinstance(self.blur, bool):
            raise ConfigError(f"blur must be true, false or null, got {self.blur!r}")
        positive = (
            "out_dim",
            "hidden_dim",
            "bottleneck_dim",
            "global_crop_size",
            "local_crop_size",
            "batch_size",
            "epochs",
        )
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ConfigError(f"steps_per_epoch must be >= 1 or None, got {self.steps_per_epoch}")
        if self.n_local_crops < 0 or (self.cross_batch and self.n_local_crops % 2):
            raise ConfigError(
                f"n_local_crops must be >= 0 (and even for cross-batch variants: half per image), got {self.n_local_crops}"
            )
        for name in ("global_crop_scale", "local_crop_scale"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi <= 1:
                raise ConfigError(f"{name} must satisfy 0 < low <= high <= 1, got {(lo, hi)}")
        if self.precision not in ("bf16", "fp32"):
            raise ConfigError(f"precision must be 'bf16' or 'fp32', got {self.precision!r}")
        if self.no_partner not in ("self", "drop"):
            raise ConfigError(f"no_partner must be 'self' or 'drop', got {self.no_partner!r}")
        if not 0 <= self.barlow_lambda < 1:
            raise ConfigError(f"barlow_lambda must be in [0, 1), got {self.barlow_lambda}")
        if int(self.downscale) != self.downscale or self.downscale < 1:
            raise ConfigError(f"downscale must be a positive integer, got {self.downscale}")
        unknown = sorted(set(self.normalization) - set(NORMALIZATION_KEYS))
        if unknown:
            raise ConfigError(f"unknown normalization key(s) {unknown}; use {', '.join(NORMALIZATION_KEYS)}")
        self.input_config()  # the recipe's own checks (percentiles, std > 0, planes)
        if not (math.isfinite(self.crop_min_std) and 0 <= self.crop_min_std <= 1):
            raise ConfigError(f"crop_min_std must be in [0, 1], got {self.crop_min_std}")
        if self.threads is not None and (isinstance(self.threads, bool) or int(self.threads) < 1):
            raise ConfigError(f"threads must be >= 1 or None, got {self.threads}")
        if self.batch_chunks is not None and (
            isinstance(self.batch_chunks, bool)
            or int(self.batch_chunks) < 1
            or self.batch_size % int(self.batch_chunks)
        ):
            raise ConfigError(
                f"batch_chunks must be >= 1 and divide batch_size {self.batch_size}, got {self.batch_chunks}"
            )
        if self.checkpoint_every < 1:
            raise ConfigError(f"checkpoint_every must be >= 1, got {self.checkpoint_every}")
        self._check_model_kwargs()
        patch = self.patch_size()
        if patch is not None:
            for name in ("global_crop_size", "local_crop_size"):
                if int(getattr(self, name)) % patch:
                    raise ConfigError(
                        f"{name} {getattr(self, name)} is not a multiple of the model's patch size {patch}"
                    )
        if self.window_size is not None and self.window_size < self.local_crop_size:
            raise ConfigError(
                f"window_size {self.window_size} is smaller than local_crop_size {self.local_crop_size}"
            )
        for name in ("lr", "student_temp", "teacher_temp", "warmup_teacher_temp"):
            v = float(getattr(self, name))
            if not (math.isfinite(v) and v > 0):
                raise ConfigError(f"{name} must be a positive number, got {v}")
        return self

    def _check_model_kwargs(self) -> None:
        """Refuse ``model_kwargs`` that are not options of timm's VisionTransformer.

        A typo failed at model creation, after the run folder was made, as timm's TypeError.
        """
        if not isinstance(self.model_kwargs, dict):
            raise ConfigError(f"model_kwargs must be a mapping, got {type(self.model_kwargs).__name__}")
        if not str(self.model).startswith("vit_"):
            return  # other timm families take other options; timm checks them when the model is built
        from timm.models.vision_transformer import VisionTransformer

        accepted = [p for p in inspect.signature(VisionTransformer.__init__).parameters if p != "self"]
        for key in self.model_kwargs:
            if key not in accepted:
                near = difflib.get_close_matches(str(key), accepted, n=1)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                raise ConfigError(f"model_kwargs.{key}: not an option of timm's VisionTransformer{hint}")

    def patch_size(self) -> int | None:
        """The ViT patch size: ``model_kwargs["patch_size"]``, else the ``patch<N>`` of the timm name."""
        if isinstance(self.model_kwargs, dict) and "patch_size" in self.model_kwargs:
            value = self.model_kwargs["patch_size"]
            return int(value) if isinstance(value, int) and value > 0 else None
        found = re.search(r"patch(\d+)", str(self.model))
        return int(found.group(1)) if found else None

    # ---- (de)serialization ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Every option as plain JSON values (crop scales as lists)."""
        d = dataclasses.asdict(self)
        d["global_crop_scale"] = list(self.global_crop_scale)
        d["local_crop_scale"] = list(self.local_crop_scale)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """A config from :meth:`to_dict`'s form; an unknown option is a :class:`ConfigError`.

        Parameters
        ----------
        d
            Options by name.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown TrainConfig option(s): {', '.join(unknown)}")
        d = dict(d)
        for name in ("global_crop_scale", "local_crop_scale"):
            if name in d:
                d[name] = tuple(float(v) for v in d[name])
        return cls(**d)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied.

        Parameters
        ----------
        **changes
            Options to change.
        """
        return dataclasses.replace(self, **changes)


def schedule_fields_differ(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Names of options that differ between a saved run and the current config, runtime options excepted.

    Parameters
    ----------
    saved, current
        :meth:`TrainConfig.to_dict` of the saved run and of this call.
    """
    return sorted(k for k in current if k not in RUNTIME_FIELDS and saved.get(k) != current[k])
