"""One reader and one writer for every table the LCD packages exchange, chosen by one suffix table.

=====================  ============  ===========================================
suffix                 format        note
=====================  ============  ===========================================
``.csv``, ``.csv.gz``  csv           comma-separated (gzip by suffix)
``.tsv``, ``.tsv.gz``  tsv           tab-separated
``.txt``, ``.txt.gz``  tsv           tab-separated (CellProfiler/Harmony exports)
``.parquet``, ``.pq``  parquet       needs pyarrow
``.h5ad``              h5ad          AnnData: :func:`lcd_core.read_h5ad` / :func:`lcd_core.write_h5ad`
=====================  ============  ===========================================

Any other suffix (``.xlsx``, ``.json`` ...) is refused in one line *before* any work is done, so an
output is never silently written in a format its name does not say.
"""

from __future__ import annotations

import importlib.util
import json
import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .atomic import atomic_write
from .errors import FileFormatError, InputError, describe_exception

#: suffix -> format name; the longest matching suffix wins (``x.csv.gz`` is csv, not gz).
TABLE_SUFFIXES: dict[str, str] = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".tsv": "tsv",
    ".tsv.gz": "tsv",
    ".txt": "tsv",
    ".txt.gz": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".h5ad": "h5ad",
}

_SEPARATORS = {"csv": ",", "tsv": "\t"}


