"""lcd-moa: per-condition linear MoA probes aggregated across doses and timepoints.

Public API
----------
cross_validate
    Grouped, MoA-stratified cross-validation of per-condition probes and their aggregation.
fit_moa, predict_moa, MoAModel
    Holdout mode: fit on one compound set, save/load without pickle, predict another set.
compare_predictions, mcnemar_exact
    Paired comparison of two methods (McNemar's exact test).
assign_folds
    The compound → fold assignment reused across conditions and methods.
top_moas
    Polypharmacology table (top-k MoAs per compound × condition).
classification_metrics, confusion_table
    Compound-level metrics.
read_profiles
    AnnData / pycytominer table loading.
"""

from lcd_moa.compare import compare_predictions
from lcd_moa.cv import cross_validate
from lcd_moa.folds import assign_folds
from lcd_moa.io import read_profiles
from lcd_moa.metrics import McNemarResult, classification_metrics, confusion_table, mcnemar_exact
from lcd_moa.model import MoAModel, fit_moa, predict_moa
from lcd_moa.polypharm import top_moas
from lcd_moa.result import MoAResult

__version__ = "0.1.0"

__all__ = [
    "McNemarResult",
    "MoAModel",
    "MoAResult",
    "assign_folds",
    "classification_metrics",
    "compare_predictions",
    "confusion_table",
    "cross_validate",
    "fit_moa",
    "mcnemar_exact",
    "predict_moa",
    "read_profiles",
    "top_moas",
]
