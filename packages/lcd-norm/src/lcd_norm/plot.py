"""Figures (matplotlib from the [plot] extra, Agg backend, imported inside the functions)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from lcd_core import atomic_write

METRICS = (
    ("batch_silhouette", "batch silhouette (lower = better mixed)"),
    ("label_silhouette", "label silhouette (higher = better)"),
    ("map", "replicate mAP (higher = better)"),
)


def plot_compare(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Bar chart of :func:`lcd_norm.compare`'s table, one panel per metric; written atomically (PNG/PDF/SVG).

    Parameters
    ----------
    table
        The table of :func:`lcd_norm.compare`.
    path
        Output image; the suffix decides the format.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError("plotting needs matplotlib: pip install 'lcd-norm[plot]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METRICS), figsize=(4.2 * len(METRICS), 3.6), constrained_layout=True)
    methods = table["method"].astype(str).tolist()
    for ax, (col, title) in zip(axes, METRICS, strict=True):
        values = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=float)
        ax.bar(
            methods,
            np.nan_to_num(values),
            color=["#999999", "#4C72B0", "#55A868", "#C44E52", "#8172B2"][: len(methods)],
        )
        for i, v in enumerate(values):
            ax.text(
                i,
                0 if np.isnan(v) else v,
                "n/a" if np.isnan(v) else f"{v:.3f}",
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="x", rotation=30)
        ax.axhline(0, color="black", linewidth=0.6)
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120))
    plt.close(fig)
    return path
