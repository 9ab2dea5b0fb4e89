"""CellProfiler / pycytominer per-image feature tables -> the same AnnData layout as image embeddings.

Which columns are features is lcd-core's one rule (:func:`lcd_core.feature_columns`, docs/data-model.md
"Tables in Cell Painting / pycytominer layout"); everything else goes to ``obs`` with its name unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from lcd_core import InputError, read_table, table_to_anndata

LEVELS = ("fov", "well")


def from_table(
    table: str | os.PathLike | pd.DataFrame,
    *,
    features: Sequence[str] | str | None = None,
    rename: Mapping[str, str] | None = None,
    level: str = "fov",
    nonfinite: str = "error",
):
    """Turn a per-image (or per-well) feature table into an AnnData like ``embed``'s output.

    Parameters
    ----------
    table
        csv(.gz) / tsv / parquet path or DataFrame (pycytominer or CellProfiler column names).
    features
        Feature columns (list) or a regex; default: the data-contract rule.
    rename
        Optional ``{old: new}`` for metadata columns, e.g. ``{"Metadata_Plate": "plate",
        "Metadata_Well": "well"}``; by default names stay unchanged.
    level
        What a row is (``"fov"`` for per-image tables, ``"well"`` for well profiles); stored in
        ``uns["lcd"]["level"]``.
    nonfinite
        ``"error"`` (default: count and first offending rows in the message) or ``"drop_features"``
        (features with any NaN/inf are dropped and listed in ``uns["lcd_embed"]["dropped_features"]``).

    Returns
    -------
    anndata.AnnData
        X float32 (rows x features, names kept in ``var_names``), obs = the other columns.
    """
    if nonfinite not in ("error", "drop_features"):
        raise InputError(f"nonfinite must be 'error' or 'drop_features', got {nonfinite!r}")
    if level not in LEVELS:
        raise InputError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    if isinstance(table, pd.DataFrame):
        df, source = table, "table"
    else:
        df, source = read_table(table, what="feature table"), str(table)
    if len(df) == 0:
        raise InputError(f"{source}: the table has no rows")
    adata = table_to_anndata(df, features=features, source=source)
    feats = list(adata.var_names)
    X = np.asarray(adata.X, dtype=np.float64)
    finite = np.isfinite(X)
    dropped: list[str] = []
    if not finite.all():
        if nonfinite == "error":
            rows = np.where(~finite.all(axis=1))[0]
            cols = [feats[j] for j in np.where(~finite.all(axis=0))[0]]
            raise InputError(
                f"{source}: {int((~finite).sum())} NaN/inf values in {len(rows)} rows (first rows {rows[:5].tolist()}, "
                f"columns {cols[:3]}); clean the table or use nonfinite='drop_features'"
            )
        keep = finite.all(axis=0)
        dropped = [f for f, k in zip(feats, keep, strict=True) if not k]
        if not keep.any():
            raise InputError(f"{source}: every feature has NaN/inf values")
        adata = adata[:, keep].copy()
    if rename:
        missing = [k for k in rename if k not in adata.obs.columns]
        if missing:
            raise InputError(f"{source}: cannot rename missing columns {missing}")
        adata.obs = adata.obs.rename(columns=dict(rename))
    adata.X = np.asarray(adata.X, dtype=np.float32)
    adata.uns["lcd_embed"] = {
        "source": source,
        "kind": "feature_table",
        "n_features": int(adata.n_vars),
        "dropped_features": dropped,
    }
    adata.uns["lcd"] = {"level": level}
    return adata
