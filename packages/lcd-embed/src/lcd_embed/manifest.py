"""Image manifests: one row per field of view x timepoint, with the image path(s) per z-plane.

A manifest holds either ``path_z0, path_z1, ...`` (one image file per plane) or a single ``path``
(a multi-page TIFF whose pages are planes, or one 2-D image) plus metadata columns (``replica``,
``plate``, ``well``, ``fov``, ``timepoint``, ``dose``, ``compound``, ``moa``, ``control``; see
docs/data-model.md). Builders for Opera Phenix / Harmony exports and for glob + regex patterns live
here too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd
from lcd_core import InputError, read_table

PLANE_COLUMN = re.compile(r"^path_z(\d+)$")
STRING_COLUMNS = ("replica", "plate", "well", "compound", "moa")


def plane_columns(columns: Iterable[str]) -> list[str]:
    """The ``path_z<k>`` columns of a table, sorted by plane index."""
    found = [(int(m.group(1)), c) for c in columns if (m := PLANE_COLUMN.match(str(c)))]
    return [c for _, c in sorted(found)]


def plane_paths(row: Mapping | pd.Series) -> list[str]:
    """The image path(s) of one manifest row.

    Parameters
    ----------
    row
        A manifest row (``pandas.Series`` or dict).

    Returns
    -------
    list of str
        ``[path_z0, path_z1, ...]`` (one file per plane), or ``[path]`` for a single (possibly
        multi-page) file.
    """
    keys = list(row.keys())
    zcols = plane_columns(keys)
    if zcols:
        paths = [row[c] for c in zcols]
        while paths and _missing(paths[-1]):  # trailing empty plane columns of a shorter stack
            paths.pop()
        if not paths or any(_missing(p) for p in paths):
            raise InputError(f"manifest row {_row_name(row)}: empty plane path among {', '.join(zcols)}")
        return [str(p) for p in paths]
    if "path" in row and not _missing(row["path"]):
        return [str(row["path"])]
    raise InputError(f"manifest row {_row_name(row)} has no image path (columns 'path' or 'path_z0', ...)")


def read_manifest(path: str | os.PathLike, *, resolve: bool = True) -> pd.DataFrame:
    """Read and validate a manifest (CSV, CSV.gz, TSV or parquet).

    Parameters
    ----------
    path
        The manifest file.
    resolve
        Make relative image paths absolute, relative to the manifest's folder (so a manifest can
        travel with its images).

    Returns
    -------
    pandas.DataFrame
        One row per field of view x timepoint with a fresh ``RangeIndex`` (the manifest order).

    Raises
    ------
    InputError
        Unknown format, no path column, both ``path`` and ``path_z*``, gaps in the plane columns,
        a row with a missing or empty plane path (inconsistent plane counts), a duplicated image.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"manifest not found: {path}")
    df = read_table(path, what="manifest", text_columns=STRING_COLUMNS)
    return validate_manifest(df, source=str(path), base=path.parent if resolve else None)


def validate_manifest(
    df: pd.DataFrame, *, source: str = "manifest", base: Path | None = None
) -> pd.DataFrame:
    """Check a manifest table and return a copy with string paths (absolute when ``base`` is given).

    Parameters
    ----------
    df
        One row per field of view x timepoint.
    source
        Named in errors (the manifest's path).
    base
        Folder relative image paths are resolved against (``None``: kept as they are).
    """
    if len(df) == 0:
        raise InputError(f"{source}: the manifest has no rows")
    if df.columns.duplicated().any():
        dup = sorted(set(df.columns[df.columns.duplicated()]))
        raise InputError(f"{source}: duplicated columns {dup}")
    df = df.reset_index(drop=True).copy()
    zcols = plane_columns(df.columns)
    if zcols and "path" in df.columns:
        raise InputError(f"{source}: has both 'path' and 'path_z*' columns; keep one layout")
    if not zcols and "path" not in df.columns:
        raise InputError(
            f"{source}: no image path column; expected 'path' (multi-page TIFF) or 'path_z0', 'path_z1', ... "
            f"(found {list(df.columns)[:12]})"
        )
    if zcols:
        indices = [int(PLANE_COLUMN.match(c).group(1)) for c in zcols]
        if indices != list(range(len(indices))):
            raise InputError(
                f"{source}: plane columns must be path_z0..path_z{len(indices) - 1}, found {zcols}"
            )
        present = df[zcols].notna() & (df[zcols].astype(str).apply(lambda s: s.str.strip()) != "")
        counts = present.sum(axis=1)
        contiguous = present.cumprod(axis=1).sum(axis=1) == counts
        bad = df.index[(counts == 0) | ~contiguous]
        if len(bad):
            raise InputError(
                f"{source}: row {bad[0]} has an empty plane path between filled ones or none at all"
            )
        if counts.nunique() > 1:
            first = counts.index[counts != counts.iloc[0]][0]
            raise InputError(
                f"{source}: inconsistent plane counts: row 0 has {counts.iloc[0]} planes, row {first} has "
                f"{counts[first]}; every field must have the same planes"
            )
        pcols = zcols
    else:
        empty = df["path"].isna() | (df["path"].astype(str).str.strip() == "")
        if empty.any():
            raise InputError(f"{source}: row {df.index[empty][0]} has an empty 'path'")
        pcols = ["path"]
    for c in pcols:
        col = df[c].astype(object)
        mask = col.notna()
        col[mask] = [_resolve(p, base) for p in col[mask]]
        df[c] = col
    keys = df[pcols].astype(str).agg("|".join, axis=1)
    dup = keys.duplicated()
    if dup.any():
        raise InputError(
            f"{source}: row {df.index[dup][0]} repeats the image(s) of an earlier row: {keys[dup].iloc[0]}"
        )
    _check_unique_fields(df, source)
    if "fov" in df.columns and df["fov"].notna().all():
        try:
            df["fov"] = df["fov"].astype(int)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{source}: column 'fov' must hold integers ({exc})") from exc
    return df


