"""The ``lcd`` command: its own commands (simulate, demo, run) plus every package's app, mounted.

Only parsing here; the work is in :mod:`lcd_pipeline.simulate` and :mod:`lcd_pipeline.engine`, imported
inside the commands so that ``lcd --help`` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from lcd_core import add_common_options, fail, handles_bad_input
from typer.core import TyperGroup

from .mount import MountedApp, discover


class LcdGroup(TyperGroup):
    """The top-level group: own commands first, then the ``lcd.cli`` plugins (loaded on use)."""

    _mounted: dict[str, MountedApp] | None = None

    def _plugins(self) -> dict[str, MountedApp]:
        if self._mounted is None:
            self._mounted = {
                name: MountedApp(plugin) for name, plugin in discover().items() if name not in self.commands
            }
        return self._mounted

    def list_commands(self, ctx) -> list[str]:
        """Own commands, then the mounted packages'."""
        return [*super().list_commands(ctx), *self._plugins()]

    def get_command(self, ctx, cmd_name: str):
        """An own command, else a mounted package's app (loaded on use)."""
        return super().get_command(ctx, cmd_name) or self._plugins().get(cmd_name)


app = typer.Typer(
    cls=LcdGroup,
    help="LCD: live-cell brightfield profiling from images to activity, MoA and a report.",
    no_args_is_help=True,
    add_completion=True,
)


add_common_options(
    app,
    "LCD: live-cell brightfield profiling from images to activity, MoA and a report.",
    package="lcd-pipeline",
)


