"""`lcd-nuclei count | evaluate`: parse options, call the library, exit 2 with one line on bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

try:
    import typer
except ImportError:  # pragma: no cover - typer is a dependency; kept for a clear message
    typer = None


def main() -> None:
    """Entry point of the ``lcd-nuclei`` script."""
    if typer is None:
        print("install lcd-nuclei[cli] (typer is missing)", file=sys.stderr)
        raise SystemExit(1)
    app()


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _planes(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(p) for p in text.split(",")]
    except ValueError:
        _fail(f"--planes must be comma-separated integers, got {text!r}")


if typer is not None:
    app = typer.Typer(
        help="Unsupervised nuclei counting and confluency from ViT attention.", no_args_is_help=True
    )

    @app.command()
    def count(
        manifest: Annotated[Path, typer.Argument(help="Image manifest (lcd-embed format).")],
        model: Annotated[str, typer.Option(help="Checkpoint folder, or timm name with --weights.")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Output .h5ad (one row per field).")],
        weights: Annotated[str | None, typer.Option(help="Weights file for a timm name.")] = None,
        planes: Annotated[str | None, typer.Option(help="Comma-separated plane indices.")] = None,
        labels_dir: Annotated[Path | None, typer.Option(help="Write row<k>_labels.tif here.")] = None,
        overlays_dir: Annotated[Path | None, typer.Option(help="Write row<k>_overlay.png here.")] = None,
        tile_size: Annotated[int | None, typer.Option(help="Tile size (default: model img_size).")] = None,
        tau: Annotated[float, typer.Option(help="Background similarity threshold.")] = 0.3,
        background_seed: Annotated[
            str, typer.Option(help="field (one background prototype per field) | tile (FOUND per tile)")
        ] = "field",
        nuclei_step: Annotated[str, typer.Option(help="kmeans | foreground")] = "kmeans",
        n_clusters: Annotated[int, typer.Option(help="k-means clusters of foreground patches.")] = 4,
        contrast_window: Annotated[
            int, typer.Option(help="Window (patches) for the surrounding cell's grey level.")
        ] = 5,
        polarity: Annotated[str, typer.Option(help="dark | bright nuclei")] = "dark",
        sigma_spatial: Annotated[float, typer.Option()] = 8.0,
        sigma_luma: Annotated[float, typer.Option()] = 16.0,
        lam: Annotated[float, typer.Option()] = 64.0,
        min_area: Annotated[int, typer.Option()] = 20,
        min_distance: Annotated[int, typer.Option()] = 5,
        max_area_ratio: Annotated[
            float, typer.Option(help="Drop instances above this x the field's median area (inf: keep all).")
        ] = 4.0,
        inhibition_out: Annotated[
            Path | None, typer.Option("--inhibition", help="Write inhibition % per well here (.csv/.tsv/.parquet).")
        ] = None,
        control: Annotated[str, typer.Option(help="Control query or boolean column.")] = "compound == 'DMSO'",
        on_error: Annotated[str, typer.Option(help="raise | skip")] = "raise",
        seed: Annotated[int, typer.Option()] = 0,
    ) -> None:
        """Count nuclei and confluency per field of view."""
        from .count import count_nuclei
        from .field import DiscoveryParams

        if out.suffix not in (".h5ad", ".zarr"):
            _fail(f"--out {out}: use a .h5ad or .zarr file name")
        try:
            params = DiscoveryParams(
                tile_size=tile_size,
                tau=tau,
                background_seed=background_seed,
                nuclei_step=nuclei_step,
                n_clusters=n_clusters,
                contrast_window=contrast_window,
                polarity=polarity,
                sigma_spatial=sigma_spatial,
                sigma_luma=sigma_luma,
                lam=lam,
                min_area=min_area,
                min_distance=min_distance,
                max_area_ratio=max_area_ratio,
                seed=seed,
            )
            adata = count_nuclei(
                manifest,
                model,
                weights=weights,
                params=params,
                planes=_planes(planes),
                out=out,
                labels_dir=labels_dir,
                overlays_dir=overlays_dir,
                on_error=on_error,
            )
            if inhibition_out is not None:
                from lcd_core import write_table
                from lcd_metrics import inhibition

                keys = ["plate"] + (["timepoint"] if "timepoint" in adata.obs.columns else [])
                table = inhibition(adata, measurement_keys=keys, well_key="well", control=control)
                write_table(table, inhibition_out)
        except (ValueError, FileNotFoundError, KeyError, OSError) as exc:
            _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        typer.echo(f"{adata.n_obs} fields, {int(adata.obs['nuclei_count'].sum())} nuclei -> {out}")

    @app.command()
    def evaluate(
        pred_dir: Annotated[
            Path, typer.Argument(help="Folder of row<k>_labels.tif from `count --labels-dir`.")
        ],
        manifest: Annotated[Path, typer.Argument(help="The manifest given to `count`.")],
        reference_column: Annotated[
            str, typer.Option(help="Manifest column with each field's reference image.")
        ],
        reference: Annotated[
            str, typer.Option(help="masks (instance labels) | stain (nuclear stain)")
        ] = "masks",
        out: Annotated[
            Path | None, typer.Option("--out", "-o", help="Per-field CSV; summary JSON beside.")
        ] = None,
    ) -> None:
        """Compare predicted labels with instance masks or a nuclear-stain image."""
        import lcd_embed as le
        import pandas as pd
        import tifffile

        from .count import _atomic
        from .evaluate import evaluate_fields

        try:
            df = le.read_manifest(manifest)
            if reference_column not in df.columns:
                _fail(f"{manifest}: column {reference_column!r} not found; columns: {list(df.columns)}")
            preds, refs = [], []
            for i in range(len(df)):
                path = pred_dir / f"row{i}_labels.tif"
                if not path.is_file():
                    _fail(f"{path} not found: run `lcd-nuclei count --labels-dir {pred_dir}` first")
                preds.append(tifffile.imread(path))
                ref_path = Path(df[reference_column].iloc[i])
                if not ref_path.is_absolute():
                    ref_path = manifest.parent / ref_path
                refs.append(le.read_field([str(ref_path)])[0])
            per_field, summary = evaluate_fields(preds, refs, reference=reference)
        except (ValueError, FileNotFoundError, OSError) as exc:
            _fail(str(exc).splitlines()[0])
        per_field.insert(0, "manifest_row", range(len(per_field)))
        if out is not None:
            _atomic(out, lambda tmp: per_field.to_csv(tmp, index=False))
            _atomic(out.with_suffix(".json"), lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2)))
        with pd.option_context("display.width", 120):
            typer.echo(json.dumps(summary, indent=2))
else:  # pragma: no cover
    app = None