FIELD_KEYS = ("replica", "plate", "well", "fov", "timepoint")


def _check_unique_fields(df: pd.DataFrame, source: str) -> None:
    """Refuse two rows that claim the same field of view (same plate, well, fov, timepoint).

    Their tiles would be pooled into one field by every step after embedding.
    """
    keys = [k for k in FIELD_KEYS if k in df.columns]
    if not {"well", "fov"} <= set(keys):
        return  # without a fov column several rows of a well are several fields
    dup = df.duplicated(keys)
    if dup.any():
        row = int(df.index[dup][0])
        first = int(df.index[df[keys].eq(df.loc[row, keys]).all(axis=1)][0])
        where = ", ".join(f"{k}={df.loc[row, k]!r}" for k in keys)
        raise InputError(
            f"{source}: row {row} is the same field as row {first} ({where}) with other images; "
            "give each field of view its own fov number (or timepoint)"
        )


def well_name(row: int, column: int) -> str:
    """Well name from 1-based row and column indices: (2, 3) -> ``B03``; rows past Z are ``AA``, ``AB``...

    Parameters
    ----------
    row, column
        1-based plate row and column.
    """
    if row < 1 or column < 1:
        raise InputError(f"well row and column are 1-based, got r{row} c{column}")
    letters, r = "", row
    while r:
        r, rem = divmod(r - 1, 26)
        letters = chr(ord("A") + rem) + letters
    return f"{letters}{column:02d}"


def normalize_well(name: str) -> str:
    """``a1`` / ``A1`` / ``A01`` -> ``A01`` (so plate maps and image names agree).

    Parameters
    ----------
    name
        A well name.
    """
    m = re.fullmatch(r"\s*([A-Za-z]+)\s*0*(\d+)\s*", str(name))
    if not m:
        raise InputError(f"not a well name: {name!r} (expected e.g. 'B03')")
    return f"{m.group(1).upper()}{int(m.group(2)):02d}"