@app.command("simulate")
@handles_bad_input
def simulate_cmd(
    out: Annotated[Path, typer.Argument(help="Folder to create (Opera-style images, plate map, truth/).")],
    preset: Annotated[str, typer.Option(help="Design size: 'demo' (small, fast) or 'default'.")] = "demo",
    seed: Annotated[int, typer.Option(help="Seed of every random draw (same seed, same files).")] = 0,
    replicas: Annotated[
        int | None, typer.Option(help="Experimental replicas (overrides the preset).")
    ] = None,
    image_size: Annotated[
        int | None, typer.Option(help="Field size in pixels (overrides the preset).")
    ] = None,
    fovs: Annotated[int | None, typer.Option(help="Fields of view per well (overrides the preset).")] = None,
    withdrawal_after: Annotated[
        int | None,
        typer.Option(
            help="Withdrawal design: treatment removed after this timepoint (1-based); phenotypes relax."
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace OUT when it exists.")] = False,
) -> None:
    """Write a synthetic live-cell brightfield plate set with ground truth (see `lcd_pipeline.simulate`)."""
    from .simulate import preset_config, simulate_plate

    overrides = {
        "n_replicas": replicas,
        "image_size": image_size,
        "fovs_per_well": fovs,
        "withdrawal_after": withdrawal_after,
    }
    cfg = preset_config(preset, seed=seed, **{k: v for k, v in overrides.items() if v is not None})
    plate = simulate_plate(out, cfg, overwrite=overwrite)
    typer.echo(f"simulated plate written to {plate.root} (plate map: {plate.plate_map})")


def _run_engine(cfg: dict, stop_after: str | None, dry_run: bool = False) -> Path:
    from .console import print_stage
    from .engine import run_pipeline

    return run_pipeline(cfg, log=print_stage, stop_after=stop_after, dry_run=dry_run)


@app.command("demo")
@handles_bad_input
def demo_cmd(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Results folder (re-running continues where it stopped).")
    ] = Path("lcd-demo"),
    seed: Annotated[int, typer.Option(help="Seed of the simulation, training and resampling.")] = 0,
    stop_after: Annotated[str | None, typer.Option(help="Stop after this stage (e.g. 'activity').")] = None,
    dry_run: Annotated[bool, typer.Option(help="Print which stages would run and why; run nothing.")] = False,
) -> None:
    """Simulate a small plate, train a tiny ViT, embed, normalize, score activity and MoA, write a report."""
    from .config import demo_config

    root = _run_engine(demo_config(out, seed=seed), stop_after, dry_run)
    report = root / "report.html"
    if report.exists() and not dry_run:
        typer.echo(f"report: {report.resolve()}")


@app.command("run")
@handles_bad_input
def run_cmd(
    config: Annotated[Path, typer.Argument(help="YAML config (see lcd_pipeline.config for the keys).")],
    stop_after: Annotated[str | None, typer.Option(help="Stop after this stage.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Print which stages would run and why; run nothing.")] = False,
    nproc: Annotated[
        int | None,
        typer.Option(
            help="Start N processes with torchrun (one per GPU, or CPU processes with gloo): train and "
            "embed run on all of them, the other stages on the first."
        ),
    ] = None,
) -> None:
    """Run the stages whose outputs are missing or no longer match the config, inputs and package versions.

    Under torchrun (`torchrun --nproc_per_node N -m lcd_pipeline run CONFIG`, or `--nproc N`) train and
    embed run on every process and the other stages on rank 0.
    """
    from .config import load

    cfg = load(config)  # checked before any process starts
    if nproc is not None and not dry_run:
        from .distributed import launch

        args = ["run", str(config), *(["--stop-after", stop_after] if stop_after else [])]
        code = launch(nproc, args)
        if code != 0:
            raise typer.Exit(code=code)
        return
    root = _run_engine(cfg, stop_after, dry_run)
    report = root / "report.html"
    if report.exists() and not dry_run and os.environ.get("RANK", "0") == "0":
        typer.echo(f"report: {report.resolve()}")


@app.command("init")
@handles_bad_input
def init_cmd(
    config: Annotated[Path, typer.Argument(help="YAML config to write (refused when it exists).")],
    from_opera: Annotated[
        list[Path],
        typer.Option(
            help="Opera/Harmony export folder (repeat, or comma-separate; several per plate are fine)."
        ),
    ],
    plate_map: Annotated[
        Path | None, typer.Option(help="An existing plate map (default: write a template to fill in).")
    ] = None,
    preset: Annotated[
        str, typer.Option(help="paper (ViT-S/16, GPU hours) or quick (tiny CPU model).")
    ] = "paper",
) -> None:
    """Write a commented `lcd run` config from an Opera export (and a plate-map template to fill in)."""
    from lcd_core import split_list

    from .init import write_config

    dirs = [Path(d) for d in split_list([str(p) for p in from_opera]) or []]
    path, template = write_config(config, dirs, plate_map=plate_map, preset=preset)
    typer.echo(f"config: {path}")
    if template is not None:
        typer.echo(f"plate map to fill in: {template} (then: lcd run {path})")


@app.command("compare")
@handles_bad_input
def compare_cmd(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="LABEL=PATH per model: an `lcd run` results folder, an .h5ad of tile/FOV/well profiles, "
            "or a profile table (e.g. a CellProfiler table as cellprofiler=table.csv.gz)."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Comparison folder (tables, figures, report.html).")
    ],
    methods: Annotated[
        list[str] | None, typer.Option(help="lcd-norm methods (repeat or comma-separate; default: all five).")
    ] = None,
    normalization: Annotated[
        str | None, typer.Option(help="'best' (each model at its best Table 1 normalization) or one method.")
    ] = None,
    n_draws: Annotated[int | None, typer.Option(help="mAP-ES draws per compound × condition.")] = None,
    threshold: Annotated[float | None, typer.Option(help="mAP-ES activity threshold.")] = None,
    n_folds: Annotated[int | None, typer.Option(help="MoA folds (one assignment for every model).")] = None,
    no_moa: Annotated[bool, typer.Option("--no-moa", help="Skip the MoA cross-validation.")] = False,
    counts: Annotated[
        Path | None, typer.Option(help="Table of nuclei counts per field/well for the cell-count baseline.")
    ] = None,
    count_key: Annotated[str | None, typer.Option(help="Count column of --counts.")] = None,
    compound_key: Annotated[str | None, typer.Option(help="Compound column.")] = None,
    replica_key: Annotated[str | None, typer.Option(help="Experimental replica (batch) column.")] = None,
    plate_key: Annotated[str | None, typer.Option(help="Plate column.")] = None,
    well_key: Annotated[str | None, typer.Option(help="Well column.")] = None,
    fov_key: Annotated[str | None, typer.Option(help="Field-of-view column.")] = None,
    timepoint_key: Annotated[str | None, typer.Option(help="Timepoint column.")] = None,
    dose_key: Annotated[str | None, typer.Option(help="Dose column.")] = None,
    moa_key: Annotated[str | None, typer.Option(help="MoA column.")] = None,
    control: Annotated[str | None, typer.Option(help="DMSO wells: pandas query or boolean column.")] = None,
    features: Annotated[str | None, typer.Option(help="Feature regex of table inputs.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of draws, Harmony and folds (one for all).")] = None,
) -> None:
    """Compare models side by side the paper's way: Table 1, Fig 2A/2B/SM2, Wilcoxon SM3/SM4, MoA SM5/3A/3B."""
    from lcd_core import given, split_list

    from .compare import compare_models

    options = given(
        methods=split_list(methods),
        normalization=normalization,
        n_draws=n_draws,
        threshold=threshold,
        n_folds=n_folds,
        counts=counts,
        count_key=count_key,
        compound_key=compound_key,
        replica_key=replica_key,
        plate_key=plate_key,
        well_key=well_key,
        fov_key=fov_key,
        timepoint_key=timepoint_key,
        dose_key=dose_key,
        moa_key=moa_key,
        control=control,
        features=features,
        seed=seed,
    )
    if no_moa:
        options["moa"] = False
    comp = compare_models(split_list(inputs), log=typer.echo, **options)
    folder = comp.write(out)
    typer.echo(f"comparison: {folder.resolve()} (report: {(folder / 'report.html').resolve()})")


