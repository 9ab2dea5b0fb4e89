"""lcd-moa: per-condition linear MoA probes aggregated across doses and timepoints.

Public API
----------
cross_validate
    Grouped, MoA-stratified cross-validation of per-condition probes and their aggregation.
MoASpec, ProbeSpec
    What the data columns mean, and the probe options (each default declared once).
fit_moa, predict_moa, MoAModel
    Holdout mode: fit on one compound set, save/load without pickle, predict another set.
MoAResult
    Tables, confusion matrix, polypharmacology, files and figures of a run.
compare_predictions, mcnemar_exact, McNemarResult
    Paired comparison of two methods (McNemar's exact test).
assign_folds
    The compound → fold assignment reused across conditions and methods.
top_moas
    Polypharmacology table (top-k MoAs per compound × condition).
classification_metrics, confusion_table
    Compound-level metrics.

Profiles are read with :func:`lcd_core.load_profiles` (AnnData, ``.h5ad`` or a pycytominer table).
Names load on first use, so ``import lcd_moa`` stays cheap.
"""

from lcd_core import lazy_exports

__version__ = "0.3.0"

_EXPORTS = {
    "cross_validate": "cv",
    "MoASpec": "spec",
    "ProbeSpec": "spec",
    "fit_moa": "holdout",
    "predict_moa": "holdout",
    "MoAModel": "model",
    "MoAResult": "result",
    "compare_predictions": "compare",
    "mcnemar_exact": "compare",
    "McNemarResult": "compare",
    "assign_folds": "folds",
    "top_moas": "polypharm",
    "classification_metrics": "classification",
    "confusion_table": "classification",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())