def manifest_from_opera(
    image_dirs: str | os.PathLike | Sequence[str | os.PathLike],
    plate_map: str | os.PathLike | pd.DataFrame | None = None,
    *,
    plates: Sequence[str] | None = None,
    channel: int | None = None,
    hours_offset: float = 0.0,
    well_key: str = "well",
    plate_key: str = "plate",
) -> pd.DataFrame:
    """Build a manifest from Opera Phenix / Harmony exports (``r01c01f01p01-ch1sk1fk1fl1.tiff``).

    Parameters
    ----------
    image_dirs
        Harmony export folders holding the TIFFs (searched recursively) and, when present, the
        ``Index.idx.xml``/``Index.xml`` that names plate, well, field, plane, channel and timepoint. A
        plate imaged over time may be several exports (one per timepoint, each restarting at ``sk1``):
        they are ordered by measurement start into one time series (:func:`lcd_embed.opera_files`).
    plate_map
        CSV/parquet or DataFrame with one row per well (``well`` column, e.g. ``B03`` or ``B3``) and
        any metadata (``compound``, ``dose``, ``moa``, ``control``, ``replica``...). With a
        ``plate`` column it is joined on (plate, well), otherwise on well for every plate.
    plates
        Plate names, one per folder; default: the Index file's ``PlateID``, else the folder name without
        Harmony's ``__<date>-Measurement N`` suffix (its parent's when the folder is ``Images``).
    channel
        The channel to keep; required when a folder holds more than one.
    hours_offset
        Hours between treatment and each plate's first measurement, added to ``timepoint_h``.
    well_key, plate_key
        Names of the well and plate columns (of the plate map and the result).

    Returns
    -------
    pandas.DataFrame
        ``plate, well, row, column, fov, timepoint, timepoint_h, channel, path_z0..`` (+ plate-map
        columns), in plate, well, fov, timepoint order. ``fov`` is the Opera field index (1-based),
        ``timepoint`` the plate-wide index (1-based), ``timepoint_h`` the hours from the plate's first
        measurement (missing when the export carries no time).
    """
    from .opera import opera_files

    dirs = [Path(image_dirs)] if isinstance(image_dirs, (str, os.PathLike)) else [Path(d) for d in image_dirs]
    files = opera_files(dirs, plates=plates, hours_offset=hours_offset)
    channels = sorted(files["channel"].unique())
    if channel is None:
        if len(channels) > 1:
            names = files.drop_duplicates("channel").set_index("channel")["channel_name"].to_dict()
            listing = ", ".join(f"{c} ({names[c]})" if names.get(c) else str(c) for c in channels)
            raise InputError(f"images have channels {listing}: choose one with channel= (--channel)")
        channel = channels[0]
    elif channel not in channels:
        raise InputError(f"channel {channel} not found; images have channels {channels}")
    files = files[files["channel"] == channel].drop(columns=["channel_name"])
    files["well"] = [well_name(r, c) for r, c in zip(files["row"], files["column"], strict=True)]
    # hours are one value per plate x timepoint (possibly missing): joined after the pivot, which
    # would drop rows whose key is missing
    hours = files[["plate", "timepoint", "timepoint_h"]].drop_duplicates(["plate", "timepoint"])
    out = _assemble(
        files.drop(columns=["timepoint_h"]),
        ["plate", "well", "row", "column", "field", "timepoint", "channel"],
        "plane",
        None,
        well_key=well_key,
        plate_key=plate_key,
        rename={"field": "fov"},
    )
    out = out.merge(hours, on=["plate", "timepoint"], how="left", validate="many_to_one")
    front = ["plate", "well", "row", "column", "fov", "timepoint", "timepoint_h", "channel"]
    out = out[[*front, *[c for c in out.columns if c not in front]]]
    return _join_plate_map(out, plate_map, well_key=well_key, plate_key=plate_key)


def manifest_from_pattern(
    pattern: str,
    regex: str,
    plate_map: str | os.PathLike | pd.DataFrame | None = None,
    *,
    root: str | os.PathLike = ".",
    plane_group: str = "plane",
    well_key: str = "well",
    plate_key: str = "plate",
) -> pd.DataFrame:
    r"""Build a manifest from a glob and a regex with named groups.

    Parameters
    ----------
    pattern
        Glob relative to ``root`` (``**`` recurses), e.g. ``"plate*/*.tif"``.
    regex
        Matched (``re.search``) against the path relative to ``root``; its named groups become
        metadata columns, e.g. ``r"(?P<plate>P\d+)/(?P<well>[A-P]\d+)_s(?P<fov>\d+)_z(?P<plane>\d)"``.
        Files that do not match are ignored. Numeric-looking ``fov``/``timepoint``/``row``/``column``
        groups become ints; ``row`` and ``column`` groups without a ``well`` group give the well
        (``r02c03`` -> ``B03``), so Opera-style names work here too.
    plate_map
        Optional plate map joined on ``well`` (and ``plate`` when it has that column).
    root
        Folder the glob starts from.
    plane_group
        The group holding the z-plane; files sharing every other group form one row with
        ``path_z0..`` in plane order. Without it, each file is one row with ``path``.
    well_key, plate_key
        Names of the well and plate columns (of the plate map and the result).

    Returns
    -------
    pandas.DataFrame
        One row per field (``path_z0..`` or ``path``), the regex groups and the plate-map columns.
    """
    root = Path(root)
    try:
        rx = re.compile(regex)
    except re.error as exc:
        raise InputError(f"--regex {regex!r} is not a valid regular expression ({exc})") from None
    if not root.is_dir():
        raise InputError(f"{root}: folder not found (the glob's root)")
    records = []
    for f in sorted(root.glob(pattern)):
        if not f.is_file():
            continue
        m = rx.search(f.relative_to(root).as_posix())
        if m is None:
            continue
        records.append({**m.groupdict(), "file": str(f.resolve())})
    if not records:
        raise InputError(f"no file under {root} matches glob {pattern!r} and regex {regex!r}")
    files = pd.DataFrame.from_records(records)
    for c in ("fov", "timepoint", "row", "column", plane_group):
        if c in files.columns and files[c].astype(str).str.fullmatch(r"\d+").all():
            files[c] = files[c].astype(int)
    if well_key in files.columns:
        files[well_key] = [normalize_well(w) for w in files[well_key]]
    elif {"row", "column"} <= set(files.columns):
        # Opera-style names (r02c03...) carry the well as row and column numbers
        files[well_key] = [
            well_name(int(r), int(c)) for r, c in zip(files["row"], files["column"], strict=True)
        ]
    keys = [c for c in files.columns if c not in ("file", plane_group)]
    if plane_group not in files.columns:
        dup = files.duplicated(keys) if keys else files.index.duplicated()
        if keys and dup.any():
            raise InputError(
                f"two files give the same metadata {files.loc[dup, keys].iloc[0].to_dict()}; add a group"
            )
        out = files.rename(columns={"file": "path"})
        return _join_plate_map(out, plate_map, well_key=well_key, plate_key=plate_key)
    return _assemble(files, keys, plane_group, plate_map, well_key=well_key, plate_key=plate_key)


