"""Figures and the self-contained HTML report of ``lcd compare`` (figures embedded as base64 PNG).

Section ids (stable, checked in headless Chromium): ``inputs``, ``table1``, ``fig2a``, ``fig2b``,
``sm2``, ``sm3``, ``sm4``, ``sm5``, ``fig3b``, ``fig2c``, ``trajectories``, ``norm``.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

SECTIONS = {
    "inputs": "Inputs",
    "table1": "Table 1: mean AP against DMSO per dose × timepoint, averaged (model × normalization)",
    "fig2a": "Fig 2A: mAP per dose at each model's best normalization",
    "fig2b": "Fig 2B: fraction active at the mAP-ES threshold per timepoint, cell-count baseline beside it",
    "sm2": "Fig SM2: sensitivity across mAP-ES thresholds",
    "sm3": "Table SM3: Wilcoxon signed-rank between models (Holm-corrected)",
    "sm4": "Table SM4: Wilcoxon signed-rank between normalizations, per model (Holm-corrected)",
    "sm5": "Table SM5 / Fig 3A: MoA prediction as doses are added; McNemar between models",
    "fig3b": "Fig 3B: confusion matrices, top dose alone and all doses",
    "fig2c": "Fig 2C / Fig 6: chosen compounds, fields per dose × timepoint beside DMSO, AP and count intervals",
    "trajectories": "Temporal trajectories in the normalized space (best model)",
    "norm": "Normalization diagnostics (lcd-norm: silhouettes, pooled replicate mAP)",
}

CSS = """body{font-family:sans-serif;max-width:1150px;margin:2em auto;color:#222}
section{border-top:1px solid #ccc;padding:.5em 0}img{max-width:100%}figure{margin:.5em 0}
table.t{border-collapse:collapse;font-size:.8em}table.t td,table.t th{padding:2px 6px;border-bottom:1px solid #eee}
.missing{color:#a50}.err{color:#b00}.note{color:#555;font-size:.9em}"""


def pyplot():
    """Matplotlib's pyplot on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path) -> Path:
    """Write a figure as PNG (atomically) and close it.

    Parameters
    ----------
    fig
        A matplotlib figure.
    path
        The ``.png`` to write.
    """
    from lcd_core import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90, bbox_inches="tight"))
    finally:
        pyplot().close(fig)


def _img(path: Path, alt: str) -> str:
    import base64

    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"/></figure>'


def _table(df: pd.DataFrame, digits: int = 3) -> str:
    if not len(df):
        return _missing("empty table")
    return df.to_html(index=False, float_format=lambda v: f"{v:.{digits}g}" if abs(v) < 1e-3 and v else f"{v:.{digits}f}", border=0, classes="t", na_rep="")  # fmt: skip


def _missing(what: str) -> str:
    return f'<p class="missing">Not available: {html.escape(what)}.</p>'


def _grouped_bars(ax, table: pd.DataFrame, group: str, series: str, value: str, err: str | None = None):
    groups = list(pd.unique(table[group]))
    names = list(pd.unique(table[series]))
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        part = table[table[series] == name].set_index(group).reindex(groups)
        x = np.arange(len(groups)) + (i - (len(names) - 1) / 2) * width
        yerr = part[err].to_numpy(float) if err else None
        ax.bar(x, part[value].to_numpy(float), width, yerr=yerr, capsize=2, label=str(name))
    ax.set_xticks(np.arange(len(groups)), [str(g) for g in groups])
    ax.legend(fontsize=7, ncol=2)


def figures(comp, outdir: Path) -> dict[str, Path]:
    """Draw the comparison's figures into ``outdir/figures``.

    Parameters
    ----------
    comp
        A :class:`lcd_pipeline.compare.Comparison`.
    outdir
        The comparison folder.

    Returns
    -------
    dict
        Figure name → path.
    """
    plt = pyplot()
    keys = comp.params["keys"]
    tkey, dkey = keys["timepoint_key"], keys["dose_key"]
    figdir = outdir / "figures"
    out: dict[str, Path] = {}
    t1 = comp.table1.dropna(subset=["mean_ap"])
    if len(t1):
        fig, ax = plt.subplots(figsize=(7, 3.5))
        _grouped_bars(ax, t1, "normalization", "model", "mean_ap", "sd_ap")
        ax.set_ylabel("mean AP vs DMSO (± SD over conditions)")
        out["table1"] = save(fig, figdir / "table1.png")
    if len(comp.fig2a):
        fig, ax = plt.subplots(figsize=(7, 3.5))
        _grouped_bars(ax, comp.fig2a, dkey, "model", "mean_ap", "sd_ap")
        ax.set_xlabel("dose")
        ax.set_ylabel("mAP vs DMSO (mean ± SD)")
        out["fig2a"] = save(fig, figdir / "fig2a.png")
    sens = comp.sensitivity
    if len(sens):
        per_t = sens[sens["scope"] == "timepoint"]
        per_c = sens[sens["scope"] == "condition"]
        doses = list(pd.unique(per_c[dkey]))
        fig, axes = plt.subplots(1, 1 + len(doses), figsize=(3.6 * (1 + len(doses)), 3.2), squeeze=False)
        _grouped_bars(axes[0][0], per_t, tkey, "model", "fraction_active")
        axes[0][0].set_title("all doses", fontsize=9)
        axes[0][0].set_ylabel(f"fraction active (mAP-ES ≥ {comp.params['threshold']})")
        for ax, dose in zip(axes[0][1:], doses, strict=True):
            _grouped_bars(ax, per_c[per_c[dkey] == dose], tkey, "model", "fraction_active")
            ax.set_title(f"dose {dose}", fontsize=9)
        for ax in axes[0]:
            ax.set_xlabel("timepoint")
            ax.set_ylim(0, 1.05)
        out["fig2b"] = save(fig, figdir / "fig2b.png")
    if len(comp.sensitivity_curves):
        fig, ax = plt.subplots(figsize=(5.5, 3.5))
        for model, g in comp.sensitivity_curves.groupby("model", sort=False):
            ax.plot(g["threshold"], g["fraction_active"], label=str(model))
        ax.axvline(comp.params["threshold"], color="grey", ls=":")
        ax.set_xlabel("mAP-ES threshold")
        ax.set_ylabel("fraction of compound × conditions active")
        ax.legend(fontsize=7)
        out["sm2"] = save(fig, figdir / "sm2.png")
    mm = comp.moa_metrics
    if len(mm):
        inc = mm[mm["kind"] == "incremental"]
        cols = [c for c in ("f1_weighted", "accuracy", "top3_accuracy") if c in inc]
        fig, axes = plt.subplots(1, len(cols), figsize=(3.6 * len(cols), 3.2), squeeze=False)
        for ax, col in zip(axes[0], cols, strict=True):
            for model, g in inc.groupby("model", sort=False):
                ax.plot(g["step"], g[col], marker="o", label=str(model))
            ax.set_xlabel("doses added (highest first)")
            ax.set_title(col, fontsize=9)
            ax.set_ylim(0, 1.05)
        axes[0][0].legend(fontsize=7)
        out["fig3a"] = save(fig, figdir / "fig3a.png")
    conf = comp.confusion
    if len(conf):
        models = list(pd.unique(conf["model"]))
        panels = ["top dose", "all doses"]
        fig, axes = plt.subplots(len(models), 2, figsize=(7, 3.2 * len(models)), squeeze=False)
        for i, model in enumerate(models):
            for j, panel in enumerate(panels):
                ax = axes[i][j]
                part = conf[(conf["model"] == model) & (conf["panel"] == panel)]
                if not len(part):
                    ax.set_axis_off()
                    continue
                m = part.pivot_table(
                    index="true", columns="predicted", values="n", aggfunc="sum", fill_value=0
                )
                ax.imshow(m.to_numpy(float), cmap="Blues")
                ax.set_xticks(range(m.shape[1]), [str(c) for c in m.columns], rotation=45, fontsize=6)
                ax.set_yticks(range(m.shape[0]), [str(c) for c in m.index], fontsize=6)
                for (r, c), v in np.ndenumerate(m.to_numpy()):
                    ax.text(c, r, str(int(v)), ha="center", va="center", fontsize=7)
                ax.set_title(f"{model}: {panel} ({part['method'].iloc[0]})", fontsize=8)
        out["fig3b"] = save(fig, figdir / "fig3b.png")
    return out


def _section_fig2c(comp, outdir: Path) -> str:
    from .panels import choose_compounds, compound_panel

    chosen = choose_compounds(comp)
    if not chosen:
        return _missing("no scored compound")
    parts = []
    for compound in chosen:
        path = compound_panel(comp, compound, outdir / "figures" / f"fig2c_{_safe(compound)}.png")
        parts.append(_img(path, f"compound panel {compound}"))
    note = (
        "<p class='note'>Top: one field per dose × timepoint (first replica, first field) beside a DMSO "
        "field of the same plate; bottom: each model's 95 % AP interval (bars) against the null interval of "
        "the timepoint (grey band) and the cell-count median z interval. The distribution-based call "
        "(AP interval above the null's) is the activity table's column <code>active_ci</code>.</p>"
    )
    return note + "".join(parts)


def _section_trajectories(comp, outdir: Path) -> str:
    from .trajectories import plot_trajectories, trajectories

    best = comp.best.dropna(subset=["normalization"])
    if not len(best):
        return _missing("no model was scored")
    t1 = comp.table1[comp.table1["best"]].sort_values("mean_ap", ascending=False)
    row = best.set_index("model").loc[t1["model"].iloc[0]] if len(t1) else best.iloc[0]
    model = t1["model"].iloc[0] if len(t1) else best["model"].iloc[0]
    wells = comp.well_profiles.get(model, {}).get(row["normalization"])
    if wells is None:
        return _missing("well profiles not in memory (report rebuilt from files)")
    keys = comp.params["keys"]
    traj = trajectories(
        wells,
        compound_key=keys["compound_key"],
        timepoint_key=keys["timepoint_key"],
        dose_key=keys["dose_key"],
        control=comp.params["control"],
    )
    from lcd_core import write_table

    write_table(traj.table, outdir / "trajectories.parquet")
    fig = plot_trajectories(traj, dose_key=keys["dose_key"])
    path = save(fig, outdir / "figures" / "trajectories.png")
    top = traj.table.sort_values("distance_to_control", ascending=False).head(12)
    return (
        f"<p class='note'>Model {html.escape(str(model))} at {html.escape(str(row['normalization']))}: per compound × "
        "dose, the distance of its median well profile to the DMSO median of each timepoint, the cosine "
        "between successive displacements (direction of change) and a scanpy PCA view. Largest distances:</p>"
        + _table(top)
        + _img(path, "trajectories")
    )


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in str(name))


def build_compare_report(comp, outdir: str | Path, out: str | Path) -> Path:
    """Write the comparison's HTML report (and its figures under ``outdir/figures``).

    Parameters
    ----------
    comp
        A :class:`lcd_pipeline.compare.Comparison`.
    outdir
        The comparison folder (figures are written there).
    out
        The HTML file.

    Returns
    -------
    pathlib.Path
        ``out``.
    """
    outdir, out = Path(outdir), Path(out)
    figs: dict[str, Path] = {}
    body = []

    def section(sid: str, build) -> None:
        try:
            content = build()
        except Exception as exc:  # one broken section must not lose the others; the error is shown
            content = f'<p class="err">This section failed: {html.escape(type(exc).__name__)}: {html.escape(str(exc))}</p>'
        body.append(f'<section id="{sid}"><h2>{html.escape(SECTIONS[sid])}</h2>{content}</section>')

    def fig(name: str) -> str:
        return _img(figs[name], name) if name in figs else _missing(f"figure {name}")

    try:
        figs = figures(comp, outdir)
    except Exception as exc:  # shown in the sections that miss their figure
        body.append(
            f'<p class="err">Figures failed: {html.escape(type(exc).__name__)}: {html.escape(str(exc))}</p>'
        )
    p = comp.params
    section("inputs", lambda: _table(comp.inputs) + f"<p class='note'>seed {p['seed']}, {p['n_draws']} mAP-ES draws, threshold {p['threshold']}, {p['n_folds']} MoA folds (one assignment for all models). {html.escape('; '.join(p.get('moa_notes', [])))}</p>")  # fmt: skip
    section(
        "table1",
        lambda: (
            _table(
                comp.table1.pivot_table(
                    index="model", columns="normalization", values="mean_ap", sort=False
                ).reset_index()
            )
            + _table(comp.best)
            + fig("table1")
        ),
    )
    section("fig2a", lambda: fig("fig2a") + _table(comp.fig2a))
    section(
        "fig2b",
        lambda: (
            fig("fig2b")
            + (_table(comp.sensitivity) if len(comp.sensitivity) else "")
            + (
                ""
                if len(comp.cell_count)
                else _missing("cell counts (no counts table or cell_count.parquet)")
            )
        ),
    )
    section("sm2", lambda: fig("sm2"))
    section("sm3", lambda: _table(comp.wilcoxon_models))
    section("sm4", lambda: _table(comp.wilcoxon_normalizations))
    moa_cols = [
        "model",
        "method",
        "kind",
        "step",
        "doses",
        "n_compounds",
        "accuracy",
        "f1_weighted",
        "top3_accuracy",
    ]
    section(
        "sm5",
        lambda: (
            (
                _table(comp.moa_metrics[[c for c in moa_cols if c in comp.moa_metrics]])
                if len(comp.moa_metrics)
                else _missing("MoA was not run")
            )
            + fig("fig3a")
            + _table(comp.mcnemar)
        ),
    )
    section("fig3b", lambda: fig("fig3b"))
    section("fig2c", lambda: _section_fig2c(comp, outdir))
    section("trajectories", lambda: _section_trajectories(comp, outdir))
    norm_cols = [
        "model",
        "method",
        "status",
        "batch_silhouette",
        "label_silhouette",
        "map",
        "seconds",
        "reason",
    ]
    section("norm", lambda: _table(comp.norm_compare[[c for c in norm_cols if c in comp.norm_compare]]))
    nav = "".join(f'<li><a href="#{sid}">{html.escape(t)}</a></li>' for sid, t in SECTIONS.items())
    doc = (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>LCD comparison</title>'
        f"<style>{CSS}</style></head><body><h1>LCD comparison: {html.escape(', '.join(comp.inputs['model']))}</h1>"
        f"<ul>{nav}</ul>{''.join(body)}</body></html>"
    )
    out.write_text(doc, encoding="utf-8")
    return out
