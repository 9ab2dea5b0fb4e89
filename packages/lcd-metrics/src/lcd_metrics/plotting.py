"""Figures: AP-vs-null distributions per compound (LCD paper Fig. 6 style) and sensitivity curves.

matplotlib (the `plot` extra) is imported inside the functions, with the Agg backend.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from lcd_core import InputError, atomic_write


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:
        raise InputError("plotting needs matplotlib: pip install 'lcd-metrics[plot]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    # the temporary sibling keeps the suffix, so matplotlib picks the format from it
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight"))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_") or "compound"


def plot_ap_distributions(
    table: pd.DataFrame,
    samples: pd.DataFrame,
    out_dir: str | os.PathLike,
    *,
    compounds: Sequence[str] | None = None,
    max_compounds: int = 50,
) -> list[Path]:
    """One PNG per compound: per condition, the histogram of its AP samples over the control null.

    Parameters
    ----------
    table, samples
        The activity table and the samples returned by ``map_es(..., return_samples=True)``.
    out_dir
        Folder for ``ap_vs_null_<compound>.png``.
    compounds
        Compounds to draw; default: the first `max_compounds` by decreasing best mAP-ES.
    max_compounds
        Most figures drawn when ``compounds`` is not given.

    Returns
    -------
    list of pathlib.Path
        The PNG files written (atomically).
    """
    plt = _pyplot()
    meta = table.attrs.get("lcd_metrics", {})
    ckey = meta.get("compound_key", table.columns[0])
    conds = list(meta.get("condition_keys", table.columns[1 : list(table.columns).index("status")]))
    tkey = conds[0] if conds else None
    if compounds is None:
        best = table.groupby(ckey)["map_es"].max().sort_values(ascending=False, na_position="last")
        compounds = list(best.index[:max_compounds])
    comp = samples[samples["kind"] == "compound"]
    null = samples[samples["kind"] == "null"]
    paths = []
    bins = np.linspace(0, 1, 41)
    for name in compounds:
        rows = table[table[ckey] == name]
        n = len(rows)
        if n == 0:
            continue
        ncol = min(n, 5)
        nrow = int(np.ceil(n / ncol))
        fig, axes = plt.subplots(
            nrow,
            ncol,
            figsize=(max(3.2 * ncol, 4.5), 2.6 * nrow + 0.8),
            squeeze=False,
            sharex=True,
            constrained_layout=True,
        )
        for ax, (_, row) in zip(axes.ravel(), rows.iterrows(), strict=False):
            sel = comp[ckey] == name
            for k in conds:
                sel &= comp[k] == row[k]
            if "null" in comp.columns and sel.any():  # the null this row was compared with
                nsel = null["null"] == comp.loc[sel, "null"].iloc[0]
            elif tkey in null.columns:
                nsel = null[tkey] == row[tkey]
            else:
                nsel = np.ones(len(null), bool)
            ax.hist(
                null.loc[nsel, "ap"], bins=bins, density=True, color="0.6", alpha=0.7, label="control null"
            )
            ax.hist(
                comp.loc[sel, "ap"],
                bins=bins,
                density=True,
                color="tab:red" if row["active"] else "tab:blue",
                alpha=0.6,
                label=str(name),
            )
            label = ", ".join(f"{k}={row[k]}" for k in conds)
            es = "n/a" if pd.isna(row["map_es"]) else f"{row['map_es']:.2f}"
            ax.set_title(f"{label + chr(10) if label else ''}mAP-ES {es} ({row['status']})", fontsize=8)
        for ax in axes.ravel()[n:]:
            ax.axis("off")
        axes[0, 0].legend(fontsize=7)
        fig.supxlabel("average precision")
        fig.suptitle(f"{name}: AP samples vs control null", fontsize=10)
        paths.append(_save(fig, Path(out_dir) / f"ap_vs_null_{_safe(name)}.png"))
        plt.close(fig)
    return paths


def plot_sensitivity(
    sens: pd.DataFrame, path: str | os.PathLike, *, title: str = "mAP-ES sensitivity"
) -> Path:
    """Fraction of compounds active versus mAP-ES threshold, one line per condition.

    Parameters
    ----------
    sens
        The table of :func:`lcd_metrics.sensitivity`.
    path
        Output image (format by suffix), written atomically.
    title
        Figure title.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    plt = _pyplot()
    conds = [c for c in sens.columns if c not in ("threshold", "n_compounds", "n_active", "fraction_active")]
    fig, ax = plt.subplots(figsize=(6, 4))
    groups = sens.groupby(conds, sort=True) if conds else [((), sens)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        ax.plot(
            g["threshold"],
            g["fraction_active"],
            label=", ".join(f"{k}={v}" for k, v in zip(conds, key, strict=True)) or "all",
        )
    ax.axvline(0.8, color="0.5", ls="--", lw=0.8)
    ax.set_xlabel("mAP-ES threshold")
    ax.set_ylabel("fraction of compounds active")
    ax.set_title(title)
    if len(conds) and sens.groupby(conds).ngroups <= 24:
        ax.legend(fontsize=6, ncol=2)
    out = _save(fig, Path(path))
    plt.close(fig)
    return out
