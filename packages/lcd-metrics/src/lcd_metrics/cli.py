"""The ``lcd-metrics`` command (Typer app ``app``, mounted by ``lcd`` as ``lcd metrics``).

Commands parse options and call the library; no computation lives here. Options default to ``None``
and only the ones given are passed on (:func:`lcd_core.given`), so every default is the API's.
typer and rich come with the ``[cli]`` extra; the script (``lcd_metrics.__main__``) says how to install
it when they are missing.
"""

# no `from __future__ import annotations`: typer reads these annotations at run time

from pathlib import Path
from typing import Annotated

import typer
from lcd_core import (
    Columns,
    Control,
    Features,
    Key,
    Layer,
    OptionalKey,
    Out,
    Seed,
    UseRep,
    check_output_path,
    fail,
    given,
    given_keys,
    handles_bad_input,
    make_app,
    optional_key,
    show_progress,
    split_ints,
    split_list,
    write_table,
)

app = make_app(
    "metrics",
    "mAP, mAP effect size (mAP-ES), the cell-count activity baseline and percent inhibition.",
    package="lcd-metrics",
)

Input = Annotated[
    Path, typer.Argument(help="Profiles: .h5ad, .csv(.gz), .tsv or .parquet (pycytominer layout).")
]


@app.command("map")
@handles_bad_input
def map_cmd(
    input: Input,
    out: Out,
    pos_sameby: Annotated[list[str], typer.Option(help="Positives share these columns.")],
    neg_diffby: Annotated[list[str], typer.Option(help="Negatives differ in these columns.")],
    pos_diffby: Annotated[list[str] | None, typer.Option(help="Positives differ in these columns.")] = None,
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
    ap_out: Annotated[Path | None, typer.Option(help="Also write the per-profile AP table here.")] = None,
    multilabel_col: Annotated[
        str | None, typer.Option(help="Column of labels per profile (e.g. MoA); must also be a --pos-sameby.")
    ] = None,
    multilabel_sep: Annotated[
        str | None,
        typer.Option(help="Separator of several labels in one --multilabel-col cell (default '|')."),
    ] = None,
    null_size: Annotated[int | None, typer.Option(help="Permutation null size.")] = None,
    threshold: Annotated[float | None, typer.Option(help="Significance level.")] = None,
    hierarchical_by: Annotated[
        list[str] | None,
        typer.Option(
            help="Two-stage FDR over families of groups (e.g. compound with --sameby compound,dose)."
        ),
    ] = None,
    null: Annotated[
        str | None,
        typer.Option(help="p-value null: 'rank' (default, copairs 0.5) or 'blocked' (within --null-blocks)."),
    ] = None,
    null_blocks: Annotated[
        list[str] | None,
        typer.Option(help="Block columns of --null blocked (e.g. the plate column)."),
    ] = None,
    seed: Seed = None,
    features: Features = None,
    layer: Layer = None,
    use_rep: UseRep = None,
) -> None:
    """Per-profile AP and per-group mAP with exact or permutation p-values (copairs-compatible rules)."""
    from .mean_ap import mean_average_precision

    for path in (out, ap_out):
        if path is not None:
            check_output_path(path)
    table, ap = mean_average_precision(
        input,
        split_list(sameby),
        pos_sameby=split_list(pos_sameby),
        neg_diffby=split_list(neg_diffby),
        progress=show_progress(),
        return_ap=True,
        **given(
            null_size=null_size,
            threshold=threshold,
            hierarchical_by=split_list(hierarchical_by),
            null=null,
            null_blocks=split_list(null_blocks),
            seed=seed,
            pos_diffby=split_list(pos_diffby),
            neg_sameby=split_list(neg_sameby),
            multilabel_col=multilabel_col,
            multilabel_sep=multilabel_sep,
            control=control,
            features=features,
            layer=layer,
            use_rep=use_rep,
        ),
    )
    write_table(table, out)
    if ap_out is not None:
        write_table(ap, ap_out)
    n_sig = int(table["below_corrected_p"].sum())
    typer.echo(f"{len(table)} groups, {n_sig} below the significance level after BH: {out}")


OptionalOut = Annotated[Path | None, typer.Option("--out", "-o", help="Output file (format by suffix).")]
PlateScope = Annotated[
    str | None,
    typer.Option(help="'screen': plate names are unique (default); 'replica': they repeat per replica."),
]


