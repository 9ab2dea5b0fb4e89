"""The ``lcd-moa`` command: ``cv``, ``fit``, ``predict`` and ``compare`` (parsing only; work is in the API).

Built on lcd-core's scaffold (``--version``, ``-v/-q``, bad input → one line and exit 2). Every option
defaults to ``None`` and only the options given are passed on (:func:`lcd_core.given`), so each default
is the API's (:class:`lcd_moa.MoASpec`, :class:`lcd_moa.ProbeSpec`, the run functions). Lists are
given by repeating an option or with commas. typer and rich are the ``[cli]`` extra; heavy modules
are imported inside the commands so that ``lcd --help`` stays fast.
"""

# no `from __future__ import annotations`: typer reads these annotations at run time

from pathlib import Path
from typing import Annotated, Any

import typer
from lcd_core import (
    ConfigError,
    check_output_path,
    given,
    handles_bad_input,
    make_app,
    show_progress,
    split_list,
)

from lcd_moa.spec import MoASpec, ProbeSpec

# the defaults shown in --help are read from the specs, not typed again
_SPEC, _PROBE = MoASpec(), ProbeSpec()

app = make_app(
    "moa",
    "Per-condition linear MoA probes aggregated across doses and timepoints.",
    package="lcd-moa",
)

ProfilesArg = Annotated[
    Path, typer.Argument(help="Profiles: .h5ad/.zarr, or a pycytominer table (.parquet/.csv[.gz]/.tsv).")
]
OutFolder = Annotated[
    Path, typer.Option("--out", "-o", help="Output folder (parquet tables, params.json, figures/).")
]
Activity = Annotated[
    Path | None, typer.Option(help="Activity table (e.g. lcd-metrics map-es output); omitted: all active.")
]
CompoundKey = Annotated[str | None, typer.Option(help=f"Compound column [{_SPEC.compound_key}].")]
MoaKey = Annotated[str | None, typer.Option(help=f"MoA label column [{_SPEC.moa_key}].")]
ConditionKeys = Annotated[
    list[str] | None,
    typer.Option(help=f"Condition columns (repeat or comma-separate) [{','.join(_SPEC.condition_keys)}]."),
]
DoseKey = Annotated[
    str | None, typer.Option(help="Condition column holding the dose [the last condition column].")
]
Control = Annotated[
    str | None,
    typer.Option(help=f"Control rows: pandas query on obs or a boolean column [{_SPEC.control}]."),
]
ControlLabel = Annotated[
    str | None, typer.Option(help=f"Class name of control wells [{_SPEC.control_label}].")
]
ActivityKeys = Annotated[
    list[str] | None,
    typer.Option(
        help="Compound and condition column names in the activity table, in that order, when they differ."
    ),
]
ActiveKey = Annotated[
    str | None, typer.Option(help=f"Boolean column of the activity table [{_SPEC.active_key}].")
]
Features = Annotated[str | None, typer.Option(help="Regex selecting the feature columns of a table.")]
Layer = Annotated[str | None, typer.Option(help="AnnData layer holding the features.")]
UseRep = Annotated[str | None, typer.Option(help="AnnData obsm entry holding the features.")]
InverseL2 = Annotated[
    float | None, typer.Option("--C", help=f"Inverse L2 strength of the logistic regression [{_PROBE.C}].")
]
MaxIter = Annotated[int | None, typer.Option(help=f"lbfgs iteration limit [{_PROBE.max_iter}].")]
Weights = Annotated[
    str | None, typer.Option(help=f"Condition weights: equal, wells or accuracy [{_PROBE.weights}].")
]
Score = Annotated[
    str | None,
    typer.Option(help=f"Score compounds at their active conditions only (active) or all [{_PROBE.score}]."),
]
AllowControl = Annotated[
    bool,
    typer.Option("--allow-control-prediction", help="Let the aggregated prediction be the control class."),
]
InnerFolds = Annotated[
    int | None, typer.Option(help=f"Inner folds for accuracy weights [{_PROBE.inner_folds}].")
]
Seed = Annotated[int | None, typer.Option(help="Seed of the folds.")]
DoseOrder = Annotated[
    str | None,
    typer.Option(
        help="Order in which doses are added: descending (default), ascending, or doses like 20,10,5."
    ),
]
TopK = Annotated[int | None, typer.Option(help="k of top-k accuracy.")]
PolyK = Annotated[int | None, typer.Option(help="MoAs kept per condition in the polypharmacology table.")]
Plot = Annotated[
    bool | None, typer.Option("--plot/--no-plot", help="Write figures (default; needs lcd-moa[plot]).")
]


