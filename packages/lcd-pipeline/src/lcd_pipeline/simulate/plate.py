"""Write a synthetic live-cell brightfield plate set: Opera-style TIFFs, a plate map and ground truth.

Layout of the output folder::

    images/<plate>/r01c02f01p01-ch1sk1fk1fl1.tiff   brightfield, one file per plane (p01..), timepoint sk
    images/<plate>/Index.idx.xml                    Harmony-style index: plate barcode, every image with
                                                    row, column, field, plane, channel, TimepointID, AbsTime
    platemap.csv                                    plate, well, replica, compound, dose, moa, control
    truth/compounds.parquet                         compound, moa, ec50, e_max, inert
    truth/conditions.parquet                        compound × timepoint × dose: strength, active, effects
    truth/fields.parquet                            one row per field × timepoint: nuclei_count, confluency
    truth/nuclei.parquet                            one row per nucleus: field keys, y, x, radius
    truth/batch.parquet                             technical effects per plate × timepoint
    truth/stain/<plate>/r..p01-ch2sk1fk1fl1.tiff   a nuclear-stain reference image per field (Hoechst-like)
    simulation.json                                 the config, for provenance

The folder appears atomically (written under a temporary name, then renamed).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from lcd_core import InputError, atomic_dir

from .design import (
    PHENOTYPES,
    SimulationConfig,
    batch_effects,
    compound_table,
    condition_truth,
    fov_shading,
    plate_layout,
)
from .render import (
    Cells,
    brightfield_planes,
    illumination_field,
    sample_cells,
    smooth_noise,
    stamp,
    to_uint16,
)

FIELD_KEYS = ["replica", "plate", "well", "row", "column", "fov", "timepoint"]


@dataclass
class SimulatedPlate:
    """Paths of a simulated plate set (see the module docstring for the layout)."""

    root: Path

    @property
    def image_dirs(self) -> list[Path]:
        """One image folder per plate."""
        return sorted(p for p in (self.root / "images").iterdir() if p.is_dir())

    @property
    def plate_map(self) -> Path:
        """The plate map (CSV)."""
        return self.root / "platemap.csv"

    @property
    def stain_dirs(self) -> list[Path]:
        """One nuclear-stain reference folder per plate."""
        return sorted(p for p in (self.root / "truth" / "stain").iterdir() if p.is_dir())

    def truth(self, name: str) -> pd.DataFrame:
        """A ground-truth table: ``compounds``, ``conditions``, ``fields``, ``nuclei`` or ``batch``."""
        return pd.read_parquet(self.root / "truth" / f"{name}.parquet")

    def config(self) -> SimulationConfig:
        """The simulation's design (from ``simulation.json``)."""
        d = json.loads((self.root / "simulation.json").read_text())
        return SimulationConfig(**d)


def opera_name(row: int, column: int, fov: int, plane: int, channel: int, timepoint: int) -> str:
    """Opera Phenix / Harmony export file name (all indices 1-based)."""
    return f"r{row:02d}c{column:02d}f{fov:02d}p{plane:02d}-ch{channel}sk{timepoint}fk1fl1.tiff"


def field_table(
    cfg: SimulationConfig, layout: pd.DataFrame, truth: pd.DataFrame, batch: pd.DataFrame
) -> pd.DataFrame:
    """One row per imaged field × timepoint with its phenotype effects and technical parameters."""
    tps = pd.DataFrame({"timepoint": np.arange(1, len(cfg.timepoint_hours) + 1)})
    fovs = pd.DataFrame({"fov": np.arange(1, cfg.fovs_per_well + 1)})
    fields = layout.merge(fovs, how="cross").merge(tps, how="cross")
    eff_cols = [f"effect_{p}" for p in PHENOTYPES]
    fields = fields.merge(
        truth[["compound", "timepoint", "dose", "strength", *eff_cols]],
        on=["compound", "timepoint", "dose"],
        how="left",
    )
    fields[["strength", *eff_cols]] = fields[["strength", *eff_cols]].fillna(0.0)  # DMSO: no phenotype
    fields = fields.merge(batch, on=["replica", "plate", "timepoint"], how="left")
    shade = fov_shading(cfg)
    fields["grad_y"] += shade[fields["fov"] - 1, 0]
    fields["grad_x"] += shade[fields["fov"] - 1, 1]
    fields["hours"] = np.asarray(cfg.timepoint_hours)[fields["timepoint"] - 1]
    plate_index = {p: i for i, p in enumerate(sorted(layout["plate"].unique()))}
    fields["plate_index"] = fields["plate"].map(plate_index)
    return fields.sort_values(["plate", "row", "column", "fov", "timepoint"]).reset_index(drop=True)


