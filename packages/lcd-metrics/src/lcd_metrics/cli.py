"""`lcd-metrics` command line: map | map-es | cell-count. Parses options and calls the library.

typer and rich come with the `cli` extra; without them `main()` says how to install it.
"""

import sys
from pathlib import Path
from typing import Annotated

try:
    import typer
except ImportError:  # the library works without the cli extra
    typer = None

INSTALL_HINT = "lcd-metrics: the command line needs the cli extra: pip install 'lcd-metrics[cli]'"


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


def _run(fn):
    """Call `fn`; bad input (InputError, unreadable files) becomes one line on stderr and exit 2."""
    from .errors import InputError

    try:
        return fn()
    except InputError as exc:
        _fail(str(exc))
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        _fail(str(exc))


def _check_output_paths(*paths: Path | None) -> None:
    """Refuse unusable output paths before any work is done (None: that output was not asked for)."""
    from . import io

    for path in paths:
        if path is not None:
            io.check_output_path(path)


def _optional(key: str) -> str | None:
    return None if key.lower() in ("", "none") else key


def _build_app():
    app = typer.Typer(
        help="mAP, mAP effect size (mAP-ES) and the cell-count activity baseline.",
        no_args_is_help=True,
        add_completion=False,
    )

    Input = Annotated[
        Path, typer.Argument(help="Profiles: .h5ad, .csv(.gz) or .parquet (pycytominer layout).")
    ]
    Output = Annotated[Path, typer.Option("--output", "-o", help="Result table (.parquet or .csv).")]
    Features = Annotated[str | None, typer.Option(help="Regex selecting feature columns of a table.")]
    Layer = Annotated[str | None, typer.Option(help="AnnData layer with the features.")]
    UseRep = Annotated[str | None, typer.Option(help="AnnData obsm key with the features.")]
    TimepointKey = Annotated[str, typer.Option(help="Timepoint column; 'none' for a single timepoint.")]
    DoseKey = Annotated[str, typer.Option(help="Dose column; 'none' for no dose.")]

    @app.command("map")
    def map_cmd(
        input: Input,
        output: Output,
        pos_sameby: Annotated[list[str], typer.Option(help="Positives share these columns (repeatable).")],
        neg_diffby: Annotated[
            list[str], typer.Option(help="Negatives differ in these columns (repeatable).")
        ],
        pos_diffby: Annotated[
            list[str] | None, typer.Option(help="Positives differ in these columns.")
        ] = None,
        neg_sameby: Annotated[
            list[str] | None, typer.Option(help="Negatives share these columns (e.g. the plate).")
        ] = None,
        sameby: Annotated[
            list[str] | None, typer.Option(help="Group columns for mAP (default: pos-sameby).")
        ] = None,
        control: Annotated[
            str | None,
            typer.Option(help="Retrieve against controls: pandas query or boolean column marking them."),
        ] = None,
        ap_output: Annotated[
            Path | None, typer.Option(help="Also write the per-profile AP table here.")
        ] = None,
        multilabel_col: Annotated[
            str | None,
            typer.Option(help="Column of labels per profile (e.g. MoA); must also be a --pos-sameby."),
        ] = None,
        multilabel_sep: Annotated[
            str, typer.Option(help="Separator of several labels in one --multilabel-col cell.")
        ] = "|",
        null_size: Annotated[int, typer.Option(help="Permutation null size.")] = 10000,
        threshold: Annotated[float, typer.Option(help="Significance level.")] = 0.05,
        seed: int = 0,
        features: Features = None,
        layer: Layer = None,
        use_rep: UseRep = None,
    ):
        """Per-profile AP and per-group mAP with permutation p-values (copairs-compatible rules)."""
        from . import io
        from .mean_ap import mean_average_precision

        def go():
            _check_output_paths(output, ap_output)
            table, ap = mean_average_precision(
                str(input),
                sameby=sameby or None,
                null_size=null_size,
                threshold=threshold,
                seed=seed,
                progress_bar=True,
                pos_sameby=pos_sameby,
                pos_diffby=pos_diffby or [],
                neg_sameby=neg_sameby or [],
                neg_diffby=neg_diffby,
                multilabel_col=multilabel_col,
                multilabel_sep=multilabel_sep if multilabel_col else None,
                control=control,
                features=features,
                layer=layer,
                use_rep=use_rep,
                return_ap=True,
            )
            io.write_table(table, output)
            if ap_output is not None:
                io.write_table(ap, ap_output)
            n_sig = int(table["below_corrected_p"].sum())
            typer.echo(f"{len(table)} groups, {n_sig} with q < {threshold}: {output}")

        _run(go)

    @app.command("map-es")
    def map_es_cmd(
        input: Input,
        output: Output,
        compound_key: str = "compound",
        replica_key: str = "replica",
        plate_key: str = "plate",
        timepoint_key: TimepointKey = "timepoint",
        dose_key: DoseKey = "dose",
        control: Annotated[
            str, typer.Option(help="Pandas query or boolean column marking controls.")
        ] = "compound == 'DMSO'",
        n_draws: int = 1000,
        n_pos: int = 3,
        n_neg: int = 31,
        threshold: Annotated[float, typer.Option(help="mAP-ES threshold for 'active'.")] = 0.8,
        seed: int = 0,
        strict: Annotated[bool, typer.Option(help="Refuse groups that cannot meet the design.")] = False,
        plot: Annotated[
            Path | None, typer.Option(help="Folder for AP-vs-null figures and sensitivity curves.")
        ] = None,
        features: Features = None,
        layer: Layer = None,
        use_rep: UseRep = None,
    ):
        """mAP effect size per compound × condition (the activity table)."""
        from . import io
        from .map_es import map_es, sensitivity

        def go():
            _check_output_paths(output)
            result = map_es(
                str(input),
                compound_key=compound_key,
                replica_key=replica_key,
                plate_key=plate_key,
                timepoint_key=_optional(timepoint_key),
                dose_key=_optional(dose_key),
                control=control,
                n_draws=n_draws,
                n_pos=n_pos,
                n_neg=n_neg,
                threshold=threshold,
                seed=seed,
                strict=strict,
                features=features,
                layer=layer,
                use_rep=use_rep,
                progress_bar=True,
                return_samples=plot is not None,
            )
            table, samples = result if plot is not None else (result, None)
            io.write_table(table, output)
            if plot is not None:
                from .plotting import plot_ap_distributions, plot_sensitivity

                plot_ap_distributions(table, samples, plot)
                plot_sensitivity(sensitivity(table), plot / "sensitivity.png")
            counts = table["status"].value_counts().to_dict()
            typer.echo(
                f"{len(table)} compound × condition rows, {int(table['active'].sum())} active, status {counts}: {output}"
            )

        _run(go)

    @app.command("cell-count")
    def cell_count_cmd(
        input: Input,
        output: Output,
        count_key: str = "nuclei_count",
        compound_key: str = "compound",
        plate_key: str = "plate",
        timepoint_key: TimepointKey = "timepoint",
        dose_key: DoseKey = "dose",
        control: str = "compound == 'DMSO'",
        n_boot: int = 1000,
        seed: int = 0,
        inhibition_output: Annotated[
            Path | None, typer.Option(help="Also write per-row percent inhibition here.")
        ] = None,
    ):
        """Cell-count activity baseline: bootstrap CI of the median control-z per compound × condition."""
        from . import io
        from .cell_count import cell_count_activity, inhibition

        def go():
            _check_output_paths(output, inhibition_output)
            table = cell_count_activity(
                str(input),
                count_key=count_key,
                compound_key=compound_key,
                plate_key=plate_key,
                timepoint_key=_optional(timepoint_key),
                dose_key=_optional(dose_key),
                control=control,
                n_boot=n_boot,
                seed=seed,
            )
            io.write_table(table, output)
            if inhibition_output is not None:
                io.write_table(
                    inhibition(
                        str(input),
                        count_key=count_key,
                        plate_key=plate_key,
                        timepoint_key=_optional(timepoint_key),
                        control=control,
                    ),
                    inhibition_output,
                )
            typer.echo(
                f"{len(table)} compound × condition rows, {int(table['active'].sum())} active: {output}"
            )

        _run(go)

    return app


app = _build_app() if typer is not None else None


def main() -> None:
    """Entry point of the `lcd-metrics` script."""
    if app is None:
        print(INSTALL_HINT, file=sys.stderr)
        sys.exit(1)
    app()