def _design_keys(**keys):
    """The design options given on the command line, as map_es keyword arguments."""
    timepoint_key, dose_key = keys.pop("timepoint_key"), keys.pop("dose_key")
    condition_keys = keys.pop("condition_keys")
    return {
        **given_keys(timepoint_key=timepoint_key, dose_key=dose_key),
        **given(condition_keys=split_list(condition_keys), **keys),
    }


@app.command("map-es")
@handles_bad_input
def map_es_cmd(
    input: Input,
    out: OptionalOut = None,
    compound_key: Key = None,
    replica_key: Key = None,
    plate_key: Key = None,
    timepoint_key: OptionalKey = None,
    dose_key: OptionalKey = None,
    condition_keys: Columns = None,
    control: Control = None,
    plate_scope: PlateScope = None,
    n_draws: Annotated[int | None, typer.Option(help="Draws per compound × condition.")] = None,
    n_pos: Annotated[int | None, typer.Option(help="Positives per draw.")] = None,
    n_neg: Annotated[int | None, typer.Option(help="Negatives per draw.")] = None,
    threshold: Annotated[float | None, typer.Option(help="mAP-ES threshold for 'active'.")] = None,
    seed: Seed = None,
    strict: Annotated[bool, typer.Option(help="Refuse groups that cannot meet the design.")] = False,
    design_only: Annotated[
        bool,
        typer.Option(
            "--design-only",
            help="Print the design report (rule, replicas, plates, positives, negatives, expected status) "
            "and stop before any draw; -o writes the per-row report.",
        ),
    ] = False,
    plot: Annotated[
        Path | None, typer.Option(help="Folder for AP-vs-null figures and sensitivity curves.")
    ] = None,
    features: Features = None,
    layer: Layer = None,
    use_rep: UseRep = None,
) -> None:
    """The mAP effect size per compound × condition (the activity table)."""
    from .es_design import condition_summary
    from .es_report import map_es_design
    from .map_es import map_es
    from .sensitivity import sensitivity

    if out is not None:
        check_output_path(out)
    elif not design_only:
        fail("map-es needs -o/--out (or --design-only to print the design report)")
    keys = _design_keys(
        compound_key=compound_key,
        replica_key=replica_key,
        plate_key=plate_key,
        timepoint_key=timepoint_key,
        dose_key=dose_key,
        condition_keys=condition_keys,
        control=control,
        plate_scope=plate_scope,
        features=features,
        layer=layer,
        use_rep=use_rep,
    )
    if design_only:
        report = map_es_design(input, **keys, **given(n_pos=n_pos, n_neg=n_neg))
        conds = report.attrs["lcd_metrics"]["condition_keys"]
        typer.echo(_design_text(report, condition_summary(report, conds)))
        if out is not None:
            write_table(report, out)
            typer.echo(f"design report: {out}")
        return
    result = map_es(
        input,
        progress=show_progress(),
        return_samples=plot is not None,
        **keys,
        **given(
            n_draws=n_draws,
            n_pos=n_pos,
            n_neg=n_neg,
            threshold=threshold,
            seed=seed,
            strict=strict or None,
        ),
    )
    table, samples = result if plot is not None else (result, None)
    write_table(table, out)
    if plot is not None:
        from .plotting import plot_ap_distributions, plot_sensitivity

        plot_ap_distributions(table, samples, plot)
        plot_sensitivity(sensitivity(table), plot / "sensitivity.png")
    counts = table["status"].value_counts().to_dict()
    typer.echo(
        f"{len(table)} compound × condition rows, {int(table['active'].sum())} active, status {counts}: {out}"
    )


def _design_text(report, summary) -> str:
    """The design report as text: one line per condition, then the rows that will not be ok."""
    lines = [f"mAP-ES design: {len(report)} compound × condition rows", summary.to_string(index=False)]
    bad = report[report["status"] != "ok"]
    if len(bad):
        keys = list(report.columns[: list(report.columns).index("status")])
        shown = bad[[*keys, "status", "reason"]].head(20)
        lines += [f"{len(bad)} rows will not be ok (first {len(shown)}):", shown.to_string(index=False)]
    return "\n".join(lines)


