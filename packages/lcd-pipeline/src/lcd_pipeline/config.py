"""Run configuration (``lcd run CONFIG.yaml``) and the built-in demo configuration (``lcd demo``).

A config is a plain mapping; every section is optional except one input. Example::

    results: results/            # one folder for every stage's output (relative to the YAML file)
    input:                       # exactly one of:
      simulate: {preset: demo, seed: 0}
      # manifest: plate/manifest.csv
      # opera: {image_dirs: [export/P1, export/P2], plate_map: platemap.csv}
      # embeddings: tiles.h5ad   # start from embeddings (no images, no training)
    checkpoint: null             # a backbone folder (lcd-embed layout): skip training
    control: "compound == 'DMSO'"
    ssl: {steps: 60, seed: 0}    # any lcd_ssl.TrainConfig field, plus steps (max_steps)
    embed: {batch_size: 64}
    norm: {methods: [none, mad, harmony, fastmnn, mad_harmony_fov], use: mad_harmony_fov}
    metrics: {n_draws: 200, threshold: 0.8}
    moa: {n_folds: 3}
    attention: {n_fields: 2}
    nuclei: {n_fields: 6}        # fields counted by lcd-nuclei (attention discovery; seconds per field on CPU)
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

INPUT_KINDS = ("simulate", "manifest", "opera", "embeddings")

#: The tiny ViT and short schedule of the demo (lcd-ssl's laptop-minute configuration, 96-px fields)
#: with lcd-ssl's tiny-run recipe for sparse fields (its README, "Limits"): a 64-px window at full
#: resolution, content-aware crops, lr 2e-4, a sharper teacher (0.02) and a slower center (0.97).
#: With DINO's long-run settings (lr 1e-3, teacher 0.04, center 0.9) the 60 steps collapsed
#: (teacher entropy ≈ ln(out_dim)).
DEMO_SSL: dict[str, Any] = {
    "variant": "dino",
    "model": "vit_tiny_patch16_224",
    "model_kwargs": {"depth": 2, "embed_dim": 64, "num_heads": 2, "patch_size": 8},
    "out_dim": 256,
    "hidden_dim": 128,
    "bottleneck_dim": 32,
    "global_crop_size": 48,
    "local_crop_size": 24,
    "n_local_crops": 2,
    "window_size": 64,
    "downscale": 1,
    "crop_min_std": 0.5,
    "lr": 2e-4,
    "teacher_temp": 0.02,
    "warmup_teacher_temp": 0.02,
    "center_momentum": 0.97,
    "batch_size": 16,
    "epochs": 1,
    "steps_per_epoch": 60,
    "warmup_epochs": 0.1,
    "momentum_teacher": 0.99,
    "precision": "fp32",
    "progress": False,
}

DEFAULTS: dict[str, Any] = {
    "results": "results",
    "checkpoint": None,
    "control": "compound == 'DMSO'",
    "seed": 0,
    "ssl": {},
    "embed": {"batch_size": 64, "pooling": "cls"},
    "norm": {
        "methods": ["none", "mad", "harmony", "fastmnn", "mad_harmony_fov"],
        "use": "mad_harmony_fov",
        "null_size": 200,
    },
    "metrics": {"n_draws": 200, "threshold": 0.8},
    "moa": {"n_folds": 3},
    "attention": {"n_fields": 2},
    "nuclei": {"n_fields": 6},
}


class ConfigError(ValueError):
    """An invalid run configuration (the message names the key)."""


def _merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def resolve(config: dict, base_dir: str | Path = ".") -> dict:
    """Fill the defaults, check the input section and make the paths absolute (relative to ``base_dir``)."""
    if not isinstance(config, dict):
        raise ConfigError("the config must be a mapping (YAML dictionary)")
    unknown = set(config) - set(DEFAULTS) - {"input"}
    if unknown:
        raise ConfigError(f"unknown config key(s): {sorted(unknown)}; known: {sorted([*DEFAULTS, 'input'])}")
    cfg = _merge(DEFAULTS, config)
    inp = cfg.get("input")
    if not isinstance(inp, dict) or len(set(inp) & set(INPUT_KINDS)) != 1 or set(inp) - set(INPUT_KINDS):
        raise ConfigError(f"input: give exactly one of {list(INPUT_KINDS)} (got {inp!r})")
    base = Path(base_dir)

    def absolute(p):
        return None if p is None else str((base / p).resolve())

    cfg["results"] = absolute(cfg["results"])
    cfg["checkpoint"] = absolute(cfg["checkpoint"])
    if "manifest" in inp:
        inp["manifest"] = absolute(inp["manifest"])
    if "embeddings" in inp:
        inp["embeddings"] = absolute(inp["embeddings"])
    if "opera" in inp:
        opera = inp["opera"]
        if not isinstance(opera, dict) or "image_dirs" not in opera:
            raise ConfigError(
                "input.opera needs image_dirs (a list of plate folders) and optionally plate_map"
            )
        dirs = opera["image_dirs"]
        opera["image_dirs"] = [absolute(d) for d in ([dirs] if isinstance(dirs, str) else dirs)]
        opera["plate_map"] = absolute(opera.get("plate_map"))
    if "simulate" in inp and not isinstance(inp["simulate"], dict):
        inp["simulate"] = {}
    if cfg["norm"]["use"] not in cfg["norm"]["methods"]:
        raise ConfigError(f"norm.use {cfg['norm']['use']!r} is not in norm.methods {cfg['norm']['methods']}")
    return cfg


def load(path: str | Path) -> dict:
    """Read and resolve a YAML config; paths in it are relative to the file's folder."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    return resolve(raw, path.parent)


def demo_config(results: str | Path = "lcd-demo", *, seed: int = 0, **simulate: Any) -> dict:
    """The configuration ``lcd demo`` runs: a simulated plate, a tiny ViT, every stage."""
    return resolve(
        {
            "results": str(results),
            "seed": seed,
            "input": {"simulate": {"preset": "demo", "seed": seed, **simulate}},
            "ssl": DEMO_SSL,
        }
    )
