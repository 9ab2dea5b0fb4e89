"""Figures (matplotlib, Agg backend, imported inside the function)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np


def attention_overlay(
    image: np.ndarray, attention: np.ndarray, path: str | os.PathLike, *, title: str = "", max_heads: int = 6
) -> Path:
    """Field with its last-block CLS attention: mean over heads, then single heads (paper Fig. 4 style).

    Parameters
    ----------
    image
        (H, W) display plane.
    attention
        (heads, H, W) stitched maps.
    path
        The PNG, written atomically.
    title
        Figure title.
    max_heads
        Single heads shown after the mean.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from lcd_core import atomic_write

    heads = attention.shape[0]
    shown = min(heads, max_heads)
    panels = 2 + shown
    fig, axes = plt.subplots(1, panels, figsize=(3.2 * panels, 3.4), squeeze=False)
    lo, hi = np.nanpercentile(image, [1, 99])
    grey = np.clip((image - lo) / max(hi - lo, 1e-12), 0, 1)
    axes[0, 0].imshow(grey, cmap="gray")
    axes[0, 0].set_title("image")
    with warnings.catch_warnings():  # pixels no tile covers (edge="drop") are NaN in every head
        warnings.filterwarnings("ignore", message="Mean of empty slice", category=RuntimeWarning)
        maps = [np.nanmean(attention, axis=0)] + [attention[i] for i in range(shown)]
    names = ["attention, mean of heads"] + [f"head {i}" for i in range(shown)]
    for ax, m, name in zip(axes[0, 1:], maps, names, strict=True):
        top = np.nanpercentile(m, 99) if np.isfinite(m).any() else 1.0
        ax.imshow(grey, cmap="gray")
        ax.imshow(np.clip(m / max(top, 1e-12), 0, 1), cmap="inferno", alpha=0.55)
        ax.set_title(name)
    for ax in axes[0]:
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path
