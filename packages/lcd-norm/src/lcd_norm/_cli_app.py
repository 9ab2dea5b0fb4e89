"""Typer commands: parse options, call the library, write outputs. No computation lives here."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

import typer

from lcd_norm._errors import DEFAULT_CONTROL, InputError

app = typer.Typer(
    name="norm",
    help="Aggregate profiles and correct batch effects: MAD, Harmony, fastMNN, MAD + Harmony/FOV.",
    no_args_is_help=True,
    add_completion=False,
)

Input = Annotated[
    Path, typer.Argument(help="Profiles: .h5ad, or a pycytominer table (.parquet, .csv, .csv.gz).")
]
Output = Annotated[Path, typer.Argument(help="Output .h5ad (written atomically).")]
Features = Annotated[
    str | None, typer.Option(help="Tables only: regex selecting feature columns (default: contract rules).")
]
Layer = Annotated[str | None, typer.Option(help="Read features from this layer instead of X.")]
UseRep = Annotated[
    str | None, typer.Option("--use-rep", help="Read features from this obsm key instead of X.")
]
Control = Annotated[
    str, typer.Option(help="Negative controls: a pandas query on obs, or a boolean obs column name.")
]


def _split(value: str) -> list[str]:
    """``"plate,timepoint"`` → ``["plate", "timepoint"]``."""
    return [v.strip() for v in value.split(",") if v.strip()]


def _one_line_errors(func):
    """Turn input errors into one line on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (InputError, FileNotFoundError, PermissionError) as exc:
            message = " ".join(str(exc).split())
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(2) from None

    return wrapper


def _load(path: Path, features: str | None):
    from lcd_norm.io import read_profiles

    return read_profiles(path, features=features)


def _save(adata, path: Path) -> None:
    from lcd_norm.io import write_h5ad

    if path.suffix.lower() != ".h5ad":
        raise InputError(f"{path}: the output must be an .h5ad file")
    write_h5ad(adata, path)
    typer.echo(f"wrote {path} ({adata.n_obs} rows × {adata.n_vars} features)")


def _optional_key(value: str) -> str | None:
    """``--fov-key none`` (or empty) means: no FOV column, Harmony on the replica only."""
    return None if value.strip().lower() in ("", "none") else value


def _fmt(value) -> str:
    """Three decimals; NaN as n/a."""
    return "n/a" if value != value else f"{value:.3f}"


@app.command("aggregate")
@_one_line_errors
def aggregate_cmd(
    input: Input,
    output: Output,
    by: Annotated[str, typer.Option(help="'fov', 'well' or comma-separated obs columns.")] = "well",
    func: Annotated[str, typer.Option(help="median or mean.")] = "median",
    features: Features = None,
    layer: Layer = None,
    use_rep: UseRep = None,
    plate_key: str = "plate",
    well_key: str = "well",
    fov_key: str = "fov",
    timepoint_key: str = "timepoint",
) -> None:
    """Aggregate profiles to FOV or well level (median or mean per group)."""
    from lcd_norm.aggregate import aggregate

    adata = _load(input, features)
    group = by if by in ("fov", "well") else _split(by)
    out = aggregate(
        adata,
        group,
        func=func,
        layer=layer,
        use_rep=use_rep,
        plate_key=plate_key,
        well_key=well_key,
        fov_key=fov_key,
        timepoint_key=timepoint_key,
    )
    _save(out, output)


@app.command("mad")
@_one_line_errors
def mad_cmd(
    input: Input,
    output: Output,
    by: Annotated[str, typer.Option(help="Comma-separated measurement columns.")] = "plate,timepoint",
    control: Control = DEFAULT_CONTROL,
    eps: Annotated[float, typer.Option(help="Added to the scale (pycytominer's epsilon).")] = 1e-18,
    raw_mad: Annotated[bool, typer.Option("--raw-mad", help="Unscaled MAD instead of 1.4826·MAD.")] = False,
    zero_mad: Annotated[str, typer.Option(help="Zero-MAD features: drop, keep or error.")] = "drop",
    features: Features = None,
    layer: Layer = None,
    key_added: Annotated[str, typer.Option(help="Layer receiving the result.")] = "mad",
) -> None:
    """MAD-robustize each measurement group against its control rows (result in a layer)."""
    from lcd_norm.mad import mad_robustize

    adata = _load(input, features)
    mad_robustize(
        adata,
        _split(by),
        control,
        eps=eps,
        raw_mad=raw_mad,
        zero_mad=zero_mad,
        layer=layer,
        key_added=key_added,
    )
    _save(adata, output)


@app.command("harmony")
@_one_line_errors
def harmony_cmd(
    input: Input,
    output: Output,
    keys: Annotated[str, typer.Option(help="Comma-separated batch columns.")] = "replica,fov",
    theta: float = 2.0,
    nclust: int | None = None,
    max_iter: int = 10,
    seed: int = 0,
    features: Features = None,
    layer: Layer = None,
    use_rep: UseRep = None,
    key_added: str = "X_harmony",
) -> None:
    """Harmony on the given batch keys (result in obsm)."""
    from lcd_norm.harmony import harmony

    adata = _load(input, features)
    harmony(
        adata,
        _split(keys),
        theta=theta,
        nclust=nclust,
        max_iter=max_iter,
        seed=seed,
        layer=layer,
        use_rep=use_rep,
        key_added=key_added,
    )
    _save(adata, output)


