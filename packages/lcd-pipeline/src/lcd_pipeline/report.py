"""One self-contained HTML report from a results folder (figures embedded as base64 PNG).

Each section is filled from the stage outputs present; a section whose inputs are missing says which
stage did not run instead of disappearing silently. Section ids (stable, tested in a browser):
``summary``, ``normalization``, ``wells``, ``activity``, ``ap-null``, ``moa``, ``polypharmacology``,
``attention``, ``nuclei``, ``truth``.
"""

from __future__ import annotations

import base64
import html
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

SECTIONS = {
    "summary": "Data summary",
    "normalization": "Normalization comparison (paper Table 1 analog)",
    "wells": "Well profiles in scanpy: PCA and UMAP by MoA, dose, replica and plate, before and after correction",
    "activity": "Activity over dose × timepoint and mAP-ES sensitivity with the cell-count baseline (Fig. 2B, SM2)",
    "ap-null": "AP versus the DMSO null for chosen compounds (Fig. 6)",
    "moa": "MoA prediction as doses are added, confusion matrix (Fig. 3A/B)",
    "polypharmacology": "Top-2 MoA map per compound (Fig. 3C)",
    "attention": "ViT attention maps (Fig. 4)",
    "nuclei": "Nuclei counts, agreement and count- vs confluency-based inhibition (Fig. 5)",
    "truth": "Synthetic plate: recovered versus true activity and MoA",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"/></figure>'


def _fig(fig, alt: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fig.png"
        fig.savefig(path, dpi=90, bbox_inches="tight")
        _pyplot().close(fig)
        return _img(path, alt)


def _table(df: pd.DataFrame, digits: int = 3) -> str:
    return df.to_html(index=False, float_format=lambda v: f"{v:.{digits}f}", border=0, classes="t", na_rep="")


def _missing(what: str) -> str:
    return f'<p class="missing">Not available: {html.escape(what)}.</p>'


# ------------------------------------------------------------------------------------------ sections


def _summary(root: Path) -> str:
    parts = []
    man = root / "manifest.parquet"
    if man.exists():
        m = pd.read_parquet(man)
        counts = {
            "fields × timepoints": len(m),
            **{
                k: m[k].nunique()
                for k in ("replica", "plate", "well", "timepoint", "compound", "dose", "moa")
                if k in m
            },
        }
        parts.append(_table(pd.DataFrame([counts])))
    emb = root / "embeddings.parquet"
    if emb.exists():
        from lcd_core import open_tiles

        store = open_tiles(emb)
        parts.append(
            f"<p>{store.n_tiles} tile embeddings of {store.n_features} features "
            f"(tile store, {len(store.parts)} parts).</p>"
        )
    stages = root / "stages.jsonl"
    if stages.exists():
        rows = [json.loads(line) for line in stages.read_text().splitlines() if line.strip()]
        last = pd.DataFrame(rows).drop_duplicates("stage", keep="first")
        ran = pd.DataFrame(rows).query("status == 'ran'").drop_duplicates("stage", keep="last")
        last = last[["stage"]].merge(ran[["stage", "seconds"]], on="stage", how="left")
        parts.append("<p>Stage times (seconds, when the stage last ran):</p>" + _table(last, 1))
    return "".join(parts) or _missing("no manifest or embeddings")


def _normalization(root: Path) -> str:
    path = root / "norm_compare.parquet"
    if not path.exists():
        return _missing("the normalize stage did not run")
    from lcd_norm import plot_compare

    table = pd.read_parquet(path)
    with tempfile.TemporaryDirectory() as tmp:
        fig = _img(plot_compare(table, Path(tmp) / "compare.png"), "normalization comparison")
    cols = [c for c in ("method", "status", "map_dmso", "map", "map_fraction_significant", "batch_silhouette", "label_silhouette", "seconds", "reason", "map_dmso_reason") if c in table]  # fmt: skip
    return _table(table[cols]) + fig


def _wells(root: Path) -> str:
    """PCA and UMAP of ``profiles_well.h5ad`` as scanpy reads it (corrected ``X``, uncorrected ``.raw``)."""
    path = root / "profiles_well.h5ad"
    if not path.exists():
        return _missing("the wells stage did not run")
    import scanpy as sc

    from .wells_view import embed_views, plot_views

    wells = sc.read_h5ad(path)
    if wells.n_obs < 4:
        return _missing(f"{wells.n_obs} wells: too few for a neighbour graph")
    views = embed_views(wells)
    chosen = dict(wells.uns.get("lcd_pipeline", {}))
    note = (
        f"<p>{wells.n_obs} well profiles. <code>X</code> holds the chosen correction "
        f"({html.escape(str(chosen.get('method', '?')))}: <code>{html.escape(str(chosen.get('X', '?')))}</code>), "
        "<code>.raw</code> the uncorrected features, so <code>sc.pp.neighbors(adata); sc.tl.umap(adata)</code> "
        "needs no <code>use_rep</code>. Top row: uncorrected; bottom row: corrected.</p>"
    )
    return note + "".join(
        _fig(plot_views(views, basis), f"{basis} of the well profiles") for basis in ("umap", "pca")
    )


def _activity(root: Path) -> str:
    path = root / "activity.parquet"
    if not path.exists():
        return _missing("the activity stage did not run")
    from lcd_metrics import sensitivity

    act = pd.read_parquet(path)
    ok = act[act["status"] != "failed"]
    plt = _pyplot()
    cc_path = root / "cell_count.parquet"
    cc = pd.read_parquet(cc_path) if cc_path.exists() else None
    panels = [("mAP-ES", ok)] + ([("cell count", cc)] if cc is not None else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (name, df) in zip(axes[0], panels, strict=True):
        grid = df.assign(active=df["active"].astype(float)).pivot_table(
            index="timepoint", columns="dose", values="active", aggfunc="mean"
        )
        im = ax.imshow(grid.to_numpy(), vmin=0, vmax=1, cmap="viridis", origin="lower", aspect="auto")
        ax.set_xticks(range(grid.shape[1]), [f"{d:g}" for d in grid.columns])
        ax.set_yticks(range(grid.shape[0]), [str(t) for t in grid.index])
        ax.set_xlabel("dose")
        ax.set_ylabel("timepoint")
        ax.set_title(f"fraction active: {name}")
        for (i, j), v in np.ndenumerate(grid.to_numpy()):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="w" if v < 0.6 else "k", fontsize=8)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
    heat = _fig(fig, "fraction active over dose and timepoint")
    sens = sensitivity(ok, np.linspace(0, 3, 31))
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for key, g in sens.groupby(["timepoint", "dose"]):
        ax.plot(g["threshold"], g["fraction_active"], label=f"t={key[0]}, dose={key[1]:g}", lw=1)
    if cc is not None:
        ax.axhline(cc["active"].mean(), color="k", ls="--", label="cell count (all conditions)")
    ax.set_xlabel("mAP-ES threshold")
    ax.set_ylabel("fraction of compounds active")
    ax.legend(fontsize=6, ncol=2)
    sens_fig = _fig(fig, "mAP-ES sensitivity")
    note = "" if cc is not None else _missing("cell counts (no nuclei_count column)")
    return heat + sens_fig + note


def _ap_null(root: Path) -> str:
    path, samples = root / "activity.parquet", root / "ap_samples.parquet"
    if not (path.exists() and samples.exists()):
        return _missing("the activity stage did not run")
    from lcd_metrics import plot_ap_distributions

    act = pd.read_parquet(path)
    best = act.groupby("compound")["map_es"].max().sort_values(ascending=False)
    chosen = [best.index[0], best.index[len(best) // 2], best.index[-1]]  # strongest, middle, weakest
    with tempfile.TemporaryDirectory() as tmp:
        paths = plot_ap_distributions(act, pd.read_parquet(samples), tmp, compounds=chosen)
        return "".join(_img(p, f"AP vs null {p.stem}") for p in paths)


def _moa_figures(root: Path, names: tuple[str, ...]) -> str:
    figdir = root / "moa" / "figures"
    imgs = [_img(figdir / n, n) for n in names if (figdir / n).exists()]
    return "".join(imgs)


def _moa(root: Path) -> str:
    metrics = root / "moa" / "metrics.parquet"
    if not metrics.exists():
        return _missing("the moa stage did not run")
    table = pd.read_parquet(metrics)
    return _table(table) + _moa_figures(root, ("metrics_by_dose.png", "confusion.png"))


def _polypharmacology(root: Path) -> str:
    figs = _moa_figures(root, ("polypharmacology.png",))
    return figs or _missing("the moa stage did not run")


def _attention(root: Path) -> str:
    pngs = sorted((root / "attention").glob("*.png")) if (root / "attention").exists() else []
    return "".join(_img(p, p.stem) for p in pngs) or _missing("the attention stage did not run")


def _agreement_scatter(pred: np.ndarray, ref: np.ndarray, *, xlabel: str, ylabel: str, title: str) -> str:
    """A counted-vs-reference scatter with the identity line, and the agreement table beside it."""
    from lcd_nuclei import count_agreement

    plt = _pyplot()
    agree = count_agreement(pred, ref)
    fig, ax = plt.subplots(figsize=(3.8, 3.6))
    ax.scatter(ref, pred, s=6, alpha=0.4)
    lim = [0, max(float(np.max(ref)), float(np.max(pred))) * 1.05 or 1.0]
    ax.plot(lim, lim, color="k", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title}: r = {agree['pearson_r']:.2f}")
    return _table(pd.DataFrame([agree])) + _fig(fig, title)


def _nuclei(root: Path) -> str:
    path = root / "nuclei" / "counts.h5ad"
    if not path.exists():
        return _missing("the nuclei stage did not run (it needs images and a model)")
    from lcd_core import read_h5ad

    adata = read_h5ad(path)
    obs = adata.obs
    keys = [c for c in ("plate", "well", "fov", "timepoint") if c in obs]
    params = adata.uns.get("lcd_nuclei", {}).get("params", {})
    no_vit = str(adata.uns.get("lcd_nuclei", {}).get("model", {}).get("name", "")).startswith("none")
    area = (  # lcd-nuclei 0.4: without the ViT the cell area comes from the planes' defocus contrast
        ", inside the ViT's cell area"
        if not no_vit
        else ", no ViT; cell area from the defocus contrast of the planes"
        if "confluency" in obs
        else ", no ViT"
    )
    how = (
        f"classical counter on the {params.get('channel', 'grey')} channel{area}"
        if params.get("nuclei_step") == "classical"
        else "ViT attention discovery"
    )
    confluency = (
        f", median confluency {obs['confluency'].median():.2f}"
        if "confluency" in obs
        else " (confluency not measured)"
    )
    parts = [
        f"<p>Nuclei counted by lcd-nuclei ({how}; no labels, no stain) on {len(obs)} fields: median "
        f"{obs['nuclei_count'].median():g} nuclei{confluency}. "
        "These counts feed the cell-count baseline unless the manifest carries measured counts.</p>"
    ]
    truth_path = root / "plate" / "truth" / "fields.parquet"
    if truth_path.exists() and len(obs) >= 3:
        fields = pd.read_parquet(truth_path)
        truth = fields[[*keys, "nuclei_count"]].rename(columns={"nuclei_count": "true"})
        both = obs[[*keys, "nuclei_count"]].merge(truth, on=keys, how="inner")
        parts.append("<p>Against the simulator's true counts (every counted field):</p>")
        parts.append(
            _agreement_scatter(
                both["nuclei_count"].to_numpy(float),
                both["true"].to_numpy(float),
                xlabel="true nuclei (simulator)",
                ylabel="counted (lcd-nuclei)",
                title="counts vs truth",
            )
        )
        if "confluency" in obs and "confluency" in fields:
            true_conf = fields[[*keys, "confluency"]].rename(columns={"confluency": "true"})
            conf = obs[[*keys, "confluency"]].merge(true_conf, on=keys, how="inner")
            parts.append(
                _agreement_scatter(
                    conf["confluency"].to_numpy(float),
                    conf["true"].to_numpy(float),
                    xlabel="true confluency (simulator)",
                    ylabel="measured confluency",
                    title="confluency vs truth",
                )
            )
    measured = obs.get("measured_nuclei_count")
    if measured is not None and measured.notna().all() and len(obs) >= 3:
        parts.append("<p>Against the measured counts of the manifest:</p>")
        parts.append(
            _agreement_scatter(
                obs["nuclei_count"].to_numpy(float),
                measured.to_numpy(float),
                xlabel="measured nuclei",
                ylabel="counted (lcd-nuclei)",
                title="counts vs measured",
            )
        )
    parts.append(_inhibition(root))
    for png in sorted((root / "nuclei" / "overlays").glob("*.png"))[:4]:
        parts.append(_img(png, f"nuclei overlay {png.stem}"))
    return "".join(parts)


def _inhibition(root: Path) -> str:
    """Count- versus confluency-based inhibition per well (paper: r = 0.83), with Pearson r and its CI."""
    path = root / "inhibition.parquet"
    if not path.exists():
        return _missing("no inhibition table (the activity stage had no counts)")
    from scipy import stats

    inh = pd.read_parquet(path)
    ok = inh[inh["status"] == "ok"]
    keys = [c for c in ("plate", "well", "timepoint") if c in ok]
    wide = ok.pivot_table(index=keys, columns="value", values="inhibition", observed=True)
    if not {"nuclei_count", "confluency"} <= set(wide.columns) or len(wide.dropna()) < 3:
        return _missing("inhibition needs both counts and confluency on at least 3 wells")
    wide = wide.dropna()
    res = stats.pearsonr(wide["nuclei_count"], wide["confluency"])
    lo, hi = res.confidence_interval(0.95)
    failed = int((inh["status"] != "ok").sum())
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(3.8, 3.6))
    ax.scatter(wide["confluency"], wide["nuclei_count"], s=6, alpha=0.5)
    ax.set_xlabel("inhibition from confluency (%)")
    ax.set_ylabel("inhibition from nuclei count (%)")
    ax.set_title(f"per well: r = {res.statistic:.2f} [{lo:.2f}, {hi:.2f}]")
    note = f" ({failed} rows failed, see inhibition.parquet)" if failed else ""
    return (
        f"<p>Inhibition per well from nuclei counts and from confluency ({len(wide)} wells; Pearson r = "
        f"{res.statistic:.2f}, 95 % CI [{lo:.2f}, {hi:.2f}]; the paper reports r = 0.83){note}.</p>"
        + _fig(fig, "count vs confluency inhibition")
    )


def _truth(root: Path) -> str:
    plate = root / "plate"
    if not (plate / "truth" / "conditions.parquet").exists():
        return _missing("not a simulated plate")
    from .truth import activity_vs_truth, moa_vs_truth, recovery_summary

    parts = []
    conditions = pd.read_parquet(plate / "truth" / "conditions.parquet")
    if (root / "activity.parquet").exists():
        joined = activity_vs_truth(pd.read_parquet(root / "activity.parquet"), conditions)
        parts.append(_table(recovery_summary(joined)))
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(5, 3.6))
        for inert, g in joined.groupby("inert"):
            ax.scatter(g["strength"], g["map_es"], s=12, label="inert" if inert else "MoA compound")
        ax.axvline(
            conditions["strength"][conditions["active"]].min(),
            color="grey",
            ls=":",
            label="true-activity cut",
        )
        ax.set_xlabel("planted phenotype strength")
        ax.set_ylabel("recovered mAP-ES")
        ax.legend(fontsize=7)
        parts.append(_fig(fig, "recovered mAP-ES vs planted strength"))
    preds = root / "moa" / "predictions.parquet"
    if preds.exists():
        params = (
            json.loads((root / "moa" / "params.json").read_text())
            if (root / "moa" / "params.json").exists()
            else {}
        )
        pred = pd.read_parquet(preds)
        method = params.get("final_method") or _all_doses_method(pred)
        parts.append(f"<p>MoA predictions ({html.escape(str(method))}) against the planted MoA:</p>")
        parts.append(_table(moa_vs_truth(pred, method)))
    return "".join(parts) or _missing("no activity or MoA results")


def _all_doses_method(pred: pd.DataFrame) -> str:
    """The probe that has seen every dose.

    That is the last incremental step, not the last row (a single-dose probe).
    """
    incremental = pred[pred["kind"] == "incremental"]
    if incremental.empty:
        return str(pred["method"].iloc[-1])
    return str(incremental.loc[incremental["step"].idxmax(), "method"])


BUILDERS = {
    "summary": _summary,
    "normalization": _normalization,
    "wells": _wells,
    "activity": _activity,
    "ap-null": _ap_null,
    "moa": _moa,
    "polypharmacology": _polypharmacology,
    "attention": _attention,
    "nuclei": _nuclei,
    "truth": _truth,
}

CSS = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
section{border-top:1px solid #ccc;padding:.5em 0}img{max-width:100%}figure{margin:.5em 0}
table.t{border-collapse:collapse;font-size:.85em}table.t td,table.t th{padding:2px 8px;border-bottom:1px solid #eee}
.missing{color:#a50}.err{color:#b00}"""


def build_report(results: str | Path, out: str | Path, *, cfg: dict | None = None) -> Path:
    """Write the HTML report of a results folder to ``out``; a section that fails shows its error."""
    root, out = Path(results), Path(out)
    body = []
    for sid, title in SECTIONS.items():
        try:
            content = BUILDERS[sid](root)
        except Exception as exc:  # one broken section must not lose the others; the error is shown
            content = f'<p class="err">This section failed: {html.escape(type(exc).__name__)}: {html.escape(str(exc))}</p>'
        body.append(f'<section id="{sid}"><h2>{html.escape(title)}</h2>{content}</section>')
    nav = "".join(f'<li><a href="#{sid}">{html.escape(t)}</a></li>' for sid, t in SECTIONS.items())
    doc = (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>LCD report</title>'
        f"<style>{CSS}</style></head><body><h1>LCD report</h1><p>Results folder: {html.escape(str(root))}</p>"
        f"<ul>{nav}</ul>{''.join(body)}</body></html>"
    )
    out.write_text(doc, encoding="utf-8")
    return out
