"""The ``lcd-moa`` command: ``cv``, ``fit``, ``predict`` and ``compare`` (parsing only; work is in the API).

typer and rich are the ``[cli]`` extra; heavy modules are imported inside the commands so that
``lcd --help`` stays fast.
"""

from __future__ import annotations

import functools
import inspect
import sys
from pathlib import Path
from typing import Annotated

try:
    import typer
except ImportError:  # the [cli] extra is not installed
    typer = None

INSTALL_HINT = "install lcd-moa[cli] to use the lcd-moa command (pip install 'lcd-moa[cli]')"
BAD_INPUT = (ValueError, KeyError, TypeError, FileNotFoundError, ImportError)


def _fail(err: Exception) -> None:
    message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


def _dose_order(text: str):
    if text in ("descending", "ascending"):
        return text
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(
            f"--dose-order must be 'descending', 'ascending' or comma-separated doses, got {text!r}"
        ) from None


if typer is not None:
    app = typer.Typer(
        help="Per-condition linear MoA probes aggregated across doses and timepoints.",
        no_args_is_help=True,
        add_completion=False,
    )

    Profiles = Annotated[
        Path, typer.Argument(help="Profiles: .h5ad, or a pycytominer table (.parquet/.csv[.gz]).")
    ]
    Activity = Annotated[
        Path | None,
        typer.Option(help="Activity table (e.g. lcd-metrics map-es output); omitted: all active."),
    ]
    CompoundKey = Annotated[str, typer.Option(help="Compound column.")]
    MoaKey = Annotated[str, typer.Option(help="MoA label column.")]
    ConditionKey = Annotated[
        list[str] | None,
        typer.Option("--condition-key", help="Condition column (repeat; default timepoint, dose)."),
    ]
    DoseKey = Annotated[
        str | None, typer.Option(help="Condition column holding the dose (default: the last one).")
    ]
    Control = Annotated[str, typer.Option(help="Control rows: pandas query on obs or a boolean column.")]
    ControlLabel = Annotated[str, typer.Option(help="Class name of control wells.")]
    ActivityKey = Annotated[
        list[str] | None,
        typer.Option(
            "--activity-key",
            help="Compound and condition column names in the activity table (repeat, same order), when they differ.",
        ),
    ]
    ActiveKey = Annotated[str, typer.Option(help="Boolean column of the activity table.")]
    Features = Annotated[str | None, typer.Option(help="Regex selecting feature columns of a table.")]
    Layer = Annotated[str | None, typer.Option(help="AnnData layer holding the features.")]
    UseRep = Annotated[str | None, typer.Option(help="AnnData obsm entry holding the features.")]
    Weights = Annotated[str, typer.Option(help="Condition weights: equal, wells or accuracy.")]
    Score = Annotated[
        str, typer.Option(help="Score compounds at their active conditions only (active) or all.")
    ]
    DoseOrder = Annotated[str, typer.Option(help="descending, ascending, or doses like '20,10,5'.")]
    AllowControl = Annotated[bool, typer.Option(help="Let the aggregated prediction be the control class.")]
    InnerFolds = Annotated[int, typer.Option(help="Inner folds for accuracy weights.")]
    InverseL2 = Annotated[float, typer.Option("--C", help="Inverse L2 strength of the logistic regression.")]
    TopK = Annotated[int, typer.Option(help="k of top-k accuracy.")]
    PolyK = Annotated[int, typer.Option(help="MoAs kept per condition in the polypharmacology table.")]
    Plot = Annotated[bool, typer.Option(help="Write figures.")]

    def _design_options(
        activity: Activity = None,
        compound_key: CompoundKey = "compound",
        moa_key: MoaKey = "moa",
        condition_key: ConditionKey = None,
        dose_key: DoseKey = None,
        control: Control = "compound == 'DMSO'",
        control_label: ControlLabel = "DMSO",
        activity_key: ActivityKey = None,
        active_key: ActiveKey = "active",
        features: Features = None,
        layer: Layer = None,
        use_rep: UseRep = None,
    ) -> dict:
        """The training-data options of ``cv`` and ``fit``, as keywords of ``cross_validate``/``fit_moa``."""
        return {
            "activity": activity,
            "compound_key": compound_key,
            "moa_key": moa_key,
            "condition_keys": condition_key or ["timepoint", "dose"],
            "dose_key": dose_key,
            "control": control,
            "control_label": control_label,
            "activity_keys": activity_key,
            "active_key": active_key,
            "features": features,
            "layer": layer,
            "use_rep": use_rep,
        }

    def _with_design_options(command):
        """Give ``command`` the options of :func:`_design_options` (after its first two parameters).

        Typer reads a command's options from its signature, so the shared options are spliced into
        it; the command receives them as one dict, ``design``, of API keywords.
        """
        shared = list(inspect.signature(_design_options, eval_str=True).parameters.values())
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "design"]

        @functools.wraps(command)
        def wrapper(**options):
            design = _design_options(**{p.name: options.pop(p.name) for p in shared})
            return command(design=design, **options)

        wrapper.__signature__ = inspect.Signature([*own[:2], *shared, *own[2:]])
        return wrapper

    @app.command()
    @_with_design_options
    def cv(
        profiles: Profiles,
        out: Annotated[Path, typer.Option(help="Output folder (parquet tables, params.json, figures/).")],
        design: dict,
        n_folds: Annotated[int, typer.Option(help="Compound folds.")] = 5,
        seed: Annotated[int, typer.Option(help="Fold seed.")] = 0,
        folds: Annotated[Path | None, typer.Option(help="Reuse a folds.parquet of another run.")] = None,
        weights: Weights = "equal",
        dose_order: DoseOrder = "descending",
        score: Score = "active",
        allow_control_prediction: AllowControl = False,
        drop_small_classes: Annotated[
            bool, typer.Option(help="Leave out classes with fewer compounds than folds.")
        ] = False,
        inner_folds: InnerFolds = 3,
        c: InverseL2 = 1.0,
        top_k: TopK = 3,
        poly_k: PolyK = 2,
        plot: Plot = True,
    ) -> None:
        """Cross-validate MoA probes (folds grouped by compound, stratified by MoA)."""
        from lcd_moa.cv import cross_validate
        from lcd_moa.io import read_table

        try:
            result = cross_validate(
                profiles,
                **design,
                n_folds=n_folds,
                seed=seed,
                folds=read_table(folds) if folds else None,
                weights=weights,
                dose_order=_dose_order(dose_order),
                score=score,
                allow_control_prediction=allow_control_prediction,
                drop_small_classes=drop_small_classes,
                inner_folds=inner_folds,
                C=c,
                top_k=top_k,
                progress=True,
            )
            result.write(out, figures=plot, k=poly_k)
        except BAD_INPUT as err:
            _fail(err)
        _report(result, out)

    @app.command()
    @_with_design_options
    def fit(
        profiles: Profiles,
        model: Annotated[Path, typer.Option(help="Output model folder (model.json + model.npz).")],
        design: dict,
        weights: Weights = "equal",
        score: Score = "active",
        allow_control_prediction: AllowControl = False,
        inner_folds: InnerFolds = 3,
        seed: Annotated[int, typer.Option(help="Seed of the inner folds.")] = 0,
        c: InverseL2 = 1.0,
    ) -> None:
        """Fit probes on every labeled compound and save the model (no pickle)."""
        from lcd_moa.model import fit_moa

        try:
            fitted = fit_moa(
                profiles,
                **design,
                weights=weights,
                score=score,
                allow_control_prediction=allow_control_prediction,
                inner_folds=inner_folds,
                seed=seed,
                C=c,
            )
            fitted.save(model)
        except BAD_INPUT as err:
            _fail(err)
        typer.echo(
            f"model with {len(fitted.probes)} condition probes and classes {fitted.classes} written to {model}"
        )

    @app.command()
    def predict(
        profiles: Profiles,
        model: Annotated[Path, typer.Option(help="Model folder written by `lcd-moa fit`.")],
        out: Annotated[Path, typer.Option(help="Output folder.")],
        activity: Activity = None,
        activity_key: ActivityKey = None,
        active_key: ActiveKey = "active",
        features: Features = None,
        layer: Layer = None,
        use_rep: UseRep = None,
        dose_order: DoseOrder = "descending",
        top_k: TopK = 3,
        poly_k: PolyK = 2,
        plot: Plot = True,
    ) -> None:
        """Predict MoAs of new compounds with a saved model (metrics when labels exist)."""
        from lcd_moa.model import MoAModel, predict_moa

        try:
            result = predict_moa(
                MoAModel.load(model),
                profiles,
                activity,
                activity_keys=activity_key,
                active_key=active_key,
                features=features,
                layer=layer,
                use_rep=use_rep,
                dose_order=_dose_order(dose_order),
                top_k=top_k,
            )
            result.write(out, figures=plot, k=poly_k)
        except BAD_INPUT as err:
            _fail(err)
        _report(result, out)

    @app.command()
    def compare(
        predictions_a: Annotated[Path, typer.Argument(help="predictions.parquet of method A.")],
        predictions_b: Annotated[
            Path, typer.Argument(help="predictions.parquet of method B (may be the same file).")
        ],
        method_a: Annotated[str | None, typer.Option(help="Method in table A (default: all doses).")] = None,
        method_b: Annotated[str | None, typer.Option(help="Method in table B (default: all doses).")] = None,
        intersect: Annotated[bool, typer.Option(help="Compare on shared compounds only.")] = False,
        out: Annotated[Path | None, typer.Option(help="Write the result table (.parquet or .csv).")] = None,
    ) -> None:
        """McNemar's exact test between two methods' per-compound correctness."""
        from lcd_moa.compare import compare_predictions
        from lcd_moa.io import read_table, write_table

        try:
            table = compare_predictions(
                read_table(predictions_a),
                read_table(predictions_b),
                method_a=method_a,
                method_b=method_b,
                intersect=intersect,
            )
            if out is not None:
                write_table(table, out)
        except BAD_INPUT as err:
            _fail(err)
        row = table.iloc[0]
        typer.echo(
            f"{row['method_a']} vs {row['method_b']} on {row['n_compounds']} compounds: accuracy "
            f"{row['accuracy_a']:.3f} vs {row['accuracy_b']:.3f}; only A right {row['only_a']}, only B right "
            f"{row['only_b']}; McNemar exact p = {row['p_value']:.4g}"
        )

    def _report(result, out: Path) -> None:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"MoA metrics ({out})")
        cols = [
            c
            for c in (
                "method",
                "n_compounds",
                "coverage",
                "accuracy",
                "f1_weighted",
                "f1_macro",
                f"top{result.params.get('top_k', 3)}_accuracy",
            )
            if c in result.metrics
        ]
        for col in cols:
            table.add_column(col)
        for _, row in result.metrics.iterrows():
            table.add_row(*[f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in cols])
        Console().print(table)
        skipped = result.conditions[result.conditions["status"] != "ok"]
        if len(skipped):
            Console().print(f"{len(skipped)} conditions skipped (see conditions.parquet: status/reason)")
        for note in result.notes:
            Console().print(f"note: {note}")
else:
    app = None


def main() -> None:
    """Entry point of the ``lcd-moa`` script."""
    if typer is None:
        print(INSTALL_HINT, file=sys.stderr)
        sys.exit(1)
    app()
