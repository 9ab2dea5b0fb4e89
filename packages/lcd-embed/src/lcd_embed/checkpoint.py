"""Backbone checkpoints: a folder with ``model.safetensors`` + ``config.json``, or a timm name + local weights.

Nothing is downloaded (``pretrained=False`` always) and no pickle is executed: weights load with
safetensors or ``torch.load(weights_only=True)``. A file or folder that cannot be used is a
:class:`lcd_core.CheckpointError` of one line: ``<path> is not an lcd checkpoint: <reason>``.

The config records the model-input recipe (``preprocessing``, see :mod:`lcd_embed.recipe`); a loaded
model also carries it as timm's ``pretrained_cfg`` (input size, mean, std, channels), so
``timm.data.resolve_data_config({}, model=model)`` describes the input it expects.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lcd_core import CheckpointError, InputError, atomic_write, describe_exception, read_json, write_json

from .device import resolve_device
from .recipe import InputConfig, recorded_preprocessing, resolve_input_config

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
# Architecture keys a checkpoint config has at top level; everything in "timm_kwargs" goes to timm.create_model.
_ARCHITECTURE = ("timm_name", "patch_size", "in_chans", "img_size", "embed_dim")
# Keys model_config writes itself; other keys of a given config (provenance such as "lcd_ssl") are kept.
_OWN = (*_ARCHITECTURE, "preprocessing", "normalization", "timm_kwargs")
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")  # torch names the refused class or function this way


def not_a_checkpoint(path: str | os.PathLike, reason: str) -> CheckpointError:
    """The one form of checkpoint errors: ``<path> is not an lcd checkpoint: <reason>``.

    Parameters
    ----------
    path
        The file or folder.
    reason
        One line saying why.
    """
    return CheckpointError(f"{path} is not an lcd checkpoint: {reason}")


def load_torch_file(path: str | os.PathLike) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with one-line errors.

    Parameters
    ----------
    path
        A file written by ``torch.save``.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    lcd_core.CheckpointError
        A truncated or damaged file, or a pickle holding Python objects (code) that
        ``weights_only=True`` refuses to run; torch's multi-line explanation is reduced to the object's name.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _GLOBAL.search(str(exc))
        if found:
            raise not_a_checkpoint(
                path,
                f"it holds a Python object ({found.group(1)}) that torch.load(weights_only=True) refuses to "
                "unpickle; only tensors, numbers, strings and containers are loaded",
            ) from None
        raise not_a_checkpoint(path, "not a file written by torch.save (or a damaged one)") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        # torch appends several sentences of advice to its first one; the first says what is wrong
        cause = describe_exception(exc).split(". ")[0].rstrip(".")
        raise not_a_checkpoint(path, f"truncated or damaged ({cause})") from None
    except Exception as exc:  # other bytes (a text file) read as pickle opcodes fail in arbitrary ways
        raise not_a_checkpoint(
            path, f"not a file written by torch.save ({describe_exception(exc)})"
        ) from None


def load_backbone(
    spec: str | os.PathLike,
    *,
    weights: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
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
        Where the model goes (``"auto"``: CUDA when available, see :func:`lcd_embed.resolve_device`);
        it is returned in eval mode.
    **overrides
        timm keyword arguments (``in_chans=1``, ``img_size=64``, ``depth=2``, ``embed_dim=64``,
        ``num_heads=2``, ``drop_path_rate=0.1``...), and ``preprocessing={...}`` (or an
        :class:`lcd_embed.InputConfig`) to record the model-input recipe this model expects. For a
        folder they override its config.

    Returns
    -------
    model : timm.models.vision_transformer.VisionTransformer
        With ``pretrained_cfg`` describing its input (size, mean, std, channels).
    config : dict
        ``timm_name, patch_size, in_chans, img_size, embed_dim, preprocessing, timm_kwargs`` (what is
        needed to rebuild the architecture and its input) and any provenance of the stored config
        (``lcd_ssl``); what :func:`save_checkpoint` writes.
    """
    import timm
    from timm.models.vision_transformer import VisionTransformer

    folder = Path(spec)
    preprocessing = overrides.pop("preprocessing", None)
    if "normalization" in overrides:  # lcd-embed 0.1 keyword: the intensity part of the recipe
        preprocessing = recorded_preprocessing({"normalization": overrides.pop("normalization")})
    state, stored = None, {}
    if folder.is_dir():
        stored = read_config(folder)
        if weights is not None:
            raise InputError(f"{folder} is a checkpoint folder; pass weights only with a timm model name")
        name = stored["timm_name"]
        kwargs = dict(stored.get("timm_kwargs", {}))
        for key in ("patch_size", "in_chans", "img_size", "embed_dim"):
            kwargs[key] = stored[key]
        state = _load_safetensors(folder / WEIGHTS_FILE, folder)
        given = preprocessing.checkpoint_block() if isinstance(preprocessing, InputConfig) else preprocessing
        preprocessing = {
            **recorded_preprocessing(stored),
            **{k: v for k, v in (given or {}).items() if v is not None},
        }
    elif folder.is_file():
        raise not_a_checkpoint(
            folder, "a file; pass the checkpoint folder, or a timm model name with weights=<this file>"
        )
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
    config = model_config(model, name, preprocessing=preprocessing, extra=kwargs)
    for key, value in stored.items():  # provenance (e.g. lcd_ssl) travels with the config
        if key not in _OWN:
            config.setdefault(key, value)
    set_pretrained_cfg(model, config)
    model.eval().to(resolve_device(device))
    return model, config


