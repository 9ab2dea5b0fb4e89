"""Backbone checkpoints: a folder with ``model.safetensors`` + ``config.json``, or a timm name + local weights.

Nothing is downloaded (``pretrained=False`` always) and no pickle is executed: weights load with
safetensors or ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_write
from .errors import InputError

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
# Training-time options: not part of the architecture, so never written to a checkpoint config.
_TRAINING_ONLY = {
    "drop_rate",
    "drop_path_rate",
    "attn_drop_rate",
    "proj_drop_rate",
    "pos_drop_rate",
    "patch_drop_rate",
}
# Keys a checkpoint config has at top level; everything in "timm_kwargs" goes to timm.create_model.
_TOP_LEVEL = ("timm_name", "patch_size", "in_chans", "img_size", "embed_dim", "normalization")


def default_normalization(in_chans: int, mean=(0.5,), std=(0.5,)) -> dict[str, Any]:
    """Preprocessing recorded with a model: intensity percentiles to [0, 1], then per-channel mean/std."""
    m = [float(v) for v in mean]
    s = [float(v) for v in std]
    if len(m) != in_chans:
        m = [sum(m) / len(m)] * in_chans
    if len(s) != in_chans:
        s = [sum(s) / len(s)] * in_chans
    return {"method": "percentile", "low": 1.0, "high": 99.0, "per_plane": False, "mean": m, "std": s}


def load_backbone(
    spec: str | os.PathLike,
    *,
    weights: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    **overrides: Any,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build a timm VisionTransformer backbone (``num_classes=0``, ``dynamic_img_size=True``).

    Parameters
    ----------
    spec
        A checkpoint folder (``model.safetensors`` + ``config.json``) or a timm model name such as
        ``"vit_small_patch16_224"``.
    weights
        Local weights for a timm name: ``.safetensors``, or ``.pth``/``.pt`` loaded with
        ``torch.load(weights_only=True)`` (a plain state dict, or one nested under ``teacher``/
        ``student``/``model``/``state_dict`` as in DINO checkpoints; ``module.``/``backbone.`` prefixes
        and ``head.`` keys are dropped; a differently sized position embedding is resampled). Without
        it the model is randomly initialised (seed with ``torch.manual_seed``).
    device
        Where the model goes; it is returned in eval mode.
    **overrides
        timm keyword arguments (``in_chans=1``, ``img_size=64``, ``depth=2``, ``embed_dim=64``,
        ``num_heads=2``, ``drop_path_rate=0.1``...), and ``normalization={...}`` to record the
        preprocessing this model expects. For a folder they override its config.

    Returns
    -------
    model : timm.models.vision_transformer.VisionTransformer
    config : dict
        ``timm_name, patch_size, in_chans, img_size, embed_dim, normalization`` and ``timm_kwargs``
        (what is needed to rebuild the architecture); what :func:`save_checkpoint` writes.
    """
    import timm
    from timm.models.vision_transformer import VisionTransformer

    folder = Path(spec)
    normalization = overrides.pop("normalization", None)
    state = None
    if folder.is_dir():
        config = read_config(folder)
        if weights is not None:
            raise InputError(f"{folder} is a checkpoint folder; pass weights only with a timm model name")
        name = config["timm_name"]
        kwargs = dict(config.get("timm_kwargs", {}))
        for key in ("patch_size", "in_chans", "img_size"):
            kwargs[key] = config[key]
        kwargs["embed_dim"] = config["embed_dim"]
        state = _load_safetensors(folder / WEIGHTS_FILE)
        normalization = normalization or config.get("normalization")
    else:
        name = str(spec)
        if not timm.is_model(name):
            hint = " (a path that does not exist?)" if any(ch in name for ch in "/\\.") else ""
            raise InputError(f"{name!r} is neither a checkpoint folder nor a timm model name{hint}")
        kwargs = {}
        if weights is not None:
            state = _load_weights_file(Path(weights))
    kwargs.update(overrides)
    kwargs.update(num_classes=0, dynamic_img_size=True)
    try:
        model = timm.create_model(name, pretrained=False, **kwargs)
    except TypeError as exc:
        raise InputError(f"cannot build {name} with {kwargs}: {exc}") from exc
    if not isinstance(model, VisionTransformer):
        raise InputError(f"{name} is a {type(model).__name__}; lcd-embed needs a timm VisionTransformer")
    if state is not None:
        _load_state(model, state, source=str(weights or folder / WEIGHTS_FILE), strict_shapes=folder.is_dir())
    model.eval().to(device)
    config = model_config(model, name, normalization=normalization, extra=kwargs)
    return model, config


