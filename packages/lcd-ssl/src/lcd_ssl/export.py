"""Export a trained backbone (teacher by default) as an lcd-embed checkpoint folder, with its recipe."""

from __future__ import annotations

import os
from pathlib import Path

from lcd_core import ConfigError

from .checkpoint import STATE_FILE, load_state
from .config import TrainConfig
from .model import backbone_kwargs, build_student_teacher, create_backbone

#: what :func:`export_backbone` can write: the EMA teacher, the student, or the run's initial weights
WHICH = ("teacher", "student", "init")

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
        ``"teacher"`` (the EMA network, DINO's recommended one for features), ``"student"``, or
        ``"init"``: the run's random initialization (the weights both networks had before step 1:
        same architecture, recipe and seed), the random-init control of an ablation.

    Returns
    -------
    pathlib.Path
        ``out_dir``, loadable with ``lcd_embed.load_backbone(out_dir)``. The DINO head is not exported.
        ``config.json`` records the whole model-input recipe of the run under ``preprocessing``
        (planes, intensity normalization, downscale, in_chans, per-channel mean/std), so
        ``lcd_embed.embed`` makes the input the model was trained on without being told; and, under
        ``lcd_ssl``, the run's variant, step and replicas.
    """
    import lcd_embed

    if which not in WHICH:
        raise ConfigError(f"which must be one of {', '.join(WHICH)}, got {which!r}")
    run_dir = Path(run_dir)
    path = run_dir / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no training checkpoint in {run_dir} (expected {path})")
    state = load_state(path)
    config = TrainConfig.from_dict(state["config"])
    in_chans = int(state["in_chans"])
    kwargs = backbone_kwargs(config, in_chans)
    backbone = create_backbone(config.model, kwargs, drop_path_rate=0.0)
    if which == "init":
        import torch

        # the trainer seeds torch with config.seed right before building the networks (trainer._build)
        torch.manual_seed(config.seed)
        # the student at build time (the teacher, timm's ModelEmaV3, starts as its copy)
        source = build_student_teacher(config, in_chans)[0].state_dict()
    else:
        source = state[which]
    weights = {k.removeprefix("backbone."): v for k, v in source.items() if k.startswith("backbone.")}
    backbone.load_state_dict(weights, strict=True)

    recipe = config.input_config(in_chans)
    timm_kwargs = {k: v for k, v in config.model_kwargs.items() if k not in _TOP_LEVEL and "drop" not in k}
    provenance = {
        "variant": config.variant,
        "which": which,
        "step": 0 if which == "init" else int(state["step"]),
        "epoch": 0 if which == "init" else int(state["epoch"]),
        "plane_agnostic": config.plane_agnostic,
        "blur": config.use_blur,
        "replicas": list(state["replica_names"]),
        "run_dir": str(run_dir.resolve()),
    }
    return lcd_embed.save_checkpoint(
        backbone,
        Path(out_dir),
        {
            "timm_name": config.model,
            "preprocessing": recipe.checkpoint_block(),
            "timm_kwargs": timm_kwargs,
            "lcd_ssl": provenance,
        },
    )