def model_config(
    model: torch.nn.Module,
    timm_name: str,
    *,
    preprocessing: Mapping[str, Any] | InputConfig | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The checkpoint config of a timm ViT: architecture read from the module itself (so it is always right).

    Parameters
    ----------
    model
        A timm VisionTransformer (DDP / ``torch.compile`` wrappers are unwrapped).
    timm_name
        The timm model name it was built from.
    preprocessing
        The model-input recipe (an :class:`lcd_embed.InputConfig` or its ``preprocessing`` block);
        ``None``: the defaults with the model's timm ``pretrained_cfg`` mean/std.
    extra
        timm keyword arguments the model was built with; architecture options among them are kept
        in ``timm_kwargs`` (training-only options such as drop rates are not).
    """
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
        if k in _OWN or k in _TRAINING_ONLY or k in ("num_classes", "dynamic_img_size"):
            continue
        if isinstance(v, bool | int | float | str | type(None)) or isinstance(v, list | tuple):
            timm_kwargs.setdefault(k, list(v) if isinstance(v, tuple) else v)
    return {
        "timm_name": timm_name,
        "patch_size": int(patch[0]),
        "in_chans": in_chans,
        "img_size": int(img[0]),
        "embed_dim": int(model.embed_dim),
        "preprocessing": _recipe_for(model, in_chans, preprocessing).checkpoint_block(),
        "timm_kwargs": timm_kwargs,
    }


def _recipe_for(model, in_chans: int, preprocessing) -> InputConfig:
    """The recipe of a model: the given one (its in_chans must be the model's), else timm's mean/std."""
    if isinstance(preprocessing, InputConfig):
        preprocessing = preprocessing.checkpoint_block()
    values = {k: v for k, v in dict(preprocessing or {}).items() if v is not None}
    if values.get("in_chans") is not None and int(values["in_chans"]) != in_chans:
        raise InputError(
            f"preprocessing.in_chans {values['in_chans']} differs from the model's {in_chans} input channels"
        )
    values["in_chans"] = in_chans
    if preprocessing is None:
        cfg = getattr(model, "pretrained_cfg", {}) or {}
        for key in ("mean", "std"):
            v = [float(x) for x in cfg.get(key, (0.5,))]
            values[key] = v if len(v) == in_chans else [sum(v) / len(v)]
    return resolve_input_config(None, **values)


def set_pretrained_cfg(model: torch.nn.Module, config: Mapping[str, Any]) -> None:
    """Describe the model's input in timm's ``pretrained_cfg`` (no ImageNet tag, no hub id, no classes).

    ``timm.data.resolve_data_config({}, model=model)`` then gives ``input_size`` (in_chans, img_size,
    img_size) and the recipe's per-channel ``mean``/``std`` (applied to intensities normalized to [0, 1]).

    Parameters
    ----------
    model
        The backbone (unwrapped here).
    config
        Its checkpoint config (:func:`model_config`).
    """
    vit = unwrap(model)
    recipe = config["preprocessing"]
    size = int(config["img_size"])
    cfg = {
        "architecture": config["timm_name"],
        "tag": None,
        "hf_hub_id": None,
        "url": None,
        "source": "lcd",
        "num_classes": 0,
        "input_size": (int(config["in_chans"]), size, size),
        "mean": tuple(float(v) for v in recipe["mean"]),
        "std": tuple(float(v) for v in recipe["std"]),
        "interpolation": "bilinear",
        "crop_pct": 1.0,
        "crop_mode": "center",
        "first_conv": "patch_embed.proj",
        "classifier": "head",
    }
    vit.pretrained_cfg = cfg
    vit.default_cfg = cfg


def save_checkpoint(model: torch.nn.Module, folder: str | os.PathLike, config: Mapping[str, Any]) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``folder``, each atomically.

    The weights are written first and the config last, so a folder with a config always has complete
    weights. ``config`` is completed from the model (architecture fields always match the weights);
    ``timm_name``, ``preprocessing`` (or an lcd-embed 0.1 ``normalization``), ``timm_kwargs`` and any
    provenance keys are taken from it. DDP/``torch.compile`` wrappers are unwrapped.

    Parameters
    ----------
    model
        The backbone.
    folder
        The checkpoint folder (created when missing; other files in it are left alone).
    config
        At least ``timm_name``; usually :func:`load_backbone`'s config.
    """
    from safetensors.torch import save_file

    if "timm_name" not in config:
        raise InputError("checkpoint config needs 'timm_name'")
    model = unwrap(model)
    preprocessing = config.get("preprocessing")
    if preprocessing is None and config.get("normalization") is not None:
        preprocessing = recorded_preprocessing({"normalization": config["normalization"]})
    full = model_config(model, config["timm_name"], preprocessing=preprocessing)
    full["timm_kwargs"] = {**config.get("timm_kwargs", {}), **full["timm_kwargs"]}
    for k, v in config.items():
        if k not in _OWN:
            full.setdefault(k, v)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    atomic_write(folder / WEIGHTS_FILE, lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}))
    write_json(full, folder / CONFIG_FILE)
    return folder


