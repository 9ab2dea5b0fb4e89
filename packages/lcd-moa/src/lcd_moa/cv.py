"""Cross-validated MoA prediction: probes per condition, compounds never scored by a model that saw them."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from lcd_core import InputError, blas_threads, read_table
from lcd_core import progress as progress_bar

from lcd_moa.activity import Activity
from lcd_moa.classification import TOP_K, check_top_k
from lcd_moa.condition_probes import fit_condition_probes, score_compounds
from lcd_moa.condition_weights import condition_accuracy, fill_weights, row_weights
from lcd_moa.design import Design, require_labeled_active, require_usable_condition
from lcd_moa.evaluation import DOSE_ORDER, DoseOrder, build_methods, check_dose_order, evaluate_methods
from lcd_moa.folds import N_FOLDS, assign_folds, check_n_folds
from lcd_moa.inputs import ProbeLike, Profiles, SpecLike, load_design
from lcd_moa.result import MoAResult, condition_probs_table

Folds = pd.DataFrame | str | os.PathLike | None


def _read_folds(folds: pd.DataFrame | str | os.PathLike) -> tuple[pd.DataFrame, str]:
    """A user-given fold table and the name used for it in messages."""
    if isinstance(folds, pd.DataFrame):
        return folds, "folds table"
    return read_table(folds, what="folds table"), str(folds)


def _check_folds(folds: pd.DataFrame, source: str, labels: pd.Series) -> pd.DataFrame:
    """Validate a user-given fold table (``compound``, ``fold``) against the labeled compounds."""
    if not {"compound", "fold"} <= set(folds.columns):
        raise InputError(f"{source}: needs columns 'compound' and 'fold'; has {list(folds.columns)}")
    fold = pd.to_numeric(folds["fold"], errors="coerce")
    bad = (fold.isna() | (fold != fold.round())).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{source}: column 'fold' must hold integers; row {row} holds {folds['fold'].iloc[row]!r}"
        )
    given = pd.DataFrame({"compound": folds["compound"].astype(str), "fold": fold.astype(int)})
    given = given.drop_duplicates("compound").set_index("compound")
    missing = [k for k in labels.index if k not in given.index]
    if missing:
        raise InputError(
            f"{source}: {len(missing)} labeled compounds have no fold, e.g. {missing[:5]} "
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
    activity: Activity = None,
    spec: SpecLike = None,
    *,
    probe: ProbeLike = None,
    n_folds: int = N_FOLDS,
    seed: int = 0,
    folds: Folds = None,
    drop_small_classes: bool = False,
    dose_order: DoseOrder = DOSE_ORDER,
    top_k: int = TOP_K,
    progress: bool = False,
) -> MoAResult:
    """Cross-validate per-condition MoA probes and their aggregation over doses and timepoints.

    For each fold, one probe per condition (dose × timepoint) is fitted on the wells of the training
    compounds active there plus the condition's control wells (their own class, ``control_label``);
    each test compound's wells at a condition are scored and their probabilities averaged (mean of
    well probabilities); the per-condition probabilities are mapped onto the global class list and
    averaged over conditions with ``probe.weights``. Doses are added one at a time in ``dose_order``
    with metrics after each addition, and every dose is also evaluated alone (LCD paper; linear probes
    as in Alain & Bengio 2016; grouped stratified folds as scikit-learn's ``StratifiedGroupKFold``).

    Parameters
    ----------
    data
        Profiles: AnnData, ``.h5ad``/``.zarr``, or a pycytominer-layout DataFrame/csv/tsv/parquet.
    activity
        Activity table or file (compound × condition → ``active``), e.g. lcd-metrics' ``map_es``
        output; ``None`` treats every compound as active wherever it has wells.
    spec
        What the columns mean (:class:`lcd_moa.MoASpec`, or a mapping of its fields; default: the
        data contract's names and :data:`lcd_core.DEFAULT_CONTROL`).
    probe
        Probe and aggregation options (:class:`lcd_moa.ProbeSpec`, or a mapping of its fields).
    n_folds
        Folds of the compound-level split.
    seed
        Seed of the compound-level split and of the inner folds of accuracy weights.
    folds
        A fold table or file (``compound``, ``fold``) to reuse, e.g. ``result.folds`` of another run;
        it sets the number of folds.
    drop_small_classes
        Leave out classes with fewer compounds than folds (recorded) instead of raising.
    dose_order
        ``"descending"`` (default), ``"ascending"`` or an explicit list of doses.
    top_k
        k of the top-k accuracy.
    progress
        Show a progress bar (rich, on stderr).

    Returns
    -------
    MoAResult
        Metrics per method, predictions, per-condition probabilities and what was left out, with why.
    """
    dose_order = check_dose_order(dose_order)
    check_top_k(top_k)
    reused = None
    if folds is None:
        check_n_folds(n_folds)
    else:
        reused, source = _read_folds(folds)
        if "fold" in reused.columns:
            n_folds = int(reused["fold"].nunique())  # a reused assignment defines the number of folds
    design, spec, probe = load_design(data, activity, spec, probe)
    if drop_small_classes:
        _drop_small(design, n_folds)
    labels = require_labeled_active(design, "cross-validate")
    require_usable_condition(design, "cross-validate")
    if reused is None:
        fold_table = assign_folds(labels, n_folds=n_folds, seed=seed)
    else:
        fold_table = _check_folds(reused, source, labels)
    global_classes = [*sorted(labels.unique().tolist()), spec.control_label]
    fold_ids = sorted(fold_table["fold"].unique().tolist())

    tables, blocks, fit_records = [], [], []
    # one BLAS thread: each probe is a small fit (hundreds of wells × features), where threads only add
    # overhead; on a loaded machine they made fits tens of times slower (README, Benchmark)
    with (
        blas_threads(1),
        progress_bar(len(fold_ids), "cross-validating", enabled=progress, unit="folds") as advance,
    ):
        for f in fold_ids:
            test = fold_table.loc[fold_table["fold"] == f, "compound"].tolist()
            train = fold_table.loc[fold_table["fold"] != f, "compound"].tolist()
            probes, records = fit_condition_probes(design, train, labels, probe)
            accuracy = np.full(len(design.conditions), np.nan)
            if probe.weights == "accuracy":
                accuracy = condition_accuracy(design, train, labels, global_classes, probe, seed=seed)
            cond_weight = fill_weights(accuracy)
            for rec in records:
                rec["fold"] = f
                rec["accuracy_weight"] = (
                    float(cond_weight[rec["condition"]]) if probe.weights == "accuracy" else np.nan
                )
            fit_records.extend(records)
            table, proba = score_compounds(design, probes, test, global_classes, probe.score)
            table["fold"] = f
            table["weight"] = row_weights(probe.weights, table, cond_weight)
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

    methods = build_methods(design, spec.dose, dose_order)
    predictions, metrics = evaluate_methods(
        design,
        table,
        proba,
        global_classes,
        methods,
        evaluated,
        allow_control=probe.allow_control_prediction,
        top_k=top_k,
    )
    for column in ("accuracy", "f1_weighted", "f1_macro", f"top{top_k}_accuracy"):
        if column not in metrics:  # nothing could be scored: same columns, no values
            metrics[column] = np.nan
    fits = pd.DataFrame(fit_records)
    condition_keys = list(spec.condition_keys)
    fits = pd.concat(
        [fits, design.conditions.loc[fits["condition"].to_numpy(), condition_keys].reset_index(drop=True)],
        axis=1,
    )
    params = {
        "mode": "cross_validate",
        "spec": spec.to_dict(),
        "probe": probe.to_dict(),
        "n_folds": n_folds,
        "seed": seed,
        "folds_given": folds is not None,
        "drop_small_classes": drop_small_classes,
        "dose_order": dose_order,
        "top_k": top_k,
    }
    final = next((m.name for m in reversed(methods) if m.kind == "incremental"), None)
    return MoAResult(
        params=params,
        classes=global_classes,
        condition_keys=condition_keys,
        control_label=spec.control_label,
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
