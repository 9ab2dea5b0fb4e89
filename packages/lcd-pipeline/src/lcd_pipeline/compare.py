"""Several models side by side, the LCD paper's way (``lcd compare``).

The same normalizations, activity and MoA run on each input, with shared seeds and one MoA fold
assignment, and the paper's statistics.

For every input (a model's profiles) and every normalization (lcd-norm's methods) the FOV profiles
are aggregated to wells and scored by lcd-metrics' mAP-ES against DMSO. From those activity tables:

- Table 1: mean AP against DMSO per dose × timepoint, averaged (lcd-norm's ``dmso_map`` numbers),
  per model × normalization; each model's *best* normalization is the one with the highest value;
- Fig 2A: mAP (mean ± SD over compound × timepoint) per dose per model at its best normalization;
- Fig 2B: fraction of compounds active at mAP-ES ≥ ``threshold`` per timepoint (and per condition)
  per model, the cell-count baseline beside it per condition;
- Fig SM2: sensitivity across thresholds per model;
- Tables SM3/SM4: Wilcoxon signed-rank over compound × condition for every pair of models (each at
  its best normalization) and, per model, every pair of normalizations, Holm-corrected;
- Table SM5 / Fig 3A: lcd-moa's cross-validated MoA metrics as doses are added, per model, with one
  fold assignment for all models, and McNemar (exact and chi-square with continuity correction)
  between models on the all-doses predictions; Fig 3B: confusion matrices of the top dose alone and
  of all doses.

The distribution-based call of the paper's SM3 (the compound's AP interval above the null's) is a
column of every activity table (``active_ci``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from lcd_core import DEFAULT_CONTROL, InputError

from .activity_ci import add_ci_call
from .compare_inputs import ModelInput, load_input, parse_spec

#: the tables :meth:`Comparison.write` writes (name → attribute)
TABLES = (
    "inputs",
    "norm_compare",
    "table1",
    "map_by_condition",
    "activity",
    "fig2a",
    "sensitivity",
    "sensitivity_curves",
    "cell_count",
    "wilcoxon_models",
    "wilcoxon_normalizations",
    "moa_metrics",
    "moa_predictions",
    "mcnemar",
    "confusion",
    "folds",
    "best",
)


@dataclass
class Comparison:
    """Every table of a comparison (plain DataFrames) and the options that made it.

    Attributes
    ----------
    params
        Options, inputs and seeds.
    inputs
        One row per model: label, path, level, rows.
    norm_compare
        lcd-norm's evaluation per model × normalization (silhouettes, replicate mAP, seconds).
    table1
        Per model × normalization: ``mean_ap`` (mean over conditions), ``sd_ap``, ``n_conditions``,
        ``status``, ``reason``, ``best``.
    map_by_condition
        Per model × normalization × condition: ``mean_ap``, ``sd_ap``, ``n_compounds``, ``n_failed``.
    activity
        Every activity table (model, normalization, compound, condition, mAP-ES columns, CI call).
    fig2a
        Per model × dose at the best normalization: ``mean_ap``, ``sd_ap``, ``n``.
    sensitivity
        Fraction active at ``threshold`` per model × condition (``scope`` = condition), cell count
        included (``model`` = ``cell count``), and per timepoint (``scope`` = timepoint, doses pooled).
    sensitivity_curves
        Fraction active over all conditions per model × mAP-ES threshold.
    cell_count
        The cell-count baseline's activity table (empty without counts).
    wilcoxon_models, wilcoxon_normalizations
        Tables SM3 and SM4.
    moa_metrics, moa_predictions, mcnemar, confusion, folds
        Table SM5 and what Fig 3A/3B are drawn from.
    best
        Each model's best normalization and its representation key.
    samples
        AP samples at each model's best normalization (for the per-compound panels).
    """

    params: dict
    inputs: pd.DataFrame
    norm_compare: pd.DataFrame
    table1: pd.DataFrame
    map_by_condition: pd.DataFrame
    activity: pd.DataFrame
    fig2a: pd.DataFrame
    sensitivity: pd.DataFrame
    sensitivity_curves: pd.DataFrame
    cell_count: pd.DataFrame
    wilcoxon_models: pd.DataFrame
    wilcoxon_normalizations: pd.DataFrame
    moa_metrics: pd.DataFrame
    moa_predictions: pd.DataFrame
    mcnemar: pd.DataFrame
    confusion: pd.DataFrame
    folds: pd.DataFrame
    best: pd.DataFrame
    samples: pd.DataFrame = field(default_factory=pd.DataFrame)
    well_profiles: dict = field(default_factory=dict, repr=False)
    model_inputs: list = field(default_factory=list, repr=False)

    def write(self, out: str | os.PathLike, *, report: bool = True) -> Path:
        """Write every table as parquet, ``params.json``, the figures and ``report.html``.

        Parameters
        ----------
        out
            The comparison folder (created; replaced atomically as a whole).
        report
            Also draw the figures and write the HTML report.

        Returns
        -------
        pathlib.Path
            ``out``.
        """
        from lcd_core import atomic_dir, write_json, write_table

        out = Path(out)
        with atomic_dir(out) as tmp:
            tmp.mkdir(parents=True)
            for name in TABLES:
                write_table(getattr(self, name), tmp / f"{name}.parquet")
            if len(self.samples):
                write_table(self.samples, tmp / "ap_samples.parquet")
            write_json(self.params, tmp / "params.json")
            if report:
                from .compare_report import build_compare_report

                build_compare_report(self, tmp, tmp / "report.html")
        return out


def _labels(obs: pd.DataFrame, compound_key: str, moa_key: str, control: str) -> pd.Series:
    """MoA per treated compound as lcd-moa reads it (non-control rows, missing MoA left out)."""
    from lcd_core import control_mask

    treated = ~control_mask(obs, control)
    frame = pd.DataFrame(
        {"compound": obs[compound_key].to_numpy()[treated], "moa": obs[moa_key].to_numpy()[treated]}
    )
    frame = frame.dropna().astype(str).drop_duplicates("compound")
    return frame.set_index("compound")["moa"].sort_index()


def _well_profiles(
    model: ModelInput, methods: Sequence[str], keys: dict, control: str, seed: int, null_size: int
) -> tuple[pd.DataFrame, dict]:
    """lcd-norm's methods on one input, then every representation aggregated to wells."""
    from lcd_core import REP_KEYS
    from lcd_norm import aggregate, compare

    adata = model.profiles
    fov = keys["fov_key"] if model.level == "fov" else None
    table = compare(
        adata,
        methods=list(methods),
        replica_key=keys["replica_key"],
        compound_key=keys["compound_key"],
        measurement_keys=(keys["plate_key"], keys["timepoint_key"]),
        fov_key=fov,
        control=control,
        seed=seed,
        null_size=null_size,
        paper_criterion=False,  # computed below from the activity tables (the same numbers)
    )
    wells = {}
    for method in table.loc[table["status"] == "ok", "method"]:
        rep = REP_KEYS[method]
        if model.level == "fov":
            w = aggregate(
                adata,
                by="well",
                use_rep=rep,
                plate_key=keys["plate_key"],
                well_key=keys["well_key"],
                fov_key=keys["fov_key"],
                timepoint_key=keys["timepoint_key"],
            )
        else:
            import anndata as ad

            X = adata.X if rep is None else adata.obsm[rep]
            w = ad.AnnData(X=np.asarray(X, dtype=np.float64), obs=adata.obs.copy())
        wells[method] = w
    return table.assign(model=model.label), wells


