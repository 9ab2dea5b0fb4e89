"""The mAP-ES design report: what each compound × condition will be scored with, before any draw."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd
from lcd_core import DEFAULT_CONTROL, InputError, record_params

from .es_design import condition_summary, design_table, plan_all
from .map_es import check_design_options, prepare

if TYPE_CHECKING:  # anndata is imported when a report is stored (importing it costs ~0.5 s)
    import anndata


def map_es_design(
    data: Any,
    *,
    compound_key: str = "compound",
    replica_key: str = "replica",
    plate_key: str = "plate",
    timepoint_key: str | None = "timepoint",
    dose_key: str | None = "dose",
    condition_keys: Sequence[str] | None = None,
    control: str = DEFAULT_CONTROL,
    plate_scope: str = "screen",
    n_pos: int = 3,
    n_neg: int = 31,
    features: Sequence[str] | str | None = None,
    layer: str | None = None,
    use_rep: str | None = None,
    key_added: str | None = None,
    copy: bool = False,
) -> pd.DataFrame | anndata.AnnData | None:
    """How :func:`map_es` will score each compound × condition, without drawing.

    For each compound × condition: which rule its positives follow, how many wells, replicas and
    plates it has, the fewest positives and negatives a query finds, how many control queries its null
    has, and whether its row will be ``ok``, ``partial`` or ``failed`` and why. The same table is in
    ``map_es(...).attrs["lcd_metrics"]["design"]``.

    Parameters
    ----------
    data
        Profiles, as for :func:`map_es` (AnnData, pycytominer-layout DataFrame or a path).
    compound_key, replica_key, plate_key, timepoint_key, dose_key, condition_keys, control, plate_scope
        As in :func:`map_es`.
    n_pos, n_neg
        The design: positives and negatives per draw.
    features, layer, use_rep
        Where features are read from (the report does not use them; the input is checked as map_es would).
    key_added
        With an AnnData: store the report in ``uns[key_added]`` (``params``, ``groups`` = the per-row
        report, ``conditions`` = the per-condition summary) and return None (or the copy).
    copy
        With `key_added`: write into a copy of the AnnData and return it.

    Returns
    -------
    pandas.DataFrame or anndata.AnnData or None
        Without `key_added`: one row per compound × condition with the key columns, ``status``,
        ``reason``, ``pos_rule``, ``n_wells``, ``n_replicas``, ``n_plates``, ``pos_available``,
        ``neg_available`` and ``null_controls``; the per-condition summary is in
        ``attrs["conditions"]`` (a dict of columns).
    """
    from anndata import AnnData

    n_pos, n_neg = check_design_options(n_pos, n_neg, plate_scope)
    if key_added is not None and not isinstance(data, AnnData):
        raise InputError(
            f"key_added={key_added!r} stores the report in an AnnData's uns; got {type(data).__name__}"
        )
    layout, _, conds, _ = prepare(
        data,
        compound_key=compound_key,
        replica_key=replica_key,
        plate_key=plate_key,
        timepoint_key=timepoint_key,
        dose_key=dose_key,
        condition_keys=condition_keys,
        control=control,
        plate_scope=plate_scope,
        features=features,
        layer=layer,
        use_rep=use_rep,
        with_features=False,
    )
    groups, nulls = plan_all(layout, n_pos, n_neg)
    table = design_table(layout, groups, nulls, compound_key, conds)
    summary = condition_summary(table, conds)
    table.attrs["conditions"] = summary.to_dict(orient="list")
    table.attrs["lcd_metrics"] = {"compound_key": compound_key, "condition_keys": list(conds)}
    if key_added is None:
        return table
    adata = data.copy() if copy else data
    params = {
        "compound_key": compound_key,
        "replica_key": replica_key,
        "plate_key": plate_key,
        "timepoint_key": timepoint_key,
        "dose_key": dose_key,
        "condition_keys": list(conds),
        "control": control,
        "plate_scope": plate_scope,
        "n_pos": n_pos,
        "n_neg": n_neg,
    }
    record_params(adata, key_added, params)
    adata.uns[key_added]["groups"] = _storable(table)
    adata.uns[key_added]["conditions"] = _storable(summary)
    return adata if copy else None


def _storable(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame h5ad can store in ``uns``: text in object columns, no attrs."""
    out = pd.DataFrame(frame).copy()
    out.attrs = {}
    for c in out.columns:
        if out[c].dtype == object:
            out[c] = out[c].astype(str)
    return out
