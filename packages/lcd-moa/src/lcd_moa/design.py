"""The experiment layout a probe needs: wells per compound × condition, controls, labels, activity.

Everything downstream (cross-validation, fitting, prediction) works on a :class:`Design` built once
from the profiles and the activity table, so key names and bad input are handled in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import anndata as ad
import numpy as np
import pandas as pd

from lcd_moa.io import feature_matrix, feature_names

DEFAULT_CONTROL = "compound == 'DMSO'"


def normalize_values(values: pd.Series) -> pd.Series:
    """Canonical condition values so that 24, 24.0 and "24" (or 0.62 written twice) match.

    Numeric-looking columns become floats rounded to 10 significant digits, others strings; missing
    values stay missing.
    """
    numeric = pd.to_numeric(values, errors="coerce")
    if values.notna().sum() == numeric.notna().sum():
        return numeric.map(lambda v: v if pd.isna(v) else float(f"{v:.10g}")).astype(object)
    return values.map(lambda v: v if pd.isna(v) else str(v)).astype(object)


def require_columns(table: pd.DataFrame, columns: Sequence[str], where: str) -> None:
    """One-line error naming missing columns and listing the available ones."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise KeyError(f"{where}: column(s) {missing} not found; available: {list(table.columns)[:30]}")


def control_mask(obs: pd.DataFrame, control: str) -> np.ndarray:
    """Negative-control rows: a boolean ``obs`` column name, or a pandas query string on ``obs``."""
    if control in obs.columns:
        col = obs[control]
        if not pd.api.types.is_bool_dtype(col):
            raise TypeError(f"control column {control!r} must be boolean, got dtype {col.dtype}")
        return col.to_numpy(dtype=bool)
    try:
        result = obs.eval(control)
    except Exception as err:  # pandas raises many types for a bad expression
        raise ValueError(
            f"control query {control!r} failed ({type(err).__name__}: {err}); columns with spaces need "
            f"backticks; available columns: {list(obs.columns)[:30]}"
        ) from err
    result = pd.Series(result, index=obs.index)
    if not (pd.api.types.is_bool_dtype(result) or result.isna().all()):
        raise TypeError(f"control query {control!r} must give booleans, got dtype {result.dtype}")
    return result.fillna(False).to_numpy(dtype=bool)


