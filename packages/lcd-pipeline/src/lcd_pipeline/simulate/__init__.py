"""Synthetic live-cell brightfield plates with ground truth (``lcd simulate``)."""

from .design import MOA_PHENOTYPES, PHENOTYPES, PRESETS, SimulationConfig, preset_config
from .plate import SimulatedPlate, opera_name, simulate_plate

__all__ = [
    "MOA_PHENOTYPES",
    "PHENOTYPES",
    "PRESETS",
    "SimulatedPlate",
    "SimulationConfig",
    "opera_name",
    "preset_config",
    "simulate_plate",
]