def _dose_order(text: str | None) -> Any:
    """``descending``/``ascending``, or comma-separated doses as floats; ``None`` when not given."""
    if text is None or text in ("descending", "ascending"):
        return text
    try:
        return [float(v) for v in split_list(text) or []] or None
    except ValueError:
        raise ConfigError(
            f"--dose-order must be 'descending', 'ascending' or comma-separated doses, got {text!r}"
        ) from None


def _data_options(**options: Any) -> dict[str, Any]:
    """The given data options as :class:`lcd_moa.MoASpec` fields (lists split the one way)."""
    for name in ("condition_keys", "activity_keys"):
        options[name] = split_list(options.get(name))
    return given(**options)


def _probe_options(**options: Any) -> dict[str, Any]:
    """The given probe options as :class:`lcd_moa.ProbeSpec` fields (a flag only when set)."""
    options["allow_control_prediction"] = options.get("allow_control_prediction") or None
    return given(**options)


@app.command()
@handles_bad_input
def cv(
    profiles: ProfilesArg,
    out: OutFolder,
    activity: Activity = None,
    compound_key: CompoundKey = None,
    moa_key: MoaKey = None,
    condition_keys: ConditionKeys = None,
    dose_key: DoseKey = None,
    control: Control = None,
    control_label: ControlLabel = None,
    activity_keys: ActivityKeys = None,
    active_key: ActiveKey = None,
    features: Features = None,
    layer: Layer = None,
    use_rep: UseRep = None,
    c: InverseL2 = None,
    max_iter: MaxIter = None,
    weights: Weights = None,
    score: Score = None,
    allow_control_prediction: AllowControl = False,
    inner_folds: InnerFolds = None,
    n_folds: Annotated[
        int | None, typer.Option(help="Compound folds (default 5; a --folds table sets its own).")
    ] = None,
    seed: Seed = None,
    folds: Annotated[Path | None, typer.Option(help="Reuse the folds.parquet of another run.")] = None,
    drop_small_classes: Annotated[
        bool, typer.Option("--drop-small-classes", help="Leave out classes with fewer compounds than folds.")
    ] = False,
    dose_order: DoseOrder = None,
    top_k: TopK = None,
    poly_k: PolyK = None,
    plot: Plot = None,
) -> None:
    """Cross-validate MoA probes (folds grouped by compound, stratified by MoA)."""
    from lcd_moa import cross_validate

    write = given(figures=plot, k=poly_k)
    if write.get("figures", True):
        from lcd_moa.plot import require_matplotlib

        require_matplotlib()  # before minutes of fitting
    result = cross_validate(
        profiles,
        activity,
        _data_options(
            compound_key=compound_key,
            moa_key=moa_key,
            condition_keys=condition_keys,
            dose_key=dose_key,
            control=control,
            control_label=control_label,
            activity_keys=activity_keys,
            active_key=active_key,
            features=features,
            layer=layer,
            use_rep=use_rep,
        ),
        probe=_probe_options(
            C=c,
            max_iter=max_iter,
            weights=weights,
            score=score,
            allow_control_prediction=allow_control_prediction,
            inner_folds=inner_folds,
        ),
        progress=show_progress(),
        **given(
            n_folds=n_folds,
            seed=seed,
            folds=folds,
            drop_small_classes=drop_small_classes or None,
            dose_order=_dose_order(dose_order),
            top_k=top_k,
        ),
    )
    result.write(out, **write)
    _report(result, out)


@app.command()
@handles_bad_input
def fit(
    profiles: ProfilesArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output model folder (model.json + model.npz).")],
    activity: Activity = None,
    compound_key: CompoundKey = None,
    moa_key: MoaKey = None,
    condition_keys: ConditionKeys = None,
    dose_key: DoseKey = None,
    control: Control = None,
    control_label: ControlLabel = None,
    activity_keys: ActivityKeys = None,
    active_key: ActiveKey = None,
    features: Features = None,
    layer: Layer = None,
    use_rep: UseRep = None,
    c: InverseL2 = None,
    max_iter: MaxIter = None,
    weights: Weights = None,
    score: Score = None,
    allow_control_prediction: AllowControl = False,
    inner_folds: InnerFolds = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the inner folds (accuracy weights).")] = None,
) -> None:
    """Fit probes on every labeled compound and save the model (no pickle)."""
    from lcd_moa import fit_moa

    fitted = fit_moa(
        profiles,
        activity,
        _data_options(
            compound_key=compound_key,
            moa_key=moa_key,
            condition_keys=condition_keys,
            dose_key=dose_key,
            control=control,
            control_label=control_label,
            activity_keys=activity_keys,
            active_key=active_key,
            features=features,
            layer=layer,
            use_rep=use_rep,
        ),
        probe=_probe_options(
            C=c,
            max_iter=max_iter,
            weights=weights,
            score=score,
            allow_control_prediction=allow_control_prediction,
            inner_folds=inner_folds,
        ),
        **given(seed=seed),
    )
    fitted.save(out)
    typer.echo(
        f"model with {len(fitted.probes)} condition probes and classes {fitted.classes} written to {out}"
    )


