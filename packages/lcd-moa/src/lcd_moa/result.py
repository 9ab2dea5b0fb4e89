"""The result of a cross-validation or a prediction: tables, confusion matrices, files and figures."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from lcd_core import InputError, write_json, write_table

from lcd_moa.classification import confusion_table
from lcd_moa.polypharm import TOP_MOAS, top_moas

TABLES = ("metrics", "predictions", "condition_probs", "compounds", "conditions", "fits", "folds")


def condition_probs_table(
    design, table: pd.DataFrame, proba: np.ndarray, global_classes: Sequence[str], labels: pd.Series | None
) -> pd.DataFrame:
    """Scored compound × condition rows with the condition key values and ``p_<class>`` columns.

    Parameters
    ----------
    design
        The layout (:class:`lcd_moa.design.Design`).
    table
        Scored rows (``compound``, ``condition``, ...).
    proba
        Their probabilities over ``global_classes``.
    global_classes
        The class list.
    labels
        MoA per compound (a ``moa`` column is added), or ``None``.
    """
    cond = design.conditions.loc[table["condition"].to_numpy(), design.condition_keys].reset_index(drop=True)
    out = pd.concat(
        [
            table.reset_index(drop=True)[["compound"]],
            cond,
            table.reset_index(drop=True).drop(columns="compound"),
        ],
        axis=1,
    )
    if labels is not None:
        out.insert(1, "moa", labels.reindex(out["compound"]).to_numpy(dtype=object))
    out = pd.concat([out, pd.DataFrame(proba, columns=[f"p_{c}" for c in global_classes])], axis=1)
    return out


@dataclass
class MoAResult:
    """Everything a cross-validation or prediction produced (all tables are plain DataFrames).

    Parameters
    ----------
    params
        The run's options: ``spec`` (:meth:`lcd_moa.MoASpec.to_dict`), ``probe``
        (:meth:`lcd_moa.ProbeSpec.to_dict`) and the run options (``n_folds``, ``seed``, ``top_k`` ...).
    classes
        The global class list (MoAs, then the control class).
    condition_keys
        The condition key columns.
    control_label
        The control class.
    final_method
        The all-doses method (last incremental step), or ``None`` when there is none.
    metrics
        One row per method: ``method``, ``kind`` (incremental/single), ``step``, ``doses``,
        ``n_compounds``, ``coverage``, ``accuracy``, ``f1_weighted``, ``f1_macro``, ``top<k>_accuracy``.
    predictions
        One row per method × compound: ``predicted``, ``correct``, ``n_conditions``, ``p_<class>``.
    condition_probs
        One row per scored compound × condition: condition keys, ``n_wells``, ``weight``, ``fold``
        (cross-validation) and ``p_<class>`` over the global classes including the control class.
    compounds, conditions, fits
        What was used or left out, each with ``status`` and ``reason``.
    folds
        The compound → fold assignment (cross-validation only); pass it back as ``folds=`` to reuse it.
    """

    params: dict
    classes: list[str]
    condition_keys: list[str]
    control_label: str
    final_method: str | None
    metrics: pd.DataFrame
    predictions: pd.DataFrame
    condition_probs: pd.DataFrame
    compounds: pd.DataFrame
    conditions: pd.DataFrame
    fits: pd.DataFrame
    folds: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)

    def confusion(self, method: str | None = None) -> pd.DataFrame:
        """Compound-level confusion matrix of one method.

        Parameters
        ----------
        method
            A method of ``metrics`` (default: all doses).
        """
        method = method or self.final_method
        pred = self.predictions[self.predictions["method"] == method]
        if pred.empty:
            raise InputError(
                f"method {method!r} not found; methods: {self.predictions['method'].unique().tolist()}"
            )
        pred = pred[pred["moa"].notna()]
        labels = [c for c in self.classes if c != self.control_label]
        return confusion_table(pred["moa"].tolist(), pred["predicted"].tolist(), labels)

    def polypharmacology(self, k: int = TOP_MOAS) -> pd.DataFrame:
        """Top-``k`` MoAs per compound × condition (see :func:`lcd_moa.top_moas`).

        Parameters
        ----------
        k
            MoAs kept per compound × condition.
        """
        return top_moas(
            self.condition_probs, self.classes, self.condition_keys, control_label=self.control_label, k=k
        )

    def write(self, out: str | os.PathLike, *, figures: bool = True, k: int = TOP_MOAS) -> dict[str, Path]:
        """Write every table as parquet, ``params.json`` and figures under ``figures/``, each atomically.

        Parameters
        ----------
        out
            Output folder (created; files already in it are replaced one by one, others kept).
        figures
            Also write the figures (needs matplotlib, the ``[plot]`` extra).
        k
            MoAs kept per compound × condition in ``polypharmacology.parquet``.

        Returns
        -------
        dict
            Name to written path.
        """
        outdir = Path(out)
        if outdir.exists() and not outdir.is_dir():
            raise InputError(f"{outdir}: is a file, expected an output folder")
        if figures:
            from lcd_moa import plot

            plot.require_matplotlib()  # before any file is written
        written: dict[str, Path] = {}
        for name in TABLES:
            table = getattr(self, name)
            if table is not None:
                written[name] = write_table(table, outdir / f"{name}.parquet")
        if self.final_method is not None and self.predictions["moa"].notna().any():
            conf = self.confusion().reset_index()
            written["confusion"] = write_table(conf, outdir / "confusion.parquet")
        poly = self.polypharmacology(k=k)
        written["polypharmacology"] = write_table(poly, outdir / "polypharmacology.parquet")
        written["params"] = write_json(
            {
                "params": self.params,
                "classes": self.classes,
                "final_method": self.final_method,
                "notes": self.notes,
            },
            outdir / "params.json",
        )
        if figures:
            from lcd_moa import plot

            figdir = outdir / "figures"
            if self.metrics["n_compounds"].sum() > 0 and "accuracy" in self.metrics:
                written["fig_metrics"] = plot.save(
                    plot.plot_metrics(self.metrics), figdir / "metrics_by_dose.png"
                )
                written["fig_confusion"] = plot.save(
                    plot.plot_confusion(self.confusion()), figdir / "confusion.png"
                )
            if len(self.condition_probs):
                fig = plot.plot_polypharmacology(
                    self.condition_probs,
                    self.classes,
                    self.condition_keys,
                    control_label=self.control_label,
                    k=k,
                )
                written["fig_polypharmacology"] = plot.save(fig, figdir / "polypharmacology.png")
        return written