@app.command("ablate")
@handles_bad_input
def ablate_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Ablation folder (plate, runs/, comparison/).")],
    seed: Annotated[
        int | None, typer.Option(help="Seed of the plate, every training and the comparison.")
    ] = None,
    variants: Annotated[
        list[str] | None,
        typer.Option(help="Labels to train (default: the five variants, dino-no-blur and random-init)."),
    ] = None,
    reduced: Annotated[
        bool, typer.Option("--reduced", help="A reduced plate (2 doses × 2 timepoints, 2 fields per well).")
    ] = False,
    steps_per_epoch: Annotated[
        int | None, typer.Option(help="Training steps of every variant (default: the quick preset's 60).")
    ] = None,
    handcrafted: Annotated[
        bool, typer.Option("--handcrafted", help="Add the cellprofiler row (handcrafted features).")
    ] = False,
    n_draws: Annotated[int | None, typer.Option(help="mAP-ES draws per compound × condition.")] = None,
) -> None:
    """Train the paper's SSL variants on one simulated plate with one budget and compare them (lcd compare)."""
    from lcd_core import given, split_list

    from .ablate import REDUCED_PLATE, ablate

    options = given(seed=seed, variants=split_list(variants))
    folder = ablate(
        out,
        plate=dict(REDUCED_PLATE) if reduced else None,
        ssl=given(steps_per_epoch=steps_per_epoch) or None,
        handcrafted=handcrafted,
        compare=given(n_draws=n_draws) or None,
        log=typer.echo,
        **options,
    )
    typer.echo(f"ablation: {folder.resolve()} (report: {(folder / 'comparison' / 'report.html').resolve()})")


@app.command("report")
def report_cmd(
    results: Annotated[Path, typer.Argument(help="A results folder written by `lcd run` / `lcd demo`.")],
    out: Annotated[Path | None, typer.Option(help="HTML file (default RESULTS/report.html).")] = None,
) -> None:
    """(Re)build the self-contained HTML report of a results folder."""
    from .report import build_report

    if not results.is_dir():
        fail(f"results folder not found: {results}")
    from .engine import STATE_FILE

    if not (results / STATE_FILE).is_file():  # else a report of nothing is written into any folder
        fail(f"{results}: not a results folder of `lcd run` (no {STATE_FILE})")
    path = build_report(results, out or results / "report.html")
    typer.echo(f"report: {path.resolve()}")


def main() -> None:
    """Entry point of the ``lcd`` script."""
    app()
