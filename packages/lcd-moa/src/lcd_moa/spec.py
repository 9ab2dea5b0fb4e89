"""The two option sets of an MoA run, each declared once: what the data columns mean, and the probes.

:class:`MoASpec` names the columns of the profiles and the activity table (compound, MoA, condition
keys, controls, features); :class:`ProbeSpec` holds the probe and aggregation options (``C``,
``max_iter``, weights, scoring). :func:`lcd_moa.cross_validate`, :func:`lcd_moa.fit_moa` and
:func:`lcd_moa.predict_moa` take one of each (or a mapping, e.g. a YAML section, checked key by key),
and a saved :class:`lcd_moa.MoAModel` records both. Every default lives here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from lcd_core import CONDITION_KEYS, DEFAULT_CONTROL, ConfigError, check_options

S = TypeVar("S", "MoASpec", "ProbeSpec")

#: Class name given to control wells (the probes' own class for "no effect").
CONTROL_LABEL = "DMSO"
#: How per-condition probabilities are weighted when averaged over a compound's conditions.
WEIGHTS = ("equal", "wells", "accuracy")
#: Where a compound is scored: only at its active conditions, or wherever it has wells.
SCORE_MODES = ("active", "all")


def _as_tuple(value: Any, field: str, owner: str) -> tuple[str, ...] | None:
    """A column name or a sequence of names as a tuple of str (``None`` stays ``None``)."""
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{owner}.{field}: expected a column name or a list of names, got {value!r}")
    for v in value:
        if not isinstance(v, str) or not v:
            raise ConfigError(f"{owner}.{field}: column names must be non-empty strings, got {v!r}")
    return tuple(value)


def _check_name(value: Any, field: str, owner: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{owner}.{field}: expected a non-empty string, got {value!r}")


@dataclass(frozen=True)
class MoASpec:
    """What the columns of the profiles and of the activity table mean.

    Parameters
    ----------
    compound_key
        Compound column of the profiles' ``obs`` (controls included).
    moa_key
        MoA label column (missing for controls and unannotated compounds).
    condition_keys
        Columns whose combination is a condition (one probe each), default ``("timepoint", "dose")``.
    dose_key
        The condition key holding the dose (default: the last condition key). Control rows are matched
        to conditions on every other condition key, whatever dose they record.
    control
        Negative controls: a pandas query on ``obs`` or a boolean column
        (:func:`lcd_core.control_mask`), default :data:`lcd_core.DEFAULT_CONTROL`.
    control_label
        Class name given to control wells.
    activity_keys
        Names of ``(compound, *condition_keys)`` in the activity table, when they differ from the
        profiles' names.
    active_key
        Boolean activity column of the activity table.
    features
        Feature columns of a table input (a list or a regex; :func:`lcd_core.feature_columns`).
    layer
        AnnData layer holding the features.
    use_rep
        AnnData ``obsm`` entry holding the features (e.g. ``"X_harmony"``).
    """

    compound_key: str = "compound"
    moa_key: str = "moa"
    condition_keys: tuple[str, ...] = CONDITION_KEYS
    dose_key: str | None = None
    control: str = DEFAULT_CONTROL
    control_label: str = CONTROL_LABEL
    activity_keys: tuple[str, ...] | None = None
    active_key: str = "active"
    features: tuple[str, ...] | str | None = None
    layer: str | None = None
    use_rep: str | None = None

    def __post_init__(self) -> None:
        owner = type(self).__name__
        keys = _as_tuple(self.condition_keys, "condition_keys", owner)
        if not keys:
            raise ConfigError(f"{owner}.condition_keys: name at least one column")
        if len(set(keys)) != len(keys):
            raise ConfigError(f"{owner}.condition_keys: {list(keys)} names a column twice")
        object.__setattr__(self, "condition_keys", keys)
        activity = _as_tuple(self.activity_keys, "activity_keys", owner)
        if activity is not None and len(activity) != 1 + len(keys):
            raise ConfigError(
                f"{owner}.activity_keys: must name {1 + len(keys)} columns (compound, then "
                f"{', '.join(keys)}), got {list(activity)}"
            )
        object.__setattr__(self, "activity_keys", activity)
        if self.features is not None and not isinstance(self.features, str):
            object.__setattr__(self, "features", _as_tuple(self.features, "features", owner))
        for field in ("compound_key", "moa_key", "control", "control_label", "active_key"):
            _check_name(getattr(self, field), field, owner)
        for field in ("dose_key", "layer", "use_rep"):
            _check_name(getattr(self, field), field, owner, optional=True)
        if self.dose_key is not None and self.dose_key not in keys:
            raise ConfigError(
                f"{owner}.dose_key: {self.dose_key!r} must be one of condition_keys {list(keys)}"
            )
        if self.layer is not None and self.use_rep is not None:
            raise ConfigError(f"{owner}: give layer or use_rep, not both")
        if self.compound_key in keys or self.moa_key in keys or self.compound_key == self.moa_key:
            raise ConfigError(
                f"{owner}: compound_key {self.compound_key!r}, moa_key {self.moa_key!r} and "
                f"condition_keys {list(keys)} must be different columns"
            )

    @property
    def dose(self) -> str:
        """The dose column: ``dose_key``, else the last condition key."""
        return self.dose_key if self.dose_key is not None else self.condition_keys[-1]

    @classmethod
    def from_dict(cls, options: Mapping[str, Any] | None, *, section: str | None = None) -> MoASpec:
        """A spec from plain options (a YAML/JSON section): unknown keys and wrong types are refused.

        Parameters
        ----------
        options
            Field name to value; missing fields keep their defaults.
        section
            Named in messages (default: the class name), e.g. ``moa.spec``.
        """
        return _from_dict(cls, options, section)

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain JSON values (tuples as lists); :meth:`from_dict` reads it back."""
        return _to_dict(self)

    def replace(self, **changes: Any) -> MoASpec:
        """A copy with ``changes`` applied (validated again).

        Parameters
        ----------
        **changes
            Field name to new value.
        """
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class ProbeSpec:
    """The per-condition probes and how their outputs are combined.

    Parameters
    ----------
    C
        Inverse L2 regularization strength of the logistic regression.
    max_iter
        lbfgs iteration limit of each fit.
    weights
        Condition weights when a compound's conditions are averaged: ``"equal"``, ``"wells"`` (the
        compound's well count at the condition) or ``"accuracy"`` (each condition's accuracy from an
        inner cross-validation on the training compounds only).
    score
        ``"active"``: score a compound only where it is active; ``"all"``: wherever it has wells.
    allow_control_prediction
        Whether the aggregated prediction may be the control class (default: MoA classes only,
        renormalized).
    inner_folds
        Folds of the inner cross-validation behind ``weights="accuracy"``.
    """

    C: float = 1.0
    max_iter: int = 1000
    weights: str = "equal"  # one of WEIGHTS (checked in __post_init__, with the choices in the message)
    score: str = "active"  # one of SCORE_MODES
    allow_control_prediction: bool = False
    inner_folds: int = 3

    def __post_init__(self) -> None:
        owner = type(self).__name__
        c = self.C
        if isinstance(c, bool) or not isinstance(c, int | float) or not math.isfinite(c) or c <= 0:
            raise ConfigError(f"{owner}.C: must be a positive number, got {c!r}")
        object.__setattr__(self, "C", float(c))
        for field, low in (("max_iter", 1), ("inner_folds", 2)):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{owner}.{field}: must be an integer >= {low}, got {value!r}")
        if self.weights not in WEIGHTS:
            raise ConfigError(f"{owner}.weights: must be one of {', '.join(WEIGHTS)}, got {self.weights!r}")
        if self.score not in SCORE_MODES:
            raise ConfigError(f"{owner}.score: must be one of {', '.join(SCORE_MODES)}, got {self.score!r}")
        if not isinstance(self.allow_control_prediction, bool):
            raise ConfigError(
                f"{owner}.allow_control_prediction: expected true or false, got {self.allow_control_prediction!r}"
            )

    @classmethod
    def from_dict(cls, options: Mapping[str, Any] | None, *, section: str | None = None) -> ProbeSpec:
        """A probe spec from plain options: unknown keys and wrong types are refused.

        Parameters
        ----------
        options
            Field name to value; missing fields keep their defaults.
        section
            Named in messages (default: the class name), e.g. ``moa.probe``.
        """
        return _from_dict(cls, options, section)

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain JSON values; :meth:`from_dict` reads it back."""
        return _to_dict(self)

    def replace(self, **changes: Any) -> ProbeSpec:
        """A copy with ``changes`` applied (validated again).

        Parameters
        ----------
        **changes
            Field name to new value.
        """
        return dataclasses.replace(self, **changes)


def _from_dict(cls: type[S], options: Mapping[str, Any] | None, section: str | None) -> S:
    checked = check_options(options or {}, cls, section=section or cls.__name__)
    return cls(**checked)


def _to_dict(spec: MoASpec | ProbeSpec) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(spec):
        value = getattr(spec, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def resolve(spec: S | Mapping[str, Any] | None, cls: type[S], base: S | None = None) -> S:
    """``spec`` as an instance of ``cls``: ``None`` gives ``base`` (or the defaults), a mapping overrides them.

    Parameters
    ----------
    spec
        An instance, a mapping of fields to override, or ``None``.
    cls
        :class:`MoASpec` or :class:`ProbeSpec`.
    base
        What ``None`` and a mapping start from (a fitted model's spec in prediction).
    """
    if spec is None:
        return base if base is not None else cls()
    if isinstance(spec, cls):
        return spec
    if isinstance(spec, Mapping):
        changes = check_options(spec, cls, section=cls.__name__)
        return dataclasses.replace(base, **changes) if base is not None else cls(**changes)
    raise ConfigError(
        f"expected a {cls.__name__}, a mapping of its fields or None, got {type(spec).__name__}"
    )