def _assemble(files, keys, plane_group, plate_map, *, well_key, plate_key, rename=None) -> pd.DataFrame:
    """One row per ``keys`` group with path_z0.. in plane order; checks every group has the same planes."""
    dup = files.duplicated([*keys, plane_group])
    if dup.any():
        raise InputError(f"two files for the same field and plane: {files.loc[dup, 'file'].iloc[0]}")
    planes = sorted(files[plane_group].unique())
    wide = files.pivot_table(index=keys, columns=plane_group, values="file", aggfunc="first")
    wide = wide.reindex(columns=planes)
    incomplete = wide.isna().any(axis=1)
    if incomplete.any():
        key = dict(zip(keys, wide.index[incomplete][0], strict=True))
        have = [p for p in planes if pd.notna(wide.loc[wide.index[incomplete][0], p])]
        raise InputError(f"inconsistent plane counts: field {key} has planes {have}, others have {planes}")
    wide.columns = [f"path_z{i}" for i in range(len(planes))]
    out = wide.reset_index()
    if rename:
        out = out.rename(columns=rename)
    return _join_plate_map(out, plate_map, well_key=well_key, plate_key=plate_key)


def _join_plate_map(df: pd.DataFrame, plate_map, *, well_key: str, plate_key: str) -> pd.DataFrame:
    if plate_map is None:
        return df.reset_index(drop=True)
    if isinstance(plate_map, pd.DataFrame):
        pm, source = plate_map.copy(), "plate map"
    else:
        source = str(plate_map)
        if not Path(plate_map).is_file():
            raise FileNotFoundError(f"plate map not found: {plate_map}")
        pm = read_table(plate_map, what="plate map", text_columns=(well_key, plate_key, *STRING_COLUMNS))
    if well_key not in pm.columns:
        raise InputError(f"{source}: no '{well_key}' column (found {list(pm.columns)})")
    if well_key not in df.columns:
        raise InputError(f"image names carry no '{well_key}' to join the plate map on")
    pm[well_key] = [normalize_well(w) for w in pm[well_key]]
    on = [plate_key, well_key] if plate_key in pm.columns and plate_key in df.columns else [well_key]
    if plate_key in pm.columns:
        pm[plate_key] = pm[plate_key].astype(str)
    dup = pm.duplicated(on)
    if dup.any():
        raise InputError(f"{source}: {on} {pm.loc[dup, on].iloc[0].tolist()} appears twice")
    clash = [c for c in pm.columns if c in df.columns and c not in on]
    if clash:
        raise InputError(f"{source}: columns {clash} also come from the image names; rename them")
    out = df.merge(pm, on=on, how="left", indicator=True, validate="many_to_one")
    missing = out["_merge"] == "left_only"
    if missing.any():
        wells = sorted(set(map(tuple, out.loc[missing, on].to_numpy().tolist())))
        raise InputError(
            f"{source}: no plate-map row for {on} {wells[:5]} ({len(wells)} in all) that have images"
        )
    return out.drop(columns="_merge").reset_index(drop=True)


def _resolve(p, base: Path | None) -> str:
    p = str(p).strip()
    if base is None or os.path.isabs(p):
        return p
    return str((base / p).resolve())


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and v != v) or (isinstance(v, str) and not v.strip())


def _row_name(row) -> str:
    return str(getattr(row, "name", None)) if getattr(row, "name", None) is not None else "?"
