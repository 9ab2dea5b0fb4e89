"""``lcd-embed``: manifest, embed, attention, from-table. Parses options and calls the library.

Heavy libraries (torch, timm, anndata) are imported inside the commands so ``lcd --help`` is fast.
Bad input exits with code 2 and one line naming the file, row or column.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated

try:
    import typer
except ImportError:  # typer is a dependency of lcd-embed; keep the message of the light packages anyway
    typer = None

if typer is not None:
    app = typer.Typer(
        name="embed",
        help="Plate images to ViT tile embeddings (AnnData): manifests, embeddings, attention maps.",
        no_args_is_help=True,
        add_completion=False,
    )
else:  # pragma: no cover
    app = None


def main() -> None:
    """Entry point of the ``lcd-embed`` script."""
    if typer is None:  # pragma: no cover
        print("install lcd-embed[cli]", file=sys.stderr)
        sys.exit(1)
    app()


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def handles_bad_input(fn):
    """Turn the library's input errors into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from .errors import InputError

        try:
            return fn(*args, **kwargs)
        except (InputError, FileNotFoundError) as exc:
            _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    return wrapper


def _ints(text: str | None) -> tuple[int, ...] | None:
    if text is None or text.strip() in ("", "all"):
        return None
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        _fail(f"expected comma-separated integers, got {text!r}")


