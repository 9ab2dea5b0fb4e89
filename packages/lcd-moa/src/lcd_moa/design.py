"""The experiment layout a probe needs: wells per compound × condition, controls, labels, activity.

Everything downstream (cross-validation, fitting, prediction) works on a :class:`Design` built once
from the profiles and the activity table, so key names and bad input are handled in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import anndata as ad
import numpy as np
import pandas as pd
from lcd_core import InputError, check_keys, control_mask, get_rep, source_of

from lcd_moa.activity import normalize_activity, normalize_values
from lcd_moa.spec import MoASpec


def feature_names(adata: ad.AnnData, use_rep: str | None = None) -> list[str]:
    """Names of the feature columns: ``var_names``, or ``<use_rep>_0..`` for an ``obsm`` matrix.

    Parameters
    ----------
    adata
        Profiles.
    use_rep
        The ``obsm`` key the features come from, or ``None`` (``X`` or a layer).
    """
    if use_rep is not None:
        return [f"{use_rep}_{i}" for i in range(np.asarray(adata.obsm[use_rep]).shape[1])]
    return [str(v) for v in adata.var_names]


@dataclass
class Design:
    """Wells grouped by compound and condition, with labels and activity (see :func:`build_design`).

    Attributes
    ----------
    X
        ``(n_rows, n_features)`` features of every row.
    feature_names
        Feature names, in column order.
    conditions
        One row per condition: the condition key values (normalized), ``n_compounds``, ``n_active``,
        ``n_control_wells``, ``status`` (``ok``/``skipped``) and ``reason``.
    control_rows
        Per condition, the control rows shared by it: controls are matched on every condition key
        except the dose key, whatever their recorded dose (DMSO at dose 0, a vehicle %, or none), so
        they join all doses of their timepoint; a control missing another key's value matches any.
    wells
        ``(compound, condition index) -> row indices`` of treated wells.
    active
        The set of active ``(compound, condition index)`` pairs.
    compounds
        One row per treated compound: ``compound``, ``moa`` (may be missing), ``n_active_conditions``,
        ``status`` and ``reason``.
    """

    X: np.ndarray
    feature_names: list[str]
    condition_keys: list[str]
    conditions: pd.DataFrame
    control_rows: list[np.ndarray]
    wells: dict[tuple[str, int], np.ndarray]
    active: set[tuple[str, int]]
    compounds: pd.DataFrame
    control_label: str
    notes: list[str] = field(default_factory=list)

    def labels(self) -> pd.Series:
        """MoA of every compound with status ``ok`` (index: compound)."""
        ok = self.compounds[self.compounds["status"] == "ok"]
        return pd.Series(ok["moa"].to_numpy(), index=ok["compound"].to_numpy(), name="moa")

    def ok_conditions(self) -> list[int]:
        """Indices of the conditions a probe can be trained at."""
        return [int(i) for i in np.flatnonzero(self.conditions["status"].to_numpy() == "ok")]


def build_design(
    adata: ad.AnnData,
    activity: pd.DataFrame | None,
    spec: MoASpec,
    *,
    labeled: bool = True,
    require_controls: bool = True,
) -> Design:
    """Group the rows of ``adata`` into the compound × condition layout used by the probes.

    Parameters
    ----------
    adata
        Profiles (see :func:`lcd_core.load_profiles`).
    activity
        The activity table; ``None`` means every compound is active wherever it has wells.
    spec
        Key names, controls and where the features are.
    labeled
        ``False`` (prediction of unlabeled data): every label is missing and ``spec.moa_key`` need
        not exist.
    require_controls
        ``False`` (prediction) accepts data without control rows.

    Notes
    -----
    ``spec.dose`` is the one key control rows are *not* matched on: a control's dose (0, the vehicle %,
    or missing) never keeps it out of a condition.
    """
    condition_keys = list(spec.condition_keys)
    control_match_keys = [k for k in condition_keys if k != spec.dose]
    obs = adata.obs
    source = source_of(adata)
    check_keys(
        obs,
        [spec.compound_key, *condition_keys, *([spec.moa_key] if labeled else [])],
        source=source,
        allow_missing=True,  # controls have no MoA and often no dose; treated rows are checked below
    )
    X = get_rep(adata, layer=spec.layer, use_rep=spec.use_rep)
    names = feature_names(adata, use_rep=spec.use_rep)
    is_control = control_mask(obs, spec.control, source=source, require=require_controls)
    no_name = obs[spec.compound_key].isna().to_numpy() & ~is_control
    if no_name.any():
        rows = list(obs.index[no_name][:5])
        raise InputError(
            f"{source}: {int(no_name.sum())} treated rows have no {spec.compound_key!r} value, "
            f"first row ids: {rows}"
        )
    compound = obs[spec.compound_key].astype(str).to_numpy()
    values = pd.DataFrame({k: normalize_values(obs[k]).to_numpy() for k in condition_keys})
    treated = ~is_control
    missing = values[treated].isna().any(axis=1).to_numpy()
    if missing.any():
        rows = list(obs.index[np.flatnonzero(treated)[missing]][:5])
        raise InputError(
            f"{source}: {int(missing.sum())} treated rows lack a condition value in {condition_keys}, "
            f"first row ids: {rows}"
        )

    # conditions are the distinct key combinations of treated rows
    treated_values = values[treated]
    conditions = (
        treated_values.drop_duplicates().sort_values(condition_keys, kind="stable").reset_index(drop=True)
    )
    cond_of = {tuple(r): i for i, r in enumerate(conditions.itertuples(index=False, name=None))}
    row_cond = np.full(len(obs), -1)
    row_cond[np.flatnonzero(treated)] = [
        cond_of[tuple(r)] for r in treated_values.itertuples(index=False, name=None)
    ]

    control_idx = np.flatnonzero(is_control)
    control_values = values.iloc[control_idx]
    control_rows = []
    for _, cond in conditions.iterrows():
        match = np.ones(len(control_idx), dtype=bool)
        for k in control_match_keys:  # the control's dose is the vehicle's, not the condition's
            v = control_values[k]
            match &= (v.isna() | (v == cond[k])).to_numpy()
        control_rows.append(control_idx[match])

    frame = pd.DataFrame(
        {"compound": compound[treated], "cond": row_cond[treated], "row": np.flatnonzero(treated)}
    )
    wells = {
        (str(k), int(c)): g["row"].to_numpy() for (k, c), g in frame.groupby(["compound", "cond"], sort=True)
    }

    # activity: pairs absent from the table are inactive, with a note
    if activity is None:
        active = set(wells)
    else:
        table = normalize_activity(activity, spec)
        check_activity_values(
            table, treated_values, condition_keys, activity.attrs.get("source", "activity table")
        )
        listed, active = set(), set()
        keyed = table[["compound", *condition_keys, "active"]].itertuples(index=False, name=None)
        for item in keyed:
            c = cond_of.get(tuple(item[1:-1]))
            if c is not None and (item[0], c) in wells:
                listed.add((item[0], c))
                if item[-1]:
                    active.add((item[0], c))

    moa_key = spec.moa_key if labeled else None
    compounds, notes = _compound_table(obs, compound, treated, moa_key, spec.control_label, active, source)
    if activity is not None and len(listed) < len(wells):
        notes.append(
            f"{len(wells) - len(listed)} of {len(wells)} compound × conditions with wells are absent from "
            "the activity table and count as inactive"
        )
    n_compounds = np.zeros(len(conditions), dtype=int)
    n_active = np.zeros(len(conditions), dtype=int)
    for k, c in wells:
        n_compounds[c] += 1
        n_active[c] += (k, c) in active
    conditions["n_compounds"] = n_compounds
    conditions["n_active"] = n_active
    conditions["n_control_wells"] = [len(r) for r in control_rows]
    status, reason = [], []
    for na, nc in zip(n_active, conditions["n_control_wells"], strict=True):
        if na == 0:
            status.append("skipped")
            reason.append("no active compound at this condition")
        elif nc == 0 and require_controls:
            status.append("skipped")
            reason.append("no control wells match this condition")
        else:
            status.append("ok")
            reason.append("")
    conditions["status"] = status
    conditions["reason"] = reason
    return Design(
        X,
        names,
        condition_keys,
        conditions,
        control_rows,
        wells,
        active,
        compounds,
        spec.control_label,
        notes,
    )


def check_activity_values(
    table: pd.DataFrame, profile_values: pd.DataFrame, condition_keys: list[str], source: str
) -> None:
    """Refuse an activity table whose condition values cannot be the profiles' (joined by value).

    Activity rows are matched to conditions by exact (normalized) value; a row that matches nothing
    counts as inactive. That is right for a table covering more conditions than the profiles, but
    wrong when the values are written differently: ``'24h'`` vs ``24`` made every compound inactive
    and the run then failed on class sizes, ``10.0000001`` vs ``10`` silently dropped one dose. So,
    per condition key: no activity value matching any profile value, or an activity value within a
    relative 1e-6 of a profile value without being equal to it, is an error naming both.

    Parameters
    ----------
    table
        The normalized activity table (:func:`lcd_moa.activity.normalize_activity`).
    profile_values
        The normalized condition values of the treated profile rows.
    condition_keys
        The condition columns.
    source
        The activity table's file, for the message.
    """
    for key in condition_keys:
        found = set(table[key].dropna().tolist())
        have = set(profile_values[key].dropna().tolist())
        if not found or not have:
            continue
        numbers = np.array([v for v in have if isinstance(v, float)], dtype=float)
        for value in sorted(found - have, key=str):
            if not isinstance(value, float) or numbers.size == 0:
                continue
            near = numbers[np.isclose(numbers, value, rtol=1e-6, atol=0.0)]
            if near.size:
                raise InputError(
                    f"{source}: {key} {value!r} is not a value of the profiles but nearly equals "
                    f"{float(near[0])!r}; values are matched exactly: write {float(near[0])!r}"
                )
        if not found & have:
            example = sorted(found, key=str)[0]
            shown_have = ", ".join(repr(v) for v in sorted(have, key=str)[:6])
            raise InputError(
                f"{source}: no {key!r} value of the activity table matches the profiles' (activity has "
                f"{example!r}, profiles have {shown_have}); write the values the same way in both"
            )


def require_labeled_active(design: Design, task: str) -> pd.Series:
    """The labels of the usable compounds; one line naming why none is usable when there is none."""
    labels = design.labels()
    if labels.empty:
        comp = design.compounds
        counts = comp["reason"].value_counts()
        why = "; ".join(f"{n} × {reason!r}" for reason, n in counts.items())
        raise InputError(
            f"no labeled compound is active at any condition ({len(comp)} compounds: {why}): nothing to {task}"
        )
    return labels


def require_usable_condition(design: Design, task: str) -> None:
    """Stop with one line when no condition can have a probe, naming why each condition was skipped.

    A run in which some conditions are skipped goes on (their status/reason is recorded in
    ``conditions``); a run in which *every* condition is skipped has nothing to compute.
    """
    if design.ok_conditions():
        return
    cond = design.conditions
    if cond.empty:
        raise InputError(f"no treated condition in the profiles: nothing to {task}")
    counts = cond["reason"].value_counts()
    why = "; ".join(f"{n} × {reason!r}" for reason, n in counts.items())
    raise InputError(f"no usable condition ({len(cond)} skipped: {why}): nothing to {task}")


def _compound_table(
    obs: pd.DataFrame,
    compound: np.ndarray,
    treated: np.ndarray,
    moa_key: str | None,
    control_label: str,
    active: set[tuple[str, int]],
    source: str,
) -> tuple[pd.DataFrame, list[str]]:
    """One row per treated compound with its label and whether it can be used."""
    names = sorted(set(compound[treated].tolist()))
    if moa_key is None:
        moa = pd.Series([None] * len(names), index=names, dtype=object)
    else:
        labels = pd.DataFrame({"compound": compound[treated], "moa": obs[moa_key].to_numpy()[treated]})
        labels = labels.dropna().astype(str).drop_duplicates()
        conflict = labels["compound"].duplicated(keep=False)
        if conflict.any():
            first = labels.loc[conflict.to_numpy(), "compound"].iloc[0]
            found = labels.loc[labels["compound"] == first, "moa"].tolist()
            raise InputError(f"{source}: compound {first!r} has several {moa_key!r} labels: {found}")
        moa = labels.set_index("compound")["moa"].reindex(names)
        if (moa == control_label).any():
            bad = list(moa.index[moa == control_label][:3])
            raise InputError(
                f"{source}: treated compounds {bad} carry the control class name {control_label!r} as MoA; "
                "choose another control_label= or fix the control definition"
            )
    n_active = pd.Series(0, index=names)
    for k, _ in active:
        n_active[k] += 1
    status, reason = [], []
    for name in names:
        if pd.isna(moa[name]):
            status.append("no_label")
            reason.append(f"no {moa_key!r} label" if moa_key else "unlabeled")
        elif n_active[name] == 0:
            status.append("never_active")
            reason.append("not active at any condition")
        else:
            status.append("ok")
            reason.append("")
    table = pd.DataFrame(
        {
            "compound": names,
            "moa": moa.to_numpy(dtype=object),
            "n_active_conditions": n_active.to_numpy(),
            "status": status,
            "reason": reason,
        }
    )
    notes = []
    n_missing = int((table["status"] == "no_label").sum())
    if n_missing and moa_key is not None:
        notes.append(f"{n_missing} compounds have no {moa_key!r} label and are left out")
    return table, notes
