"""lcd-norm: aggregation, MAD robustize, Harmony, fastMNN and MAD + Harmony/FOV on AnnData.

Every function takes an AnnData (features in ``X``, a layer or an ``obsm`` entry) and the metadata
column names as parameters (docs/data-model.md). Tables in pycytominer layout load with
:func:`read_profiles`. Importing the package loads numpy, pandas and anndata only; scikit-learn,
harmonypy, typer, rich and matplotlib are imported inside the functions that use them.
"""

from lcd_norm._errors import InputError
from lcd_norm.aggregate import aggregate
from lcd_norm.compare import METHODS, OBSM_KEYS, compare
from lcd_norm.evaluate import evaluate
from lcd_norm.fastmnn import fastmnn
from lcd_norm.harmony import harmony
from lcd_norm.io import read_profiles, write_h5ad, write_table
from lcd_norm.mad import mad_robustize
from lcd_norm.mad_harmony_fov import mad_harmony_fov
from lcd_norm.plot import plot_compare

__version__ = "0.1.0"

__all__ = [
    "METHODS",
    "OBSM_KEYS",
    "InputError",
    "aggregate",
    "compare",
    "evaluate",
    "fastmnn",
    "harmony",
    "mad_harmony_fov",
    "mad_robustize",
    "plot_compare",
    "read_profiles",
    "write_h5ad",
    "write_table",
]
