"""``lcd init CONFIG.yaml --from-opera DIR...``: a commented run configuration written from an export.

A scientist should not have to write YAML from the README: this scans the Opera/Harmony exports (any
number per plate, one per timepoint), says what it found (plates, timepoints in hours, wells, fields,
planes, channels) in the file's comments, chooses the brightfield channel when the Index file names it,
and writes a plate-map template listing every imaged well when no plate map is given.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from lcd_core import InputError, write_table, write_text

TEMPLATE_COLUMNS = ("plate", "well", "replica", "compound", "dose", "moa")


def _relative(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(path.resolve(), base.resolve())
    except ValueError:  # another drive (Windows)
        return str(path.resolve())


def _channel_choice(files: pd.DataFrame) -> tuple[int | None, str]:
    names = files.drop_duplicates("channel").set_index("channel")["channel_name"].to_dict()
    listing = ", ".join(f"{c} {names.get(c) or '(unnamed)'}" for c in sorted(names))
    if len(names) == 1:
        return next(iter(names)), listing
    bright = [c for c, n in names.items() if n and "bright" in n.lower()]
    return (bright[0] if len(bright) == 1 else None), listing


def write_config(
    out: str | os.PathLike,
    image_dirs: Sequence[str | os.PathLike],
    *,
    plate_map: str | os.PathLike | None = None,
    preset: str = "paper",
) -> tuple[Path, Path | None]:
    """Write a commented ``lcd run`` config (and a plate-map template when none is given).

    Parameters
    ----------
    out
        The YAML file to write (refused when it exists).
    image_dirs
        Opera/Harmony export folders (several per plate when each timepoint was exported alone).
    plate_map
        An existing plate map; without one, ``<out stem>_platemap.csv`` lists every imaged well with empty
        ``replica, compound, dose, moa`` columns to fill in.
    preset
        ``paper`` or ``quick`` (see :mod:`lcd_pipeline.config`).

    Returns
    -------
    tuple of pathlib.Path
        The config and the plate-map template (``None`` when a plate map was given).
    """
    from lcd_embed import opera_files, well_name

    from .config import PRESETS

    out = Path(out)
    if out.exists():
        raise InputError(f"{out}: exists; choose another name or delete it first")
    if preset not in PRESETS:
        raise InputError(f"preset {preset!r} is not one of {sorted(PRESETS)}")
    dirs = [Path(d) for d in image_dirs]
    files = opera_files(dirs)
    channel, channels = _channel_choice(files)
    files = files.assign(well=[well_name(r, c) for r, c in zip(files["row"], files["column"], strict=True)])
    base = out.parent
    lines = [
        f"# lcd run configuration written by `lcd init` on {dt.date.today().isoformat()} from {len(dirs)} export folder(s).",
        "# Found:",
    ]
    for plate, g in files.groupby("plate", sort=True):
        hours = g.groupby("timepoint")["timepoint_h"].first()
        when = ", ".join("?" if pd.isna(h) else f"{h:g} h" for h in hours)
        lines.append(
            f"#   plate {plate}: {g['timepoint'].nunique()} timepoint(s) ({when}), {g['well'].nunique()} wells, "
            f"{g.groupby('well')['field'].nunique().max()} fields per well, {g['plane'].nunique()} planes"
        )
    lines.append(f"#   channels: {channels}")
    lines += [
        "",
        "results: results/            # every stage's output; re-running continues and re-runs what changed",
        "input:",
        "  opera:",
        "    image_dirs:",
        *[f"      - {_relative(d, base)}" for d in dirs],
    ]
    template = None
    if plate_map is not None:
        lines.append(f"    plate_map: {_relative(Path(plate_map), base)}")
    else:
        template = out.with_name(f"{out.stem}_platemap.csv")
        wells = files[["plate", "well"]].drop_duplicates().sort_values(["plate", "well"])
        table = wells.assign(**{c: "" for c in TEMPLATE_COLUMNS[2:]})
        write_table(table[list(TEMPLATE_COLUMNS)], template)
        lines.append(
            f"    plate_map: {_relative(template, base)}  # TODO fill in replica, compound, dose, moa for every well"
        )
    if channel is not None:
        lines.append(f"    channel: {channel}")
    else:
        lines.append("    channel: 1   # TODO: the brightfield channel (the exports have: " + channels + ")")
    lines += [
        "",
        f"preset: {preset}                # paper: ViT-S/16 pa+dino+barlow+xb, 60 epochs (GPU hours); quick: tiny CPU model",
        "# checkpoint: path/to/model   # a trained backbone (lcd-embed layout): skip training",
        "control: \"compound == 'DMSO'\"   # negative controls (a pandas query or a boolean plate-map column)",
        "seed: 0",
        "threads: null                # torch CPU threads; null: torch's own default",
        "",
        "# Sections override the preset; every key is checked before any stage runs.",
        "# ssl: {epochs: 60, batch_size: 64, device: auto}",
        "# embed: {batch_size: 64}",
        "# norm: {methods: [none, mad, harmony, fastmnn, mad_harmony_fov], use: mad_harmony_fov}",
        "# metrics: {n_draws: 1000, threshold: 0.8}",
        "# moa: {n_folds: 5}",
        "# nuclei: {fields_per_well: null}   # null: count every field (the label-free cell-count baseline)",
        "",
    ]
    write_text(out, "\n".join(lines))
    return out, template
