"""Cross-validated MoA prediction: probes per condition, compounds never scored by a model that saw them."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from lcd_moa._progress import progress_bar
from lcd_moa._threads import single_thread_blas
from lcd_moa.design import (
    DEFAULT_CONTROL,
    Design,
    build_design,
    require_labeled_active,
    require_usable_condition,
)
from lcd_moa.engine import (
    check_options,
    condition_accuracy,
    fill_weights,
    fit_condition_probes,
    row_weights,
    score_compounds,
)
from lcd_moa.evaluation import build_methods, evaluate_methods
from lcd_moa.folds import assign_folds
from lcd_moa.io import Profiles, read_profiles, read_table
from lcd_moa.result import MoAResult, condition_probs_table


def load_activity(activity: pd.DataFrame | str | os.PathLike | None) -> pd.DataFrame | None:
    """An activity table from a DataFrame or a file (None: no activity filter)."""
    if activity is None or isinstance(activity, pd.DataFrame):
        return activity
    table = read_table(activity)
    table.attrs["source"] = str(activity)  # named in errors about its columns
    return table


def resolve_dose_key(condition_keys: Sequence[str], dose_key: str | None) -> str:
    """The condition key holding the dose (default: the last condition key)."""
    if dose_key is None:
        return list(condition_keys)[-1]
    if dose_key not in condition_keys:
        raise ValueError(f"dose_key {dose_key!r} must be one of condition_keys {list(condition_keys)}")
    return dose_key


def load_design(
    data: Profiles,
    activity: pd.DataFrame | str | os.PathLike | None,
    *,
    weights: str,
    score: str,
    condition_keys: Sequence[str],
    dose_key: str | None,
    features: Sequence[str] | str | None,
    **design_options,
) -> tuple[Design, list[str], str]:
    """Check the options, read profiles and activity and lay them out (shared start of cv and fit).

    ``design_options`` are the remaining keyword arguments of :func:`lcd_moa.design.build_design`.
    Returns the design, the condition keys as a list and the resolved dose key.
    """
    check_options(weights, score)
    condition_keys = list(condition_keys)
    dose_key = resolve_dose_key(condition_keys, dose_key)
    design = build_design(
        read_profiles(data, features),
        load_activity(activity),
        condition_keys=condition_keys,
        dose_key=dose_key,
        **design_options,
    )
    return design, condition_keys, dose_key


def _check_folds(folds: pd.DataFrame, labels: pd.Series) -> pd.DataFrame:
    """Validate a user-given fold table (``compound``, ``fold``) against the labeled compounds."""
    if not {"compound", "fold"} <= set(folds.columns):
        raise KeyError(f"folds table needs columns 'compound' and 'fold'; has {list(folds.columns)}")
    given = (
        folds.assign(compound=folds["compound"].astype(str)).drop_duplicates("compound").set_index("compound")
    )
    missing = [k for k in labels.index if k not in given.index]
    if missing:
        raise ValueError(
            f"{len(missing)} labeled compounds have no fold in the folds table, e.g. {missing[:5]} "
            "(use the drop_small_classes and activity of the run that made the folds)"
        )
    fold = given.loc[labels.index, "fold"].to_numpy(dtype=int)
    return pd.DataFrame({"compound": labels.index, "moa": labels.to_numpy(), "fold": fold})


def _drop_small(design: Design, n_folds: int) -> None:
    """Mark compounds of classes with fewer compounds than folds as left out (with the reason)."""
    labels = design.labels()
    counts = labels.value_counts()
    small = set(counts.index[counts < n_folds])
    if not small:
        return
    comp = design.compounds
    hit = comp["status"].eq("ok") & comp["moa"].isin(small)
    comp.loc[hit, "status"] = "dropped_small_class"
    comp.loc[hit, "reason"] = [
        f"class {m!r} has {counts[m]} compounds < n_folds={n_folds}" for m in comp.loc[hit, "moa"]
    ]
    design.notes.append(f"dropped classes with fewer than {n_folds} compounds: {sorted(small)}")


def cross_validate(
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
    n_folds: int = 5,
    seed: int = 0,
    folds: pd.DataFrame | None = None,
    weights: str = "equal",
    dose_order: str | Sequence[float] = "descending",
    score: str = "active",
    allow_control_prediction: bool = False,
    drop_small_classes: bool = False,
    inner_folds: int = 3,
    C: float = 1.0,
    max_iter: int = 1000,
    top_k: int = 3,
    progress: bool = False,
) -> MoAResult:
    """Cross-validate per-condition MoA probes and their aggregation over doses and timepoints.

    For each fold, one probe per condition (dose × timepoint) is fitted on the wells of the training
    compounds active there plus the condition's control wells (their own class, ``control_label``);
    each test compound's wells at a condition are scored and their probabilities averaged (mean of
    well probabilities); the per-condition probabilities are mapped onto the global class list and
    averaged over conditions with ``weights``. Doses are added one at a time in ``dose_order`` with
    metrics after each addition, and every dose is also evaluated alone (LCD paper; linear probes as
    in Alain & Bengio 2016; grouped stratified folds as scikit-learn's ``StratifiedGroupKFold``).

    Parameters
    ----------
    data
        Profiles: AnnData, ``.h5ad``, or a pycytominer-layout DataFrame/CSV/parquet.
    activity
        Activity table (compound × condition → ``active``), e.g. lcd-metrics' ``map_es`` output;
        ``None`` treats every compound as active wherever it has wells.
    compound_key, moa_key, condition_keys
        Column names in the profiles' ``obs``.
    dose_key
        The condition key holding the dose (default: the last condition key).
    control
        Negative controls: a query on ``obs`` or a boolean column name.
    control_label
        Class name given to control wells.
    activity_keys
        Names of ``(compound, *condition_keys)`` in the activity table when they differ.
    active_key
        Boolean activity column of the activity table.
    features, layer, use_rep
        Which features to use (table feature rule; AnnData layer or obsm entry).
    n_folds, seed
        Folds of the compound-level split and its seed.
    folds
        A fold table (``compound``, ``fold``) to reuse, e.g. ``result.folds`` of another run.
    weights
        ``"equal"``, ``"wells"`` (compound's well count at the condition) or ``"accuracy"`` (each
        condition's accuracy from an inner cross-validation on the training fold only).
    dose_order
        ``"descending"`` (default), ``"ascending"`` or an explicit list of doses.
    score
        ``"active"``: score a compound only where it is active; ``"all"``: at every condition.
    allow_control_prediction
        Whether the aggregated prediction may be the control class (default: MoA classes only,
        renormalized).
    drop_small_classes
        Leave out classes with fewer compounds than folds (recorded) instead of raising.
    inner_folds
        Folds of the inner cross-validation for accuracy weights.
    C, max_iter
        Logistic regression regularization and iteration limit.
    top_k
        k of the top-k accuracy.
    progress
        Show a rich progress bar.
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
    if folds is not None and "fold" in folds.columns:
        n_folds = int(folds["fold"].nunique())  # a reused assignment defines the number of folds
    if drop_small_classes:
        _drop_small(design, n_folds)
    labels = require_labeled_active(design, "cross-validate")
    require_usable_condition(design, "cross-validate")
    if folds is None:
        fold_table = assign_folds(labels, n_folds=n_folds, seed=seed)
    else:
        fold_table = _check_folds(folds, labels)
    global_classes = [*sorted(labels.unique().tolist()), control_label]
    fold_ids = sorted(fold_table["fold"].unique().tolist())

    tables, blocks, fit_records = [], [], []
    with single_thread_blas(), progress_bar(len(fold_ids), "cross-validating folds", progress) as advance:
        for f in fold_ids:
            test = fold_table.loc[fold_table["fold"] == f, "compound"].tolist()
            train = fold_table.loc[fold_table["fold"] != f, "compound"].tolist()
            probes, records = fit_condition_probes(design, train, labels, C=C, max_iter=max_iter)
            accuracy = np.full(len(design.conditions), np.nan)
            if weights == "accuracy":
                accuracy = condition_accuracy(
                    design,
                    train,
                    labels,
                    global_classes,
                    inner_folds=inner_folds,
                    seed=seed,
                    score=score,
                    allow_control=allow_control_prediction,
                    C=C,
                    max_iter=max_iter,
                )
            cond_weight = fill_weights(accuracy)
            for rec in records:
                rec["fold"] = f
                rec["accuracy_weight"] = (
                    float(cond_weight[rec["condition"]]) if weights == "accuracy" else np.nan
                )
            fit_records.extend(records)
            table, proba = score_compounds(design, probes, test, global_classes, score=score)
            table["fold"] = f
            table["weight"] = row_weights(weights, table, cond_weight)
            tables.append(table)
            blocks.append(proba)
            advance()
    table = pd.concat(tables, ignore_index=True)
    proba = np.vstack(blocks)

    compounds = design.compounds.merge(fold_table[["compound", "fold"]], on="compound", how="left")
    scored = set(table["compound"])
    unscored = compounds["status"].eq("ok") & ~compounds["compound"].isin(scored)
    compounds.loc[unscored, "status"] = "not_scored"
    compounds.loc[unscored, "reason"] = "no probe could be trained at its active conditions"
    evaluated = fold_table[fold_table["compound"].isin(scored)].reset_index(drop=True)

    methods = build_methods(design, dose_key, dose_order)
    predictions, metrics = evaluate_methods(
        design,
        table,
        proba,
        global_classes,
        methods,
        evaluated,
        allow_control=allow_control_prediction,
        top_k=top_k,
    )
    for column in ("accuracy", "f1_weighted", "f1_macro", f"top{top_k}_accuracy"):
        if column not in metrics:  # nothing could be scored: same columns, no values
            metrics[column] = np.nan
    fits = pd.DataFrame(fit_records)
    fits = pd.concat(
        [fits, design.conditions.loc[fits["condition"].to_numpy(), condition_keys].reset_index(drop=True)],
        axis=1,
    )
    params = {
        "compound_key": compound_key,
        "moa_key": moa_key,
        "condition_keys": condition_keys,
        "dose_key": dose_key,
        "control": control,
        "control_label": control_label,
        "n_folds": n_folds,
        "seed": seed,
        "weights": weights,
        "dose_order": dose_order if isinstance(dose_order, str) else list(dose_order),
        "score": score,
        "allow_control_prediction": allow_control_prediction,
        "drop_small_classes": drop_small_classes,
        "inner_folds": inner_folds,
        "C": C,
        "max_iter": max_iter,
        "top_k": top_k,
        "folds_given": folds is not None,
        "layer": layer,
        "use_rep": use_rep,
    }
    final = next((m.name for m in reversed(methods) if m.kind == "incremental"), None)
    return MoAResult(
        params=params,
        classes=global_classes,
        condition_keys=condition_keys,
        control_label=control_label,
        final_method=final,
        metrics=metrics,
        predictions=predictions,
        condition_probs=condition_probs_table(design, table, proba, global_classes, labels),
        compounds=compounds,
        conditions=design.conditions,
        fits=fits,
        folds=fold_table,
        notes=design.notes,
    )
