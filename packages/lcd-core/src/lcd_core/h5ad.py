"""Reading and writing AnnData files (``.h5ad``, ``.zarr``) with one-line errors and storable metadata.

h5py cannot store an ``object`` column that mixes strings with ``None``/NaN, holds only ``None``, or
holds other Python objects: anndata raises "Can't implicitly convert non-string objects to strings"
(an all-empty metadata column crashed ``lcd demo --seed 2`` and ``lcd-nuclei count``). The writers
here convert such columns first, on a copy, to types h5ad stores faithfully:

- strings (with missing values) -> categorical with Python-string categories (missing stays missing);
- only missing values -> an empty categorical (every value missing);
- booleans (with missing) -> pandas ``boolean``; integers (with missing) -> ``Int64``; other numbers -> float;
- anything else (mixed types, paths) -> its ``str`` (missing stays missing).

Categoricals whose categories are pandas 3 Arrow strings get plain object categories, which
anndata 0.10-0.12 can write.
"""

from __future__ import annotations

import numbers
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .atomic import atomic_dir, atomic_write
from .errors import FileFormatError, InputError, describe_exception
from .tables import check_input_file

ANNDATA_SUFFIXES = (".h5ad", ".zarr")


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and value != value


def storable_column(col: pd.Series) -> pd.Series:
    """``col`` converted to a dtype h5ad stores faithfully (see the module docstring); others unchanged."""
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        cats = dtype.categories
        if pd.api.types.is_string_dtype(cats.dtype) and cats.dtype != object:
            return col.cat.rename_categories(pd.Index(cats.astype(object), dtype=object))
        return col
    if not (dtype is np.dtype(object) or pd.api.types.is_string_dtype(dtype)):
        return col
    values = col.to_numpy(dtype=object)
    missing = np.array([_is_missing(v) for v in values], dtype=bool)
    present = values[~missing]
    if present.size and all(isinstance(v, str) for v in present):
        out = values.copy()
        out[missing] = None
        cats = pd.Index(sorted(set(present)), dtype=object)
        return pd.Series(pd.Categorical(out, categories=cats), index=col.index, name=col.name)
    if present.size == 0:
        empty = pd.Categorical([None] * len(values), categories=pd.Index([], dtype=object))
        return pd.Series(empty, index=col.index, name=col.name)
    if all(isinstance(v, bool | np.bool_) for v in present):
        return pd.Series(
            pd.array([None if m else bool(v) for v, m in zip(values, missing, strict=True)], dtype="boolean"),
            index=col.index,
            name=col.name,
        )
    if all(isinstance(v, numbers.Integral) and not isinstance(v, bool | np.bool_) for v in present):
        return pd.Series(
            pd.array([None if m else int(v) for v, m in zip(values, missing, strict=True)], dtype="Int64"),
            index=col.index,
            name=col.name,
        )
    if all(isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_) for v in present):
        return pd.Series(
            [np.nan if m else float(v) for v, m in zip(values, missing, strict=True)],
            index=col.index,
            name=col.name,
            dtype=np.float64,
        )
    out = np.array([None if m else str(v) for v, m in zip(values, missing, strict=True)], dtype=object)
    cats = pd.Index(sorted({v for v in out if v is not None}), dtype=object)
    return pd.Series(pd.Categorical(out, categories=cats), index=col.index, name=col.name)