def compare_models(
    inputs: Sequence[str] | dict[str, str | os.PathLike],
    *,
    methods: Sequence[str] = ("none", "mad", "harmony", "fastmnn", "mad_harmony_fov"),
    normalization: str = "best",
    compound_key: str = "compound",
    replica_key: str = "replica",
    plate_key: str = "plate",
    well_key: str = "well",
    fov_key: str = "fov",
    timepoint_key: str = "timepoint",
    dose_key: str = "dose",
    moa_key: str = "moa",
    control: str = DEFAULT_CONTROL,
    features: Sequence[str] | str | None = None,
    n_draws: int = 200,
    threshold: float = 0.8,
    null_size: int = 100,
    n_folds: int = 3,
    moa: bool = True,
    counts: str | os.PathLike | None = None,
    count_key: str = "nuclei_count",
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> Comparison:
    """Run the same normalizations, activity and MoA on several models and compare them.

    Parameters
    ----------
    inputs
        ``["LABEL=PATH", ...]`` or ``{label: path}``: results folders, ``.h5ad`` or profile tables
        (:mod:`lcd_pipeline.compare_inputs`). All describe the same screen (same metadata columns).
    methods
        lcd-norm methods run on every input.
    normalization
        ``"best"`` (each model at its best Table 1 normalization) or one method for every model.
    compound_key, replica_key, plate_key, well_key, fov_key, timepoint_key, dose_key, moa_key
        Metadata columns (docs/data-model.md, "Names").
    control
        DMSO wells (pandas query or boolean column).
    features
        Feature columns or regex of table inputs.
    n_draws, threshold
        mAP-ES draws and activity threshold.
    null_size
        Permutations of lcd-norm's replicate-mAP null (its ``map_fraction_significant``).
    n_folds
        Folds of the MoA cross-validation (one assignment shared by all models).
    moa
        Run the MoA cross-validation (needs ``moa_key``).
    counts
        A table of nuclei counts per field or well (``count_key``) for the cell-count baseline; default:
        the ``cell_count.parquet`` of the first results-folder input that has one.
    count_key
        The count column of ``counts``.
    seed
        One seed for every model: mAP-ES draws, Harmony, folds.
    log
        Receives one line per step.

    Returns
    -------
    Comparison
        Every table; :meth:`Comparison.write` writes them with the figures and the report.
    """
    from lcd_metrics import cell_count_activity, map_es, sensitivity
    from lcd_norm import dmso_map_by_condition

    from .stats import wilcoxon_pairs

    say = log or (lambda m: None)
    specs = list(inputs.items()) if isinstance(inputs, dict) else [parse_spec(s) for s in inputs]
    if not specs:
        raise InputError("lcd compare needs at least one input (LABEL=PATH)")
    labels = [label for label, _ in specs]
    if len(set(labels)) != len(labels):
        dup = next(label for label in labels if labels.count(label) > 1)
        raise InputError(f"label {dup!r} is given twice; labels name the models and must be unique")
    if normalization != "best" and normalization not in methods:
        raise InputError(f"normalization {normalization!r} is not one of the methods {list(methods)}")
    keys = {
        "compound_key": compound_key,
        "replica_key": replica_key,
        "plate_key": plate_key,
        "well_key": well_key,
        "fov_key": fov_key,
        "timepoint_key": timepoint_key,
        "dose_key": dose_key,
    }
    conds = [timepoint_key, dose_key]
    models = [load_input(label, path, fov_key=fov_key, features=features) for label, path in specs]
    norm_rows, t1_rows, by_cond, activities, wells_by_model, samples_by_model = [], [], [], [], {}, {}
    for model in models:
        start = time.perf_counter()
        say(f"[compare] {model.label}: normalizations {list(methods)}")
        table, wells = _well_profiles(model, methods, keys, control, seed, null_size)
        norm_rows.append(table)
        wells_by_model[model.label] = wells
        for method in methods:
            if method not in wells:
                reason = table.loc[table["method"] == method, "reason"]
                t1_rows.append(
                    {
                        "model": model.label,
                        "normalization": method,
                        "status": "failed",
                        "reason": f"normalization failed: {'; '.join(reason.astype(str))}",
                    }
                )
                continue
            try:
                act, samples = map_es(
                    wells[method],
                    compound_key=compound_key,
                    replica_key=replica_key,
                    plate_key=plate_key,
                    timepoint_key=timepoint_key,
                    dose_key=dose_key,
                    control=control,
                    n_draws=n_draws,
                    threshold=threshold,
                    seed=seed,
                    return_samples=True,
                )
            except InputError as exc:
                t1_rows.append(
                    {"model": model.label, "normalization": method, "status": "failed", "reason": str(exc)}
                )
                continue
            act = add_ci_call(act, samples, compound_key=compound_key, timepoint_key=timepoint_key)
            activities.append(act.assign(model=model.label, normalization=method))
            samples_by_model[(model.label, method)] = samples
            summary, per = dmso_map_by_condition(act, conds)
            by_cond.append(per.assign(model=model.label, normalization=method))
            reason = summary["map_dmso_reason"]
            if method == "mad_harmony_fov" and model.level == "well":
                # a well-level input has no fields: Harmony corrects the replica only; said, not hidden
                note = "well-level input: Harmony on the replica only (no field of view)"
                reason = note if not isinstance(reason, str) or not reason else f"{reason}; {note}"
            t1_rows.append(
                {
                    "model": model.label,
                    "normalization": method,
                    "mean_ap": summary["map_dmso"],
                    "sd_ap": summary["map_dmso_sd"],
                    "n_conditions": summary["map_dmso_conditions"],
                    "status": summary["map_dmso_status"],
                    "reason": reason,
                }
            )
        say(f"[compare] {model.label}: activity done in {time.perf_counter() - start:.1f} s")

    table1 = pd.DataFrame(t1_rows).reindex(
        columns=["model", "normalization", "mean_ap", "sd_ap", "n_conditions", "status", "reason"]
    )
    best = _best(table1, labels, normalization)
    table1["best"] = [
        bool(b)
        for b in (table1["normalization"] == table1["model"].map(best.set_index("model")["normalization"]))
    ]
    activity = pd.concat(activities, ignore_index=True) if activities else pd.DataFrame()
    front = ["model", "normalization"]
    if len(activity):
        activity = activity[front + [c for c in activity.columns if c not in front]]
    at_best = _at_best(activity, best)

    # Fig 2A: AP per dose (mean ± SD over compound × timepoint) at the best normalization
    scored = at_best[at_best["status"] != "failed"] if len(at_best) else at_best
    fig2a = (
        scored.groupby(["model", dose_key], sort=False)["map_mean"]
        .agg(mean_ap="mean", sd_ap="std", n="count")
        .reset_index()
        if len(scored)
        else pd.DataFrame(columns=["model", dose_key, "mean_ap", "sd_ap", "n"])
    )

    # cell-count baseline
    cc = _cell_count(models, counts, count_key, keys, control, seed, cell_count_activity, say)

    # Fig 2B and SM2
    sens_rows, curves = [], []
    for label in labels:
        part = at_best[at_best["model"] == label] if len(at_best) else at_best
        if not len(part):
            continue
        sens_rows.append(_fraction_active(part, conds, part["active"]).assign(model=label))
        grid = sensitivity(part, np.round(np.arange(0, 3.0001, 0.1), 10), condition_keys=conds)
        overall = grid.groupby("threshold", as_index=False)[["n_compounds", "n_active"]].sum()
        overall["fraction_active"] = overall["n_active"] / overall["n_compounds"]
        curves.append(overall.assign(model=label))
    if len(cc):
        ok = cc[cc["status"] != "failed"]
        sens_rows.append(_fraction_active(ok, conds, ok["active"]).assign(model="cell count"))
    sens = pd.concat(sens_rows, ignore_index=True) if sens_rows else pd.DataFrame()
    sens_curves = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame()

    # Tables SM3 / SM4
    pair_keys = [compound_key, *conds]
    wil_models = (
        wilcoxon_pairs(at_best, by="model", pair_keys=pair_keys, levels=labels)
        if len(at_best)
        else pd.DataFrame()
    )
    wil_norm = []
    for label in labels:
        part = activity[activity["model"] == label] if len(activity) else activity
        if part["normalization"].nunique() > 1 if len(part) else False:
            t = wilcoxon_pairs(part, by="normalization", pair_keys=pair_keys, levels=list(methods))
            wil_norm.append(t.assign(model=label))
    wil_norm = pd.concat(wil_norm, ignore_index=True) if wil_norm else pd.DataFrame()
    if len(wil_norm):
        wil_norm = wil_norm[["model"] + [c for c in wil_norm.columns if c != "model"]]

    # Table SM5 / Fig 3A / Fig 3B
    moa_parts = (
        _moa(models, wells_by_model, at_best, best, keys, moa_key, control, n_folds, seed, say)
        if moa
        else None
    )
    moa_metrics, moa_pred, mcn, confusion, folds, moa_notes = moa_parts or (
        pd.DataFrame(),
        pd.DataFrame(),
        pd.DataFrame(),
        pd.DataFrame(),
        pd.DataFrame(),
        ["MoA not requested"],
    )

    samples = []
    for row in best.itertuples(index=False):
        s = samples_by_model.get((row.model, row.normalization))
        if s is not None:
            samples.append(s.assign(model=row.model, normalization=row.normalization))
    inputs_table = pd.DataFrame(
        [
            {
                "model": m.label,
                "path": str(m.path),
                "level": m.level,
                "n_rows": int(m.profiles.n_obs),
                "n_features": int(m.profiles.n_vars),
                "results_folder": m.results is not None,
            }
            for m in models
        ]
    )
    params = {
        "inputs": {m.label: str(m.path) for m in models},
        "methods": list(methods),
        "normalization": normalization,
        "keys": {**keys, "moa_key": moa_key},
        "control": control,
        "n_draws": n_draws,
        "threshold": threshold,
        "null_size": null_size,
        "n_folds": n_folds,
        "seed": seed,
        "counts": str(counts) if counts else None,
        "moa_notes": moa_notes,
    }
    return Comparison(
        params=params,
        inputs=inputs_table,
        norm_compare=pd.concat(norm_rows, ignore_index=True),
        table1=table1,
        map_by_condition=pd.concat(by_cond, ignore_index=True) if by_cond else pd.DataFrame(),
        activity=activity,
        fig2a=fig2a,
        sensitivity=sens,
        sensitivity_curves=sens_curves,
        cell_count=cc,
        wilcoxon_models=wil_models,
        wilcoxon_normalizations=wil_norm,
        moa_metrics=moa_metrics,
        moa_predictions=moa_pred,
        mcnemar=mcn,
        confusion=confusion,
        folds=folds,
        best=best,
        samples=pd.concat(samples, ignore_index=True) if samples else pd.DataFrame(),
        well_profiles=wells_by_model,
        model_inputs=models,
    )


def _best(table1: pd.DataFrame, labels: Sequence[str], normalization: str) -> pd.DataFrame:
    """Each model's normalization: the fixed one, or its highest Table 1 mean AP (with the reason)."""
    from lcd_core import REP_KEYS

    rows = []
    for label in labels:
        part = table1[(table1["model"] == label) & (table1["status"] != "failed")]
        if normalization != "best":
            chosen = normalization if normalization in set(part["normalization"]) else None
            why = "fixed" if chosen else f"{normalization} could not be scored for this model"
        elif len(part):
            chosen = str(part.sort_values("mean_ap", ascending=False)["normalization"].iloc[0])
            why = "highest mean AP against DMSO (Table 1)"
        else:
            chosen, why = None, "no normalization could be scored"
        rows.append(
            {
                "model": label,
                "normalization": chosen,
                "use_rep": REP_KEYS.get(chosen) if chosen else None,
                "reason": why,
            }
        )
    return pd.DataFrame(rows)


def _at_best(activity: pd.DataFrame, best: pd.DataFrame) -> pd.DataFrame:
    if not len(activity):
        return activity
    pairs = best.dropna(subset=["normalization"])[["model", "normalization"]]
    return activity.merge(pairs, on=["model", "normalization"], how="inner")


def _fraction_active(table: pd.DataFrame, conds: list[str], active: pd.Series) -> pd.DataFrame:
    """Fraction of compounds active per condition and per timepoint (doses pooled, dose missing).

    Rows carry ``scope`` = ``condition`` or ``timepoint``.
    """
    t = table.assign(active_=np.asarray(active, dtype=bool))
    per = t.groupby(conds, sort=True)["active_"].agg(n_compounds="count", n_active="sum").reset_index()
    per_t = t.groupby(conds[0], sort=True)["active_"].agg(n_compounds="count", n_active="sum").reset_index()
    per_t[conds[1]] = np.nan
    out = pd.concat([per.assign(scope="condition"), per_t.assign(scope="timepoint")], ignore_index=True)
    out["fraction_active"] = out["n_active"] / out["n_compounds"]
    return out


def _cell_count(models, counts, count_key, keys, control, seed, cell_count_activity, say) -> pd.DataFrame:
    if counts is not None:
        from lcd_core import read_table

        table = read_table(counts, what="counts table")
        say(f"[compare] cell-count baseline from {counts}")
        return cell_count_activity(
            table,
            count_key=count_key,
            compound_key=keys["compound_key"],
            plate_key=keys["plate_key"],
            timepoint_key=keys["timepoint_key"],
            dose_key=keys["dose_key"],
            control=control,
            seed=seed,
        )
    for m in models:
        if m.results is not None and (m.results / "cell_count.parquet").is_file():
            say(f"[compare] cell-count baseline from {m.results / 'cell_count.parquet'}")
            return pd.read_parquet(m.results / "cell_count.parquet")
    return pd.DataFrame()


def _moa(models, wells_by_model, at_best, best, keys, moa_key, control, n_folds, seed, say):
    """Cross-validated MoA per model at its best normalization, one fold table, McNemar between models."""
    from lcd_moa import MoASpec, assign_folds, compare_predictions, cross_validate

    chosen = best.dropna(subset=["normalization"]).set_index("model")["normalization"]
    first = next((m for m in models if m.label in chosen.index), None)
    if first is None:
        return None
    obs = wells_by_model[first.label][chosen[first.label]].obs
    if moa_key not in obs.columns:
        say(f"[compare] no {moa_key!r} column: MoA skipped")
        return (
            pd.DataFrame(),
            pd.DataFrame(),
            pd.DataFrame(),
            pd.DataFrame(),
            pd.DataFrame(),
            [f"no {moa_key!r} column: MoA not run"],
        )
    labels = _labels(obs, keys["compound_key"], moa_key, control)
    sizes = labels.value_counts()
    small = sorted(sizes.index[sizes < n_folds])
    notes = []
    if small:  # as lcd-moa's drop_small_classes: recorded, never silent
        notes.append(f"MoA classes with fewer than {n_folds} compounds left out: {small}")
        labels = labels[~labels.isin(small)]
    if labels.nunique() < 2:
        return (
            pd.DataFrame(),
            pd.DataFrame(),
            pd.DataFrame(),
            pd.DataFrame(),
            pd.DataFrame(),
            [
                *notes,
                "fewer than 2 MoA classes with enough compounds: MoA not run",
            ],
        )
    folds = assign_folds(labels, n_folds=n_folds, seed=seed)
    spec = MoASpec(
        compound_key=keys["compound_key"],
        moa_key=moa_key,
        condition_keys=(keys["timepoint_key"], keys["dose_key"]),
        dose_key=keys["dose_key"],
        control=control,
    )
    metrics, preds, confusions, results = [], [], [], {}
    for m in models:
        if m.label not in chosen.index:
            notes.append(f"{m.label}: no normalization scored, no MoA")
            continue
        well = wells_by_model[m.label][chosen[m.label]]
        act = at_best[at_best["model"] == m.label].drop(columns=["model", "normalization"])
        try:
            res = cross_validate(well, act, spec, folds=folds, seed=seed, drop_small_classes=bool(small))
        except InputError as exc:
            notes.append(f"{m.label}: {exc}")
            say(f"[compare] {m.label}: MoA failed: {exc}")
            continue
        results[m.label] = res
        metrics.append(res.metrics.assign(model=m.label))
        preds.append(res.predictions.assign(model=m.label))
        singles = res.metrics[res.metrics["kind"] == "single"]
        top = (
            str(singles.loc[pd.to_numeric(singles["doses"], errors="coerce").idxmax(), "method"])
            if len(singles)
            else None
        )
        for method, kind in ((top, "top dose"), (res.final_method, "all doses")):
            if method is None:
                continue
            conf = res.confusion(method)
            long = (
                conf.rename_axis("true")
                .reset_index()
                .melt(id_vars="true", var_name="predicted", value_name="n")
            )
            confusions.append(long.assign(model=m.label, method=method, panel=kind))
    mcn = []
    names = list(results)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            try:
                row = compare_predictions(results[a].predictions, results[b].predictions, intersect=True)
            except InputError as exc:
                mcn.append({"model_a": a, "model_b": b, "status": "failed", "reason": str(exc)})
                continue
            mcn.append({"model_a": a, "model_b": b, **row.iloc[0].to_dict(), "status": "ok", "reason": ""})

    def cat(parts):
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    metrics_t = cat(metrics)
    if len(metrics_t):
        metrics_t = metrics_t[["model"] + [c for c in metrics_t.columns if c != "model"]]
    return metrics_t, cat(preds), pd.DataFrame(mcn), cat(confusions), folds, notes


def spec_options() -> list[str]:
    """Names of :func:`compare_models`' keyword options (for the CLI and config checks).

    Returns
    -------
    list of str
        The option names.
    """
    import inspect

    return [p for p in inspect.signature(compare_models).parameters if p not in ("inputs", "log")]