def read_activity(
    activity: pd.DataFrame,
    *,
    compound_key: str,
    condition_keys: Sequence[str],
    activity_keys: Sequence[str] | None = None,
    active_key: str = "active",
) -> pd.DataFrame:
    """Normalize an activity table (lcd-metrics' ``map_es`` output or any compound × condition table).

    Parameters
    ----------
    activity
        One row per compound × condition with a boolean ``active_key`` column. Rows whose ``active``
        is missing (``map_es`` rows with an error status) count as inactive.
    compound_key, condition_keys
        The key names used in the profiles.
    activity_keys
        The same keys as named in the activity table, in the order ``(compound, *conditions)``;
        default: the profile names.
    active_key
        The activity column.

    Returns
    -------
    DataFrame with columns ``compound``, the condition keys (profile names, normalized values),
    ``active`` (bool) and ``activity_note``.
    """
    keys = [compound_key, *condition_keys]
    source = list(activity_keys) if activity_keys is not None else keys
    if len(source) != len(keys):
        raise ValueError(f"activity_keys must name {len(keys)} columns ({keys}), got {source}")
    require_columns(
        activity, [*source, active_key], f"activity table {activity.attrs.get('source', '')}".strip()
    )
    out = pd.DataFrame({k: activity[s].to_numpy() for k, s in zip(keys, source, strict=True)})
    for k in condition_keys:
        out[k] = normalize_values(out[k])
    out = out.rename(columns={compound_key: "compound"})
    out["compound"] = out["compound"].astype(str)
    raw = activity[active_key]
    if pd.api.types.is_bool_dtype(raw):
        active = raw.to_numpy(dtype=bool)
        note = np.where(active, "", "inactive")
    else:
        as_text = raw.map(lambda v: v if pd.isna(v) else str(v).strip().lower())
        valid = as_text.isna() | as_text.isin(["true", "false", "1", "0", "1.0", "0.0"])
        if not valid.all():
            first = int(np.flatnonzero(~valid.to_numpy())[0])
            raise ValueError(
                f"activity column {active_key!r} must be boolean; row {first} holds {raw.iloc[first]!r}"
            )
        active = as_text.isin(["true", "1", "1.0"]).to_numpy()
        note = np.where(
            active, "", np.where(as_text.isna(), "activity missing (e.g. map_es error status)", "inactive")
        )
    out["active"] = active
    out["activity_note"] = note
    dup = out.duplicated(["compound", *condition_keys])
    if dup.any():
        row = out.loc[dup.to_numpy()].iloc[0]
        raise ValueError(
            f"activity table has duplicated compound × condition rows, first: {row[['compound', *condition_keys]].to_dict()}"
        )
    return out


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

    def condition_label(self, index: int) -> str:
        """A readable name such as ``24h × 10`` for figures."""
        values = self.conditions.loc[index, self.condition_keys].tolist()
        return " × ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def build_design(
    adata: ad.AnnData,
    activity: pd.DataFrame | None,
    *,
    compound_key: str = "compound",
    moa_key: str | None = "moa",
    condition_keys: Sequence[str] = ("timepoint", "dose"),
    dose_key: str | None = None,
    control: str = DEFAULT_CONTROL,
    control_label: str = "DMSO",
    activity_keys: Sequence[str] | None = None,
    active_key: str = "active",
    layer: str | None = None,
    use_rep: str | None = None,
    require_controls: bool = True,
) -> Design:
    """Group the rows of ``adata`` into the compound × condition layout used by the probes.

    ``activity=None`` means every compound is active wherever it has wells (no activity filter).
    ``moa_key=None`` (prediction of unlabeled data) leaves every label missing.
    ``require_controls=False`` (prediction) accepts data without control rows.
    ``dose_key`` (default: the last condition key) is the one key control rows are *not* matched on:
    a control's dose (0, the vehicle %, or missing) never keeps it out of a condition.
    """
    condition_keys = list(condition_keys)
    if not condition_keys:
        raise ValueError("condition_keys must name at least one column")
    if dose_key is None:
        dose_key = condition_keys[-1]
    if dose_key not in condition_keys:
        raise ValueError(f"dose_key {dose_key!r} must be one of condition_keys {condition_keys}")
    control_match_keys = [k for k in condition_keys if k != dose_key]
    obs = adata.obs
    where = f"profiles {adata.uns.get('lcd_moa_source', '')}".strip()
    require_columns(obs, [compound_key, *condition_keys, *([moa_key] if moa_key else [])], where)
    X = feature_matrix(adata, layer=layer, use_rep=use_rep)
    names = feature_names(adata, use_rep=use_rep)
    is_control = control_mask(obs, control)
    if require_controls and not is_control.any():
        raise ValueError(
            f"no control rows match {control!r}: every probe needs control wells as its own class"
        )
    no_name = obs[compound_key].isna().to_numpy() & ~is_control
    if no_name.any():
        rows = list(obs.index[no_name][:5])
        raise ValueError(
            f"{int(no_name.sum())} treated rows have no {compound_key!r} value, first row ids: {rows}"
        )
    compound = obs[compound_key].astype(str).to_numpy()
    values = pd.DataFrame({k: normalize_values(obs[k]).to_numpy() for k in condition_keys})
    treated = ~is_control
    missing = values[treated].isna().any(axis=1).to_numpy()
    if missing.any():
        rows = list(obs.index[np.flatnonzero(treated)[missing]][:5])
        raise ValueError(
            f"{int(missing.sum())} treated rows lack a condition value in {condition_keys}, first row ids: {rows}"
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
        table = read_activity(
            activity,
            compound_key=compound_key,
            condition_keys=condition_keys,
            activity_keys=activity_keys,
            active_key=active_key,
        )
        listed, active = set(), set()
        keyed = table[["compound", *condition_keys, "active"]].itertuples(index=False, name=None)
        for item in keyed:
            c = cond_of.get(tuple(item[1:-1]))
            if c is not None and (item[0], c) in wells:
                listed.add((item[0], c))
                if item[-1]:
                    active.add((item[0], c))

    compounds, notes = _compound_table(obs, compound, treated, moa_key, control_label, active)
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
        X, names, condition_keys, conditions, control_rows, wells, active, compounds, control_label, notes
    )


def require_labeled_active(design: Design, task: str) -> pd.Series:
    """The labels of the usable compounds; one line naming why none is usable when there is none."""
    labels = design.labels()
    if labels.empty:
        comp = design.compounds
        counts = comp["reason"].value_counts()
        why = "; ".join(f"{n} × {reason!r}" for reason, n in counts.items())
        raise ValueError(
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
        raise ValueError(f"no treated condition in the profiles: nothing to {task}")
    counts = cond["reason"].value_counts()
    why = "; ".join(f"{n} × {reason!r}" for reason, n in counts.items())
    raise ValueError(f"no usable condition ({len(cond)} skipped: {why}): nothing to {task}")


def _compound_table(
    obs: pd.DataFrame,
    compound: np.ndarray,
    treated: np.ndarray,
    moa_key: str | None,
    control_label: str,
    active: set[tuple[str, int]],
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
            raise ValueError(f"compound {first!r} has several {moa_key!r} labels: {found}")
        moa = labels.set_index("compound")["moa"].reindex(names)
        if (moa == control_label).any():
            bad = list(moa.index[moa == control_label][:3])
            raise ValueError(
                f"treated compounds {bad} carry the control class name {control_label!r} as MoA; "
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
