"""``lcd-nuclei count | calibrate | evaluate``: parse options, call the library.

Built on :mod:`lcd_core.cli`: ``--version``, ``-v/-q``; bad input (an ``InputError``, a missing
path) is one ``error:`` line and exit code 2. Nothing else is caught, so a bug keeps its traceback.
Options default to ``None`` and only the ones given reach the API.
"""

# no `from __future__ import annotations`: typer reads these annotations at run time

import json
from pathlib import Path
from typing import Annotated

import typer
from lcd_core import InputError, given, handles_bad_input, make_app, optional_key, show_progress, split_ints

app = make_app(
    "nuclei",
    "Label-free nuclei counting and confluency from brightfield planes and ViT attention.",
    package="lcd-nuclei",
)


def main() -> None:
    """Entry point of the ``lcd-nuclei`` script."""
    app()


@app.command()
@handles_bad_input
def count(
    manifest: Annotated[Path, typer.Argument(help="Image manifest (lcd-embed format).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .h5ad (one row per field).")],
    model: Annotated[
        str | None,
        typer.Option(help="Checkpoint folder, or timm name with --weights (none: classical counter alone)."),
    ] = None,
    weights: Annotated[str | None, typer.Option(help="Weights file for a timm name.")] = None,
    planes: Annotated[
        list[str] | None,
        typer.Option(help="Plane indices, e.g. 0,1,2 (default: the checkpoint's, else all)."),
    ] = None,
    labels_dir: Annotated[Path | None, typer.Option(help="Write row<k>_labels.tif here.")] = None,
    overlays_dir: Annotated[Path | None, typer.Option(help="Write row<k>_overlay.png here.")] = None,
    tile_size: Annotated[int | None, typer.Option(help="Tile size (default: model img_size).")] = None,
    tau: Annotated[float | None, typer.Option(help="Background similarity threshold (0.3).")] = None,
    background_seed: Annotated[
        str | None, typer.Option(help="field (one background prototype per field) | tile (FOUND per tile)")
    ] = None,
    nuclei_step: Annotated[str | None, typer.Option(help="classical (default) | kmeans | foreground")] = None,
    n_clusters: Annotated[
        int | None, typer.Option(help="k-means clusters of foreground patches (4).")
    ] = None,
    contrast_window: Annotated[
        int | None, typer.Option(help="Window (patches) for the surrounding cell's grey level (5).")
    ] = None,
    polarity: Annotated[str | None, typer.Option(help="dark | bright | auto (classical only) nuclei")] = None,
    sigma_spatial: Annotated[float | None, typer.Option(help="Bilateral solver spatial sigma (8).")] = None,
    sigma_luma: Annotated[float | None, typer.Option(help="Bilateral solver range sigma (16).")] = None,
    lam: Annotated[float | None, typer.Option(help="Bilateral solver smoothness (64).")] = None,
    min_area: Annotated[int | None, typer.Option(help="Smallest nucleus in pixels (20).")] = None,
    min_distance: Annotated[int | None, typer.Option(help="Watershed peak distance in pixels (5).")] = None,
    max_area_ratio: Annotated[
        float | None,
        typer.Option(help="Drop instances above this x the field's median area (4; inf: keep all)."),
    ] = None,
    inhibition_out: Annotated[
        Path | None,
        typer.Option("--inhibition", help="Write inhibition % per well here (.csv/.tsv/.parquet)."),
    ] = None,
    control: Annotated[str, typer.Option(help="Control query or boolean column.")] = "compound == 'DMSO'",
    on_error: Annotated[str | None, typer.Option(help="raise | skip")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda (default: auto).")] = None,
    seed: Annotated[int | None, typer.Option(help="k-means and noise-draw seed (0).")] = None,
    channel: Annotated[str | None, typer.Option(help="classical: grey | defocus | tie (grey).")] = None,
    channel_planes: Annotated[
        list[str] | None, typer.Option(help="classical: planes of the channel, e.g. 0,1,2 (all).")
    ] = None,
    defocus: Annotated[
        list[str] | None, typer.Option(help="classical: z of each channel plane, e.g. -3.6,0,3.6.")
    ] = None,
    highpass: Annotated[float | None, typer.Option(help="tie: high-pass length, px (4 x diameter).")] = None,
    diameter: Annotated[float | None, typer.Option(help="classical: nucleus diameter, px (12).")] = None,
    floor: Annotated[float | None, typer.Option(help="classical: floor in noise SDs (6).")] = None,
    threshold_method: Annotated[str | None, typer.Option(help="classical: otsu | mad (otsu).")] = None,
    floor_unit: Annotated[str | None, typer.Option(help="classical: noise | mad (noise).")] = None,
    class_prior: Annotated[
        str | None, typer.Option(help="classical: none | multiotsu (keep the darkest grey class; none).")
    ] = None,
    split_depth: Annotated[
        float | None, typer.Option(help="classical: shape split, x diameter / 2 deep (0 = off).")
    ] = None,
    split_contrast: Annotated[
        float | None, typer.Option(help="classical: split at dark spots this many noise SDs deep (0 = off).")
    ] = None,
    min_axis_ratio: Annotated[
        float | None, typer.Option(help="classical: drop objects thinner than minor/major axis (0 = off).")
    ] = None,
    inside_cells: Annotated[
        bool | None,
        typer.Option(
            "--inside-cells/--anywhere", help="classical with a model: only objects in the cell area."
        ),
    ] = None,
    calibration: Annotated[
        str | None,
        typer.Option(
            help="nuclei_calibration.json or its folder; none: ignore the checkpoint's (default: use it)."
        ),
    ] = None,
) -> None:
    """Count nuclei and measure confluency per field of view."""
    from lcd_core import write_table
    from lcd_metrics import inhibition

    from .count import count_nuclei

    if out.suffix.lower() not in (".h5ad", ".zarr"):
        raise InputError(f"--out {out}: use a .h5ad or .zarr file name")
    if inhibition_out is not None:  # refused before minutes of counting, not after
        import lcd_embed as le
        from lcd_core import check_output_path, control_mask

        check_output_path(inhibition_out)
        control_mask(le.read_manifest(manifest), control, source=str(manifest))
    params = _params(
        channel=channel,
        channel_planes=channel_planes,
        defocus=defocus,
        highpass=highpass,
        diameter=diameter,
        floor=floor,
        threshold_method=threshold_method,
        floor_unit=floor_unit,
        class_prior=class_prior,
        split_depth=split_depth,
        split_contrast=split_contrast,
        min_axis_ratio=min_axis_ratio,
        inside_cells=inside_cells,
        **given(
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
        ),
    )
    adata = count_nuclei(
        manifest,
        model,
        params=params,
        out=out,
        labels_dir=labels_dir,
        overlays_dir=overlays_dir,
        progress=show_progress(),
        **given(
            weights=weights,
            planes=split_ints(planes, option="--planes"),
            on_error=on_error,
            device=device,
            calibration=_calibration(calibration),
        ),
    )
    if inhibition_out is not None:
        keys = ["plate"] + (["timepoint"] if "timepoint" in adata.obs.columns else [])
        table = inhibition(adata, measurement_keys=keys, well_key="well", control=control)
        write_table(table, inhibition_out)
    typer.echo(f"{adata.n_obs} fields, {int(adata.obs['nuclei_count'].sum())} nuclei -> {out}")


def _calibration(value: str | None):
    """``--calibration``: not given -> the API default ("auto"); ``none`` -> ``{}`` (no calibration)."""
    if value is None:
        return None
    return {} if optional_key(value) is None else value


def _params(*, channel_planes=None, defocus=None, **options) -> dict:
    """The given discovery options as a dict (a calibration's settings stay under the given ones)."""
    from lcd_core import split_list

    params = given(**options)
    planes = split_ints(channel_planes, option="--channel-planes")
    if planes is not None:
        params["channel_planes"] = planes
    values = split_list(defocus)
    if values is not None:
        try:
            params["defocus"] = [float(v) for v in values]
        except ValueError:
            raise InputError(
                f"--defocus: expected numbers separated by commas, got {','.join(values)!r}"
            ) from None
    return params


@app.command()
@handles_bad_input
def calibrate(
    manifest: Annotated[Path, typer.Argument(help="Image manifest (lcd-embed format).")],
    stain_key: Annotated[
        str, typer.Option(help="Manifest column with each stained field's nuclear-stain image.")
    ],
    model: Annotated[
        str | None,
        typer.Option(help="Checkpoint folder (count inside its cell area; the choice is written there)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Folder for nuclei_calibration.json (default: --model)."),
    ] = None,
    rows: Annotated[
        list[str] | None, typer.Option(help="Manifest rows to use (default: every stained row).")
    ] = None,
    criterion: Annotated[
        str | None, typer.Option(help="ccc | mae (default: ccc; mae for one field).")
    ] = None,
    weights: Annotated[str | None, typer.Option(help="Weights file for a timm name.")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda (default: auto).")] = None,
    channel_planes: Annotated[
        list[str] | None, typer.Option(help="Planes of the channel, e.g. 0,1,2 (all).")
    ] = None,
    defocus: Annotated[
        list[str] | None, typer.Option(help="z of each channel plane, e.g. -3.6,0,3.6.")
    ] = None,
    diameter: Annotated[
        float | None, typer.Option(help="Nucleus diameter, px (12); x0.75 and x1.5 are tried too.")
    ] = None,
    inside_cells: Annotated[
        bool | None,
        typer.Option("--inside-cells/--anywhere", help="With --model: only objects in the cell area."),
    ] = None,
) -> None:
    """Choose the classical counter's settings on fields with a nuclear stain; `count` applies them."""
    from .count import calibrate_nuclei

    if out is None and model is None:
        raise InputError(
            "give --model (a checkpoint folder) or --out FOLDER: where to write nuclei_calibration.json"
        )
    result = calibrate_nuclei(
        manifest,
        model,
        stain_key=stain_key,
        params=_params(
            channel_planes=channel_planes, defocus=defocus, diameter=diameter, inside_cells=inside_cells
        ),
        out=out,
        progress=show_progress(),
        **given(rows=split_ints(rows, option="--rows"), criterion=criterion, weights=weights, device=device),
    )
    if result["file"] is None:
        raise InputError(f"--model {model} is not a folder: give --out FOLDER for nuclei_calibration.json")
    evidence = result["evidence"]
    held = evidence.get("leave_one_out", {})
    typer.echo(
        json.dumps(
            {
                "params": result["params"],
                "fields": evidence["n_fields"],
                "criterion": evidence["criterion"],
                "leave_one_out_r": held.get("pearson_r"),
                "leave_one_out_mae": held.get("mae"),
                "file": result["file"],
            },
            indent=2,
        )
    )


def _read_labels(path: Path):
    """A label image written by ``count --labels-dir`` (one line naming the file when it cannot be read)."""
    import numpy as np
    import tifffile
    from lcd_core import ImageReadError, describe_exception

    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `lcd-nuclei count --labels-dir {path.parent}` first")
    try:
        labels = tifffile.imread(path)
    except Exception as exc:  # tifffile raises many types for a damaged file; name the file
        raise ImageReadError(f"cannot read label image {path} ({describe_exception(exc)})") from None
    if labels.ndim != 2 or labels.dtype.kind not in "ui":
        raise ImageReadError(f"{path}: expected a 2-D integer label image, got {labels.dtype} {labels.shape}")
    return np.asarray(labels)


@app.command()
@handles_bad_input
def evaluate(
    pred_dir: Annotated[Path, typer.Argument(help="Folder of row<k>_labels.tif from `count --labels-dir`.")],
    manifest: Annotated[Path, typer.Argument(help="The manifest given to `count`.")],
    reference_column: Annotated[str, typer.Option(help="Manifest column with each field's reference image.")],
    reference: Annotated[
        str | None, typer.Option(help="masks (instance labels) | stain (nuclear stain); default masks.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Per-field CSV; summary JSON beside.")
    ] = None,
) -> None:
    """Compare predicted labels with instance masks or a nuclear-stain image."""
    import lcd_embed as le
    from lcd_core import check_output_path, write_json, write_table

    from .evaluate import evaluate_fields

    if out is not None:
        check_output_path(out)
    df = le.read_manifest(manifest)
    if reference_column not in df.columns:
        raise InputError(f"{manifest}: column {reference_column!r} not found; columns: {list(df.columns)}")
    preds, refs = [], []
    for i in range(len(df)):
        preds.append(_read_labels(pred_dir / f"row{i}_labels.tif"))
        ref_path = Path(df[reference_column].iloc[i])
        if not ref_path.is_absolute():
            ref_path = manifest.parent / ref_path
        refs.append(le.read_field([str(ref_path)])[0])
    per_field, summary = evaluate_fields(preds, refs, **given(reference=reference))
    per_field.insert(0, "manifest_row", range(len(per_field)))
    if out is not None:
        write_table(per_field, out)
        write_json(summary, out.with_suffix(".json"))
    typer.echo(json.dumps(summary, indent=2))
