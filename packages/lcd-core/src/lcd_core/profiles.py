"""Profiles in, one AnnData out; and the one accessor for the feature matrix (scanpy's ``_get_obs_rep``).

:func:`load_profiles` takes what the data contract allows (an AnnData, a pycytominer-layout
DataFrame, or a path to ``.h5ad``/``.zarr``/csv/tsv/parquet) and returns an AnnData, so every
computation after loading has one code path. :func:`get_rep` returns the features from ``X``, a
layer or an ``obsm`` entry as a dense, finite matrix.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError
from .features import feature_columns
from .h5ad import ANNDATA_SUFFIXES, read_h5ad
from .tables import read_table

SOURCE_KEY = "source"  # adata.uns["lcd"]["source"]: the file profiles were read from, named in errors


def source_of(adata: Any) -> str:
    """The file an AnnData was loaded from (recorded by :func:`load_profiles`), else ``"AnnData"``.

    Parameters
    ----------
    adata
        Profiles.
    """
    lcd = adata.uns.get("lcd") if hasattr(adata, "uns") else None
    if isinstance(lcd, dict) and isinstance(lcd.get(SOURCE_KEY), str):
        return lcd[SOURCE_KEY]
    return "AnnData"


def rep_name(*, layer: str | None = None, use_rep: str | None = None) -> str:
    """Where features come from, for messages and provenance: ``X``, ``layers['a']`` or ``obsm['b']``.

    Parameters
    ----------
    layer
        A layer name, or ``None``.
    use_rep
        An obsm key, or ``None``.
    """
    if layer is not None and use_rep is not None:
        raise InputError("give layer= or use_rep=, not both")
    if layer is not None:
        return f"layers[{layer!r}]"
    if use_rep is not None:
        return f"obsm[{use_rep!r}]"
    return "X"


def table_to_anndata(
    frame: pd.DataFrame, *, features: Sequence[str] | str | None = None, source: str = "DataFrame"
) -> Any:
    """AnnData from a pycytominer-layout table: features (float64) to ``X``, other columns to ``obs``.

    Metadata column names are kept unchanged (``Metadata_Plate`` stays ``Metadata_Plate``); the obs
    index is ``"0".."n-1"``. The input frame is not modified.

    Parameters
    ----------
    frame
        One row per profile.
    features
        Feature columns or a regex (:func:`lcd_core.feature_columns`).
    source
        Recorded in ``uns["lcd"]["source"]`` and named in messages.
    """
    import anndata as ad

    feats = feature_columns(frame, features, source=source)
    chosen = set(feats)
    meta = [c for c in frame.columns if str(c) not in chosen]
    obs = frame[meta].copy()
    obs.columns = [str(c) for c in obs.columns]
    obs.index = pd.Index([str(i) for i in range(len(frame))], dtype=object)
    X = frame[feats].to_numpy(dtype=np.float64, copy=True)
    var = pd.DataFrame(index=pd.Index(feats, dtype=object))
    adata = ad.AnnData(X=X, obs=obs, var=var)
    adata.uns["lcd"] = {SOURCE_KEY: source}
    return adata


def load_profiles(
    data: Any,
    *,
    features: Sequence[str] | str | None = None,
    layer: str | None = None,
    use_rep: str | None = None,
) -> Any:
    """Return profiles as an AnnData, whatever form they arrive in.

    Parameters
    ----------
    data
        An AnnData (returned as is, not copied), a DataFrame in pycytominer layout, or a path to
        ``.h5ad``/``.zarr``/``.csv(.gz)``/``.tsv``/``.txt``/``.parquet``. Files are never modified.
    features
        For tables: explicit feature columns or a regex (:func:`lcd_core.feature_columns`).
    layer, use_rep
        For AnnData: features will be read from ``layers[layer]`` or ``obsm[use_rep]``; checked here
        so a missing key is reported before any work.

    Returns
    -------
    anndata.AnnData
        With ``uns["lcd"]["source"]`` naming the file when read from one.

    Raises
    ------
    InputError
        Unreadable or empty input, a missing layer/obsm key, options that do not apply to the input.
    """
    import anndata as ad

    source = None
    if isinstance(data, str | os.PathLike):
        path = Path(data)
        source = str(path)
        if path.suffix.lower() in ANNDATA_SUFFIXES:
            data = read_h5ad(path, what="profiles file")
            data.uns.setdefault("lcd", {})
            if isinstance(data.uns["lcd"], dict):
                data.uns["lcd"][SOURCE_KEY] = source
        else:
            data = read_table(path, what="profiles table")
    if isinstance(data, pd.DataFrame):
        if layer is not None or use_rep is not None:
            raise InputError(
                f"{source or 'DataFrame'}: layer= / use_rep= apply to AnnData input, not to a table"
            )
        return table_to_anndata(data, features=features, source=source or "DataFrame")
    if not isinstance(data, ad.AnnData):
        raise InputError(
            f"unsupported profiles input {type(data).__name__}; pass an AnnData, a DataFrame or a file path"
        )
    where = source or source_of(data)
    if features is not None:
        raise InputError(f"{where}: features= applies to tables; for AnnData pass layer= or use_rep=")
    if data.n_obs == 0:
        raise InputError(f"{where}: the AnnData has no rows")
    rep_name(layer=layer, use_rep=use_rep)  # both given -> error
    if layer is not None and layer not in data.layers:
        raise InputError(f"{where}: layer {layer!r} not found; layers: {list(data.layers.keys())}")
    if use_rep is not None and use_rep not in data.obsm:
        raise InputError(f"{where}: obsm key {use_rep!r} not found; obsm: {list(data.obsm.keys())}")
    return data


def get_rep(
    adata: Any,
    *,
    layer: str | None = None,
    use_rep: str | None = None,
    dtype: Any = np.float64,
    finite: bool = True,
) -> np.ndarray:
    """The feature matrix of ``adata`` as a dense 2-D array.

    Parameters
    ----------
    adata
        Profiles (see :func:`load_profiles`).
    layer, use_rep
        Read ``layers[layer]`` or ``obsm[use_rep]`` instead of ``X`` (at most one).
    dtype
        Output dtype; ``None`` keeps float32/float64 as stored (integers become float64).
    finite
        Refuse NaN/inf, naming the count and the first row ids.

    Returns
    -------
    numpy.ndarray
        ``(n_obs, n_features)``; a view of the stored matrix when no conversion is needed (do not
        modify it in place).
    """
    where = f"{source_of(adata)}: {rep_name(layer=layer, use_rep=use_rep)}"
    if layer is not None:
        if layer not in adata.layers:
            raise InputError(
                f"{source_of(adata)}: layer {layer!r} not found; layers: {list(adata.layers.keys())}"
            )
        mat = adata.layers[layer]
    elif use_rep is not None:
        if use_rep not in adata.obsm:
            raise InputError(
                f"{source_of(adata)}: obsm key {use_rep!r} not found; obsm: {list(adata.obsm.keys())}"
            )
        mat = adata.obsm[use_rep]
    else:
        mat = adata.X
    if mat is None:
        raise InputError(f"{where} is empty: the AnnData has no feature matrix; pass layer= or use_rep=")
    if isinstance(mat, pd.DataFrame):
        mat = mat.to_numpy()
    if hasattr(mat, "toarray"):
        mat = mat.toarray()
    mat = np.asarray(mat)
    if mat.ndim != 2 or mat.shape[0] != adata.n_obs:
        raise InputError(f"{where} has shape {mat.shape}; expected ({adata.n_obs}, n_features)")
    if mat.shape[0] == 0:  # every consumer needs rows; without this check harmony/fastMNN raised IndexError
        raise InputError(f"{source_of(adata)}: the AnnData has no rows")
    if mat.shape[1] == 0:
        raise InputError(f"{where} has no feature columns")
    if not (np.issubdtype(mat.dtype, np.number) or mat.dtype == bool):
        raise InputError(f"{where} is not numeric (dtype {mat.dtype})")
    if dtype is not None:
        mat = mat.astype(dtype, copy=False)
    elif not np.issubdtype(mat.dtype, np.floating):
        mat = mat.astype(np.float64)
    if finite:
        check_finite(mat, adata.obs_names, where)
    return mat


def check_finite(mat: np.ndarray, row_ids: Sequence, source: str) -> None:
    """Raise naming the count of NaN/inf values and the first row ids that hold them.

    Parameters
    ----------
    mat
        The matrix.
    row_ids
        Row names, for the message.
    source
        Named in the message.
    """
    ok = np.isfinite(mat)
    if ok.all():
        return
    bad_rows = np.flatnonzero(~ok.all(axis=1))
    first = ", ".join(repr(str(row_ids[i])) for i in bad_rows[:3])
    raise InputError(
        f"{source} has {int((~ok).sum())} NaN/inf values in {len(bad_rows)} rows (first: {first}); "
        "impute or drop them first"
    )