if app is not None:

    @app.command("manifest")
    @handles_bad_input
    def manifest_cmd(
        out: Annotated[Path, typer.Option("--out", "-o", help="Manifest to write (.csv or .parquet).")],
        opera: Annotated[
            list[Path] | None,
            typer.Option(help="Opera Phenix / Harmony image folder, one per plate (repeat)."),
        ] = None,
        plate: Annotated[
            list[str] | None, typer.Option(help="Plate name per --opera folder (default: the folder name).")
        ] = None,
        channel: Annotated[
            int | None, typer.Option(help="Opera channel to keep (needed if several).")
        ] = None,
        glob: Annotated[str | None, typer.Option(help="Glob of image files, relative to --root.")] = None,
        regex: Annotated[
            str | None,
            typer.Option(help="Regex with named groups (metadata; 'plane' = z-plane) on the relative path."),
        ] = None,
        root: Annotated[Path, typer.Option(help="Folder the glob starts from.")] = Path("."),
        plate_map: Annotated[
            Path | None,
            typer.Option(help="CSV/parquet: well (and plate) -> compound, dose, moa, control, ..."),
        ] = None,
    ) -> None:
        """Build a manifest from an Opera Phenix export (--opera) or a glob + regex (--glob, --regex)."""
        from .manifest import manifest_from_opera, manifest_from_pattern, write_table

        if (opera is None) == (glob is None):
            _fail("give either --opera DIR (Opera Phenix export) or --glob and --regex")
        if opera:
            df = manifest_from_opera(opera, plate_map, plates=plate or None, channel=channel)
        else:
            if regex is None:
                _fail("--glob needs --regex (named groups become metadata)")
            df = manifest_from_pattern(glob, regex, plate_map, root=root)
        write_table(df, out)
        n_planes = sum(c.startswith("path_z") for c in df.columns) or 1
        typer.echo(f"wrote {out}: {len(df)} fields, {n_planes} plane(s) each")

    @app.command("embed")
    @handles_bad_input
    def embed_cmd(
        manifest: Annotated[Path, typer.Argument(help="Manifest (.csv/.parquet).")],
        model: Annotated[str, typer.Option(help="Checkpoint folder or timm model name.")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Output .h5ad or .zarr.")],
        weights: Annotated[
            Path | None, typer.Option(help="Local weights for a timm name (.safetensors/.pth).")
        ] = None,
        planes: Annotated[
            str | None, typer.Option(help="Planes as channels, e.g. '0,1,2' or '1' (default all).")
        ] = None,
        normalization: Annotated[
            str | None,
            typer.Option(help="percentile (per image) | control (per plate) | none; default: model's."),
        ] = None,
        low: Annotated[float | None, typer.Option(help="Low percentile (-> 0).")] = None,
        high: Annotated[float | None, typer.Option(help="High percentile (-> 1).")] = None,
        per_plane: Annotated[bool, typer.Option(help="Percentiles per plane.")] = False,
        clip: Annotated[bool, typer.Option(help="Clip normalized intensities to [0, 1].")] = False,
        control: Annotated[str, typer.Option(help="Control query or boolean column.")] = "compound == 'DMSO'",
        control_by: Annotated[
            str, typer.Option(help="Columns grouping control stats, comma-separated.")
        ] = "plate",
        downscale: Annotated[int, typer.Option(help="Integer downscale factor before tiling.")] = 1,
        tile_size: Annotated[
            int | None, typer.Option(help="Tile side (default: the model's img_size).")
        ] = None,
        stride: Annotated[int | None, typer.Option(help="Tile stride (default: tile size).")] = None,
        edge: Annotated[
            str, typer.Option(help="drop | shift (cover the border with a flush tile).")
        ] = "drop",
        pooling: Annotated[str, typer.Option(help="cls | mean | cls+mean.")] = "cls",
        n_last_blocks: Annotated[int, typer.Option(help="Concatenate features of the last n blocks.")] = 1,
        batch_size: Annotated[int, typer.Option(help="Tiles per forward pass.")] = 64,
        workers: Annotated[int, typer.Option(help="DataLoader worker processes.")] = 2,
        device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 (default: GPU if any).")] = None,
        precision: Annotated[str, typer.Option(help="auto | fp32 | bf16.")] = "auto",
        on_error: Annotated[str, typer.Option(help="raise | skip (record failures).")] = "raise",
        shard_size: Annotated[
            int, typer.Option(help="Manifest rows per shard (distribution/resume unit).")
        ] = 256,
        keep_shards: Annotated[bool, typer.Option(help="Keep <out>.shards/ after merging.")] = False,
        seed: Annotated[int, typer.Option(help="Seed (random init when no weights).")] = 0,
        progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    ) -> None:
        """Embed every tile of every field; runs sharded under torchrun (gloo on CPU, nccl on GPU)."""
        from pathlib import Path as _P

        from .dataset import Preprocessing
        from .embedding import embed

        if not _P(model).is_dir() and weights is None:
            typer.echo(f"note: {model} has no weights: randomly initialised (seed {seed})", err=True)
        prep = Preprocessing(
            planes=_ints(planes),
            normalization=normalization,
            low=low,
            high=high,
            per_plane=per_plane or None,
            clip=clip,
            control=control,
            control_by=tuple(c.strip() for c in control_by.split(",")),
            downscale=downscale,
            tile_size=tile_size,
            stride=stride,
            edge=edge,
        )
        adata = embed(
            manifest,
            model,
            out=out,
            weights=weights,
            preprocessing=prep,
            pooling=pooling,
            n_last_blocks=n_last_blocks,
            batch_size=batch_size,
            num_workers=workers,
            device=device,
            precision=precision,
            on_error=on_error,
            shard_size=shard_size,
            keep_shards=keep_shards,
            progress=progress,
            seed=seed,
        )
        if adata is not None:
            n_fail = len(adata.uns["lcd_embed"]["failures"]["manifest_row"])
            msg = f"wrote {out}: {adata.n_obs} tiles x {adata.n_vars} features"
            if n_fail:
                from .output import failures_csv

                msg += f"; {n_fail} field(s) skipped, listed in {failures_csv(out)}"
            typer.echo(msg)

    @app.command("attention")
    @handles_bad_input
    def attention_cmd(
        manifest: Annotated[Path, typer.Argument(help="Manifest (.csv/.parquet).")],
        model: Annotated[str, typer.Option(help="Checkpoint folder or timm model name.")],
        out: Annotated[
            Path, typer.Option("--out", "-o", help="Output folder for .npz arrays and .png overlays.")
        ],
        weights: Annotated[Path | None, typer.Option(help="Local weights for a timm name.")] = None,
        rows: Annotated[str, typer.Option(help="Manifest rows, e.g. '0,5,9'.")] = "0",
        planes: Annotated[str | None, typer.Option(help="Planes as channels (default all).")] = None,
        tile_size: Annotated[int | None, typer.Option(help="Tile side (default: model img_size).")] = None,
        stride: Annotated[int | None, typer.Option(help="Tile stride.")] = None,
        downscale: Annotated[int, typer.Option(help="Integer downscale factor.")] = 1,
        device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
        seed: Annotated[int, typer.Option(help="Seed (random init when no weights).")] = 0,
    ) -> None:
        """Last-block CLS attention per head for chosen fields: arrays (.npz) and overlays (.png, paper Fig. 4)."""
        from .attention_maps import field_attention_maps

        written = field_attention_maps(
            manifest,
            model,
            out,
            rows=_ints(rows) or (0,),
            weights=weights,
            planes=_ints(planes),
            tile_size=tile_size,
            stride=stride,
            downscale=downscale,
            device=device,
            seed=seed,
        )
        typer.echo(f"wrote {len(written)} files to {out}")

    @app.command("from-table")
    @handles_bad_input
    def from_table_cmd(
        table: Annotated[
            Path, typer.Argument(help="CellProfiler / pycytominer table (.csv, .csv.gz, .parquet).")
        ],
        out: Annotated[Path, typer.Option("--out", "-o", help="Output .h5ad or .zarr.")],
        features: Annotated[str | None, typer.Option(help="Regex selecting feature columns.")] = None,
        level: Annotated[str, typer.Option(help="What a row is: fov | well.")] = "fov",
        nonfinite: Annotated[str, typer.Option(help="error | drop_features.")] = "error",
    ) -> None:
        """Turn a per-image feature table into the embedding AnnData layout (CellProfiler baseline)."""
        from .output import write_adata
        from .table import from_table

        adata = from_table(table, features=features, level=level, nonfinite=nonfinite)
        write_adata(adata, out)
        typer.echo(f"wrote {out}: {adata.n_obs} rows x {adata.n_vars} features")
