"""Opera Phenix / Operetta exports from Harmony: find the exports, read ``Index.idx.xml``, order timepoints.

A live-cell screen is usually exported one measurement at a time: each timepoint of a plate is its own
export folder (``P1__2024-03-01T10_00_00-Measurement 1/Images/...``), and inside each export the
timepoint in the file names restarts at ``sk1``. This module turns any number of such folders into
one table of image files with a plate-wide timepoint:

- the plate is the Index file's ``PlateID`` (the barcode), else the export folder's name without
  Harmony's ``__<date>-Measurement N`` suffix (its parent's name when the folder is ``Images``);
- within an export, the timepoint is ``TimepointID + 1`` from the Index file (Harmony numbers it from
  0 there, from 1 as ``sk`` in file names), else the file name's ``sk``;
- exports of the same plate are ordered by their measurement start (the Index file's
  ``MeasurementStartTime``, else the date in the folder name) and their timepoints follow each other;
- ``timepoint_h`` is the time from the plate's first measurement to the start of the field's
  measurement, in hours (``AbsTime`` of the images, else the measurement start); it is left missing,
  never guessed, when neither is available.

The Index schema (``EvaluationInputData`` with ``Plates/Plate`` and ``Images/Image`` elements:
``URL``, ``Row``, ``Col``, ``FieldID``, ``PlaneID``, ``TimepointID``, ``ChannelID``, ``ChannelName``,
``AbsTime``) is Harmony's export format as read by Bio-Formats' ``OperettaReader``; elements are
matched by local name, so the Harmony version in the namespace does not matter.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from lcd_core import FileFormatError, InputError

#: ``r01c01f01p01-ch1sk1fk1fl1.tiff`` (sk/fk/fl optional for older exports).
OPERA_NAME = re.compile(
    r"^r(?P<row>\d+)c(?P<column>\d+)f(?P<field>\d+)p(?P<plane>\d+)-ch(?P<channel>\d+)"
    r"(?:sk(?P<timepoint>\d+))?(?:fk\d+)?(?:fl\d+)?\.tiff?$",
    re.IGNORECASE,
)
#: Harmony's export folder name: ``<barcode>__<YYYY-MM-DDTHH_MM_SS>-Measurement <n>``.
EXPORT_FOLDER = re.compile(
    r"^(?P<plate>.+?)__(?P<date>\d{4}-\d{2}-\d{2}T\d{2}[_:]\d{2}[_:]\d{2})(?:-Measurement.*)?$"
)
INDEX_NAMES = ("Index.idx.xml", "Index.xml")


@dataclass
class OperaExport:
    """One exported measurement: its folder, Index file (if any), plate and start time."""

    folder: Path
    index: Path | None
    plate: str
    start: pd.Timestamp | None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(elem: ET.Element) -> dict[str, str]:
    return {_local(c.tag): (c.text or "").strip() for c in elem}


def _timestamp(text: str | None) -> pd.Timestamp | None:
    if not text:
        return None
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError):
        return None
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def read_index(path: str | os.PathLike) -> tuple[dict[str, str], pd.DataFrame]:
    """Read a Harmony ``Index.idx.xml`` / ``Index.xml``: the plate's fields and one row per image.

    Parameters
    ----------
    path
        The Index file.

    Returns
    -------
    tuple of (dict, pandas.DataFrame)
        The first ``Plate`` element's fields (``PlateID``, ``Name``, ``MeasurementStartTime`` ...) and
        a table with ``url, row, column, field, plane, timepoint, channel, channel_name, abs_time``
        (``timepoint`` 1-based; ``abs_time`` a UTC timestamp or missing).

    Raises
    ------
    FileFormatError
        Not XML, or no ``Image`` element with the fields an image needs.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise FileFormatError(f"{path}: is not a valid Harmony index file (XML error: {exc})") from None
    plate = next((_children(e) for e in root.iter() if _local(e.tag) == "Plate"), {})
    rows = []
    needed = ("URL", "Row", "Col", "FieldID", "PlaneID", "ChannelID")
    for elem in root.iter():
        if _local(elem.tag) != "Image" or not len(elem):
            continue
        f = _children(elem)
        if not all(f.get(k) for k in needed):
            continue  # a reference entry (Plates/Plate/Image id=...), not an image record
        try:
            rows.append(
                {
                    "url": f["URL"],
                    "row": int(f["Row"]),
                    "column": int(f["Col"]),
                    "field": int(f["FieldID"]),
                    "plane": int(f["PlaneID"]),
                    "timepoint": int(f.get("TimepointID") or 0) + 1,
                    "channel": int(f["ChannelID"]),
                    "channel_name": f.get("ChannelName", ""),
                    "abs_time": _timestamp(f.get("AbsTime")),
                }
            )
        except ValueError as exc:
            raise FileFormatError(f"{path}: image {f.get('URL')!r} has a non-integer index ({exc})") from None
    if not rows:
        raise FileFormatError(f"{path}: no Image entries with URL, Row, Col, FieldID, PlaneID and ChannelID")
    return plate, pd.DataFrame(rows)


def _plate_and_start(folder: Path) -> tuple[str, pd.Timestamp | None]:
    """Plate name and measurement start from Harmony's export folder name (``Images`` -> its parent)."""
    folder = folder.resolve()
    name = folder.parent.name if folder.name.lower() == "images" else folder.name
    m = EXPORT_FOLDER.match(name)
    if m is None:
        return name, None
    date = m.group("date").replace("_", ":")
    return m.group("plate"), _timestamp(date)