def table_format(path: str | os.PathLike) -> str:
    """The format of ``path`` by its suffix (:data:`TABLE_SUFFIXES`); one-line error for any other.

    Parameters
    ----------
    path
        A file name.
    """
    name = Path(path).name.lower()
    for suffix in sorted(TABLE_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return TABLE_SUFFIXES[suffix]
    known = ", ".join(TABLE_SUFFIXES)
    raise InputError(
        f"{path}: unknown table format {Path(path).suffix or '(no suffix)'!r}; use one of {known}"
    )


def _need_parquet(path: Path) -> None:
    if importlib.util.find_spec("pyarrow") is None:
        raise InputError(f"{path}: parquet needs pyarrow (pip install pyarrow), or use .csv / .tsv")


def check_input_file(path: str | os.PathLike, *, what: str = "file") -> Path:
    """``path`` as a Path when it is an existing file; else one line saying what it is instead.

    Parameters
    ----------
    path
        The input path.
    what
        What the file is, for the message.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a {what}")
    if not path.exists():
        raise InputError(f"{path}: {what} not found")
    return path


def check_output_path(
    path: str | os.PathLike, *, formats: tuple[str, ...] = ("csv", "tsv", "parquet")
) -> Path:
    """Refuse an output path whose suffix is not one of ``formats`` (or is a folder), before any work.

    Parameters
    ----------
    path
        The output path.
    formats
        Accepted formats (names from :data:`TABLE_SUFFIXES`).
    """
    path = Path(path)
    fmt = table_format(path)
    if fmt not in formats:
        allowed = sorted(s for s, f in TABLE_SUFFIXES.items() if f in formats)
        raise InputError(f"{path}: cannot write a {fmt} file here; use {', '.join(allowed)}")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a file name")
    if fmt == "parquet":
        _need_parquet(path)
    return path


def read_table(
    path: str | os.PathLike, *, what: str = "table", text_columns: Sequence[str] = ()
) -> pd.DataFrame:
    """Read a csv / tsv / parquet table by its suffix.

    Parameters
    ----------
    path
        A .csv/.csv.gz/.tsv/.txt/.parquet/.pq file.
    what
        What the file is, for messages (``"plate map"``).
    text_columns
        Columns of a csv/tsv read as text, so plate barcodes like ``0001`` keep their zeros (absent
        columns are ignored; parquet keeps its stored types).

    Raises
    ------
    InputError
        Missing file, a folder, an unknown suffix, or an ``.h5ad`` (use :func:`lcd_core.load_profiles`).
    FileFormatError
        The file exists but cannot be parsed as its suffix says (empty, truncated, scrambled).
    """
    path = check_input_file(path, what=what)
    fmt = table_format(path)
    if fmt == "h5ad":
        raise InputError(
            f"{path}: an .h5ad file is AnnData, not a table; load it with load_profiles / read_h5ad"
        )
    if fmt == "parquet":
        _need_parquet(path)
    try:
        if fmt == "parquet":
            # pages written with a checksum (write_table writes them) are verified: scrambled bytes in a
            # data page are an error, not silently different numbers; files without checksums read as before
            return pd.read_parquet(path, page_checksum_verification=True)
        # round_trip: a float written by write_table reads back bit-identical. pandas' default parser is
        # off by one ulp on ~0.3 % of values (2,145 of 750k on the cell-injury table); round_trip parses
        # that table in 0.26 s instead of 0.14 s, measured 2026-12-02.
        dtype = {str(c): str for c in text_columns} or None
        frame = pd.read_csv(path, sep=_SEPARATORS[fmt], float_precision="round_trip", dtype=dtype)
        header = pd.read_csv(
            path, sep=_SEPARATORS[fmt], header=None, nrows=1, dtype=str, keep_default_na=False
        )
    except pd.errors.EmptyDataError:
        raise FileFormatError(f"{path}: the file is empty (no header, no rows)") from None
    except Exception as exc:  # parsers raise many types; the user needs the file and the first line
        raise FileFormatError(f"{path}: is not a valid {fmt} file ({describe_exception(exc)})") from None
    _check_header(header.iloc[0].tolist(), path)
    return frame


def _check_header(names: list[str], path: Path) -> None:
    """Refuse a header naming a column twice: pandas would silently rename the second ``name.1``."""
    seen: set[str] = set()
    for name in names:
        if name == "":  # unnamed columns (a written index) get distinct "Unnamed: k" names
            continue
        if name in seen:
            raise FileFormatError(f"{path}: column {name!r} appears twice in the header; rename one")
        seen.add(name)


def write_table(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``frame`` (without its index) as csv / tsv / parquet by suffix, atomically.

    Parameters
    ----------
    frame
        The table.
    path
        Output file; its suffix decides the format.
    """
    path = check_output_path(path)
    fmt = table_format(path)
    if fmt == "parquet":
        # page checksums: read_table verifies them, so a file damaged after writing is refused
        return atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False, write_page_checksum=True))
    return atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False, sep=_SEPARATORS[fmt]))


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write a JSON document atomically (sorted keys, numpy scalars as numbers).

    Parameters
    ----------
    obj
        JSON-able object (numpy scalars and paths allowed).
    path
        Output file.
    """
    text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default)
    return atomic_write(path, lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return str(value)
    raise TypeError(f"not JSON-serializable: {type(value).__name__}")


def read_json(path: str | os.PathLike, *, what: str = "JSON file") -> Any:
    """Read a JSON document; one line naming the file when it is missing or not valid JSON.

    Parameters
    ----------
    path
        The file.
    what
        What the file is, for messages.
    """
    path = check_input_file(path, what=what)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{path}: is not a valid JSON file ({describe_exception(exc)})") from None


def write_npz(arrays: Mapping[str, np.ndarray], path: str | os.PathLike) -> Path:
    """Write numeric arrays to an ``.npz`` atomically (read back without pickle).

    Parameters
    ----------
    arrays
        Name to numeric array.
    path
        Output file (``.npz``).
    """

    def _write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()})

    return atomic_write(path, _write)


def read_npz(path: str | os.PathLike, *, what: str = ".npz file") -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` (no pickle); one line naming the file when it is not valid.

    Parameters
    ----------
    path
        The file.
    what
        What the file is, for messages.
    """
    path = check_input_file(path, what=what)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise FileFormatError(f"{path}: is not a valid .npz file ({describe_exception(exc)})") from None
