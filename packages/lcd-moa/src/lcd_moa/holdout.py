"""Holdout mode: fit probes on one compound set (:func:`fit_moa`), predict another (:func:`predict_moa`)."""

from __future__ import annotations

import anndata as ad
import numpy as np
from lcd_core import ConfigError, InputError, blas_threads, load_profiles, source_of

from lcd_moa.activity import Activity, load_activity, normalize_values
from lcd_moa.classification import TOP_K, check_top_k
from lcd_moa.condition_probes import fit_condition_probes, score_compounds
from lcd_moa.condition_weights import condition_accuracy, fill_weights, row_weights
from lcd_moa.design import build_design, require_labeled_active, require_usable_condition
from lcd_moa.evaluation import DOSE_ORDER, DoseOrder, build_methods, check_dose_order, evaluate_methods
from lcd_moa.inputs import ProbeLike, Profiles, SpecLike, is_table, load_design
from lcd_moa.model import MoAModel
from lcd_moa.result import MoAResult, condition_probs_table
from lcd_moa.spec import MoASpec, resolve


def fit_moa(
    data: Profiles,
    activity: Activity = None,
    spec: SpecLike = None,
    *,
    probe: ProbeLike = None,
    seed: int = 0,
) -> MoAModel:
    """Fit one probe per condition on every labeled compound of ``data`` (holdout training).

    Parameters
    ----------
    data
        Training profiles (the forms :func:`lcd_moa.cross_validate` takes).
    activity
        Activity table or file, or ``None`` (every compound active wherever it has wells).
    spec
        What the columns mean (:class:`lcd_moa.MoASpec` or a mapping of its fields); recorded in the
        model and used again for new data.
    probe
        Probe and aggregation options (:class:`lcd_moa.ProbeSpec` or a mapping); with
        ``weights="accuracy"`` the condition weights come from an ``inner_folds`` cross-validation on
        these training compounds.
    seed
        Seed of those inner folds.

    Returns
    -------
    MoAModel
        The probes, specs, classes, features and per-condition weights; ``save`` writes it.
    """
    design, spec, probe = load_design(data, activity, spec, probe)
    labels = require_labeled_active(design, "fit")
    require_usable_condition(design, "fit")
    classes = [*sorted(labels.unique().tolist()), spec.control_label]
    with blas_threads(1):  # small fits: see cross_validate
        probes, records = fit_condition_probes(design, labels.index, labels, probe)
        accuracy = np.full(len(design.conditions), np.nan)
        if probe.weights == "accuracy":
            accuracy = condition_accuracy(design, labels.index, labels, classes, probe, seed=seed)
    condition_keys = list(spec.condition_keys)
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
    conditions["weight"] = fill_weights(accuracy) if probe.weights == "accuracy" else 1.0
    return MoAModel(
        spec=spec,
        probe=probe,
        classes=classes,
        feature_names=design.feature_names,
        conditions=conditions.reset_index(drop=True),
        probes=probes,
        train_compounds=sorted(labels.index.tolist()),
        seed=seed,
    )


def _prediction_spec(model: MoAModel, spec: SpecLike) -> MoASpec:
    """The spec of the new data: the model's, with the given fields replaced; classes must stay the model's."""
    resolved = resolve(spec, MoASpec, base=model.spec)
    if resolved.control_label != model.spec.control_label:
        raise ConfigError(
            f"control_label {resolved.control_label!r} differs from the model's {model.spec.control_label!r} "
            "(the probes' class name)"
        )
    if len(resolved.condition_keys) != len(model.spec.condition_keys):
        raise ConfigError(
            f"condition_keys {list(resolved.condition_keys)} must name {len(model.spec.condition_keys)} "
            f"columns, matched in order to the model's {list(model.spec.condition_keys)}"
        )
    return resolved


