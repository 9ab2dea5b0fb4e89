"""The ``lcd-norm`` command (Typer app ``app``, mounted by ``lcd`` as ``lcd norm``).

Commands parse options, call the library and write outputs; no computation lives here. Options
default to ``None`` and only the ones given are passed on (:func:`lcd_core.given`), so every default
is the API's. typer and rich come with the ``[cli]`` extra; the script (``lcd_norm.__main__``) says
how to install it when they are missing.
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
    load_profiles,
    make_app,
    show_progress,
    split_list,
    write_h5ad,
    write_table,
)

app = make_app(
    "norm",
    "Aggregate profiles and correct batch effects: MAD, Harmony, fastMNN, MAD + Harmony/FOV.",
    package="lcd-norm",
)

Input = Annotated[
    Path, typer.Argument(help="Profiles: .h5ad, or a pycytominer table (.parquet, .csv, .csv.gz, .tsv).")
]
KeyAdded = Annotated[str | None, typer.Option(help="obsm key receiving the result (default: the API's).")]
Theta = Annotated[float | None, typer.Option(help="Harmony's diversity penalty.")]
Eps = Annotated[float | None, typer.Option(help="Added to the MAD scale (pycytominer's epsilon).")]
RawMad = Annotated[
    bool | None, typer.Option("--raw-mad/--scaled-mad", help="Unscaled MAD instead of 1.4826·MAD.")
]


def _load(path: Path, features: str | None):
    return load_profiles(path, **given(features=features))


def _h5ad_out(path: Path) -> Path:
    """Refuse an output that is not an .h5ad before any work."""
    return check_output_path(path, formats=("h5ad",))


def _save(adata, path: Path) -> None:
    write_h5ad(adata, path)
    typer.echo(f"wrote {path} ({adata.n_obs} rows × {adata.n_vars} features)")


def _fmt(value) -> str:
    """Three decimals; NaN as n/a."""
    return "n/a" if value != value else f"{value:.3f}"


@app.command("aggregate")
@handles_bad_input
def aggregate_cmd(
    input: Annotated[
        Path,
        typer.Argument(
            help="Profiles (.h5ad, or a pycytominer table), or a tile store <name>.parquet/ (streamed)."
        ),
    ],
    out: Out,
    by: Columns = None,
    func: Annotated[str | None, typer.Option(help="median or mean.")] = None,
    features: Features = None,
    layer: Layer = None,
    use_rep: UseRep = None,
    plate_key: Key = None,
    well_key: Key = None,
    fov_key: Key = None,
    timepoint_key: Key = None,
    chunk_tiles: Annotated[
        int | None, typer.Option(help="Tiles read at a time from a tile store (default: the API's).")
    ] = None,
) -> None:
    """Aggregate profiles to FOV or well level (median or mean per group); --by fov|well|COLUMNS.

    A tile store (lcd-embed embed --out NAME.parquet) is read in chunks: memory holds the output
    table and one chunk, whatever the number of tiles.
    """
    from lcd_core import is_tile_store

    from lcd_norm.aggregate import aggregate
    from lcd_norm.aggregate_tiles import aggregate_tiles

    _h5ad_out(out)
    groups = split_list(by)
    level = groups[0] if groups and len(groups) == 1 and groups[0] in ("fov", "well") else groups
    keys = given(
        by=level,
        func=func,
        plate_key=plate_key,
        well_key=well_key,
        fov_key=fov_key,
        timepoint_key=timepoint_key,
    )
    if is_tile_store(input):
        if features is not None or layer is not None or use_rep is not None:
            fail("--features/--layer/--use-rep do not apply to a tile store (its features are the tiles')")
        result = aggregate_tiles(input, progress=show_progress(), **keys, **given(chunk_tiles=chunk_tiles))
    else:
        if chunk_tiles is not None:
            fail("--chunk-tiles applies to a tile store (<name>.parquet/) only")
        result = aggregate(_load(input, features), **keys, **given(layer=layer, use_rep=use_rep))
    _save(result, out)


@app.command("mad")
@handles_bad_input
def mad_cmd(
    input: Input,
    out: Out,
    measurement_keys: Columns = None,
    control: Control = None,
    eps: Eps = None,
    raw_mad: RawMad = None,
    zero_mad: Annotated[str | None, typer.Option(help="Zero-MAD features: drop, keep or error.")] = None,
    features: Features = None,
    layer: Layer = None,
    use_rep: UseRep = None,
    key_added: KeyAdded = None,
) -> None:
    """MAD-robustize each measurement (plate × timepoint) against its control rows (result in obsm)."""
    from lcd_norm.mad import mad_robustize

    _h5ad_out(out)
    adata = _load(input, features)
    mad_robustize(
        adata,
        **given(
            measurement_keys=split_list(measurement_keys),
            control=control,
            eps=eps,
            raw_mad=raw_mad,
            zero_mad=zero_mad,
            layer=layer,
            use_rep=use_rep,
            key_added=key_added,
        ),
    )
    _save(adata, out)


@app.command("harmony")
@handles_bad_input
def harmony_cmd(
    input: Input,
    out: Out,
    replica_key: Key = None,
    fov_key: OptionalKey = None,
    theta: Theta = None,
    nclust: Annotated[int | None, typer.Option(help="Soft clusters (default: harmonypy's).")] = None,
    max_iter: Annotated[int | None, typer.Option(help="Harmony iterations.")] = None,
    seed: Seed = None,
    features: Features = None,
    layer: Layer = None,
    use_rep: UseRep = None,
    key_added: KeyAdded = None,
) -> None:
    """Harmony on the experimental replica and the field of view (result in obsm)."""
    from lcd_norm.harmony import harmony

    _h5ad_out(out)
    adata = _load(input, features)
    harmony(
        adata,
        **given_keys(fov_key=fov_key),
        **given(
            replica_key=replica_key,
            theta=theta,
            nclust=nclust,
            max_iter=max_iter,
            seed=seed,
            layer=layer,
            use_rep=use_rep,
            key_added=key_added,
        ),
    )
    _save(adata, out)


@app.command("fastmnn")
@handles_bad_input
def fastmnn_cmd(
    input: Input,
    out: Out,
    replica_key: Key = None,
    k: Annotated[int | None, typer.Option(help="Neighbours for MNN pairs and smoothing.")] = None,
    n_components: Annotated[int | None, typer.Option(help="Principal components.")] = None,
    ndist: Annotated[float | None, typer.Option(help="Smoothing bandwidth (× median distance).")] = None,
    cos_norm: Annotated[
        bool | None, typer.Option("--cos-norm/--no-cos-norm", help="Cosine-normalise first.")
    ] = None,
    merge_order: Annotated[list[str] | None, typer.Option(help="Replica names in merge order.")] = None,
    features: Features = None,
    layer: Layer = None,
    use_rep: UseRep = None,
    key_added: KeyAdded = None,
) -> None:
    """Correct the experimental replica with fastMNN (result in obsm)."""
    from lcd_norm.fastmnn import fastmnn

    _h5ad_out(out)
    adata = _load(input, features)
    fastmnn(
        adata,
        progress=show_progress(),
        **given(
            replica_key=replica_key,
            k=k,
            n_components=n_components,
            ndist=ndist,
            cos_norm=cos_norm,
            merge_order=split_list(merge_order),
            layer=layer,
            use_rep=use_rep,
            key_added=key_added,
        ),
    )
    _save(adata, out)


@app.command("mad-harmony-fov")
@handles_bad_input
def mad_harmony_fov_cmd(
    input: Input,
    out: Out,
    measurement_keys: Columns = None,
    replica_key: Key = None,
    fov_key: OptionalKey = None,
    control: Control = None,
    eps: Eps = None,
    raw_mad: RawMad = None,
    theta: Theta = None,
    seed: Seed = None,
    features: Features = None,
    layer: Layer = None,
    use_rep: UseRep = None,
    key_added: KeyAdded = None,
) -> None:
    """The LCD method: MAD per measurement, then Harmony on replica × field of view."""
    from lcd_norm.mad_harmony_fov import mad_harmony_fov

    _h5ad_out(out)
    adata = _load(input, features)
    mad_harmony_fov(
        adata,
        **given_keys(fov_key=fov_key),
        **given(
            measurement_keys=split_list(measurement_keys),
            replica_key=replica_key,
            control=control,
            eps=eps,
            raw_mad=raw_mad,
            theta=theta,
            seed=seed,
            layer=layer,
            use_rep=use_rep,
            key_added=key_added,
        ),
    )
    _save(adata, out)


@app.command("compare")
@handles_bad_input
def compare_cmd(
    input: Input,
    out: Annotated[Path, typer.Option("--out", "-o", help="Comparison table: .parquet, .csv or .tsv.")],
    replica_key: Key = None,
    compound_key: Annotated[
        str | None, typer.Option(help="Biological label column (compound or MoA).")
    ] = None,
    methods: Annotated[list[str] | None, typer.Option(help="Subset of the methods (default: all).")] = None,
    measurement_keys: Columns = None,
    fov_key: OptionalKey = None,
    control: Control = None,
    seed: Seed = None,
    null_size: Annotated[int | None, typer.Option(help="Permutations for the mAP significance null.")] = None,
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

    check_output_path(out)
    if out_h5ad is not None:
        _h5ad_out(out_h5ad)
    adata = _load(input, features)
    table = compare(
        adata,
        progress=show_progress(),
        **given_keys(fov_key=fov_key),
        **given(
            methods=split_list(methods),
            replica_key=replica_key,
            compound_key=compound_key,
            measurement_keys=split_list(measurement_keys),
            control=control,
            layer=layer,
            seed=seed,
            null_size=null_size,
        ),
    )
    write_table(table, out)
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
    typer.echo(f"wrote {out}")
    if plot is not None:
        from lcd_norm.plot import plot_compare

        plot_compare(table, plot)
        typer.echo(f"wrote {plot}")
    if out_h5ad is not None:
        _save(adata, out_h5ad)
