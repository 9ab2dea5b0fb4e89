"""lcd-metrics: mAP, mAP effect size (mAP-ES) and the cell-count activity baseline for image-based profiles."""

from .cell_count import cell_count_activity, inhibition
from .errors import InputError
from .io import load_profiles, read_table, write_table
from .map_es import map_es, sensitivity
from .mean_ap import average_precision, mean_average_precision

__version__ = "0.1.0"

__all__ = [
    "InputError",
    "average_precision",
    "cell_count_activity",
    "inhibition",
    "load_profiles",
    "map_es",
    "mean_average_precision",
    "read_table",
    "sensitivity",
    "write_table",
]