def render_batch(cfg: SimulationConfig, batch: pd.DataFrame) -> dict:
    """Render a batch of fields.

    Each field draws from its own Generator keyed by its identity, so the pixels do not depend on batch
    size or order.
    """
    size = cfg.image_size
    cols: dict[str, list] = {k: [] for k in Cells.__dataclass_fields__}
    texture_noise = np.empty((len(batch), size, size), np.float32)
    pixel_noise = np.empty((len(batch), cfg.n_planes, size, size), np.float32)
    stain_noise = np.empty((len(batch), size, size), np.float32)
    eff_cols = [f"effect_{p}" for p in PHENOTYPES]
    effects = batch[eff_cols].to_numpy(float)
    growth = 1.0 - np.exp(-batch["hours"].to_numpy(float) / 24.0)
    keys = batch[["plate_index", "row", "column", "fov", "timepoint"]].to_numpy(int)
    for i in range(len(batch)):
        rng = np.random.default_rng([cfg.seed, 1, *keys[i]])
        cells = sample_cells(
            rng,
            size=size,
            cell_radius=cfg.cell_radius,
            keep_probability=0.55 + 0.4 * growth[i],
            effects=effects[i],
        )
        cols["field"].append(np.full(len(cells["y"]), i))
        for k, v in cells.items():
            cols[k].append(v)
        texture_noise[i] = rng.standard_normal((size, size), dtype=np.float32)
        pixel_noise[i] = rng.standard_normal((cfg.n_planes, size, size), dtype=np.float32) * cfg.noise
        stain_noise[i] = rng.standard_normal((size, size), dtype=np.float32) * 0.02
    cells = Cells(**{k: np.concatenate(v) for k, v in cols.items()})
    maps = stamp(cells, len(batch), size)
    phase = maps["phase"] + maps["textured"] * smooth_noise(texture_noise, 1.0)
    z_offsets = np.linspace(-1.0, 1.0, cfg.n_planes) if cfg.n_planes > 1 else np.zeros(1)
    defocus = z_offsets[None, :] + batch["focus"].to_numpy(float)[:, None]
    illum = illumination_field(
        size, batch["grad_y"].to_numpy(np.float32), batch["grad_x"].to_numpy(np.float32)
    )
    planes = brightfield_planes(
        phase,
        maps["absorption"],
        defocus,
        illum,
        batch["gain"].to_numpy(np.float32),
        batch["offset"].to_numpy(np.float32),
        pixel_noise,
    )
    stain = 0.05 + 0.6 * maps["stain"] + stain_noise
    return {
        "planes": to_uint16(planes),
        "stain": to_uint16(stain),
        "cells": cells,
        "confluency": (maps["cell_mask"] > 0).mean(axis=(1, 2)),
    }


def simulate_plate(
    out_dir: str | os.PathLike,
    config: SimulationConfig | None = None,
    *,
    batch_size: int = 64,
    overwrite: bool = False,
    progress: bool = True,
) -> SimulatedPlate:
    """Simulate a synthetic live-cell brightfield plate set with ground truth.

    Parameters
    ----------
    out_dir
        Folder to create (must not exist, unless ``overwrite``).
    config
        The design; default :class:`SimulationConfig()`.
    batch_size
        Fields rendered together (memory vs vectorization; does not change the pixels).
    overwrite
        Replace an existing folder.
    progress
        Show a rich progress bar.

    Returns
    -------
    SimulatedPlate
        Paths of the images, plate map and truth tables.
    """
    cfg = config or SimulationConfig()
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise InputError(f"{out} exists; choose another folder or pass overwrite=True (--overwrite)")
    # lcd-core's atomic folder: a half-written plate is never visible, the folder gets the user's umask
    # (a tempfile.mkdtemp folder renamed into place stayed 0700: unreadable for the group), and its
    # temporary carries this process id, so a killed simulation's half-written plate is recognised and
    # removed by remove_stale_temps (the pipeline calls it under its lock)
    with atomic_dir(out) as tmp:
        tmp.mkdir()
        _write(tmp, cfg, batch_size=batch_size, progress=progress)
    return SimulatedPlate(out)


