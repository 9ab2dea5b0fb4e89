"""Temporal trajectories of compounds in the normalized profile space (paper SM: recovery after withdrawal).

Per compound × dose, the path of its well profiles across timepoints: at each timepoint the median of
its wells, its distance to the median of the control wells of that timepoint (how far the phenotype
is from DMSO), the change of that distance from the previous timepoint (``away`` from DMSO, or
``toward`` it: recovery), and the cosine between successive displacements from DMSO (whether the
phenotype keeps its direction). A 2-D view comes from scanpy's PCA (or UMAP) of the well profiles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from lcd_core import DEFAULT_CONTROL, InputError

TRAJECTORY_COLUMNS = (
    "n_wells",
    "distance_to_control",
    "control_spread",
    "change",
    "direction",
    "step_cosine",
)


@dataclass
class Trajectories:
    """Result of :func:`trajectories`.

    Attributes
    ----------
    table
        One row per compound × dose × timepoint: the keys and :data:`TRAJECTORY_COLUMNS`.
    coords
        The same rows with the 2-D coordinates ``x``, ``y`` of their median position.
    control_coords
        Control wells' 2-D coordinates (``x``, ``y``) with their timepoint.
    basis
        ``"pca"`` or ``"umap"``.
    """

    table: pd.DataFrame
    coords: pd.DataFrame
    control_coords: pd.DataFrame
    basis: str


def trajectories(
    wells,
    *,
    use_rep: str | None = None,
    compound_key: str = "compound",
    timepoint_key: str = "timepoint",
    dose_key: str = "dose",
    control: str = DEFAULT_CONTROL,
    basis: str = "pca",
    seed: int = 0,
) -> Trajectories:
    """Each compound × dose's path through the profile space over time.

    Parameters
    ----------
    wells
        Well-level profiles (AnnData), e.g. a normalized representation aggregated to wells.
    use_rep
        Read features from ``obsm[use_rep]`` instead of ``X``.
    compound_key, timepoint_key, dose_key
        Metadata columns.
    control
        The control (DMSO) wells: pandas query or boolean column.
    basis
        2-D view: ``"pca"`` (scanpy ``pp.pca``) or ``"umap"`` (scanpy ``pp.neighbors`` + ``tl.umap``).
    seed
        Seed of PCA's solver / UMAP.

    Returns
    -------
    Trajectories
        The per-timepoint table, the 2-D path coordinates and the control cloud.
    """
    import anndata as ad
    import scanpy as sc
    from lcd_core import check_keys, control_mask, get_rep, source_of

    if basis not in ("pca", "umap"):
        raise InputError(f"basis must be 'pca' or 'umap', got {basis!r}")
    obs = wells.obs
    check_keys(obs, [timepoint_key], source=source_of(wells))
    X = get_rep(wells, use_rep=use_rep, dtype=np.float64)
    ctrl = control_mask(obs, control)
    # control wells often have no dose (a CellProfiler table's DMSO rows): only treated wells need one
    check_keys(obs.loc[~ctrl], [compound_key, dose_key], source=source_of(wells))
    times = sorted(pd.unique(obs[timepoint_key]))
    centers, spread = {}, {}
    for t in times:
        at = (obs[timepoint_key] == t).to_numpy() & ctrl
        if not at.any():
            raise InputError(f"{source_of(wells)}: no control wells at {timepoint_key}={t!r}")
        centers[t] = np.median(X[at], axis=0)
        spread[t] = float(np.median(np.linalg.norm(X[at] - centers[t], axis=1)))
    frame = obs.loc[~ctrl, [compound_key, dose_key, timepoint_key]].copy()
    frame["_row"] = np.flatnonzero(~ctrl)
    rows = []
    for (compound, dose), g in frame.groupby([compound_key, dose_key], sort=True, observed=True):
        previous = None
        for t in times:
            idx = g.loc[g[timepoint_key] == t, "_row"].to_numpy()
            if not idx.size:
                continue
            v = np.median(X[idx], axis=0) - centers[t]
            d = float(np.linalg.norm(v))
            rec = {
                compound_key: compound,
                dose_key: dose,
                timepoint_key: t,
                "n_wells": int(idx.size),
                "distance_to_control": d,
                "control_spread": spread[t],
                "change": np.nan,
                "direction": "",
                "step_cosine": np.nan,
            }
            if previous is not None:
                pv, pd_ = previous
                rec["change"] = d - pd_
                rec["direction"] = "away" if d > pd_ else "toward"
                denom = np.linalg.norm(pv) * np.linalg.norm(v)
                rec["step_cosine"] = float(pv @ v / denom) if denom > 0 else np.nan
            previous = (v, d)
            rows.append(rec)
    table = pd.DataFrame(rows, columns=[compound_key, dose_key, timepoint_key, *TRAJECTORY_COLUMNS])

    view = ad.AnnData(X=X.astype(np.float32), obs=pd.DataFrame(index=obs.index.astype(str)))
    n_comps = int(min(30, X.shape[1] - 1, X.shape[0] - 1))
    if n_comps < 2:
        raise InputError(f"{source_of(wells)}: a 2-D view needs at least 3 wells and 3 features")
    sc.pp.pca(view, n_comps=n_comps, random_state=seed)
    if basis == "umap":
        sc.pp.neighbors(view, n_pcs=n_comps, random_state=seed)
        sc.tl.umap(view, random_state=seed)
        xy = view.obsm["X_umap"][:, :2]
    else:
        xy = view.obsm["X_pca"][:, :2]
    coords = frame.assign(x=xy[~ctrl, 0], y=xy[~ctrl, 1])
    coords = (
        coords.groupby([compound_key, dose_key, timepoint_key], sort=True, observed=True)[["x", "y"]]
        .median()
        .reset_index()
    )
    control_coords = pd.DataFrame(
        {timepoint_key: obs.loc[ctrl, timepoint_key].to_numpy(), "x": xy[ctrl, 0], "y": xy[ctrl, 1]}
    )
    return Trajectories(table=table, coords=coords, control_coords=control_coords, basis=basis)


def plot_trajectories(traj: Trajectories, *, dose_key: str = "dose", top: int = 8):
    """Distance to DMSO over time (left) and the 2-D paths of the ``top`` farthest compound × doses (right).

    Parameters
    ----------
    traj
        :func:`trajectories`' result.
    dose_key
        The dose column.
    top
        Paths drawn (largest maximum distance to DMSO first).

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    from .compare_report import pyplot

    plt = pyplot()
    table = traj.table
    keys = [c for c in table.columns[:3]]
    compound_key, _, timepoint_key = keys
    strongest = (
        table.groupby([compound_key, dose_key], observed=True)["distance_to_control"]
        .max()
        .sort_values(ascending=False)
        .head(top)
        .index
    )
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    spread = table.groupby(timepoint_key)["control_spread"].first()
    left.plot(spread.index, spread.to_numpy(), "k--", label="DMSO spread (median)")
    right.scatter(traj.control_coords["x"], traj.control_coords["y"], s=4, c="0.8", label="DMSO wells")
    for compound, dose in strongest:
        part = table[(table[compound_key] == compound) & (table[dose_key] == dose)]
        label = f"{compound} @ {dose:g}" if isinstance(dose, int | float) else f"{compound} @ {dose}"
        left.plot(part[timepoint_key], part["distance_to_control"], marker="o", label=label)
        path = traj.coords[(traj.coords[compound_key] == compound) & (traj.coords[dose_key] == dose)]
        right.plot(path["x"], path["y"], marker="o", lw=1)
        if len(path):
            right.annotate(label, (path["x"].iloc[-1], path["y"].iloc[-1]), fontsize=6)
    left.set_xlabel(timepoint_key)
    left.set_ylabel("distance of the median well to DMSO")
    left.legend(fontsize=6)
    right.set_xlabel(f"{traj.basis.upper()} 1")
    right.set_ylabel(f"{traj.basis.upper()} 2")
    right.set_title("paths over time (each point a timepoint)", fontsize=9)
    return fig