@app.command("power")
@handles_bad_input
def power_cmd(
    input: Input,
    out: Out,
    replica_key: Key = None,
    plate_key: Key = None,
    timepoint_key: OptionalKey = None,
    control: Control = None,
    plate_scope: PlateScope = None,
    n_pos: Annotated[
        list[str] | None, typer.Option(help="Positives per draw to compare, e.g. 1,2,3,5.")
    ] = None,
    n_neg: Annotated[
        list[str] | None, typer.Option(help="Negatives per draw to compare, e.g. 8,16,31.")
    ] = None,
    n_draws: Annotated[list[str] | None, typer.Option(help="Draws to compare, e.g. 100,1000.")] = None,
    effect: Annotated[
        list[str] | None,
        typer.Option(help="Effects in units of control noise, e.g. 0,0.5,1 (0: false positives)."),
    ] = None,
    n_sim: Annotated[int | None, typer.Option(help="Simulated compounds per cell of the grid.")] = None,
    threshold: Annotated[float | None, typer.Option(help="mAP-ES threshold for 'active'.")] = None,
    seed: Seed = None,
    features: Features = None,
    layer: Layer = None,
    use_rep: UseRep = None,
) -> None:
    """mAP-ES power per design (n_pos × n_neg × n_draws) and effect, by resampling the controls."""
    from .power import design_power

    check_output_path(out)
    table = design_power(
        input,
        progress=show_progress(),
        **given_keys(timepoint_key=timepoint_key),
        **given(
            replica_key=replica_key,
            plate_key=plate_key,
            control=control,
            plate_scope=plate_scope,
            n_pos=split_ints(n_pos, option="--n-pos"),
            n_neg=split_ints(n_neg, option="--n-neg"),
            n_draws=split_ints(n_draws, option="--n-draws"),
            effect=_split_floats(effect),
            n_sim=n_sim,
            threshold=threshold,
            seed=seed,
            features=features,
            layer=layer,
            use_rep=use_rep,
        ),
    )
    write_table(table, out)
    typer.echo(table.to_string(index=False, max_rows=40))
    typer.echo(f"{len(table)} designs × effects: {out}")


def _split_floats(values: list[str] | None) -> list[float] | None:
    """``--effect 0,0.5 --effect 1`` as floats; a value that is not a number is a one-line error."""
    items = split_list(values)
    if items is None:
        return None
    try:
        return [float(v) for v in items]
    except ValueError:
        fail(f"--effect: expected numbers, got {', '.join(items)}")


@app.command("cell-count")
@handles_bad_input
def cell_count_cmd(
    input: Input,
    out: Out,
    count_key: Key = None,
    compound_key: Key = None,
    plate_key: Key = None,
    timepoint_key: OptionalKey = None,
    dose_key: OptionalKey = None,
    condition_keys: Columns = None,
    control: Control = None,
    n_boot: Annotated[int | None, typer.Option(help="Bootstrap resamples.")] = None,
    ci: Annotated[float | None, typer.Option(help="Confidence level of the interval.")] = None,
    seed: Seed = None,
) -> None:
    """Cell-count activity baseline: bootstrap CI of the median control-z per compound × condition."""
    from .cell_count import cell_count_activity

    check_output_path(out)
    table = cell_count_activity(
        input,
        **given_keys(timepoint_key=timepoint_key, dose_key=dose_key),
        **given(
            count_key=count_key,
            compound_key=compound_key,
            plate_key=plate_key,
            condition_keys=split_list(condition_keys),
            control=control,
            n_boot=n_boot,
            ci=ci,
            seed=seed,
        ),
    )
    write_table(table, out)
    typer.echo(f"{len(table)} compound × condition rows, {int(table['active'].sum())} active: {out}")


@app.command("inhibition")
@handles_bad_input
def inhibition_cmd(
    input: Input,
    out: Out,
    count_key: Key = None,
    measurement_keys: Columns = None,
    well_key: Annotated[
        str | None, typer.Option(help="Average the fields of each well first (one row per well).")
    ] = None,
    control: Control = None,
) -> None:
    """Percent inhibition of a count against the controls of each plate × timepoint."""
    from .inhibition import inhibition

    check_output_path(out)
    table = inhibition(
        input,
        **given(
            count_key=count_key,
            measurement_keys=split_list(measurement_keys),
            well_key=optional_key(well_key),
            control=control,
        ),
    )
    write_table(table, out)
    failed = int((table["status"] != "ok").sum())
    typer.echo(f"{len(table)} rows, {failed} failed (see the reason column): {out}")
