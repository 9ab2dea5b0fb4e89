"""A fitted MoA model: per-condition probes with the specs they were fitted with, saved without pickle.

A model folder holds ``model.json`` (format, specs, classes, feature names, conditions, each probe's
classes) and ``model.npz`` (each probe's scaler and softmax arrays, read with ``allow_pickle=False``).
Format ``lcd-moa-model/2`` (lcd-moa 0.2) records the :class:`~lcd_moa.MoASpec` and
:class:`~lcd_moa.ProbeSpec`; folders written by lcd-moa 0.1 (``lcd-moa-model/1``, options in
``params``) are still read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from lcd_core import CheckpointError, ConfigError, InputError, read_json, read_npz, write_json, write_npz

from lcd_moa.probe import LinearProbe
from lcd_moa.spec import MoASpec, ProbeSpec

FORMAT = "lcd-moa-model/2"
FORMAT_V1 = "lcd-moa-model/1"
_ARRAYS = ("mean", "scale", "coef", "intercept")


@dataclass
class MoAModel:
    """Fitted per-condition probes with everything needed to apply them to new profiles.

    Parameters
    ----------
    spec
        What the training data's columns meant (also the default for new data).
    probe
        The probe and aggregation options it was fitted with.
    classes
        Global class list (MoAs, then the control class).
    feature_names
        The features the probes expect, in order.
    conditions
        One row per condition: key values, ``status``/``reason``, ``weight`` and training counts.
    probes
        Probe per row index of ``conditions`` (conditions without a probe are absent).
    train_compounds
        The compounds it was fitted on (flagged ``in_training`` in predictions).
    seed
        Seed of the inner folds (accuracy weights).
    """

    spec: MoASpec
    probe: ProbeSpec
    classes: list[str]
    feature_names: list[str]
    conditions: pd.DataFrame
    probes: dict[int, LinearProbe]
    train_compounds: list[str] = field(default_factory=list)
    seed: int = 0

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``model.npz`` (arrays) and then ``model.json`` (metadata) into the folder ``path``.

        Both are plain formats: loading never executes pickled code. Each file is written atomically;
        the metadata last, so a folder with a ``model.json`` always has its arrays.

        Parameters
        ----------
        path
            The model folder (created).
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise InputError(f"{path}: is a file, expected a model folder")
        arrays = {f"c{c}_{name}": getattr(p, name) for c, p in self.probes.items() for name in _ARRAYS}
        write_npz(arrays, path / "model.npz")
        conditions = self.conditions.astype(object).where(self.conditions.notna(), None)
        meta = {
            "format": FORMAT,
            "spec": self.spec.to_dict(),
            "probe": self.probe.to_dict(),
            "seed": self.seed,
            "train_compounds": list(self.train_compounds),
            "classes": self.classes,
            "feature_names": self.feature_names,
            "conditions": conditions.to_dict(orient="records"),
            "probe_classes": {str(c): p.classes.tolist() for c, p in self.probes.items()},
        }
        write_json(meta, path / "model.json")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> MoAModel:
        """Read a model folder written by :meth:`save` (format 2, or lcd-moa 0.1's format 1).

        Parameters
        ----------
        path
            The model folder.

        Raises
        ------
        InputError
            No such folder; :class:`lcd_core.FileFormatError` when a file is not valid JSON / npz;
            :class:`lcd_core.CheckpointError` when the files do not form an lcd-moa model.
        """
        path = Path(path)
        if not path.is_dir():
            raise InputError(f"{path}: model folder not found (lcd-moa fit --out writes one)")
        meta_file, array_file = path / "model.json", path / "model.npz"
        for f in (meta_file, array_file):
            if not f.is_file():
                raise CheckpointError(f"{f}: not found (a model folder holds model.json and model.npz)")
        meta = read_json(meta_file, what="model file")
        if not isinstance(meta, dict) or meta.get("format") not in (FORMAT, FORMAT_V1):
            found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
            raise CheckpointError(f"{meta_file}: unknown model format {found!r}, expected {FORMAT!r}")
        _check_layout(meta, meta_file)
        arrays = read_npz(array_file, what="model arrays")
        try:
            return _from_meta(meta, arrays, array_file)
        except CheckpointError:
            raise
        except ConfigError as exc:  # a recorded option no spec accepts: the file, not the caller, is at fault
            raise CheckpointError(f"{meta_file}: is not a usable lcd-moa model ({exc})") from None


#: The entries of model.json and their JSON types, per format.
_LAYOUT = {
    FORMAT: {"spec": dict, "probe": dict, "seed": int, "train_compounds": list},
    FORMAT_V1: {"params": dict},
}
_COMMON = {"classes": list, "feature_names": list, "conditions": list, "probe_classes": dict}


def _check_layout(meta: dict[str, Any], meta_file: Path) -> None:
    """Refuse a model.json whose entries are missing or of the wrong JSON type, naming the entry."""
    for key, kind in {**_LAYOUT[meta["format"]], **_COMMON}.items():
        if key not in meta:
            raise CheckpointError(f"{meta_file}: is not a usable lcd-moa model (no {key!r} entry)")
        if not isinstance(meta[key], kind) or isinstance(meta[key], bool):
            raise CheckpointError(
                f"{meta_file}: is not a usable lcd-moa model ({key!r} is a {type(meta[key]).__name__}, "
                f"expected a {kind.__name__})"
            )
    if not all(isinstance(r, dict) for r in meta["conditions"]):
        raise CheckpointError(f"{meta_file}: is not a usable lcd-moa model ('conditions' must be records)")
    for c, classes in meta["probe_classes"].items():
        if not str(c).isdigit() or not isinstance(classes, list) or not classes:
            raise CheckpointError(
                f"{meta_file}: is not a usable lcd-moa model (probe_classes[{c!r}] must be a list of classes "
                "under a condition index)"
            )


def _specs_v1(params: dict[str, Any]) -> tuple[MoASpec, ProbeSpec]:
    """The specs of a 0.1 model, whose options were one flat ``params`` mapping."""
    data = {
        k: params[k]
        for k in (
            "compound_key",
            "moa_key",
            "condition_keys",
            "dose_key",
            "control",
            "control_label",
            "layer",
            "use_rep",
        )
        if params.get(k) is not None
    }
    fit = {
        k: params[k]
        for k in ("C", "max_iter", "weights", "score", "allow_control_prediction", "inner_folds")
        if k in params
    }
    return MoASpec.from_dict(data, section="params"), ProbeSpec.from_dict(fit, section="params")


def _from_meta(meta: dict[str, Any], arrays: dict[str, np.ndarray], array_file: Path) -> MoAModel:
    """Build a model from the parsed files (layout already checked by :func:`_check_layout`)."""
    if meta["format"] == FORMAT_V1:
        params = meta["params"]
        spec, probe = _specs_v1(params)
        train, seed = params.get("train_compounds", []), params.get("seed", 0)
        if not isinstance(train, list) or isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError("params.train_compounds must be a list and params.seed an integer")
    else:
        spec = MoASpec.from_dict(meta["spec"], section="spec")
        probe = ProbeSpec.from_dict(meta["probe"], section="probe")
        train, seed = meta["train_compounds"], meta["seed"]
    features = [str(f) for f in meta["feature_names"]]
    conditions = pd.DataFrame(meta["conditions"])
    probes = {}
    for c, classes in meta["probe_classes"].items():
        missing = [f"c{c}_{name}" for name in _ARRAYS if f"c{c}_{name}" not in arrays]
        if missing:
            raise CheckpointError(f"{array_file}: arrays {missing} missing (the folder's files do not match)")
        probe_ = LinearProbe(np.asarray(classes, dtype=str), *(arrays[f"c{c}_{name}"] for name in _ARRAYS))
        n_classes, n_features = len(classes), len(features)
        shapes = {
            "mean": (n_features,),
            "scale": (n_features,),
            "coef": (n_classes, n_features),
            "intercept": (n_classes,),
        }
        for name, shape in shapes.items():
            if getattr(probe_, name).shape != shape:
                raise CheckpointError(
                    f"{array_file}: c{c}_{name} has shape {getattr(probe_, name).shape}, expected {shape}"
                )
        probes[int(c)] = probe_
    return MoAModel(spec, probe, list(meta["classes"]), features, conditions, probes, list(train), int(seed))
