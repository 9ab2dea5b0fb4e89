"""The experimental design of a synthetic plate: compounds, MoA phenotypes, doses, layout, batch effects.

Everything here is tabular and cheap; the pixels are made in :mod:`lcd_pipeline.simulate.render`.
The ground truth of activity is defined here, once: a compound is *truly active* at a condition when
its phenotype strength ``s = e_max · hill(dose; ec50, n=2) · (1 − exp(−hours / tau))`` reaches
``active_strength``. Phenotypes are vectors over :data:`PHENOTYPES` scaled by ``s``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from lcd_core import ConfigError

#: The phenotype axes a compound can move, in the order of the MoA vectors.
PHENOTYPES = ("size", "rounding", "count_loss", "texture", "nuclear_contrast")

#: Built-in MoA classes and their phenotype directions (size, rounding, count loss, texture, nuclear).
#: Loosely modelled on the paper's classes (tubulin and Aurora kinase inhibitors round cells up and
#: stop division, topoisomerase inhibitors enlarge nuclei, HDAC inhibitors change chromatin texture...).
MOA_PHENOTYPES: dict[str, tuple[float, float, float, float, float]] = {
    "tubulin": (-0.4, 1.0, 0.5, 0.0, 0.3),
    "actin": (0.9, -0.4, 0.0, 0.8, 0.0),
    "topoisomerase": (0.7, 0.0, 0.6, 0.0, 1.0),
    "hdac": (0.0, 0.2, 0.2, 1.0, -0.7),
    "proteasome": (-0.6, 0.5, 1.0, 0.3, 0.0),
    "aurora": (1.0, 0.6, 0.4, 0.0, 0.6),
}

CONTROL_NAME = "DMSO"


@dataclass
class SimulationConfig:
    """All parameters of a synthetic live-cell brightfield plate set.

    Parameters
    ----------
    seed
        Seed of every random draw (numpy ``Generator``): same seed, same files, bit for bit.
    n_replicas, plates_per_replica
        Experimental replicas (new cells, new plates) and plates per replica; the compounds are split
        across the plates of a replica, every plate gets ``n_dmso`` control wells.
    moas, compounds_per_moa, n_inert
        MoA classes (names from :data:`MOA_PHENOTYPES`, or new names that get a random direction),
        compounds per class, and compounds with no phenotype at all.
    doses, timepoint_hours
        Concentrations (µM) and imaging times (hours); the Opera timepoint index ``sk`` is 1-based.
    n_dmso
        Control wells per plate (mAP-ES draws 31 negatives from the query's plate).
    fovs_per_well, image_size, n_planes
        Fields of view per well, field size in pixels (square), z-planes per field.
    cell_radius
        Mean cell radius in pixels (the cell lattice spacing scales with it).
    active_strength
        Phenotype strength from which a compound × condition counts as truly active.
    replica_effect, plate_effect, fov_effect
        Scale of the planted technical effects (0 switches a level off).
    noise
        Pixel noise SD relative to the background intensity.
    withdrawal_after
        Withdrawal design (paper SM, recovery after drug withdrawal): the treatment is removed after
        this 1-based timepoint ``k``; at later timepoints the phenotype relaxes back,
        ``s(t) = s(t_k) · exp(−(hours_t − hours_k) / recovery_hours)``, and a condition is truly active
        only while that strength reaches ``active_strength``. ``None``: continuous treatment.
    recovery_hours
        Time constant of the relaxation after withdrawal.
    """

    seed: int = 0
    n_replicas: int = 4
    plates_per_replica: int = 1
    moas: tuple[str, ...] = ("tubulin", "actin", "topoisomerase", "hdac")
    compounds_per_moa: int = 4
    n_inert: int = 4
    doses: tuple[float, ...] = (0.1, 1.0, 10.0)
    timepoint_hours: tuple[float, ...] = (8.0, 24.0, 48.0)
    n_dmso: int = 32
    fovs_per_well: int = 2
    image_size: int = 128
    n_planes: int = 3
    cell_radius: float = 8.0
    active_strength: float = 0.3
    time_constant_hours: float = 16.0
    replica_effect: float = 1.0
    plate_effect: float = 1.0
    fov_effect: float = 1.0
    noise: float = 0.01
    plate_rows: int = 16
    plate_columns: int = 24
    withdrawal_after: int | None = None
    recovery_hours: float = 12.0
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.moas = tuple(self.moas)
        self.doses = tuple(float(d) for d in self.doses)
        self.timepoint_hours = tuple(float(t) for t in self.timepoint_hours)
        problems = []
        if self.n_replicas < 1 or self.plates_per_replica < 1:
            problems.append("n_replicas and plates_per_replica must be >= 1")
        if self.fovs_per_well < 1 or self.n_planes < 1 or self.image_size < 16:
            problems.append("fovs_per_well and n_planes must be >= 1, image_size >= 16")
        if not self.doses or not self.timepoint_hours:
            problems.append("doses and timepoint_hours must not be empty")
        if self.withdrawal_after is not None and not 1 <= self.withdrawal_after < len(self.timepoint_hours):
            problems.append(
                f"withdrawal_after must be a timepoint 1..{len(self.timepoint_hours) - 1} (a later one must "
                f"follow), got {self.withdrawal_after}"
            )
        if not self.recovery_hours > 0:
            problems.append(f"recovery_hours must be > 0, got {self.recovery_hours}")
        if self.compounds_per_moa < 1 and self.n_inert < 1:
            problems.append("no compounds: set compounds_per_moa or n_inert >= 1")
        wells = self.plate_rows * self.plate_columns
        need = self.wells_per_plate()
        if need > wells:
            problems.append(
                f"{need} wells per plate needed (compounds × doses + n_dmso) but the plate has {wells}; "
                "raise plates_per_replica or plate_rows/plate_columns"
            )
        if problems:
            raise ConfigError("invalid simulation config: " + "; ".join(problems))

    def n_compounds(self) -> int:
        """Compounds in the design (MoA members and inert ones)."""
        return len(self.moas) * self.compounds_per_moa + self.n_inert

    def wells_per_plate(self) -> int:
        """Wells one plate needs: its share of compounds x doses, plus the controls."""
        per_plate = -(-self.n_compounds() // self.plates_per_replica)
        return per_plate * len(self.doses) + self.n_dmso

    def to_dict(self) -> dict:
        """Plain JSON-able values (tuples as lists)."""
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d


def moa_direction(name: str) -> np.ndarray:
    """Unit phenotype direction of an MoA (a built-in one, or a stable pseudo-random one for a new name)."""
    if name in MOA_PHENOTYPES:
        v = np.asarray(MOA_PHENOTYPES[name], dtype=float)
    else:  # stable across runs and platforms: seed from the bytes of the name
        v = np.random.default_rng(list(name.encode())).normal(size=len(PHENOTYPES))
    return v / np.linalg.norm(v)


def compound_table(cfg: SimulationConfig, rng: np.random.Generator) -> pd.DataFrame:
    """One row per compound: name, MoA (empty for inert), potency ``ec50``, ``e_max`` and direction."""
    rows = []
    lo, hi = np.log10(min(cfg.doses)), np.log10(max(cfg.doses))
    for moa in cfg.moas:
        base = moa_direction(moa)
        for k in range(cfg.compounds_per_moa):
            # each compound: the class direction plus its own twist, so classes are clouds, not points
            d = base + 0.25 * rng.normal(size=base.size)
            rows.append(
                {
                    "compound": f"{moa}-{k + 1}",
                    "moa": moa,
                    # potencies span the dose range: some compounds act only at the top dose
                    "ec50": float(10 ** rng.uniform(lo - 0.3, hi - 0.2)),
                    "e_max": float(rng.uniform(0.8, 1.0)),
                    "direction": d / np.linalg.norm(d),
                }
            )
    for k in range(cfg.n_inert):
        rows.append(
            {
                "compound": f"inert-{k + 1}",
                "moa": "",
                "ec50": np.nan,
                "e_max": 0.0,
                "direction": np.zeros(len(PHENOTYPES)),
            }
        )
    df = pd.DataFrame(rows)
    df["inert"] = df["e_max"] == 0
    return df


def strength(e_max, ec50, dose, hours, tau: float) -> np.ndarray:
    """Phenotype strength: Hill curve (n = 2) in dose times a saturating ramp in time."""
    e_max, ec50, dose, hours = map(np.asarray, (e_max, ec50, dose, hours))
    with np.errstate(invalid="ignore"):
        hill = np.where(e_max > 0, dose**2 / (dose**2 + np.nan_to_num(ec50, nan=1.0) ** 2), 0.0)
    return e_max * hill * (1.0 - np.exp(-hours / tau))


def condition_truth(cfg: SimulationConfig, compounds: pd.DataFrame) -> pd.DataFrame:
    """Ground truth per compound × timepoint × dose: strength, phenotype vector and ``active``.

    With ``cfg.withdrawal_after = k`` the strength after timepoint ``k`` decays from its value at
    ``k`` with time constant ``recovery_hours`` (column ``withdrawn``: the treatment was removed).
    """
    tps = np.arange(1, len(cfg.timepoint_hours) + 1)
    grid = pd.MultiIndex.from_product(
        [compounds["compound"], tps, cfg.doses], names=["compound", "timepoint", "dose"]
    ).to_frame(index=False)
    grid = grid.merge(compounds.drop(columns="direction"), on="compound")
    grid["hours"] = np.asarray(cfg.timepoint_hours)[grid["timepoint"] - 1]
    grid["strength"] = strength(
        grid["e_max"], grid["ec50"], grid["dose"], grid["hours"], cfg.time_constant_hours
    )
    grid["withdrawn"] = False
    if cfg.withdrawal_after is not None:
        k = cfg.withdrawal_after
        hours_k = cfg.timepoint_hours[k - 1]
        at_k = strength(grid["e_max"], grid["ec50"], grid["dose"], hours_k, cfg.time_constant_hours)
        after = (grid["timepoint"] > k).to_numpy()
        relaxed = at_k * np.exp(-(grid["hours"].to_numpy(float) - hours_k) / cfg.recovery_hours)
        grid.loc[after, "strength"] = relaxed[after]
        grid["withdrawn"] = after
    grid["active"] = grid["strength"] >= cfg.active_strength
    directions = np.stack(compounds.set_index("compound").loc[grid["compound"], "direction"].to_numpy())
    for j, name in enumerate(PHENOTYPES):
        grid[f"effect_{name}"] = grid["strength"] * directions[:, j]
    return grid


def plate_layout(cfg: SimulationConfig, compounds: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The plate map: one row per used well of every plate, positions shuffled per plate.

    Columns: ``replica, plate, well, row, column, compound, dose, moa, control``. DMSO wells carry
    dose 0 and an empty MoA, as do inert compounds (unannotated).
    """
    names = compounds["compound"].tolist()
    chunks = np.array_split(np.arange(len(names)), cfg.plates_per_replica)
    rows = []
    for r in range(cfg.n_replicas):
        for p, chunk in enumerate(chunks):
            plate = f"R{r + 1}P{p + 1}"
            treatments = [(names[i], d) for i in chunk for d in cfg.doses]
            treatments += [(CONTROL_NAME, 0.0)] * cfg.n_dmso
            # avoid the outer ring like real screens do, when the plate is large enough
            inner = [
                (i, j)
                for i in range(1, cfg.plate_rows + 1)
                for j in range(1, cfg.plate_columns + 1)
                if cfg.plate_rows < 4 or (1 < i < cfg.plate_rows and 1 < j < cfg.plate_columns)
            ]
            if len(inner) < len(treatments):
                inner = [
                    (i, j) for i in range(1, cfg.plate_rows + 1) for j in range(1, cfg.plate_columns + 1)
                ]
            pos = rng.permutation(len(inner))[: len(treatments)]
            for (compound, dose), k in zip(treatments, pos, strict=True):
                i, j = inner[k]
                rows.append(
                    {
                        "replica": f"R{r + 1}",
                        "plate": plate,
                        "row": i,
                        "column": j,
                        "well": f"{chr(ord('A') + i - 1)}{j:02d}",
                        "compound": compound,
                        "dose": dose,
                    }
                )
    layout = pd.DataFrame(rows)
    moa = compounds.set_index("compound")["moa"]
    layout["moa"] = layout["compound"].map(moa).fillna("")
    layout["control"] = layout["compound"] == CONTROL_NAME
    return layout.sort_values(["plate", "row", "column"]).reset_index(drop=True)


def batch_effects(cfg: SimulationConfig, layout: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Technical effects per plate × timepoint (a *measurement*): replica-level and plate-level parts.

    gain/offset (multiplicative/additive intensity), an illumination gradient (gy, gx per image
    width) and a focus shift (in units of the plane spacing). Replica effects are the strongest, as in
    the paper; every measurement gets a small extra jitter.
    """
    replicas = sorted(layout["replica"].unique())
    rep = {
        r: {
            "gain": 1.0 + cfg.replica_effect * rng.normal(0, 0.12),
            "offset": cfg.replica_effect * rng.normal(0, 0.04),
            "grad_y": cfg.replica_effect * rng.normal(0, 0.12),
            "grad_x": cfg.replica_effect * rng.normal(0, 0.12),
            "focus": cfg.replica_effect * rng.normal(0, 0.3),
        }
        for r in replicas
    }
    rows = []
    plates = layout[["replica", "plate"]].drop_duplicates().itertuples(index=False)
    for replica, plate in plates:
        base = rep[replica]
        pg = 1.0 + cfg.plate_effect * rng.normal(0, 0.04)
        pf = cfg.plate_effect * rng.normal(0, 0.1)
        for t in range(1, len(cfg.timepoint_hours) + 1):
            rows.append(
                {
                    "replica": replica,
                    "plate": plate,
                    "timepoint": t,
                    "gain": base["gain"] * pg * (1.0 + cfg.plate_effect * rng.normal(0, 0.01)),
                    "offset": base["offset"] + cfg.plate_effect * rng.normal(0, 0.01),
                    "grad_y": base["grad_y"],
                    "grad_x": base["grad_x"],
                    "focus": base["focus"] + pf + cfg.plate_effect * rng.normal(0, 0.03),
                }
            )
    return pd.DataFrame(rows)


def fov_shading(cfg: SimulationConfig) -> np.ndarray:
    """Per-FOV illumination tilt (meniscus shading), shape (fovs, 2): (gy, gx).

    Fields at different positions in the well get different gradients, the same on every plate.
    """
    angles = 2 * np.pi * np.arange(cfg.fovs_per_well) / max(cfg.fovs_per_well, 1)
    return cfg.fov_effect * 0.1 * np.stack([np.sin(angles), np.cos(angles)], axis=1)


#: Named designs. ``demo`` is what ``lcd demo`` simulates: 4 replicas (mAP-ES needs 3 other-replica
#: wells per query), 32 DMSO wells per plate (31 negatives), 3 MoA classes × 3 compounds, 3 inert
#: compounds, 3 doses × 3 timepoints, three 96-px fields per well (MAD + Harmony/FOV needs more than one;
#: with two, top-dose recall on the full demo plate stayed at 85-88 %, see the package README): about
#: 2450 fields, seconds to render.
PRESETS: dict[str, dict] = {
    "demo": {
        "moas": ("tubulin", "actin", "hdac"),
        "compounds_per_moa": 3,
        "n_inert": 3,
        "fovs_per_well": 3,
        "image_size": 96,
    },
    "default": {},
}


def preset_config(name: str = "demo", **overrides) -> SimulationConfig:
    """A :class:`SimulationConfig` from a named preset (:data:`PRESETS`) with keyword overrides."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return SimulationConfig(**{**PRESETS[name], **overrides})
