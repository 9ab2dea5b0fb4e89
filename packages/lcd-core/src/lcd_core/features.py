"""The one rule for which columns of a profile table are features (docs/data-model.md).

In this order:

1. ``features`` given: an explicit list of columns, or a regex matched (``re.search``) against names;
2. else, when any column starts with ``Metadata_``, every other column;
3. else the CellProfiler compartments: columns starting with ``Cells_``, ``Cytoplasm_``, ``Nuclei_``,
   ``Image_``;
4. else an error listing the columns and asking for ``features=``.

Every chosen column must be numeric and not boolean (a boolean is a flag, not a measurement: move it
to a ``Metadata_`` column). Non-finite values are not checked here but where the matrix is used
(:func:`lcd_core.get_rep`), which names the rows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd

from .errors import InputError

FEATURE_PREFIXES = ("Cells_", "Cytoplasm_", "Nuclei_", "Image_")
METADATA_PREFIX = "Metadata_"


def _shown(columns: Sequence[str], limit: int = 12) -> str:
    more = f" ... ({len(columns)} in all)" if len(columns) > limit else ""
    return ", ".join(repr(c) for c in columns[:limit]) + more


def feature_columns(
    frame: pd.DataFrame, features: Sequence[str] | str | None = None, *, source: str = "table"
) -> list[str]:
    """The feature columns of a pycytominer/CellProfiler-layout table, by the data-contract rule.

    Parameters
    ----------
    frame
        One row per profile.
    features
        Explicit feature columns, or a regex selecting them; ``None``: the inference rules.
    source
        Named in error messages (a file path or ``"DataFrame"``).

    Returns
    -------
    list of str
        The chosen columns, in table order (or in the given order for an explicit list).

    Raises
    ------
    InputError
        A header-only table, no matching column, a missing explicit column, or a chosen column that is
        not numeric or is boolean.
    """
    columns = [str(c) for c in frame.columns]
    if len(frame) == 0:
        raise InputError(f"{source}: the table has no rows (header only: {len(columns)} columns)")
    if isinstance(features, str):
        try:
            pattern = re.compile(features)
        except re.error as exc:
            raise InputError(f"{source}: features regex {features!r} is not valid ({exc})") from None
        chosen = [c for c in columns if pattern.search(c)]
        if not chosen:
            raise InputError(
                f"{source}: features regex {features!r} matches no column; columns: {_shown(columns)}"
            )
    elif features is not None:
        chosen = [str(c) for c in features]
        missing = [c for c in chosen if c not in columns]
        if missing:
            raise InputError(
                f"{source}: feature column {missing[0]!r} not found ({len(missing)} missing); "
                f"columns: {_shown(columns)}"
            )
        if len(set(chosen)) != len(chosen):
            dup = next(c for c in chosen if chosen.count(c) > 1)
            raise InputError(f"{source}: feature column {dup!r} is listed twice")
    elif any(c.startswith(METADATA_PREFIX) for c in columns):
        chosen = [c for c in columns if not c.startswith(METADATA_PREFIX)]
    else:
        chosen = [c for c in columns if c.startswith(FEATURE_PREFIXES)]
        if not chosen:
            raise InputError(
                f"{source}: cannot tell features from metadata (no Metadata_ or Cells_/Cytoplasm_/Nuclei_/"
                f"Image_ columns); pass features= (a list or a regex). Columns: {_shown(columns)}"
            )
    if not chosen:
        raise InputError(f"{source}: no feature columns (every column is Metadata_)")
    if len(set(columns)) != len(columns):
        dup = next(c for c in columns if columns.count(c) > 1)
        raise InputError(f"{source}: column {dup!r} appears twice in the table")
    for name in chosen:
        dtype = frame[name].dtype
        if pd.api.types.is_bool_dtype(dtype):
            raise InputError(
                f"{source}: feature column {name!r} is boolean; rename it Metadata_{name} or pass features="
            )
        if not pd.api.types.is_numeric_dtype(dtype):
            raise InputError(
                f"{source}: feature column {name!r} is not numeric (dtype {dtype}); "
                f"rename it Metadata_{name} or pass features="
            )
    return chosen
