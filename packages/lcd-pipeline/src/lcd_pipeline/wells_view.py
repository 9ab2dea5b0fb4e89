"""A scanpy view of the well profiles: PCA and UMAP coloured by MoA, dose, replica and plate.

``profiles_well.h5ad`` holds the chosen correction in ``X`` and the uncorrected features in ``.raw``
(lcd_pipeline.engine, stage ``wells``), so the standard scanpy calls work on it as they are:
``sc.pp.pca``, ``sc.pp.neighbors`` (no ``use_rep``), ``sc.tl.umap``. The report draws both
representations side by side: batch effects (replica, plate) that dominate the uncorrected layout
should fade after correction while MoA and dose structure stays.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

#: obs columns the points are coloured by, in this order (those present)
COLORS = ("moa", "dose", "replica", "plate")


def _categorical_obs(obs: pd.DataFrame, colors: list[str], control_label: str) -> pd.DataFrame:
    """The colour columns as categories: doses as printed numbers, a missing MoA as the control label."""
    out = pd.DataFrame(index=obs.index.astype(str))
    for col in colors:
        values = obs[col]
        if col == "moa":
            values = values.astype(object).where(values.notna(), control_label)
        elif pd.api.types.is_numeric_dtype(values):
            values = values.map(lambda v: "none" if pd.isna(v) else f"{v:g}")
        out[col] = pd.Categorical(values.astype(str))
    return out


def embed_views(wells: ad.AnnData, *, seed: int = 0, control_label: str = "control") -> dict[str, ad.AnnData]:
    """PCA, neighbours and UMAP of the corrected (``X``) and uncorrected (``.raw``) well profiles.

    Parameters
    ----------
    wells
        ``profiles_well.h5ad`` as read by ``scanpy.read_h5ad``.
    seed
        ``random_state`` of PCA, neighbours and UMAP.
    control_label
        Shown for wells without an MoA (the controls).

    Returns
    -------
    dict of str to anndata.AnnData
        ``{"before correction": ..., "after correction (<what X holds>)": ...}``, each with
        ``obsm["X_pca"]`` and ``obsm["X_umap"]`` and the colour columns as categories.
    """
    import scanpy as sc

    colors = [c for c in COLORS if c in wells.obs.columns]
    obs = _categorical_obs(wells.obs, colors, control_label)
    method = dict(wells.uns.get("lcd_pipeline", {})).get("X", "X")
    parts = {"after correction" + (f" ({method})" if method != "X" else ""): wells.X}
    if wells.raw is not None:
        parts = {"before correction (.raw)": wells.raw.X, **parts}
    views = {}
    for name, X in parts.items():
        view = ad.AnnData(X=np.asarray(X, dtype=np.float32), obs=obs.copy())
        n_comps = max(1, min(50, view.n_obs - 1, view.n_vars - 1))
        sc.pp.pca(view, n_comps=n_comps, random_state=seed)
        sc.pp.neighbors(view, n_neighbors=max(2, min(15, view.n_obs - 1)), random_state=seed)
        sc.tl.umap(view, random_state=seed)
        views[name] = view
    return views


def plot_views(views: dict[str, ad.AnnData], basis: str):
    """One figure: a row per representation, a column per colour (``sc.pl.embedding`` on each axis).

    Parameters
    ----------
    views
        From :func:`embed_views`.
    basis
        ``"pca"`` or ``"umap"``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    import scanpy as sc

    first = next(iter(views.values()))
    colors = [c for c in COLORS if c in first.obs.columns]
    fig, axes = plt.subplots(
        len(views), len(colors), figsize=(3.6 * len(colors), 3.0 * len(views)), squeeze=False
    )
    for row, (name, view) in enumerate(views.items()):
        for col, color in enumerate(colors):
            sc.pl.embedding(
                view,
                basis,
                color=color,
                ax=axes[row][col],
                show=False,
                title=f"{color}: {name}",
                legend_fontsize=6,
                frameon=False,
            )
            axes[row][col].title.set_fontsize(8)
    fig.tight_layout()
    return fig