def _read_for_model(data: Profiles, model: MoAModel, spec: MoASpec) -> ad.AnnData:
    """New profiles with the model's features, by name and in the model's order."""
    if is_table(data):
        if spec.use_rep is not None:
            raise ConfigError(f"use_rep {spec.use_rep!r} applies to AnnData input, not to a table")
        # the model's own feature names select and order the columns (missing ones: one line)
        return load_profiles(data, features=model.feature_names)
    adata = load_profiles(data, layer=spec.layer, use_rep=spec.use_rep)
    if spec.use_rep is not None:
        n = np.asarray(adata.obsm[spec.use_rep]).shape[1]
        if n != len(model.feature_names):
            raise InputError(
                f"{source_of(adata)}: obsm[{spec.use_rep!r}] has {n} columns, the model expects "
                f"{len(model.feature_names)}"
            )
        return adata
    names = set(map(str, adata.var_names))
    missing = [f for f in model.feature_names if f not in names]
    if missing:
        raise InputError(
            f"{source_of(adata)}: {len(missing)} model features are missing from the profiles, "
            f"e.g. {missing[:5]}"
        )
    return adata[:, model.feature_names].copy()  # the copy keeps uns, so messages still name the file


def predict_moa(
    model: MoAModel,
    data: Profiles,
    activity: Activity = None,
    *,
    spec: SpecLike = None,
    dose_order: DoseOrder = DOSE_ORDER,
    top_k: int = TOP_K,
) -> MoAResult:
    """Predict the MoA of the compounds in ``data`` with a fitted model (holdout prediction).

    Weighting and scoring come from the model. Labels are optional: when the spec's ``moa_key``
    column exists, metrics are computed as in cross-validation. Compounds seen in training are
    predicted too but flagged in ``compounds["in_training"]``. New data are matched to the model's
    features by name (reordered if needed) and to its conditions by value (a condition unknown to the
    model is reported and skipped).

    Parameters
    ----------
    model
        From :func:`fit_moa` or :meth:`MoAModel.load`.
    data
        New profiles.
    activity
        Activity table or file for the new data, or ``None``.
    spec
        What the new data's columns mean: default the model's spec; a mapping replaces some of its
        fields (e.g. ``{"activity_keys": [...]}``), a :class:`lcd_moa.MoASpec` all of them. The
        condition keys are matched to the model's in order; the control label must be the model's.
    dose_order
        ``"descending"`` (default), ``"ascending"`` or an explicit list of doses.
    top_k
        k of the top-k accuracy.

    Returns
    -------
    MoAResult
        As from :func:`lcd_moa.cross_validate` (``folds`` is ``None``, ``fits`` holds the model's
        conditions).
    """
    dose_order = check_dose_order(dose_order)
    check_top_k(top_k)
    spec = _prediction_spec(model, spec)
    adata = _read_for_model(data, model, spec)
    labeled = spec.moa_key in adata.obs.columns
    design = build_design(adata, load_activity(activity), spec, labeled=labeled, require_controls=False)
    # map the data's conditions onto the model's by their key values (keys matched in order)
    keys = list(spec.condition_keys)
    model_cond = model.conditions.copy()
    model_values = [normalize_values(model_cond[k]) for k in model.spec.condition_keys]
    index = {tuple(r): i for i, r in enumerate(zip(*model_values, strict=True))}
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
    probe = model.probe
    with blas_threads(1):
        table, proba = score_compounds(design, probes, compounds["compound"], model.classes, probe.score)
    table["weight"] = row_weights(probe.weights, table, weight)
    scored = set(table["compound"])
    compounds["in_training"] = compounds["compound"].isin(set(model.train_compounds))
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
    methods = build_methods(design, spec.dose, dose_order)
    predictions, metrics = evaluate_methods(
        design,
        table,
        proba,
        model.classes,
        methods,
        evaluated,
        allow_control=probe.allow_control_prediction,
        top_k=top_k,
    )
    final = next((m.name for m in reversed(methods) if m.kind == "incremental"), None)
    return MoAResult(
        params={
            "mode": "predict",
            "spec": spec.to_dict(),
            "probe": probe.to_dict(),
            "model_spec": model.spec.to_dict(),
            "dose_order": dose_order,
            "top_k": top_k,
        },
        classes=model.classes,
        condition_keys=keys,
        control_label=spec.control_label,
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
