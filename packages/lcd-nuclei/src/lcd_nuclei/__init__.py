"""lcd-nuclei: label-free nuclei counting and confluency from brightfield planes and ViT attention.

Nuclei are counted by a classical counter (band-pass at the nucleus scale, a floor in units of the
image's own noise, Otsu, marker watershed) on a channel made from the field's focal planes (grey,
defocus contrast, or the transport-of-intensity phase), inside the cell area a self-supervised ViT
discovers (FOUND-style background seed, refined with an own Fast Bilateral Solver); the ViT's
patch-level k-means nuclei step of 0.2.0 is an option. A few fields with a nuclear stain can
choose the counter's settings (``calibrate_counter``), stored beside the checkpoint. Evaluated
against instance masks or a nuclear stain. Fields become model input through lcd-embed's one
recipe (``lcd_embed.model_input``) with the checkpoint's recorded preprocessing. Bad input is an
``lcd_core.InputError``. ``import lcd_nuclei`` is light: torch is imported only by the discovery
functions.
"""

from __future__ import annotations

from lcd_core import lazy_exports

__version__ = "0.4.0"

_EXPORTS = {
    "BilateralGrid": "bilateral",
    "bilateral_solve": "bilateral",
    "segment_instances": "instances",
    "instance_stats": "instances",
    "drop_large_objects": "instances",
    "split_touching": "instances",
    "split_at_extrema": "instances",
    "class_prior_filter": "priors",
    "axis_ratio_filter": "priors",
    "resolve_polarity": "classical",
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
    "classical_field": "field",
    "count_nuclei": "count",
    "calibrate_nuclei": "count",
    "write_labels": "count",
    "write_overlay": "count",
    "classical_nuclei": "classical",
    "blob_response": "classical",
    "split_blobs": "classical",
    "estimate_noise": "noise",
    "nucleus_channel": "channels",
    "channel_noise": "channels",
    "tie_phase": "tie",
    "poisson_solve": "tie",
    "intensity_derivative": "tie",
    "laplacian_eigenvalues": "tie",
    "defocus_contrast": "defocus",
    "default_defocus": "defocus",
    "cell_area": "cellarea",
    "nuclei_from_stain": "stain",
    "stain_threshold": "stain",
    "estimate_diameter": "stain",
    "calibrate_counter": "calibrate",
    "candidate_grid": "calibrate",
    "choose_candidate": "calibrate",
    "leave_one_out_choice": "calibrate",
    "calibration_curve": "calibrate",
    "write_calibration": "calibrate",
    "read_calibration": "calibrate",
}

_lazy_getattr, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())


def __getattr__(name: str):
    if (
        name == "inhibition"
    ):  # deprecated in 0.3.0 (not in __all__): warns and forwards to lcd_metrics.inhibition
        from ._deprecated import inhibition

        return inhibition
    return _lazy_getattr(name)
