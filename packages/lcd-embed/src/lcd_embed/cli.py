"""``lcd-embed``: manifest, embed, attention, from-table. Parses options and calls the library.

Built on :mod:`lcd_core.cli` (``--version``, ``-v/-q``, one-line errors with exit code 2). Options
default to ``None`` and only the ones given are passed on, so every default lives in the API (and,
for preprocessing, in the checkpoint's recorded recipe). Heavy libraries (torch, timm, anndata) are
imported inside the commands so ``lcd --help`` is fast.
"""

# no `from __future__ import annotations`: typer reads these annotations at run time

from pathlib import Path
from typing import Annotated

import typer
from lcd_core import fail, given, handles_bad_input, make_app, show_progress, split_ints, split_list

app = make_app(
    "embed",
    "Plate images to ViT tile embeddings (AnnData): manifests, embeddings, attention maps.",
    package="lcd-embed",
)

Ints = Annotated[
    list[str] | None, typer.Option(help="Integers: repeat the option or separate by commas, e.g. 0,1,2.")
]


def main() -> None:
    """Entry point of the ``lcd-embed`` script."""
    app()


@app.command("manifest")
@handles_bad_input
def manifest_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Manifest to write (.csv, .tsv or .parquet).")],
    opera: Annotated[
        list[Path] | None,
        typer.Option(
            help="Opera Phenix / Harmony export folder (repeat; several per plate when each timepoint "
            "was exported alone: ordered by measurement start)."
        ),
    ] = None,
    plate: Annotated[
        list[str] | None, typer.Option(help="Plate name per --opera folder (default: the folder name).")
    ] = None,
    channel: Annotated[int | None, typer.Option(help="Opera channel to keep (needed if several).")] = None,
    hours_offset: Annotated[
        float | None,
        typer.Option(help="Hours from treatment to the first measurement (added to timepoint_h)."),
    ] = None,
    glob: Annotated[str | None, typer.Option(help="Glob of image files, relative to --root.")] = None,
    regex: Annotated[
        str | None,
        typer.Option(help="Regex with named groups (metadata; 'plane' = z-plane) on the relative path."),
    ] = None,
    root: Annotated[Path | None, typer.Option(help="Folder the glob starts from (default: .).")] = None,
    plate_map: Annotated[
        Path | None,
        typer.Option(help="CSV/TSV/parquet: well (and plate) -> compound, dose, moa, control, ..."),
    ] = None,
) -> None:
    """Build a manifest from an Opera Phenix export (--opera) or a glob + regex (--glob, --regex)."""
    from lcd_core import check_output_path, write_table

    from .manifest import manifest_from_opera, manifest_from_pattern

    check_output_path(out)
    if (opera is None) == (glob is None):
        fail("give either --opera DIR (Opera Phenix export) or --glob and --regex")
    if opera:
        df = manifest_from_opera(
            opera, plate_map, **given(plates=split_list(plate), channel=channel, hours_offset=hours_offset)
        )
    else:
        if regex is None:
            fail("--glob needs --regex (named groups become metadata)")
        df = manifest_from_pattern(glob, regex, plate_map, **given(root=root))
    write_table(df, out)
    n_planes = sum(c.startswith("path_z") for c in df.columns) or 1
    typer.echo(f"wrote {out}: {len(df)} fields, {n_planes} plane(s) each")