@app.command()
@handles_bad_input
def predict(
    profiles: ProfilesArg,
    model: Annotated[Path, typer.Option(help="Model folder written by `lcd-moa fit`.")],
    out: OutFolder,
    activity: Activity = None,
    compound_key: CompoundKey = None,
    moa_key: MoaKey = None,
    condition_keys: ConditionKeys = None,
    dose_key: DoseKey = None,
    control: Control = None,
    activity_keys: ActivityKeys = None,
    active_key: ActiveKey = None,
    layer: Layer = None,
    use_rep: UseRep = None,
    dose_order: DoseOrder = None,
    top_k: TopK = None,
    poly_k: PolyK = None,
    plot: Plot = None,
) -> None:
    """Predict MoAs of new compounds with a saved model (metrics when labels exist).

    Key options default to the model's; give them when the new data name their columns differently.
    """
    from lcd_moa import MoAModel, predict_moa

    write = given(figures=plot, k=poly_k)
    if write.get("figures", True):
        from lcd_moa.plot import require_matplotlib

        require_matplotlib()
    result = predict_moa(
        MoAModel.load(model),
        profiles,
        activity,
        spec=_data_options(
            compound_key=compound_key,
            moa_key=moa_key,
            condition_keys=condition_keys,
            dose_key=dose_key,
            control=control,
            activity_keys=activity_keys,
            active_key=active_key,
            layer=layer,
            use_rep=use_rep,
        ),
        **given(dose_order=_dose_order(dose_order), top_k=top_k),
    )
    result.write(out, **write)
    _report(result, out)


@app.command()
@handles_bad_input
def compare(
    predictions_a: Annotated[Path, typer.Argument(help="predictions.parquet of method A.")],
    predictions_b: Annotated[
        Path, typer.Argument(help="predictions.parquet of method B (may be the same file).")
    ],
    method_a: Annotated[str | None, typer.Option(help="Method in table A [all doses].")] = None,
    method_b: Annotated[str | None, typer.Option(help="Method in table B [all doses].")] = None,
    intersect: Annotated[bool, typer.Option("--intersect", help="Compare on shared compounds only.")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the result table (.parquet, .csv or .tsv).")
    ] = None,
) -> None:
    """McNemar's exact test between two methods' per-compound correctness."""
    from lcd_core import write_table

    from lcd_moa import compare_predictions

    if out is not None:
        check_output_path(out)  # an unknown suffix stops here, before any work
    table = compare_predictions(
        predictions_a,
        predictions_b,
        **given(method_a=method_a, method_b=method_b, intersect=intersect or None),
    )
    if out is not None:
        write_table(table, out)
    row = table.iloc[0]
    typer.echo(
        f"{row['method_a']} vs {row['method_b']} on {row['n_compounds']} compounds: accuracy "
        f"{row['accuracy_a']:.3f} vs {row['accuracy_b']:.3f}; only A right {row['only_a']}, only B right "
        f"{row['only_b']}; McNemar exact p = {row['p_value']:.4g}"
    )


def _report(result: Any, out: Path) -> None:
    """The metrics table, skipped conditions and notes, on stdout."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"MoA metrics ({out})")
    top = f"top{result.params['top_k']}_accuracy"
    cols = [
        c
        for c in ("method", "n_compounds", "coverage", "accuracy", "f1_weighted", "f1_macro", top)
        if c in result.metrics
    ]
    for col in cols:
        table.add_column(col)
    for _, row in result.metrics.iterrows():
        table.add_row(*[f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in cols])
    console.print(table)
    skipped = result.conditions[result.conditions["status"] != "ok"]
    if len(skipped):
        console.print(f"{len(skipped)} conditions skipped (see conditions.parquet: status/reason)")
    for note in result.notes:
        console.print(f"note: {note}")