def find_exports(
    image_dirs: Sequence[str | os.PathLike], *, plates: Sequence[str] | None = None
) -> list[OperaExport]:
    """One :class:`OperaExport` per given folder (an export, or its ``Images`` folder).

    Parameters
    ----------
    image_dirs
        Export folders; several may belong to one plate (one per timepoint).
    plates
        Plate names, one per folder, overriding the Index file and the folder name.

    Returns
    -------
    list of OperaExport
        In the given order.
    """
    dirs = [Path(d) for d in image_dirs]
    if plates is not None and len(plates) != len(dirs):
        raise InputError(f"got {len(plates)} plate names for {len(dirs)} image folders")
    out = []
    for i, folder in enumerate(dirs):
        if not folder.is_dir():
            raise InputError(f"{folder}: image folder not found")
        index = next(
            (p for name in INDEX_NAMES for p in (folder / name, folder / "Images" / name) if p.is_file()),
            None,
        )
        plate, start = _plate_and_start(folder)
        if index is not None:
            meta, _ = read_index(index)
            plate = meta.get("PlateID") or meta.get("Name") or plate
            start = _timestamp(meta.get("MeasurementStartTime")) or start
        if plates is not None:
            plate = plates[i]
        out.append(OperaExport(folder=folder, index=index, plate=str(plate), start=start))
    return out


def _export_files(export: OperaExport) -> pd.DataFrame:
    """The image files of one export: from its Index file when present, else from file names."""
    if export.index is not None:
        _, images = read_index(export.index)
        base = export.index.parent
        images["file"] = [str((base / u).resolve()) for u in images["url"]]
        missing = [f for f in images["file"] if not Path(f).is_file()]
        if missing:
            raise InputError(
                f"{export.index}: {len(missing)} listed images are missing (first: {missing[0]})"
            )
        return images.drop(columns=["url"])
    records = []
    for f in sorted(export.folder.rglob("*")):
        m = OPERA_NAME.match(f.name)
        if m is None or not f.is_file():
            continue
        g = {k: int(v) if v is not None else 1 for k, v in m.groupdict().items()}
        records.append({**g, "channel_name": "", "abs_time": None, "file": str(f.resolve())})
    if not records:
        raise InputError(
            f"{export.folder}: no Opera-style image (r01c01f01p01-ch1sk1fk1fl1.tiff) and no Index file"
        )
    return pd.DataFrame.from_records(records)


def opera_files(
    image_dirs: Sequence[str | os.PathLike], *, plates: Sequence[str] | None = None, hours_offset: float = 0.0
) -> pd.DataFrame:
    """Every image of the exports with its plate, plate-wide timepoint and ``timepoint_h``.

    Parameters
    ----------
    image_dirs
        Export folders (any number per plate).
    plates
        Plate names, one per folder (default: Index ``PlateID`` or the folder name).
    hours_offset
        Hours between treatment and each plate's first measurement, added to ``timepoint_h`` (the
        exports know when images were taken, not when compounds were added).

    Returns
    -------
    pandas.DataFrame
        ``plate, row, column, field, plane, channel, channel_name, timepoint, timepoint_h, file``.

    Raises
    ------
    InputError
        Two exports of one plate with the same start time (their order is unknown), or exports of one
        plate of which some have no start time.
    """
    exports = find_exports(image_dirs, plates=plates)
    parts = []
    for plate, group in pd.Series(range(len(exports))).groupby(
        np.array([e.plate for e in exports], dtype=object)
    ):
        members = [exports[i] for i in group]
        if len(members) > 1:
            no_start = [str(e.folder) for e in members if e.start is None]
            if no_start:
                raise InputError(
                    f"plate {plate!r} has {len(members)} exports but {no_start[0]} has no measurement start "
                    "(no Index file and no date in the folder name): cannot order its timepoints"
                )
            starts = [e.start for e in members]
            if len(set(starts)) != len(starts):
                raise InputError(f"plate {plate!r}: two exports start at the same time; cannot order them")
            members.sort(key=lambda e: e.start)
        offset = 0
        plate_parts = []
        for export in members:
            files = _export_files(export)
            local = sorted(files["timepoint"].unique())
            files["timepoint"] = files["timepoint"].map({t: offset + i + 1 for i, t in enumerate(local)})
            offset += len(local)
            if files["abs_time"].isna().all() and export.start is not None and len(local) == 1:
                files["abs_time"] = export.start
            plate_parts.append(files)
        files = pd.concat(plate_parts, ignore_index=True)
        files.insert(0, "plate", str(plate))
        times = pd.to_datetime(files["abs_time"])
        if times.notna().all():
            first = times.min()
            start_of_tp = times.groupby(files["timepoint"]).transform("min")
            files["timepoint_h"] = np.round(
                (start_of_tp - first).dt.total_seconds() / 3600.0 + hours_offset, 3
            )
        else:
            files["timepoint_h"] = np.nan
        parts.append(files.drop(columns=["abs_time"]))
    out = pd.concat(parts, ignore_index=True)
    dup = out.duplicated(["plate", "row", "column", "field", "plane", "channel", "timepoint"])
    if dup.any():
        first = out.loc[dup].iloc[0]
        raise InputError(
            f"two images for plate {first['plate']!r}, r{first['row']:02d}c{first['column']:02d} field "
            f"{first['field']} plane {first['plane']} channel {first['channel']} timepoint {first['timepoint']}: "
            f"{first['file']}"
        )
    return out