def _write(root: Path, cfg: SimulationConfig, *, batch_size: int, progress: bool) -> None:
    import tifffile

    design_rng = np.random.default_rng([cfg.seed, 0])
    compounds = compound_table(cfg, design_rng)
    layout = plate_layout(cfg, compounds, design_rng)
    batch = batch_effects(cfg, layout, design_rng)
    truth = condition_truth(cfg, compounds)
    fields = field_table(cfg, layout, truth, batch)

    (root / "truth").mkdir()
    for plate in layout["plate"].unique():
        (root / "images" / plate).mkdir(parents=True)
        (root / "truth" / "stain" / plate).mkdir(parents=True)

    nuclei_parts, counts, confluency = [], np.zeros(len(fields), int), np.zeros(len(fields))
    starts = range(0, len(fields), batch_size)
    with _progress(progress) as bar:
        task = bar.add_task("simulating fields", total=len(fields)) if bar else None
        for start in starts:
            chunk = fields.iloc[start : start + batch_size]
            res = render_batch(cfg, chunk)
            cells = res["cells"]
            counts[start : start + len(chunk)] = np.bincount(cells.field, minlength=len(chunk))
            confluency[start : start + len(chunk)] = res["confluency"]
            nuclei_parts.append(
                pd.DataFrame(
                    {
                        "field_index": cells.field + start,
                        "y": cells.y,
                        "x": cells.x,
                        "radius": cells.nucleus_radius,
                    }
                )
            )
            for i, f in enumerate(chunk.itertuples(index=False)):
                for z in range(cfg.n_planes):
                    name = opera_name(f.row, f.column, f.fov, z + 1, 1, f.timepoint)
                    tifffile.imwrite(root / "images" / f.plate / name, res["planes"][i, z])
                stain_name = opera_name(f.row, f.column, f.fov, 1, 2, f.timepoint)
                tifffile.imwrite(root / "truth" / "stain" / f.plate / stain_name, res["stain"][i])
            if bar:
                bar.advance(task, len(chunk))

    fields["nuclei_count"] = counts
    fields["confluency"] = confluency
    nuclei = pd.concat(nuclei_parts, ignore_index=True)
    keys = fields[FIELD_KEYS]
    nuclei = pd.concat([keys.iloc[nuclei["field_index"]].reset_index(drop=True), nuclei], axis=1)

    for plate in layout["plate"].unique():
        write_index(root / "images" / plate, plate, fields[fields["plate"] == plate], cfg)
    layout[["plate", "well", "replica", "compound", "dose", "moa", "control"]].to_csv(
        root / "platemap.csv", index=False
    )
    compounds.drop(columns="direction").to_parquet(root / "truth" / "compounds.parquet", index=False)
    truth.to_parquet(root / "truth" / "conditions.parquet", index=False)
    fields.drop(columns=["plate_index"]).to_parquet(root / "truth" / "fields.parquet", index=False)
    nuclei.drop(columns="field_index").to_parquet(root / "truth" / "nuclei.parquet", index=False)
    batch.to_parquet(root / "truth" / "batch.parquet", index=False)
    (root / "simulation.json").write_text(json.dumps(cfg.to_dict(), indent=2))


#: The simulated screen starts imaging here; timepoint k is imaged ``timepoint_hours[k]`` later.
START = pd.Timestamp("2026-01-05T09:00:00")
HARMONY_NS = "http://www.perkinelmer.com/PEHH/HarmonyV5"


def write_index(folder: Path, plate: str, fields: pd.DataFrame, cfg: SimulationConfig) -> Path:
    """Harmony's ``Index.idx.xml`` for one plate folder (the layout lcd-embed reads from real exports).

    Each field of timepoint ``k`` is stamped ``START + timepoint_hours[k]`` plus one second per field
    in acquisition order, so hours since the first measurement come out as the design's hours.
    """
    import xml.etree.ElementTree as ET

    ET.register_namespace("", HARMONY_NS)
    q = f"{{{HARMONY_NS}}}"
    root = ET.Element(f"{q}EvaluationInputData", {"Version": "1"})
    plates = ET.SubElement(root, f"{q}Plates")
    p = ET.SubElement(plates, f"{q}Plate")
    for tag, text in (
        ("PlateID", plate),
        ("Name", plate),
        ("PlateRows", str(cfg.plate_rows)),
        ("PlateColumns", str(cfg.plate_columns)),
        ("MeasurementStartTime", (START + pd.Timedelta(hours=cfg.timepoint_hours[0])).isoformat()),
    ):
        ET.SubElement(p, f"{q}{tag}").text = text
    images = ET.SubElement(root, f"{q}Images")
    ordered = fields.sort_values(["timepoint", "row", "column", "fov"], kind="stable")
    order_in_timepoint = ordered.groupby("timepoint").cumcount().to_numpy()
    for i, f in zip(order_in_timepoint, ordered.itertuples(index=False), strict=True):
        when = START + pd.Timedelta(hours=cfg.timepoint_hours[f.timepoint - 1]) + pd.Timedelta(seconds=int(i))
        for z in range(cfg.n_planes):
            im = ET.SubElement(images, f"{q}Image", {"Version": "1"})
            for tag, text in (
                ("URL", opera_name(f.row, f.column, f.fov, z + 1, 1, f.timepoint)),
                ("Row", f.row),
                ("Col", f.column),
                ("FieldID", f.fov),
                ("PlaneID", z + 1),
                ("TimepointID", f.timepoint - 1),
                ("ChannelID", 1),
                ("ChannelName", "Brightfield"),
                ("AbsTime", when.isoformat() + "Z"),
            ):
                ET.SubElement(im, f"{q}{tag}").text = str(text)
    path = folder / "Index.idx.xml"
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


class _NoBar:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _progress(show: bool):
    if not show:
        return _NoBar()
    from rich.progress import Progress

    return Progress(transient=True)
