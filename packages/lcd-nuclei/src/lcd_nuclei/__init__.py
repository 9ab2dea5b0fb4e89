"""lcd-nuclei: unsupervised nuclei counting and confluency from ViT attention.

Object discovery from a self-supervised ViT's attention and keys (FOUND-style background seed),
refined with an own Fast Bilateral Solver, split into instances by watershed, and evaluated
against instance masks or a nuclear stain. ``import lcd_nuclei`` is light: torch is imported only
by the discovery functions.
"""

from __future__ import annotations

from importlib import import_module

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

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name == "inhibition":  # deprecated in 0.3.0: warns and forwards to lcd_metrics.inhibition
        from ._deprecated import inhibition

        return inhibition
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lcd_nuclei' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
