"""CellProfiler / pycytominer per-image feature tables -> the same AnnData layout as image embeddings.

Feature columns follow the data contract (docs/data-model.md, "Tables in Cell Painting /
pycytominer layout"): an explicit list or regex; else every non-``Metadata_`` column when metadata
columns are prefixed; else the CellProfiler compartments ``Cells_``, ``Cytoplasm_``, ``Nuclei_``,
``Image_``. Everything else goes to ``obs`` with its name unchanged.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InputError
from .manifest import _read_table
from .output import plain_strings

COMPARTMENTS = ("Cells_", "Cytoplasm_", "Nuclei_", "Image_")


def feature_columns(
    df: pd.DataFrame, features: Sequence[str] | str | None = None, *, source: str = "table"
) -> list[str]:
    """The feature columns of a profile table, by the data-contract rules."""
    cols = [str(c) for c in df.columns]
    if isinstance(features, str):
        rx = re.compile(features)
        found = [c for c in cols if rx.search(c)]
        if not found:
            raise InputError(f"{source}: no column matches features regex {features!r}")
        return found
    if features is not None:
        missing = [f for f in features if f not in cols]
        if missing:
            raise InputError(f"{source}: feature columns not found: {missing[:5]}")
        return list(features)
    if any(c.startswith("Metadata_") for c in cols):
        found = [c for c in cols if not c.startswith("Metadata_")]
        bad = [
            c for c in found if not pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c])
        ]
        if bad:
            raise InputError(
                f"{source}: column {bad[0]!r} is not numeric; prefix it with Metadata_ or pass features="
            )
        return found
    found = [c for c in cols if c.startswith(COMPARTMENTS)]
    if found:
        return found
    raise InputError(
        f"{source}: cannot tell features from metadata among {cols[:10]}...; pass features= (list or regex)"
    )


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
        CSV(.gz) / parquet path or DataFrame (pycytominer or CellProfiler column names).
    features
        Feature columns (list) or a regex; default: the data-contract rules.
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
    import anndata as ad

    if isinstance(table, pd.DataFrame):
        df, source = table.copy(), "table"
    else:
        path = Path(table)
        if not path.is_file():
            raise FileNotFoundError(f"feature table not found: {path}")
        df, source = _read_table(path), str(path)
    if len(df) == 0:
        raise InputError(f"{source}: the table has no rows")
    if nonfinite not in ("error", "drop_features"):
        raise InputError(f"nonfinite must be 'error' or 'drop_features', got {nonfinite!r}")
    feats = feature_columns(df, features, source=source)
    bad = [c for c in feats if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        raise InputError(f"{source}: feature column {bad[0]!r} is not numeric")
    X = df[feats].to_numpy(dtype=np.float64)
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
        feats = [f for f, k in zip(feats, keep, strict=True) if k]
        X = X[:, keep]
        if not feats:
            raise InputError(f"{source}: every feature has NaN/inf values")
    obs = df.drop(columns=[c for c in df.columns if c in set(feats) | set(dropped)])
    if rename:
        missing = [k for k in rename if k not in obs.columns]
        if missing:
            raise InputError(f"{source}: cannot rename missing columns {missing}")
        obs = obs.rename(columns=dict(rename))
    obs.index = pd.Index([str(i) for i in range(len(obs))], dtype=object)
    var = pd.DataFrame(index=pd.Index(feats, dtype=object))
    adata = ad.AnnData(X=X.astype(np.float32), obs=plain_strings(obs), var=var)
    adata.uns["lcd_embed"] = {
        "source": source,
        "kind": "feature_table",
        "n_features": len(feats),
        "dropped_features": dropped,
    }
    adata.uns["lcd"] = {"level": level}
    return adata