def storable_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with every column :func:`storable_column`-converted and a string index.

    Parameters
    ----------
    frame
        obs or var.
    """
    out = frame.copy()
    for name in out.columns:
        out[name] = storable_column(out[name])
    out.index = pd.Index([str(i) for i in out.index], dtype=object)
    out.columns = [str(c) for c in out.columns]
    return out


def to_jsonable(value: Any) -> Any:
    """Plain values storable in ``uns`` and JSON: tuples to lists, numpy scalars to Python, paths to str.

    ``None`` entries of mappings are left out (h5ad cannot store ``None``): an unset option is simply
    absent from the recorded parameters.

    Parameters
    ----------
    value
        Any parameter value.
    """
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return str(value)
    return value


def record_params(adata: Any, key: str, params: Mapping[str, Any], **extra: Any) -> None:
    """Store a step's parameters in ``adata.uns[key]["params"]`` (scanpy's convention).

    Parameters
    ----------
    adata
        The AnnData written into.
    key
        The ``uns`` key (the function's ``key_added``).
    params
        The step's parameters.
    extra
        Other entries stored beside ``params``.
    """
    entry = dict(adata.uns.get(key, {})) if isinstance(adata.uns.get(key), Mapping) else {}
    entry["params"] = to_jsonable(dict(params))
    entry.update(to_jsonable(extra))
    adata.uns[key] = entry


def _storable_copy(adata: Any) -> Any:
    """A new AnnData sharing the matrices of ``adata`` with storable obs/var (the caller's is untouched)."""
    import anndata as ad

    safe = ad.AnnData(
        X=adata.X,
        obs=storable_frame(adata.obs),
        var=storable_frame(adata.var),
        uns=dict(adata.uns),
        obsm=dict(adata.obsm),
        varm=dict(adata.varm),
        layers=dict(adata.layers),
        obsp=dict(adata.obsp),
        varp=dict(adata.varp),
    )
    if adata.raw is not None:
        safe.raw = ad.AnnData(X=adata.raw.X, obs=safe.obs, var=storable_frame(adata.raw.var))
    return safe


def write_h5ad(adata: Any, path: str | os.PathLike) -> Path:
    """Write ``adata`` to ``.h5ad`` (or a ``.zarr`` folder) atomically, with storable metadata.

    Parameters
    ----------
    adata
        The AnnData (not modified).
    path
        Output ``.h5ad`` file or ``.zarr`` folder.
    """
    path = Path(path)
    if path.suffix.lower() not in ANNDATA_SUFFIXES:
        raise InputError(f"{path}: an AnnData output must end in .h5ad or .zarr")
    safe = _storable_copy(adata)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*zarr v2.*")  # anndata's format-version notice
        if path.suffix.lower() == ".zarr":
            with atomic_dir(path) as tmp:
                safe.write_zarr(tmp)
            return path
        return atomic_write(path, lambda tmp: _write_checksummed(safe, tmp))


def _write_checksummed(adata: Any, path: Path) -> None:
    """``adata.write_h5ad(path)`` with an HDF5 fletcher32 checksum on every numeric array.

    HDF5 then verifies each chunk it reads: bytes damaged after writing (a bad disk, a broken copy)
    make :func:`read_h5ad` refuse the file instead of returning different numbers. Variable-length
    strings cannot carry a filter (category names, the index), and scalars are not chunked; both are
    written as anndata writes them. Files from other writers (no checksums) read as before.
    """
    import h5py
    from anndata.experimental import write_dispatched

    def checksummed(func, store, key, elem, dataset_kwargs=None, iospec=None, **_):
        kwargs = dict(dataset_kwargs or {})
        if isinstance(elem, np.ndarray) and elem.ndim >= 1 and elem.size and elem.dtype.kind in "biuf":
            kwargs["fletcher32"] = True
        return func(store, key, elem, dataset_kwargs=kwargs)

    with h5py.File(path, "w") as f:
        write_dispatched(f, "/", adata, callback=checksummed)


def read_h5ad(path: str | os.PathLike, *, what: str = "AnnData file") -> Any:
    """Read an ``.h5ad`` file or ``.zarr`` folder; one line naming the file when it is not valid.

    Parameters
    ----------
    path
        An ``.h5ad`` file or ``.zarr`` folder.
    what
        What the file is, for messages.
    """
    import anndata as ad

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in ANNDATA_SUFFIXES:
        raise InputError(f"{path}: not an AnnData file (expected .h5ad or .zarr)")
    if suffix == ".zarr":
        if not path.is_dir():
            raise InputError(f"{path}: {what} not found (a .zarr is a folder)")
    else:
        check_input_file(path, what=what)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=FutureWarning)
            return ad.read_zarr(path) if suffix == ".zarr" else ad.read_h5ad(path)
    except Exception as exc:  # h5py/zarr raise many types for a damaged file
        kind = "zarr store" if suffix == ".zarr" else "h5ad file"
        raise FileFormatError(f"{path}: is not a valid {kind} ({describe_exception(exc)})") from None