@app.command("embed")
@handles_bad_input
def embed_cmd(
    manifest: Annotated[Path, typer.Argument(help="Manifest (.csv/.tsv/.parquet).")],
    model: Annotated[str, typer.Option(help="Checkpoint folder or timm model name.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .h5ad or .zarr.")],
    weights: Annotated[
        Path | None, typer.Option(help="Local weights for a timm name (.safetensors/.pth).")
    ] = None,
    planes: Annotated[
        list[str] | None,
        typer.Option(help="Planes as channels, e.g. 0,1,2 or 1 (default: the checkpoint's, else all)."),
    ] = None,
    normalization: Annotated[
        str | None,
        typer.Option(help="percentile (per image) | control (per plate) | none (default: the checkpoint's)."),
    ] = None,
    low: Annotated[float | None, typer.Option(help="Low percentile (-> 0).")] = None,
    high: Annotated[float | None, typer.Option(help="High percentile (-> 1).")] = None,
    per_plane: Annotated[
        bool | None, typer.Option("--per-plane/--no-per-plane", help="Percentiles per plane.")
    ] = None,
    clip: Annotated[
        bool | None, typer.Option("--clip/--no-clip", help="Clip normalized intensities to [0, 1].")
    ] = None,
    control: Annotated[str | None, typer.Option(help="Control query or boolean column.")] = None,
    measurement_keys: Annotated[
        list[str] | None,
        typer.Option(help="Columns grouping control references (--normalization control), e.g. plate."),
    ] = None,
    downscale: Annotated[
        int | None, typer.Option(help="Integer downscale factor before tiling (default: the checkpoint's).")
    ] = None,
    tile_size: Annotated[int | None, typer.Option(help="Tile side (default: the model's img_size).")] = None,
    stride: Annotated[int | None, typer.Option(help="Tile stride (default: tile size).")] = None,
    edge: Annotated[
        str | None, typer.Option(help="drop | shift (cover the border with a flush tile).")
    ] = None,
    pooling: Annotated[str | None, typer.Option(help="cls | mean | cls+mean.")] = None,
    n_last_blocks: Annotated[
        int | None, typer.Option(help="Concatenate features of the last n blocks.")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Tiles per forward pass.")] = None,
    workers: Annotated[int | None, typer.Option(help="DataLoader worker processes.")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda | cuda:1 (default: auto).")] = None,
    precision: Annotated[str | None, typer.Option(help="auto | fp32 | bf16.")] = None,
    on_error: Annotated[str | None, typer.Option(help="raise | skip (record failures).")] = None,
    shard_size: Annotated[
        int | None, typer.Option(help="Manifest rows per shard (distribution/resume unit).")
    ] = None,
    keep_shards: Annotated[bool, typer.Option(help="Keep <out>.shards/ after merging.")] = False,
    seed: Annotated[int | None, typer.Option(help="Seed (random init when no weights).")] = None,
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="Show a progress bar (default: unless -q)."),
    ] = None,
) -> None:
    """Embed every tile of every field; runs sharded under torchrun (gloo on CPU, nccl on GPU)."""
    from .embedding import embed
    from .output import failures_csv

    if not Path(model).is_dir() and weights is None:
        typer.echo(f"note: {model} has no weights: randomly initialised (seed {seed or 0})", err=True)
    preprocessing = given(
        planes=split_ints(planes, option="--planes"),
        method=normalization,
        low=low,
        high=high,
        per_plane=per_plane,
        clip=clip,
        control=control,
        measurement_keys=split_list(measurement_keys),
        downscale=downscale,
        tile_size=tile_size,
        stride=stride,
        edge=edge,
    )
    adata = embed(
        manifest,
        model,
        out=out,
        preprocessing=preprocessing,
        keep_shards=keep_shards,
        progress=show_progress() if progress is None else progress,
        **given(
            weights=weights,
            pooling=pooling,
            n_last_blocks=n_last_blocks,
            batch_size=batch_size,
            num_workers=workers,
            device=device,
            precision=precision,
            on_error=on_error,
            shard_size=shard_size,
            seed=seed,
        ),
    )
    if adata is not None:
        n_fail = len(adata.uns["lcd_embed"]["failures"]["manifest_row"])
        msg = f"wrote {out}: {adata.n_obs} tiles x {adata.n_vars} features"
        if n_fail:
            msg += f"; {n_fail} field(s) skipped, listed in {failures_csv(out)}"
        typer.echo(msg)


@app.command("attention")
@handles_bad_input
def attention_cmd(
    manifest: Annotated[Path, typer.Argument(help="Manifest (.csv/.tsv/.parquet).")],
    model: Annotated[str, typer.Option(help="Checkpoint folder or timm model name.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder for .npz arrays and .png overlays.")
    ],
    weights: Annotated[Path | None, typer.Option(help="Local weights for a timm name.")] = None,
    rows: Annotated[list[str] | None, typer.Option(help="Manifest rows, e.g. 0,5,9 (default: 0).")] = None,
    planes: Annotated[
        list[str] | None, typer.Option(help="Planes as channels (default: the checkpoint's, else all).")
    ] = None,
    tile_size: Annotated[int | None, typer.Option(help="Tile side (default: model img_size).")] = None,
    stride: Annotated[int | None, typer.Option(help="Tile stride.")] = None,
    downscale: Annotated[
        int | None, typer.Option(help="Integer downscale factor (default: the checkpoint's).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda (default: auto).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (random init when no weights).")] = None,
) -> None:
    """Last-block CLS attention per head for chosen fields: arrays (.npz) and overlays (.png, paper Fig. 4)."""
    from .attention_maps import field_attention_maps

    written = field_attention_maps(
        manifest,
        model,
        out,
        **given(
            rows=split_ints(rows, option="--rows"),
            weights=weights,
            planes=split_ints(planes, option="--planes"),
            tile_size=tile_size,
            stride=stride,
            downscale=downscale,
            device=device,
            seed=seed,
        ),
    )
    typer.echo(f"wrote {len(written)} files to {out}")


@app.command("from-table")
@handles_bad_input
def from_table_cmd(
    table: Annotated[
        Path, typer.Argument(help="CellProfiler / pycytominer table (.csv, .csv.gz, .tsv, .parquet).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .h5ad or .zarr.")],
    features: Annotated[str | None, typer.Option(help="Regex selecting feature columns.")] = None,
    level: Annotated[str | None, typer.Option(help="What a row is: fov | well (default: fov).")] = None,
    nonfinite: Annotated[str | None, typer.Option(help="error | drop_features (default: error).")] = None,
) -> None:
    """Turn a per-image feature table into the embedding AnnData layout (CellProfiler baseline)."""
    from lcd_core import write_h5ad

    from .output import check_anndata_path
    from .table import from_table

    check_anndata_path(out)
    adata = from_table(table, **given(features=features, level=level, nonfinite=nonfinite))
    write_h5ad(adata, out)
    typer.echo(f"wrote {out}: {adata.n_obs} rows x {adata.n_vars} features")