def model_config(
    model: torch.nn.Module, timm_name: str, *, normalization: dict | None = None, extra: dict | None = None
) -> dict[str, Any]:
    """The checkpoint config of a timm ViT: architecture read from the module itself (so it is always right)."""
    model = unwrap(model)
    patch = model.patch_embed.patch_size
    img = model.patch_embed.img_size
    in_chans = int(model.patch_embed.proj.in_channels)
    blocks = model.blocks
    attn = blocks[0].attn
    timm_kwargs: dict[str, Any] = {
        "depth": len(blocks),
        "num_heads": int(attn.num_heads),
        "mlp_ratio": blocks[0].mlp.fc1.out_features / model.embed_dim,
        "qkv_bias": attn.qkv.bias is not None,
        "class_token": model.cls_token is not None,
        "reg_tokens": int(getattr(model, "num_reg_tokens", 0)),
        "no_embed_class": bool(getattr(model, "no_embed_class", False)),
    }
    for k, v in (extra or {}).items():
        if k in _TOP_LEVEL or k in _TRAINING_ONLY or k in ("num_classes", "dynamic_img_size"):
            continue
        if isinstance(v, (bool, int, float, str, type(None))) or (isinstance(v, (list, tuple))):
            timm_kwargs.setdefault(k, list(v) if isinstance(v, tuple) else v)
    if normalization is None:
        cfg = getattr(model, "pretrained_cfg", {}) or {}
        normalization = default_normalization(in_chans, cfg.get("mean", (0.5,)), cfg.get("std", (0.5,)))
    return {
        "timm_name": timm_name,
        "patch_size": int(patch[0]),
        "in_chans": in_chans,
        "img_size": int(img[0]),
        "embed_dim": int(model.embed_dim),
        "normalization": dict(normalization),
        "timm_kwargs": timm_kwargs,
    }


def save_checkpoint(model: torch.nn.Module, folder: str | os.PathLike, config: dict[str, Any]) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``folder`` atomically (temp file + rename each).

    The weights are written first and the config last, so a folder with a config always has complete
    weights. ``config`` is completed from the model (architecture fields always match the weights);
    ``timm_name`` and ``normalization`` are taken from it. DDP/``torch.compile`` wrappers are unwrapped.
    """
    from safetensors.torch import save_file

    if "timm_name" not in config:
        raise InputError("checkpoint config needs 'timm_name'")
    model = unwrap(model)
    full = model_config(model, config["timm_name"], normalization=config.get("normalization"))
    full["timm_kwargs"] = {**config.get("timm_kwargs", {}), **full["timm_kwargs"]}
    for k, v in config.items():
        full.setdefault(k, v)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    atomic_write(folder / WEIGHTS_FILE, lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
    text = json.dumps(full, indent=2, sort_keys=True)
    atomic_write(folder / CONFIG_FILE, lambda tmp: Path(tmp).write_text(text))
    return folder


def read_config(folder: str | os.PathLike) -> dict[str, Any]:
    """Read and check a checkpoint folder's ``config.json``."""
    folder = Path(folder)
    cfg_path = folder / CONFIG_FILE
    if not cfg_path.is_file():
        raise InputError(f"checkpoint folder {folder} has no {CONFIG_FILE}")
    if not (folder / WEIGHTS_FILE).is_file():
        raise InputError(f"checkpoint folder {folder} has no {WEIGHTS_FILE}")
    try:
        config = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{cfg_path}: not valid JSON ({exc})") from exc
    missing = [k for k in _TOP_LEVEL if k not in config]
    if missing:
        raise InputError(f"{cfg_path}: missing keys {missing}")
    return config


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DistributedDataParallel and torch.compile wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.is_file():
        raise FileNotFoundError(f"weights not found: {path}")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise InputError(f"cannot read weights {path}: {exc}") from exc


def _load_weights_file(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"weights not found: {path}")
    if path.suffix == ".safetensors":
        return _load_safetensors(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling refused (not weights-only) or a damaged file
        raise InputError(f"cannot load {path} with torch.load(weights_only=True): {exc}") from exc
    for key in ("teacher", "student", "model", "state_dict", "model_state"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"{path}: not a state dict of tensors")
    return obj


def _load_state(model, state: dict[str, torch.Tensor], *, source: str, strict_shapes: bool) -> None:
    from timm.layers import resample_abs_pos_embed

    clean = {}
    for k, v in state.items():
        for prefix in ("module.", "backbone.", "_orig_mod."):
            if k.startswith(prefix):
                k = k[len(prefix) :]
        if k.startswith(("head.", "fc_norm.")) and k not in model.state_dict():
            continue
        clean[k] = v
    own = model.state_dict()
    if not strict_shapes and "pos_embed" in clean and clean["pos_embed"].shape != own["pos_embed"].shape:
        n_prefix = 0 if getattr(model, "no_embed_class", False) else model.num_prefix_tokens
        clean["pos_embed"] = resample_abs_pos_embed(
            clean["pos_embed"], new_size=model.patch_embed.grid_size, num_prefix_tokens=n_prefix
        )
    missing = [k for k in own if k not in clean]
    unexpected = [k for k in clean if k not in own]
    if missing or unexpected:
        raise InputError(
            f"{source}: weights do not fit the model (missing {missing[:4]}, unexpected {unexpected[:4]}); "
            "check the model name and its options"
        )
    wrong = [(k, tuple(clean[k].shape), tuple(own[k].shape)) for k in own if clean[k].shape != own[k].shape]
    if wrong:
        k, got, want = wrong[0]
        raise InputError(
            f"{source}: tensor {k} has shape {got}, the model needs {want} ({len(wrong)} mismatches)"
        )
    model.load_state_dict(clean, strict=True)
