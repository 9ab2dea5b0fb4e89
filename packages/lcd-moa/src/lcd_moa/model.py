"""Holdout mode: fit probes on one compound set, save them without pickle, predict another set."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lcd_moa._threads import single_thread_blas
from lcd_moa.cv import load_activity, load_design, resolve_dose_key
from lcd_moa.design import (
    DEFAULT_CONTROL,
    build_design,
    normalize_values,
    require_labeled_active,
    require_usable_condition,
)
from lcd_moa.engine import (
    condition_accuracy,
    fill_weights,
    fit_condition_probes,
    row_weights,
    score_compounds,
)
from lcd_moa.evaluation import build_methods, evaluate_methods
from lcd_moa.io import Profiles, read_profiles, write_json, write_npz
from lcd_moa.probe import LinearProbe
from lcd_moa.result import MoAResult, condition_probs_table

FORMAT = "lcd-moa-model/1"


@dataclass
class MoAModel:
    """Fitted per-condition probes with everything needed to apply them to new profiles.

    Attributes
    ----------
    params
        Key names, control definition, weighting and fitting options (JSON-able).
    classes
        Global class list (MoAs, then the control class).
    feature_names
        The features the probes expect, in order.
    conditions
        One row per condition: key values, ``status``/``reason``, ``weight`` and training counts.
    probes
        Probe per row index of ``conditions`` (conditions without a probe are absent).
    """

    params: dict
    classes: list[str]
    feature_names: list[str]
    conditions: pd.DataFrame
    probes: dict[int, LinearProbe]

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``model.json`` (metadata) and ``model.npz`` (arrays) into the folder ``path``.

        Both are plain formats: loading never executes pickled code.
        """
        path = Path(path)
        arrays = {}
        for c, p in self.probes.items():
            arrays.update(
                {
                    f"c{c}_mean": p.mean,
                    f"c{c}_scale": p.scale,
                    f"c{c}_coef": p.coef,
                    f"c{c}_intercept": p.intercept,
                }
            )
        write_npz(arrays, path / "model.npz")
        conditions = self.conditions.astype(object).where(self.conditions.notna(), None)
        meta = {
            "format": FORMAT,
            "params": self.params,
            "classes": self.classes,
            "feature_names": self.feature_names,
            "conditions": conditions.to_dict(orient="records"),
            "probe_classes": {str(c): p.classes.tolist() for c, p in self.probes.items()},
        }
        write_json(meta, path / "model.json")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> MoAModel:
        """Read a model folder written by :meth:`save`."""
        path = Path(path)
        meta_file, array_file = path / "model.json", path / "model.npz"
        for f in (meta_file, array_file):
            if not f.is_file():
                raise FileNotFoundError(f"{f}: not found (a model folder holds model.json and model.npz)")
        meta = json.loads(meta_file.read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{meta_file}: unknown model format {meta.get('format')!r}, expected {FORMAT!r}")
        probes = {}
        with np.load(array_file, allow_pickle=False) as z:
            for c, classes in meta["probe_classes"].items():
                probes[int(c)] = LinearProbe(
                    classes=np.asarray(classes, dtype=str),
                    mean=z[f"c{c}_mean"],
                    scale=z[f"c{c}_scale"],
                    coef=z[f"c{c}_coef"],
                    intercept=z[f"c{c}_intercept"],
                )
        return cls(
            meta["params"], meta["classes"], meta["feature_names"], pd.DataFrame(meta["conditions"]), probes
        )


def fit_moa(
    data: Profiles,
    activity: pd.DataFrame | str | os.PathLike | None = None,
    *,
    compound_key: str = "compound",
    moa_key: str = "moa",
    condition_keys: Sequence[str] = ("timepoint", "dose"),
    dose_key: str | None = None,
    control: str = DEFAULT_CONTROL,
    control_label: str = "DMSO",
    activity_keys: Sequence[str] | None = None,
    active_key: str = "active",
    features: Sequence[str] | str | None = None,
    layer: str | None = None,
    use_rep: str | None = None,
    weights: str = "equal",
    score: str = "active",
    allow_control_prediction: bool = False,
    inner_folds: int = 3,
    seed: int = 0,
    C: float = 1.0,
    max_iter: int = 1000,
) -> MoAModel:
    """Fit one probe per condition on every labeled compound of ``data`` (holdout training).

    Parameters are those of :func:`lcd_moa.cv.cross_validate`. With ``weights="accuracy"`` the
    condition weights come from an ``inner_folds`` cross-validation on these training compounds.
    """
    design, condition_keys, dose_key = load_design(
        data,
        activity,
        weights=weights,
        score=score,
        dose_key=dose_key,
        compound_key=compound_key,
        moa_key=moa_key,
        condition_keys=condition_keys,
        control=control,
        control_label=control_label,
        activity_keys=activity_keys,
        active_key=active_key,
        features=features,
        layer=layer,
        use_rep=use_rep,
    )
    labels = require_labeled_active(design, "fit")
    require_usable_condition(design, "fit")
    classes = [*sorted(labels.unique().tolist()), control_label]
    with single_thread_blas():
        probes, records = fit_condition_probes(design, labels.index, labels, C=C, max_iter=max_iter)
        accuracy = np.full(len(design.conditions), np.nan)
        if weights == "accuracy":
            accuracy = condition_accuracy(
                design,
                labels.index,
                labels,
                classes,
                inner_folds=inner_folds,
                seed=seed,
                score=score,
                allow_control=allow_control_prediction,
                C=C,
                max_iter=max_iter,
            )
    conditions = design.conditions[condition_keys].copy()
    conditions["status"] = design.conditions["status"]
    conditions["reason"] = design.conditions["reason"]
    conditions["n_train_compounds"] = 0
    for rec in records:
        conditions.loc[rec["condition"], ["status", "reason", "n_train_compounds"]] = [
            rec["status"],
            rec["reason"],
            rec["n_train_compounds"],
        ]
    conditions["weight"] = fill_weights(accuracy) if weights == "accuracy" else 1.0
    params = {
        "compound_key": compound_key,
        "moa_key": moa_key,
        "condition_keys": condition_keys,
        "dose_key": dose_key,
        "control": control,
        "control_label": control_label,
        "weights": weights,
        "score": score,
        "allow_control_prediction": allow_control_prediction,
        "inner_folds": inner_folds,
        "seed": seed,
        "C": C,
        "max_iter": max_iter,
        "layer": layer,
        "use_rep": use_rep,
        "n_train_compounds": len(labels),
        "train_compounds": sorted(labels.index.tolist()),
    }
    return MoAModel(params, classes, design.feature_names, conditions.reset_index(drop=True), probes)


def _select_features(adata, model: MoAModel, layer: str | None, use_rep: str | None):
    """Reorder/subset the new data's features to the model's; missing features are an error."""
    if use_rep is not None:
        n = np.asarray(adata.obsm[use_rep]).shape[1] if use_rep in adata.obsm else None
        if n != len(model.feature_names):
            raise ValueError(
                f"obsm[{use_rep!r}] has {n} columns, the model expects {len(model.feature_names)}"
            )
        return adata
    names = [str(v) for v in adata.var_names]
    missing = [f for f in model.feature_names if f not in set(names)]
    if missing:
        raise KeyError(f"{len(missing)} model features are missing from the profiles, e.g. {missing[:5]}")
    return adata[:, model.feature_names]


def predict_moa(
    model: MoAModel,
    data: Profiles,
    activity: pd.DataFrame | str | os.PathLike | None = None,
    *,
    activity_keys: Sequence[str] | None = None,
    active_key: str = "active",
    features: Sequence[str] | str | None = None,
    layer: str | None = None,
    use_rep: str | None = None,
    dose_order: str | Sequence[float] = "descending",
    top_k: int = 3,
) -> MoAResult:
    """Predict the MoA of the compounds in ``data`` with a fitted model (holdout prediction).

    Key names, control definition and weighting come from the model. Labels are optional: when the
    model's ``moa_key`` column exists, metrics are computed as in cross-validation. Compounds seen in
    training are predicted too but flagged in ``compounds["in_training"]``.
    """
    p = model.params
    adata = _select_features(
        read_profiles(data, features), model, p.get("layer") if layer is None else layer, use_rep
    )
    moa_key = p["moa_key"] if p["moa_key"] in adata.obs.columns else None
    keys = p["condition_keys"]
    design = build_design(
        adata,
        load_activity(activity),
        compound_key=p["compound_key"],
        moa_key=moa_key,
        condition_keys=keys,
        dose_key=p.get("dose_key"),
        control=p["control"],
        control_label=p["control_label"],
        activity_keys=activity_keys,
        active_key=active_key,
        layer=layer,
        use_rep=use_rep,
        require_controls=False,
    )
    # map the data's conditions onto the model's by their key values
    model_cond = model.conditions.copy()
    for k in keys:
        model_cond[k] = normalize_values(model_cond[k])
    index = {tuple(r): i for i, r in enumerate(model_cond[keys].itertuples(index=False, name=None))}
    probes, weight = {}, np.ones(len(design.conditions))
    status, reason = [], []
    for c, row in enumerate(design.conditions[keys].itertuples(index=False, name=None)):
        m = index.get(tuple(row))
        if m is None:
            status.append("skipped")
            reason.append("condition not in the model")
        elif m not in model.probes:
            status.append("skipped")
            reason.append(f"the model has no probe here ({model_cond.loc[m, 'reason']})")
        else:
            probes[c] = model.probes[m]
            weight[c] = float(model_cond.loc[m, "weight"])
            status.append("ok")
            reason.append("")
    design.conditions["status"] = status
    design.conditions["reason"] = reason
    compounds = design.compounds
    with single_thread_blas():
        table, proba = score_compounds(design, probes, compounds["compound"], model.classes, score=p["score"])
    table["weight"] = row_weights(p["weights"], table, weight)
    scored = set(table["compound"])
    compounds["in_training"] = compounds["compound"].isin(set(p.get("train_compounds", [])))
    unscored = ~compounds["compound"].isin(scored)
    compounds.loc[unscored & compounds["status"].isin(["ok", "no_label"]), "reason"] = (
        "no model probe at its active conditions"
    )
    compounds.loc[unscored & compounds["status"].isin(["ok", "no_label"]), "status"] = "not_scored"
    notes = list(design.notes)
    labels = compounds.set_index("compound")["moa"]
    unknown = sorted(set(labels.dropna()) - set(model.classes))
    if unknown:
        notes.append(f"labels not among the model's classes (always counted wrong): {unknown}")
    evaluated = compounds.loc[compounds["compound"].isin(scored), ["compound", "moa"]].reset_index(drop=True)
    dose_key = resolve_dose_key(keys, p.get("dose_key"))
    methods = build_methods(design, dose_key, dose_order)
    predictions, metrics = evaluate_methods(
        design,
        table,
        proba,
        model.classes,
        methods,
        evaluated,
        allow_control=p["allow_control_prediction"],
        top_k=top_k,
    )
    final = next((m.name for m in reversed(methods) if m.kind == "incremental"), None)
    return MoAResult(
        params={
            **{k: v for k, v in p.items() if k != "train_compounds"},
            "mode": "predict",
            "dose_order": dose_order if isinstance(dose_order, str) else list(dose_order),
            "top_k": top_k,
        },
        classes=model.classes,
        condition_keys=keys,
        control_label=p["control_label"],
        final_method=final,
        metrics=metrics,
        predictions=predictions,
        condition_probs=condition_probs_table(design, table, proba, model.classes, labels),
        compounds=compounds,
        conditions=design.conditions,
        fits=model.conditions,
        folds=None,
        notes=notes,
    )
