"""lcd-embed: plate images to ViT tile embeddings in AnnData.

Manifests, image reading, the model-input recipe (one function, :func:`model_input`, for every
consumer of a checkpoint), checkpoints, ViT attention and keys, embedding (single process or under
torchrun). Heavy work happens inside functions; ``import lcd_embed`` does not import torch until a
model function is used.
"""

from __future__ import annotations

from lcd_core import CheckpointError as CheckpointError
from lcd_core import ImageReadError as ImageReadError
from lcd_core import InputError as InputError
from lcd_core import lazy_exports

__version__ = "0.3.0"

# public name -> module; loaded lazily so `import lcd_embed` (and `lcd --help`) stays fast
_EXPORTS = {
    # manifests and images
    "read_manifest": "manifest",
    "validate_manifest": "manifest",
    "plane_paths": "manifest",
    "manifest_from_opera": "manifest",
    "manifest_from_pattern": "manifest",
    "well_name": "manifest",
    "opera_files": "opera",
    "read_index": "opera",
    "find_exports": "opera",
    "read_field": "read",
    "count_planes": "read",
    # the model-input recipe and its kernels
    "InputConfig": "recipe",
    "resolve_input_config": "recipe",
    "field_input": "recipe",
    "model_input": "recipe",
    "normalize_intensity": "preprocess",
    "downscale": "preprocess",
    "tile_image": "preprocess",
    "match_channels": "preprocess",
    "control_stats": "controls",
    # models
    "resolve_device": "device",
    "load_backbone": "checkpoint",
    "save_checkpoint": "checkpoint",
    "read_config": "checkpoint",
    "model_config": "checkpoint",
    "load_torch_file": "checkpoint",
    "attention_and_keys": "attention",
    "tile_attention": "attention",
    "stitch_tiles": "attention",
    "field_attention_maps": "attention_maps",
    # embeddings and tables
    "embed": "embedding",
    "tile_features": "embedding",
    "from_table": "table",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())
# the error types are lcd-core's (one hierarchy for every package), re-exported for convenience
__all__ = sorted([*__all__, "CheckpointError", "ImageReadError", "InputError"])