def read_config(folder: str | os.PathLike) -> dict[str, Any]:
    """Read and check a checkpoint folder's ``config.json``.

    Parameters
    ----------
    folder
        The checkpoint folder.

    Raises
    ------
    lcd_core.CheckpointError
        No config or weights file, invalid JSON, or missing architecture keys.
    """
    folder = Path(folder)
    cfg_path = folder / CONFIG_FILE
    if not folder.is_dir():
        raise not_a_checkpoint(folder, "not a folder (a checkpoint is a folder with config.json)")
    if not cfg_path.is_file():
        raise not_a_checkpoint(folder, f"no {CONFIG_FILE}")
    if not (folder / WEIGHTS_FILE).is_file():
        raise not_a_checkpoint(folder, f"no {WEIGHTS_FILE}")
    try:
        config = read_json(cfg_path, what="checkpoint config")
    except InputError as exc:
        raise not_a_checkpoint(folder, f"{CONFIG_FILE} is not valid JSON") from exc
    if not isinstance(config, dict):
        raise not_a_checkpoint(folder, f"{CONFIG_FILE} is not a JSON object")
    missing = [k for k in _ARCHITECTURE if k not in config]
    if "preprocessing" not in config and "normalization" not in config:
        missing.append("preprocessing")
    if missing:
        raise not_a_checkpoint(folder, f"{CONFIG_FILE} lacks {', '.join(missing)}")
    for key in ("patch_size", "in_chans", "img_size", "embed_dim"):
        value = config[key]
        values = value if key == "img_size" and isinstance(value, list) else [value]
        if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
            raise not_a_checkpoint(folder, f"{CONFIG_FILE}: {key} must be a positive integer, got {value!r}")
    if not isinstance(config["timm_name"], str):
        raise not_a_checkpoint(
            folder, f"{CONFIG_FILE}: timm_name must be a string, got {config['timm_name']!r}"
        )
    return config


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DistributedDataParallel and torch.compile wrappers.

    Parameters
    ----------
    model
        A module, possibly wrapped.
    """
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def _load_safetensors(path: Path, checkpoint: Path | None = None) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.is_file():
        raise FileNotFoundError(f"weights not found: {path}")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for damaged files
        where = checkpoint if checkpoint is not None else path
        what = f"{path.name} is truncated or damaged" if checkpoint is not None else "truncated or damaged"
        raise not_a_checkpoint(where, f"{what} ({describe_exception(exc)})") from None


def _load_weights_file(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"weights not found: {path}")
    if path.suffix == ".safetensors":
        return _load_safetensors(path)
    obj = load_torch_file(path)
    for key in ("teacher", "student", "model", "state_dict", "model_state"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise not_a_checkpoint(path, "not a state dict of tensors")
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