@app.command("fastmnn")
@_one_line_errors
def fastmnn_cmd(
    input: Input,
    output: Output,
    batch_key: str = "replica",
    k: int = 20,
    n_components: int = 50,
    ndist: float = 3.0,
    cos_norm: Annotated[bool, typer.Option(help="Cosine-normalise profiles first.")] = True,
    merge_order: Annotated[str | None, typer.Option(help="Comma-separated batch names.")] = None,
    features: Features = None,
    layer: Layer = None,
    use_rep: UseRep = None,
    key_added: str = "X_mnn",
) -> None:
    """fastMNN batch correction (result in obsm)."""
    from lcd_norm.fastmnn import fastmnn

    adata = _load(input, features)
    fastmnn(
        adata,
        batch_key,
        k=k,
        n_components=n_components,
        ndist=ndist,
        cos_norm=cos_norm,
        merge_order=_split(merge_order) if merge_order else None,
        layer=layer,
        use_rep=use_rep,
        key_added=key_added,
        progress=True,
    )
    _save(adata, output)


@app.command("mad-harmony-fov")
@_one_line_errors
def mad_harmony_fov_cmd(
    input: Input,
    output: Output,
    measurement_keys: Annotated[
        str, typer.Option(help="Comma-separated measurement columns.")
    ] = "plate,timepoint",
    replica_key: str = "replica",
    fov_key: Annotated[str, typer.Option(help="FOV column; 'none' for well-level data.")] = "fov",
    control: Control = DEFAULT_CONTROL,
    theta: float = 2.0,
    seed: int = 0,
    features: Features = None,
    layer: Layer = None,
    use_rep: UseRep = None,
    key_added: str = "X_mad_harmony_fov",
) -> None:
    """The LCD method: MAD per measurement, then Harmony on replica × field of view."""
    from lcd_norm.mad_harmony_fov import mad_harmony_fov

    adata = _load(input, features)
    mad_harmony_fov(
        adata,
        measurement_keys=_split(measurement_keys),
        replica_key=replica_key,
        fov_key=_optional_key(fov_key),
        control=control,
        theta=theta,
        seed=seed,
        layer=layer,
        use_rep=use_rep,
        key_added=key_added,
    )
    _save(adata, output)


@app.command("compare")
@_one_line_errors
def compare_cmd(
    input: Input,
    output: Annotated[Path, typer.Argument(help="Comparison table: .parquet or .csv.")],
    batch_key: str = "replica",
    label_key: str = "compound",
    methods: Annotated[str, typer.Option(help="Comma-separated subset of the methods.")] = (
        "none,mad,harmony,fastmnn,mad_harmony_fov"
    ),
    measurement_keys: str = "plate,timepoint",
    fov_key: Annotated[str, typer.Option(help="FOV column; 'none' for well-level data.")] = "fov",
    control: Control = DEFAULT_CONTROL,
    seed: int = 0,
    null_size: Annotated[int, typer.Option(help="Permutations for the mAP significance null.")] = 1000,
    features: Features = None,
    layer: Layer = None,
    plot: Annotated[Path | None, typer.Option(help="Also write a bar-chart figure here (.png).")] = None,
    out_h5ad: Annotated[
        Path | None, typer.Option(help="Also write the AnnData with every representation.")
    ] = None,
) -> None:
    """Run every method on one input and print/write the comparison table (paper Table 1 analog)."""
    from rich.console import Console
    from rich.table import Table

    from lcd_norm.compare import compare
    from lcd_norm.io import write_table

    adata = _load(input, features)
    table = compare(
        adata,
        methods=_split(methods),
        batch_key=batch_key,
        label_key=label_key,
        measurement_keys=_split(measurement_keys),
        fov_key=_optional_key(fov_key),
        control=control,
        layer=layer,
        seed=seed,
        null_size=null_size,
        progress=True,
    )
    write_table(table, output)
    shown = Table(title=f"normalization comparison — {input.name}")
    headers = {
        "batch_silhouette": "batch sil. ↓",
        "label_silhouette": "label sil. ↑",
        "map": "mAP ↑",
        "seconds": "s",
    }
    with_reason = table["reason"].fillna("").astype(str).str.len().gt(0).any()
    for col in ["method", "status", *headers] + (["reason"] if with_reason else []):
        shown.add_column(headers.get(col, col), overflow="fold")
    for row in table.to_dict("records"):
        cells = [row["method"], row["status"]] + [_fmt(row[c]) for c in headers]
        shown.add_row(
            *cells, *([str(row["reason"]) if isinstance(row["reason"], str) else ""] if with_reason else [])
        )
    Console().print(shown)
    typer.echo(f"wrote {output}")
    if plot is not None:
        from lcd_norm.plot import plot_compare

        plot_compare(table, plot)
        typer.echo(f"wrote {plot}")
    if out_h5ad is not None:
        _save(adata, out_h5ad)
