"""Export a trained backbone (teacher by default) as an lcd-embed checkpoint folder."""

from __future__ import annotations

import os
from pathlib import Path

from .checkpoint import STATE_FILE, load_state
from .config import TrainConfig
from .model import backbone_kwargs, create_backbone

# architecture keys lcd-embed keeps at the top level of config.json, not in timm_kwargs
_TOP_LEVEL = ("patch_size", "in_chans", "img_size", "embed_dim")


def export_backbone(
    run_dir: str | os.PathLike, out_dir: str | os.PathLike, *, which: str = "teacher"
) -> Path:
    """Write the backbone of a training run as ``model.safetensors`` + ``config.json`` (lcd-embed format).

    Parameters
    ----------
    run_dir
        A run folder written by :func:`lcd_ssl.train` (its ``checkpoint.pt`` is read with
        ``torch.load(weights_only=True)``).
    out_dir
        Checkpoint folder to write (created; files replaced atomically).
    which
        ``"teacher"`` (the EMA network, DINO's recommended one for features) or ``"student"``.

    Returns
    -------
    pathlib.Path
        ``out_dir``, loadable with ``lcd_embed.load_backbone(out_dir)``. The DINO head is not exported.
        ``config.json`` records the preprocessing used in training (``normalization``) and, under
        ``lcd_ssl``, the run's variant, step and options.
    """
    import lcd_embed

    if which not in ("teacher", "student"):
        raise ValueError(f"which must be 'teacher' or 'student', got {which!r}")
    run_dir = Path(run_dir)
    path = run_dir / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no training checkpoint in {run_dir} (expected {path})")
    state = load_state(path)
    config = TrainConfig.from_dict(state["config"])
    in_chans = int(state["in_chans"])
    kwargs = backbone_kwargs(config, in_chans)
    backbone = create_backbone(config.model, kwargs, drop_path_rate=0.0)
    weights = {k.removeprefix("backbone."): v for k, v in state[which].items() if k.startswith("backbone.")}
    backbone.load_state_dict(weights, strict=True)

    from .trainer import channel_values

    norm = dict(config.normalization)
    norm.setdefault("method", "percentile")
    norm["mean"] = channel_values(norm.get("mean", 0.0), in_chans, "mean")
    norm["std"] = channel_values(norm.get("std", 1.0), in_chans, "std")
    timm_kwargs = {k: v for k, v in config.model_kwargs.items() if k not in _TOP_LEVEL and "drop" not in k}
    provenance = {
        "variant": config.variant,
        "which": which,
        "step": int(state["step"]),
        "epoch": int(state["epoch"]),
        "planes": config.planes,
        "downscale": config.downscale,
        "plane_agnostic": config.plane_agnostic,
        "replicas": list(state["replica_names"]),
        "run_dir": str(run_dir.resolve()),
    }
    return lcd_embed.save_checkpoint(
        backbone,
        Path(out_dir),
        {"timm_name": config.model, "normalization": norm, "timm_kwargs": timm_kwargs, "lcd_ssl": provenance},
    )
