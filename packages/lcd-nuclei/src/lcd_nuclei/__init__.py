"""lcd-nuclei: unsupervised nuclei counting and confluency from ViT attention.

Object discovery from a self-supervised ViT's attention and keys (FOUND-style background seed),
refined with an own Fast Bilateral Solver, split into instances by watershed, and evaluated
against instance masks or a nuclear stain. Fields become model input through lcd-embed's one
recipe (``lcd_embed.model_input``) with the checkpoint's recorded preprocessing. Bad input is an
``lcd_core.InputError``. ``import lcd_nuclei`` is light: torch is imported only by the discovery
functions.
"""

from __future__ import annotations

from lcd_core import lazy_exports

__version__ = "0.3.0"

_EXPORTS = {
    "BilateralGrid": "bilateral",
    "bilateral_solve": "bilateral",
    "segment_instances": "instances",
    "instance_stats": "instances",
    "drop_large_objects": "instances",
    "foreground_iou": "evaluate",
    "count_agreement": "evaluate",
    "instance_f1": "evaluate",
    "reference_from_stain": "evaluate",
    "evaluate_fields": "evaluate",
    "head_weights": "discovery",
    "background_from_seed": "discovery",
    "seed_features": "discovery",
    "field_prototype": "discovery",
    "nucleus_patches": "discovery",
    "DiscoveryParams": "field",
    "discover_field": "field",
    "count_nuclei": "count",
    "write_labels": "count",
    "write_overlay": "count",
}

_lazy_getattr, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())


def __getattr__(name: str):
    if (
        name == "inhibition"
    ):  # deprecated in 0.3.0 (not in __all__): warns and forwards to lcd_metrics.inhibition
        from ._deprecated import inhibition

        return inhibition
    return _lazy_getattr(name)
