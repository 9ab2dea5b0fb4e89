"""The LCD paper's normalization criterion: mean AP against DMSO per dose × timepoint, then averaged.

Table 1 of the paper scores a normalization by the AP of each compound's replicate wells against DMSO
wells, per condition (dose × timepoint), at well level, then averages the conditions. The AP is the
one of lcd-metrics' mAP-ES design (:func:`lcd_metrics.map_es`: positives from other replicas, 31
DMSO negatives from the query's plate at its timepoint), so Table 1 and the activity calls use the
same retrieval. This differs from :func:`lcd_norm.evaluate`'s replicate mAP, which pools every dose
and timepoint and ranks against other compounds at FOV level (kept beside it in
:func:`lcd_norm.compare`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from lcd_core import DEFAULT_CONTROL, InputError

#: keys of the dict :func:`dmso_map` returns, in table order
DMSO_MAP_COLUMNS = ("map_dmso", "map_dmso_sd", "map_dmso_conditions", "map_dmso_status", "map_dmso_reason")


def dmso_map(
    adata: AnnData,
    *,
    use_rep: str | None = None,
    layer: str | None = None,
    compound_key: str = "compound",
    replica_key: str = "replica",
    plate_key: str = "plate",
    well_key: str = "well",
    fov_key: str = "fov",
    timepoint_key: str = "timepoint",
    dose_key: str = "dose",
    control: str = DEFAULT_CONTROL,
    n_draws: int = 200,
    seed: int = 0,
) -> tuple[dict, pd.DataFrame]:
    """Mean AP against DMSO per dose × timepoint, averaged over the conditions (paper Table 1).

    Parameters
    ----------
    adata
        Profiles at FOV or well level (FOVs are aggregated to wells by their median first).
    use_rep, layer
        The representation to score (``obsm[use_rep]``, ``layers[layer]`` or ``X``).
    compound_key, replica_key, plate_key, well_key, fov_key, timepoint_key, dose_key
        Column names (docs/data-model.md, "Names").
    control
        The DMSO wells (pandas query or boolean column).
    n_draws
        mAP-ES draws per compound × condition (the AP is their mean).
    seed
        Seed of the draws.

    Returns
    -------
    tuple
        A dict with ``map_dmso`` (mean over conditions of the mean AP of the compounds scored there),
        ``map_dmso_sd`` (SD over conditions), ``map_dmso_conditions`` (conditions with a score),
        ``map_dmso_status`` (``ok`` / ``partial`` / ``failed``) and ``map_dmso_reason``; and the
        per-condition table (condition keys, ``mean_ap``, ``sd_ap``, ``n_compounds``,
        ``n_failed``).
    """
    from lcd_metrics import map_es

    from lcd_norm.aggregate import aggregate

    empty = pd.DataFrame(columns=[timepoint_key, dose_key, "mean_ap", "sd_ap", "n_compounds", "n_failed"])
    missing = [k for k in (timepoint_key, dose_key, well_key, plate_key, replica_key) if k not in adata.obs]
    if missing:
        return _failed(f"no {missing[0]!r} column: the criterion is per dose × timepoint of wells"), empty
    try:
        wells = aggregate(
            adata,
            by="well",
            layer=layer,
            use_rep=use_rep,
            plate_key=plate_key,
            well_key=well_key,
            fov_key=fov_key,
            timepoint_key=timepoint_key,
        )
        act = map_es(
            wells,
            compound_key=compound_key,
            replica_key=replica_key,
            plate_key=plate_key,
            timepoint_key=timepoint_key,
            dose_key=dose_key,
            control=control,
            n_draws=n_draws,
            seed=seed,
        )
    except InputError as exc:
        return _failed(str(exc)), empty
    return dmso_map_by_condition(act, [timepoint_key, dose_key])


def dmso_map_by_condition(activity: pd.DataFrame, condition_keys: Sequence[str]) -> tuple[dict, pd.DataFrame]:
    """Table 1's numbers from an activity table: mean AP per condition, then over conditions.

    Parameters
    ----------
    activity
        A :func:`lcd_metrics.map_es` table (``map_mean``, ``status``).
    condition_keys
        The condition columns (timepoint, dose).

    Returns
    -------
    tuple
        The summary dict (see :func:`dmso_map`) and the per-condition table.
    """
    keys = list(condition_keys)
    scored = activity.assign(failed=activity["status"] == "failed")
    per = (
        scored.groupby(keys, sort=True)
        .apply(
            lambda g: pd.Series(
                {
                    "mean_ap": float(g.loc[~g["failed"], "map_mean"].mean())
                    if (~g["failed"]).any()
                    else np.nan,
                    "sd_ap": float(g.loc[~g["failed"], "map_mean"].std(ddof=1))
                    if (~g["failed"]).sum() > 1
                    else np.nan,
                    "n_compounds": int((~g["failed"]).sum()),
                    "n_failed": int(g["failed"].sum()),
                }
            ),
            include_groups=False,
        )
        .reset_index()
    )
    per["n_compounds"] = per["n_compounds"].astype(int)
    per["n_failed"] = per["n_failed"].astype(int)
    defined = per["mean_ap"].notna()
    if not defined.any():
        reasons = activity.loc[activity["status"] == "failed", "reason"].drop_duplicates().head(2)
        return _failed("no condition had a compound with a score: " + "; ".join(reasons)), per
    reasons = []
    if (~defined).any():
        reasons.append(f"{int((~defined).sum())} of {len(per)} conditions had no scored compound")
    if int(per["n_failed"].sum()):
        reasons.append(f"{int(per['n_failed'].sum())} compound × condition rows failed (see their reason)")
    summary = {
        "map_dmso": float(per.loc[defined, "mean_ap"].mean()),
        "map_dmso_sd": float(per.loc[defined, "mean_ap"].std(ddof=1)) if defined.sum() > 1 else np.nan,
        "map_dmso_conditions": int(defined.sum()),
        "map_dmso_status": "partial" if reasons else "ok",
        "map_dmso_reason": "; ".join(reasons),
    }
    return summary, per


def _failed(reason: str) -> dict:
    return {
        "map_dmso": np.nan,
        "map_dmso_sd": np.nan,
        "map_dmso_conditions": 0,
        "map_dmso_status": "failed",
        "map_dmso_reason": reason,
    }
