"""Run configuration (``lcd run CONFIG.yaml``), the two presets, and the checks run before any stage.

A config is a plain mapping; every section is optional except one input. Example::

    results: results/            # one folder for every stage's output (relative to the YAML file)
    input:                       # exactly one of:
      simulate: {preset: demo, seed: 0}
      # manifest: plate/manifest.csv
      # opera: {image_dirs: [export/P1_t1, export/P1_t2], plate_map: platemap.csv}
      # embeddings: tiles.h5ad   # start from embeddings (no images, no training)
    preset: paper                # or quick; needed when no checkpoint is given and images are the input
    checkpoint: null             # a backbone folder (lcd-embed layout): skip training
    control: "compound == 'DMSO'"
    seed: 0
    threads: null                # torch CPU threads; null: torch's own choice
    ssl: {epochs: 60}            # any lcd_ssl.TrainConfig field, plus steps (a step budget)
    embed: {batch_size: 64}      # lcd_embed.embed options; preprocessing: {...} overrides the recipe
    norm: {methods: [none, mad, harmony, fastmnn, mad_harmony_fov], use: mad_harmony_fov}
    metrics: {n_draws: 1000, threshold: 0.8}
    moa: {n_folds: 5}
    attention: {n_fields: 2}
    nuclei: {fields_per_well: null}  # null: every field is counted; other keys: lcd_nuclei.DiscoveryParams

Every key of every section is checked against the function (or dataclass) it feeds before any stage
runs (:func:`validate`): a typo or a wrong type is one line naming ``section.key``.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lcd_core import ConfigError

INPUT_KINDS = ("simulate", "manifest", "opera", "embeddings")

#: The tiny ViT and short schedule of the demo (lcd-ssl's laptop-minute configuration, 96-px fields)
#: with lcd-ssl's tiny-run recipe for sparse fields (its README, "Limits"): a 64-px window at full
#: resolution, content-aware crops, lr 2e-4, a sharper teacher (0.02) and a slower center (0.97).
#: With DINO's long-run settings (lr 1e-3, teacher 0.04, center 0.9) the 60 steps collapsed
#: (teacher entropy ≈ ln(out_dim)).
QUICK_SSL: dict[str, Any] = {
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
}
DEMO_SSL = QUICK_SSL  # the name used before presets existed

#: The LCD paper's model, schedule and design: ViT-S/16 trained with plane-agnostic crops, DINO,
#: Barlow Twins and cross-batch pairs (``pa+dino+barlow+xb``), 60 epochs of the DINO schedule from a
#: start LR of 1e-3, 3 local crops per source image (6 in all: cross-batch views come from two images);
#: mAP-ES from 1000 draws; 5-fold MoA cross-validation. The other TrainConfig values are DINO's
#: ViT-S/16 defaults (lcd-ssl). Training this takes GPU hours on a real screen.
PAPER: dict[str, Any] = {
    "ssl": {
        "variant": "pa+dino+barlow+xb",
        "model": "vit_small_patch16_224",
        "epochs": 60,
        "lr": 1e-3,
        "n_local_crops": 6,
    },
    "metrics": {"n_draws": 1000},
    "moa": {"n_folds": 5},
}

QUICK: dict[str, Any] = {
    "ssl": QUICK_SSL,
    "metrics": {"n_draws": 200},
    "moa": {"n_folds": 3},
}

PRESETS: dict[str, dict[str, Any]] = {"paper": PAPER, "quick": QUICK}

DEFAULTS: dict[str, Any] = {
    "results": "results",
    "preset": None,
    "checkpoint": None,
    "control": "compound == 'DMSO'",
    "seed": 0,
    "threads": None,
    "ssl": {},
    "embed": {"batch_size": 64, "pooling": "cls"},
    "norm": {
        "methods": ["none", "mad", "harmony", "fastmnn", "mad_harmony_fov"],
        "use": "mad_harmony_fov",
        "null_size": 200,
    },
    "metrics": {"n_draws": 1000, "threshold": 0.8},
    "moa": {"n_folds": 5},
    "attention": {"n_fields": 2},
    "nuclei": {"fields_per_well": None},
}

TOP_LEVEL_TYPES: dict[str, Any] = {
    "results": str,
    "preset": str | None,
    "checkpoint": str | None,
    "control": str,
    "seed": int,
    "threads": int | None,
}

SECTIONS = ("ssl", "embed", "norm", "metrics", "moa", "attention", "nuclei")


def _merge(base: Mapping, extra: Mapping) -> dict:
    out = copy.deepcopy(dict(base))
    for k, v in extra.items():
        out[k] = (
            _merge(out[k], v)
            if isinstance(v, Mapping) and isinstance(out.get(k), Mapping)
            else copy.deepcopy(v)
        )
    return out


def _check_top_level(config: Mapping) -> None:
    from lcd_core import conforms

    unknown = set(config) - set(DEFAULTS) - {"input"}
    if unknown:
        raise ConfigError(f"unknown config key(s): {sorted(unknown)}; known: {sorted([*DEFAULTS, 'input'])}")
    for key, annotation in TOP_LEVEL_TYPES.items():
        if key in config and not conforms(config[key], annotation):
            wanted = str(annotation).replace("<class '", "").replace("'>", "").replace("NoneType", "null")
            raise ConfigError(f"{key}: expected {wanted}, got {type(config[key]).__name__} {config[key]!r}")
    for section in SECTIONS:
        if section in config and config[section] is not None and not isinstance(config[section], Mapping):
            raise ConfigError(
                f"{section}: expected a mapping of options, got {type(config[section]).__name__}"
            )
    if config.get("preset") is not None and config["preset"] not in PRESETS:
        raise ConfigError(f"preset: {config['preset']!r} is not one of {sorted(PRESETS)}")


def resolve(config: dict, base_dir: str | Path = ".") -> dict:
    """Fill the preset and the defaults, check every key, and make paths absolute (relative to ``base_dir``).

    Parameters
    ----------
    config
        The mapping read from YAML (not modified).
    base_dir
        Folder relative paths are resolved against (the YAML file's folder).

    Returns
    -------
    dict
        The resolved config: defaults < preset < the user's values.

    Raises
    ------
    ConfigError
        An unknown or mistyped key in any section, no input or several, or images as input with neither
        ``checkpoint`` nor ``preset``.
    """
    if not isinstance(config, Mapping):
        raise ConfigError("the config must be a mapping (YAML dictionary)")
    _check_top_level(config)
    preset = config.get("preset")
    cfg = _merge(DEFAULTS, PRESETS.get(preset, {}) if preset else {})
    cfg = _merge(cfg, {k: ({} if v is None and k in SECTIONS else v) for k, v in config.items()})
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
                "input.opera needs image_dirs (a list of export folders) and optionally plate_map"
            )
        known = {"image_dirs", "plate_map", "plates", "channel", "hours_offset"}
        unknown = set(opera) - known
        if unknown:
            raise ConfigError(
                f"input.opera.{sorted(unknown)[0]}: unknown option (known: {', '.join(sorted(known))})"
            )
        dirs = opera["image_dirs"]
        opera["image_dirs"] = [absolute(d) for d in ([dirs] if isinstance(dirs, str) else dirs)]
        opera["plate_map"] = absolute(opera.get("plate_map"))
    if "simulate" in inp and not isinstance(inp["simulate"], dict):
        inp["simulate"] = {}
    if "embeddings" not in inp and not cfg["checkpoint"] and not cfg["preset"]:
        raise ConfigError(
            "no checkpoint and no preset: set `checkpoint: <model folder>` to embed with a trained ViT, "
            "`preset: paper` to train the paper's ViT-S/16 (GPU hours), or `preset: quick` to train a tiny "
            "ViT in minutes on a CPU (for trying a config, not for results)"
        )
    validate(cfg)
    return cfg


# ------------------------------------------------------------------------ section checks


def _section_targets() -> dict[str, list[tuple[Callable | type, tuple[str, ...]]]]:
    """The functions/dataclasses each section feeds, with the parameters the pipeline sets itself."""
    from lcd_embed import embed
    from lcd_metrics import map_es
    from lcd_moa import MoASpec, ProbeSpec, cross_validate
    from lcd_nuclei import DiscoveryParams
    from lcd_ssl import TrainConfig

    data_keys = (
        "data",
        "adata",
        "manifest",
        "model",
        "out",
        "use_rep",
        "layer",
        "features",
        "return_samples",
    )
    return {
        "ssl": [(TrainConfig, ())],
        "embed": [(embed, (*data_keys, "progress"))],
        "metrics": [(map_es, (*data_keys, "control", "seed", "progress"))],
        "moa": [
            (cross_validate, (*data_keys, "activity", "spec", "probe", "seed", "progress", "folds")),
            (MoASpec, ("control", "features", "layer", "use_rep")),
            (ProbeSpec, ()),
        ],
        "nuclei": [(DiscoveryParams, ())],
    }


#: Options a section accepts that the pipeline consumes itself (not passed to the package function).
PIPELINE_OPTIONS: dict[str, dict[str, Any]] = {
    "ssl": {"steps": int | None},
    "norm": {"methods": list[str], "use": str, "null_size": int},
    "attention": {"n_fields": int},
    "nuclei": {"fields_per_well": int | None, "use_vit": bool},
}


def validate(cfg: Mapping) -> None:
    """Check every section's keys and value types against what it feeds; one :class:`ConfigError` line.

    Parameters
    ----------
    cfg
        A config after defaults and preset are merged.
    """
    from lcd_core import REP_KEYS, accepted_options, check_options

    targets = _section_targets()
    for section in SECTIONS:
        options = dict(cfg.get(section) or {})
        accepted: dict[str, Any] = {}
        for target, exclude in targets.get(section, []):
            accepted.update(accepted_options(target, exclude=exclude))
        accepted.update(PIPELINE_OPTIONS.get(section, {}))
        check_options(options, _no_options, section=section, extra=accepted)
    _check_values(cfg)
    norm = cfg["norm"]
    unknown = [m for m in norm["methods"] if m not in REP_KEYS]
    if unknown:
        raise ConfigError(f"norm.methods: {unknown[0]!r} is not one of {sorted(REP_KEYS)}")
    if norm["use"] not in norm["methods"]:
        raise ConfigError(f"norm.use {norm['use']!r} is not in norm.methods {norm['methods']}")


def _check_values(cfg: Mapping) -> None:
    """Values the key/type check cannot judge, checked before any stage runs (issue #19).

    The ``ssl`` section is built into lcd-ssl's TrainConfig and validated (an unknown ``model_kwargs``
    key or a crop size that is not a multiple of the patch failed at the train stage, after the
    manifest stage had run); ``embed.preprocessing`` goes through lcd-embed's recipe resolver (an
    unknown sub-key failed at the embed stage); counts and sizes the pipeline consumes itself must be
    positive.
    """
    from lcd_embed import resolve_input_config
    from lcd_ssl import TrainConfig

    def prefixed(section: str, check: Callable[[], object]) -> None:
        try:
            check()
        except ConfigError as exc:
            raise ConfigError(f"{section}.{exc}" if not str(exc).startswith(section) else str(exc)) from None

    ssl = {k: v for k, v in (cfg.get("ssl") or {}).items() if k != "steps"}
    prefixed("ssl", lambda: TrainConfig.from_dict(ssl).validate())
    preprocessing = (cfg.get("embed") or {}).get("preprocessing") or {}
    if not isinstance(preprocessing, Mapping):
        raise ConfigError(f"embed.preprocessing: expected a mapping, got {type(preprocessing).__name__}")
    prefixed("embed", lambda: resolve_input_config(None, **preprocessing))
    simulate = cfg["input"].get("simulate")
    if simulate is not None:
        from lcd_core import check_options

        from .simulate import SimulationConfig, preset_config

        options = check_options(simulate, SimulationConfig, section="input.simulate", extra={"preset": str})
        try:
            preset_config(options.pop("preset", "demo"), **options)
        except ValueError as exc:  # the simulator's own checks (sizes, wells per plate, presets)
            raise ConfigError(f"input.simulate: {exc}") from None
    moa = dict(cfg.get("moa") or {})
    from lcd_moa import MoASpec, ProbeSpec

    spec_keys = {f.name for f in dataclasses.fields(MoASpec)} - {"control"}
    probe_keys = {f.name for f in dataclasses.fields(ProbeSpec)}
    prefixed(
        "moa", lambda: MoASpec.from_dict({k: v for k, v in moa.items() if k in spec_keys}, section="moa")
    )
    prefixed(
        "moa", lambda: ProbeSpec.from_dict({k: v for k, v in moa.items() if k in probe_keys}, section="moa")
    )
    metrics = cfg.get("metrics") or {}
    positive = {
        "seed": (cfg.get("seed"), 0),
        # lcd-metrics' map_es refuses these too, but only once every stage before activity has run
        "metrics.n_draws": (metrics.get("n_draws"), 2),
        "metrics.n_pos": (metrics.get("n_pos"), 1),
        "metrics.n_neg": (metrics.get("n_neg"), 1),
        "moa.n_folds": (moa.get("n_folds"), 2),
        "threads": (cfg.get("threads"), 1),
        "ssl.steps": ((cfg.get("ssl") or {}).get("steps"), 1),
        "norm.null_size": ((cfg.get("norm") or {}).get("null_size"), 1),
        "attention.n_fields": ((cfg.get("attention") or {}).get("n_fields"), 1),
        "nuclei.fields_per_well": ((cfg.get("nuclei") or {}).get("fields_per_well"), 1),
    }
    for key, (value, least) in positive.items():
        if value is not None and value < least:
            raise ConfigError(f"{key}: must be >= {least}, got {value!r}")


def check_inputs(cfg: Mapping) -> None:
    """The files and folders a config names exist (and a checkpoint folder is one), before any stage runs.

    A missing manifest or checkpoint was found only by the stage that reads it, after earlier
    stages had run and the results folder was made.

    Parameters
    ----------
    cfg
        A resolved config (absolute paths).
    """
    from lcd_embed import read_config

    inp = cfg["input"]
    files = {"input.manifest": inp.get("manifest"), "input.embeddings": inp.get("embeddings")}
    if "opera" in inp:
        files["input.opera.plate_map"] = inp["opera"].get("plate_map")
        for folder in inp["opera"]["image_dirs"]:
            if not Path(folder).is_dir():
                raise ConfigError(f"input.opera.image_dirs: {folder} is not a folder")
    for key, path in files.items():
        if path is not None and not Path(path).exists():
            raise ConfigError(f"{key}: {path} not found")
    if cfg.get("checkpoint"):
        if not Path(cfg["checkpoint"]).exists():
            raise ConfigError(f"checkpoint: {cfg['checkpoint']} not found")
        read_config(cfg["checkpoint"])  # "<path> is not an lcd checkpoint: <reason>"
    results = Path(cfg["results"])
    if results.exists() and not results.is_dir():
        raise ConfigError(f"results: {results} is a file, expected a folder")


def _no_options() -> None:
    """A target without options (sections the pipeline reads itself)."""


def load(path: str | Path) -> dict:
    """Read and resolve a YAML config; paths in it are relative to the file's folder.

    Parameters
    ----------
    path
        The YAML file.

    Returns
    -------
    dict
        The resolved config (:func:`resolve`).
    """
    import yaml

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, expected a YAML config file")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{path}: not valid YAML ({first})") from None
    try:
        return resolve(raw, path.parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def demo_config(results: str | Path = "lcd-demo", *, seed: int = 0, **simulate: Any) -> dict:
    """The configuration ``lcd demo`` runs: a simulated plate, the quick preset, every stage.

    Parameters
    ----------
    results
        Results folder.
    seed
        Seed of the simulation, training and resampling.
    simulate
        Overrides of the simulator's demo preset.

    Returns
    -------
    dict
        The resolved config.
    """
    from .simulate import preset_config

    return resolve(
        {
            "results": str(results),
            "seed": seed,
            "preset": "quick",
            "input": {"simulate": {"preset": "demo", "seed": seed, **simulate}},
            "nuclei": demo_nuclei(preset_config("demo", seed=seed, **simulate).cell_radius),
        }
    )


def demo_nuclei(cell_radius: float) -> dict[str, Any]:
    """The demo's nuclei options: the classical counter on the TIE phase of the 3 planes, no ViT.

    Label-free settings (lcd-nuclei README "Quality", simulated plate): the nucleus diameter a user
    knows from the optics (the simulator draws nuclei of radius 0.45 x the cell radius), polarity
    ``auto`` (the simulator's z direction is opposite to the physical one), the counter's floor of 6
    noise SDs; no stain calibration. The 96-px fields are too small for patch-level ViT discovery, so
    the ViT is not used: the cell area and confluency come from the planes' defocus contrast
    (``lcd_nuclei.cell_area``; on held-out simulated fields r 0.94 against the true confluency, the
    ViT's cell area on these fields r 0.15-0.25: lcd-nuclei README "Confluency without a model").

    Parameters
    ----------
    cell_radius
        The simulation's ``cell_radius`` (pixels).
    """
    return {"use_vit": False, "channel": "tie", "polarity": "auto", "diameter": round(0.9 * cell_radius, 3)}
