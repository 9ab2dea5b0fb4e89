"""lcd-norm: aggregation, MAD robustize, Harmony, fastMNN and MAD + Harmony/FOV on AnnData.

Every function takes an AnnData (features in ``X``, a layer or an ``obsm`` entry) and the metadata
column names as parameters (docs/data-model.md); tables in pycytominer layout load with
:func:`lcd_core.load_profiles`, results are written with :func:`lcd_core.write_h5ad`.
``lcd_norm.InputError`` is :class:`lcd_core.InputError`. Importing the package loads numpy, pandas,
anndata and lcd-core only; scikit-learn, harmonypy, lcd-metrics, typer and matplotlib are imported
inside the functions that use them.
"""

# Eager imports: each module needs only numpy, pandas and anndata at import time, and most share their
# function's name (harmony, fastmnn, compare ...).
from lcd_core import InputError

from lcd_norm.aggregate import aggregate
from lcd_norm.aggregate_tiles import aggregate_tiles
from lcd_norm.compare import METHODS, OBSM_KEYS, compare
from lcd_norm.dmso_map import dmso_map, dmso_map_by_condition
from lcd_norm.evaluate import evaluate
from lcd_norm.fastmnn import fastmnn
from lcd_norm.harmony import harmony
from lcd_norm.mad import mad_robustize
from lcd_norm.mad_harmony_fov import mad_harmony_fov
from lcd_norm.plot import plot_compare

__version__ = "0.3.0"

__all__ = [
    "METHODS",
    "OBSM_KEYS",
    "InputError",
    "aggregate",
    "aggregate_tiles",
    "compare",
    "dmso_map",
    "dmso_map_by_condition",
    "evaluate",
    "fastmnn",
    "harmony",
    "mad_harmony_fov",
    "mad_robustize",
    "plot_compare",
]
