"""lcd-embed: plate images to ViT tile embeddings in AnnData.

Manifests, image reading, preprocessing and tiling, checkpoints, ViT attention and keys, embedding
(single process or under torchrun). Heavy work happens inside functions; ``import lcd_embed`` does
not import torch until a model function is used.
"""

from __future__ import annotations

from importlib import import_module

__version__ = "0.1.0"

# public name -> module; loaded lazily so `import lcd_embed` (and `lcd --help`) stays fast
_EXPORTS = {
    "InputError": "errors",
    "ImageReadError": "errors",
    "read_manifest": "manifest",
    "validate_manifest": "manifest",
    "plane_paths": "manifest",
    "manifest_from_opera": "manifest",
    "manifest_from_pattern": "manifest",
    "write_table": "manifest",
    "well_name": "manifest",
    "read_field": "read",
    "normalize_intensity": "preprocess",
    "downscale": "preprocess",
    "tile_image": "preprocess",
    "match_channels": "preprocess",
    "load_backbone": "checkpoint",
    "save_checkpoint": "checkpoint",
    "read_config": "checkpoint",
    "model_config": "checkpoint",
    "attention_and_keys": "attention",
    "field_attention_maps": "attention_maps",
    "count_planes": "read",
    "preprocess_field": "preprocess",
    "control_stats": "controls",
    "select_controls": "controls",
    "Preprocessing": "dataset",
    "embed": "embedding",
    "tile_features": "embedding",
    "write_adata": "output",
    "read_adata": "output",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lcd_embed' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
