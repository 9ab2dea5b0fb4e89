"""Per-compound panels (paper Fig 2C / Fig 6).

Fields per dose × timepoint beside DMSO, with each model's AP interval against the null interval and
the cell-count median interval.

The numbers come from the comparison's activity tables (``map_ci_low``/``map_ci_high``,
``null_ci_low``/``null_ci_high``) and the cell-count table (``ci_low``/``ci_high`` of the median z);
the images from the manifest of the first results-folder input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def choose_compounds(comp, n: int = 3) -> list[str]:
    """The strongest, a middle and the weakest compound by their best mAP-ES (first model, best normalization).

    Parameters
    ----------
    comp
        A :class:`lcd_pipeline.compare.Comparison`.
    n
        How many (1 to 3).

    Returns
    -------
    list of str
        Compound names.
    """
    ck = comp.params["keys"]["compound_key"]
    best = comp.best.dropna(subset=["normalization"])
    if not len(best) or not len(comp.activity):
        return []
    first = best.iloc[0]
    act = comp.activity[
        (comp.activity["model"] == first["model"])
        & (comp.activity["normalization"] == first["normalization"])
    ]
    ranked = act.dropna(subset=["map_es"]).groupby(ck)["map_es"].max().sort_values(ascending=False)
    if not len(ranked):
        return []
    picks = [ranked.index[0], ranked.index[len(ranked) // 2], ranked.index[-1]]
    return list(dict.fromkeys(str(p) for p in picks))[:n]


def _manifest(comp) -> pd.DataFrame | None:
    for m in comp.model_inputs:
        if m.results is not None and (m.results / "manifest.parquet").is_file():
            return pd.read_parquet(m.results / "manifest.parquet")
    return None


def _field_image(row: pd.Series) -> np.ndarray:
    from lcd_embed import read_field

    stack = read_field(row)
    img = stack[len(stack) // 2]
    lo, hi = np.percentile(img, [1, 99])
    return np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1)


def compound_panel(comp, compound: str, path: str | Path) -> Path:
    """Draw one compound's panel (images when a manifest is available, intervals always).

    Parameters
    ----------
    comp
        A :class:`lcd_pipeline.compare.Comparison`.
    compound
        The compound.
    path
        The ``.png`` to write.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    from .compare_report import pyplot, save

    plt = pyplot()
    keys = comp.params["keys"]
    ck, tk, dk = keys["compound_key"], keys["timepoint_key"], keys["dose_key"]
    best = comp.best.dropna(subset=["normalization"])
    act = comp.activity.merge(best[["model", "normalization"]], on=["model", "normalization"])
    act = act[act[ck].astype(str) == str(compound)]
    times = sorted(pd.unique(act[tk]))
    doses = sorted(pd.unique(act[dk]))
    man = _manifest(comp)
    image_rows = len(times) if man is not None else 0
    n_cols = max(len(doses) + 1, len(times))
    fig = plt.figure(figsize=(2.0 * n_cols, 2.0 * image_rows + 2.6 * 2))
    grid = fig.add_gridspec(image_rows + 2, n_cols)
    if man is not None:
        from lcd_core import control_mask

        ctrl = control_mask(man, comp.params["control"])
        for i, t in enumerate(times):
            cells = [("DMSO", None), *[(f"{d:g}", d) for d in doses]]
            plate = None
            for j, (title, dose) in enumerate(cells[1:], start=1):
                hit = man[(man[ck].astype(str) == str(compound)) & (man[dk] == dose) & (man[tk] == t)]
                ax = fig.add_subplot(grid[i, j])
                ax.set_axis_off()
                if len(hit):
                    row = hit.sort_values([c for c in ("replica", "plate", "well", "fov") if c in hit]).iloc[
                        0
                    ]
                    plate = plate if plate is not None else row.get("plate")
                    ax.imshow(_field_image(row), cmap="gray")
                ax.set_title(f"{title} µM, t={t}", fontsize=7)
            dmso = man[ctrl & (man[tk] == t)]
            if plate is not None and "plate" in dmso:
                dmso = dmso[dmso["plate"] == plate] if (dmso["plate"] == plate).any() else dmso
            ax = fig.add_subplot(grid[i, 0])
            ax.set_axis_off()
            if len(dmso):
                ax.imshow(_field_image(dmso.iloc[0]), cmap="gray")
            ax.set_title(f"DMSO, t={t}", fontsize=7)
    ax_ap = fig.add_subplot(grid[image_rows, :])
    ax_cc = fig.add_subplot(grid[image_rows + 1, :])
    labels = [f"t={t}\n{d:g}" for t in times for d in doses]
    x0 = np.arange(len(labels), dtype=float)
    models = list(pd.unique(act["model"]))
    width = 0.7 / max(len(models), 1)
    for k, model in enumerate(models):
        part = act[act["model"] == model].set_index([tk, dk])
        ys, lo, hi = [], [], []
        for t in times:
            for d in doses:
                r = part.loc[(t, d)] if (t, d) in part.index else None
                ys.append(np.nan if r is None else r["map_mean"])
                lo.append(np.nan if r is None else r["map_ci_low"])
                hi.append(np.nan if r is None else r["map_ci_high"])
        ys, lo, hi = map(np.asarray, (ys, lo, hi))
        x = x0 + (k - (len(models) - 1) / 2) * width
        ax_ap.errorbar(x, ys, yerr=[ys - lo, hi - ys], fmt="o", ms=3, capsize=2, label=str(model))
    for i, t in enumerate(times):
        null = act[act[tk] == t][["null_ci_low", "null_ci_high"]].dropna()
        if len(null):
            span = (i * len(doses) - 0.45, (i + 1) * len(doses) - 0.55)
            ax_ap.fill_between(
                span, null["null_ci_low"].iloc[0], null["null_ci_high"].iloc[0], color="0.85", zorder=0
            )
    ax_ap.set_xticks(x0, labels, fontsize=7)
    ax_ap.set_ylabel("AP vs DMSO (95 % interval)")
    ax_ap.set_title(f"{compound}: AP intervals per model, null interval in grey", fontsize=9)
    ax_ap.legend(fontsize=6, ncol=3)
    cc = comp.cell_count
    if len(cc) and ck in cc:
        part = cc[cc[ck].astype(str) == str(compound)].set_index([tk, dk])
        med, lo, hi = [], [], []
        for t in times:
            for d in doses:
                r = part.loc[(t, d)] if (t, d) in part.index else None
                med.append(np.nan if r is None else r["median_z"])
                lo.append(np.nan if r is None else r["ci_low"])
                hi.append(np.nan if r is None else r["ci_high"])
        med, lo, hi = map(np.asarray, (med, lo, hi))
        ax_cc.errorbar(x0, med, yerr=[med - lo, hi - med], fmt="s", color="k", capsize=2)
        ax_cc.axhline(0, color="grey", ls=":")
        ax_cc.set_ylabel("cell count median z (95 % CI)")
    else:
        ax_cc.text(0.5, 0.5, "no cell counts", ha="center", va="center", transform=ax_cc.transAxes)
    ax_cc.set_xticks(x0, labels, fontsize=7)
    return save(fig, Path(path))
