"""lcd-metrics: mAP, mAP effect size (mAP-ES) and the cell-count activity baseline for image-based profiles.

Loading, controls, errors and outputs come from lcd-core: ``lcd_metrics.InputError`` is
:class:`lcd_core.InputError`. Importing the package loads numpy, pandas, anndata and scipy;
matplotlib only when a figure is drawn.
"""

# Eager imports: every module needs only numpy, pandas, anndata and scipy, so lazy exports would save
# little, and several modules share their function's name (map_es, inhibition).
from lcd_core import InputError

from .cell_count import cell_count_activity
from .es_report import map_es_design
from .inhibition import inhibition
from .map_es import map_es
from .mean_ap import average_precision, mean_average_precision
from .plotting import plot_ap_distributions, plot_sensitivity
from .power import design_power
from .sensitivity import sensitivity

__version__ = "0.3.0"

__all__ = [
    "InputError",
    "average_precision",
    "cell_count_activity",
    "design_power",
    "inhibition",
    "map_es",
    "map_es_design",
    "mean_average_precision",
    "plot_ap_distributions",
    "plot_sensitivity",
    "sensitivity",
]
