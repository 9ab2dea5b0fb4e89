"""Matplotlib figures (Agg backend; matplotlib is the optional [plot] extra, imported inside)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from lcd_core import InputError, atomic_write

from lcd_moa.polypharm import TOP_MOAS, top_moas
from lcd_moa.spec import CONTROL_LABEL


def require_matplotlib() -> None:
    """One line saying how to get figures when matplotlib (the ``[plot]`` extra) is missing."""
    if importlib.util.find_spec("matplotlib") is None:
        raise InputError(
            "figures need matplotlib: pip install 'lcd-moa[plot]', or turn figures off (--no-plot)"
        )


def _pyplot():
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str | os.PathLike) -> Path:
    """Save a figure atomically (format from the suffix) and close it.

    Parameters
    ----------
    fig
        A matplotlib figure.
    path
        Output file.
    """
    plt = _pyplot()
    fmt = Path(path).suffix.lstrip(".") or "png"
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=120, bbox_inches="tight"))
    finally:
        plt.close(fig)


def plot_metrics(
    metrics: pd.DataFrame, metric_names: Sequence[str] = ("accuracy", "f1_weighted", "f1_macro")
):
    """Metrics as doses are added (lines) and for each dose alone (markers, at its rank in the order).

    Parameters
    ----------
    metrics
        The ``metrics`` table of a result.
    metric_names
        Columns drawn.
    """
    plt = _pyplot()
    inc = metrics[metrics["kind"] == "incremental"].sort_values("step")
    single = metrics[metrics["kind"] == "single"]
    fig, ax = plt.subplots(figsize=(max(4.5, 0.7 * len(inc) + 2.5), 3.6))
    x = np.arange(1, len(inc) + 1)
    last_dose = [d.split(", ")[-1] for d in inc["doses"]]
    for i, name in enumerate(metric_names):
        if name not in metrics:
            continue
        color = f"C{i}"
        ax.plot(x, inc[name], marker="o", color=color, label=f"{name} (doses added)")
        pos = {d: j + 1 for j, d in enumerate(last_dose)}
        xs = [pos.get(d, np.nan) for d in single["doses"]]
        ax.scatter(xs, single[name], marker="x", color=color, label=f"{name} (dose alone)")
    ax.set_xticks(x, [f"+{d}" for d in last_dose], rotation=45, ha="right")
    ax.set_xlabel("dose added (order of addition)")
    ax.set_ylabel("compound-level score")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("MoA prediction as doses are added")
    return fig


def plot_confusion(confusion: pd.DataFrame, *, normalize: bool = True):
    """Confusion matrix heatmap (rows: true MoA; columns: predicted), row-normalized by default.

    Parameters
    ----------
    confusion
        From :meth:`lcd_moa.MoAResult.confusion`.
    normalize
        Colour by the fraction of each true class (counts are written in the cells either way).
    """
    plt = _pyplot()
    counts = confusion.to_numpy(dtype=float)
    values = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) if normalize else counts
    n_rows, n_cols = values.shape
    fig, ax = plt.subplots(figsize=(0.5 * n_cols + 2.5, 0.45 * n_rows + 2))
    im = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalize else None, aspect="auto")
    for i in range(n_rows):
        for j in range(n_cols):
            if counts[i, j]:
                ax.text(
                    j,
                    i,
                    f"{int(counts[i, j])}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if values[i, j] > 0.6 else "black",
                )
    ax.set_xticks(range(n_cols), confusion.columns, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n_rows), confusion.index, fontsize=7)
    ax.set_xlabel("predicted MoA")
    ax.set_ylabel("true MoA")
    fig.colorbar(im, ax=ax, label="fraction of true class" if normalize else "compounds")
    return fig


def plot_polypharmacology(
    condition_probs: pd.DataFrame,
    classes: Sequence[str],
    condition_keys: Sequence[str],
    *,
    compounds: Sequence[str] | None = None,
    control_label: str = CONTROL_LABEL,
    k: int = TOP_MOAS,
    max_compounds: int = 12,
):
    """Per compound, a heatmap of MoA probabilities over conditions with the top-k MoAs numbered.

    Parameters
    ----------
    condition_probs
        The ``condition_probs`` table of a result.
    classes
        The global class list.
    condition_keys
        Condition key columns.
    compounds
        Compounds drawn. Default: those whose second-ranked MoA is most probable somewhere (the
        strongest polypharmacology candidates), at most ``max_compounds``.
    control_label
        The control class (not drawn).
    k
        Ranks numbered in each cell column.
    max_compounds
        Most compounds drawn by default.
    """
    plt = _pyplot()
    moas = [c for c in classes if c != control_label]
    top = top_moas(condition_probs, classes, condition_keys, control_label=control_label, k=k)
    if compounds is None:
        second = top[top["rank"] == min(2, k)].groupby("compound")["probability"].max()
        compounds = second.sort_values(ascending=False).index[:max_compounds].tolist()
    compounds = list(compounds)
    n = max(len(compounds), 1)
    ncols = min(3, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.2 * ncols, 0.32 * len(moas) * nrows + 1.5 * nrows), squeeze=False
    )
    for ax in axes.ravel()[len(compounds) :]:
        ax.axis("off")
    for ax, name in zip(axes.ravel(), compounds, strict=False):
        rows = condition_probs[condition_probs["compound"] == name].sort_values(list(condition_keys))
        P = rows[[f"p_{c}" for c in moas]].to_numpy(dtype=float)
        P = P / np.maximum(P.sum(axis=1, keepdims=True), 1e-12)
        im = ax.imshow(P.T, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        labels = [
            " × ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in r)
            for r in rows[list(condition_keys)].itertuples(index=False, name=None)
        ]
        ranks = np.argsort(-P, axis=1, kind="stable")[:, :k]
        for j in range(len(rows)):
            for r in range(ranks.shape[1]):
                ax.text(j, ranks[j, r], str(r + 1), ha="center", va="center", fontsize=7, color="red")
        ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=6)
        ax.set_yticks(range(len(moas)), moas, fontsize=6)
        ax.set_title(str(name), fontsize=8)
    if compounds:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6, label="MoA probability (control excluded)")
    fig.suptitle(f"Top-{k} MoAs per condition ({' × '.join(condition_keys)})", fontsize=9)
    return fig
