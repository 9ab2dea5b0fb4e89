"""``lcd-ssl`` command line: ``train`` and ``export``. Parses options and calls the Python API.

Built on :mod:`lcd_core.cli`: ``--version``, ``-v/-q``, bad input as one ``error:`` line and exit
code 2. Options default to ``None``; a ``--config`` file and ``--set`` are checked against
:class:`~lcd_ssl.TrainConfig` (an unknown key or a wrong type is named) and only given options
override the dataclass defaults. Heavy imports (torch, timm) happen inside the commands so
``lcd --help`` stays fast.
"""

# no `from __future__ import annotations`: typer reads these annotations at run time

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from lcd_core import (
    ConfigError,
    check_options,
    given,
    handles_bad_input,
    make_app,
    read_json,
    show_progress,
    split_ints,
)

app = make_app(
    "ssl",
    "Self-supervised ViT training for brightfield (DINO + Barlow, cross-batch, plane-agnostic).",
    package="lcd-ssl",
)


def _json_object(text: str, option: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{option}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{option}: expected a JSON object, got {type(value).__name__}")
    return value


def _options(section: str, options: dict[str, Any]) -> dict[str, Any]:
    from .config import TrainConfig

    return check_options(options, TrainConfig, section=section)


@app.command()
@handles_bad_input
def train(
    manifest: Annotated[Path, typer.Argument(help="Image manifest (CSV/TSV/parquet, lcd-embed format).")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Run folder (resumed when it holds a checkpoint).")
    ],
    config: Annotated[
        Path | None, typer.Option(help="JSON file of TrainConfig options (CLI options override it).")
    ] = None,
    variant: Annotated[
        str | None, typer.Option(help="dino | dino+barlow | dino+xb | dino+barlow+xb | pa+dino+barlow+xb")
    ] = None,
    model: Annotated[str | None, typer.Option(help="timm model name (random init).")] = None,
    model_kwargs: Annotated[
        str | None, typer.Option(help='timm overrides as JSON, e.g. \'{"depth": 2, "embed_dim": 64}\'.')
    ] = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    steps_per_epoch: Annotated[int | None, typer.Option()] = None,
    batch_size: Annotated[int | None, typer.Option(help="Global batch size.")] = None,
    lr: Annotated[float | None, typer.Option()] = None,
    global_crop_size: Annotated[int | None, typer.Option()] = None,
    local_crop_size: Annotated[int | None, typer.Option()] = None,
    out_dim: Annotated[int | None, typer.Option()] = None,
    planes: Annotated[
        list[str] | None, typer.Option(help="Plane indices: repeat or separate by commas, e.g. 0,1,2.")
    ] = None,
    downscale: Annotated[int | None, typer.Option(help="Integer block-mean downscale of each field.")] = None,
    precision: Annotated[str | None, typer.Option(help="bf16 | fp32")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda (default: auto).")] = None,
    num_workers: Annotated[int | None, typer.Option()] = None,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads while training (fix it for bit-identical CPU runs).")
    ] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    checkpoint_every: Annotated[int | None, typer.Option()] = None,
    max_steps: Annotated[
        int | None, typer.Option(help="Stop (with a checkpoint) at this global step.")
    ] = None,
    set_: Annotated[
        str | None, typer.Option("--set", help="Any other TrainConfig options as a JSON object.")
    ] = None,
) -> None:
    """Train (or resume) a run; writes checkpoint.pt, metrics.jsonl and train_config.json to --out."""
    from .config import TrainConfig

    options: dict[str, Any] = {}
    if config is not None:
        options.update(_options(str(config), read_json(config, what="training config")))
    options.update(
        given(
            variant=variant,
            model=model,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            batch_size=batch_size,
            lr=lr,
            global_crop_size=global_crop_size,
            local_crop_size=local_crop_size,
            out_dim=out_dim,
            planes=split_ints(planes, option="--planes"),
            downscale=downscale,
            precision=precision,
            device=device,
            num_workers=num_workers,
            threads=threads,
            seed=seed,
            checkpoint_every=checkpoint_every,
        )
    )
    if model_kwargs is not None:
        options["model_kwargs"] = _json_object(model_kwargs, "--model-kwargs")
    if set_ is not None:
        options.update(_options("--set", _json_object(set_, "--set")))
    if "progress" not in options:
        options["progress"] = show_progress()
    if not manifest.is_file():
        raise FileNotFoundError(f"manifest not found: {manifest}")
    cfg = TrainConfig.from_dict(options).validate()

    from .trainer import NonFiniteLossError
    from .trainer import train as run_training

    try:
        run = run_training(manifest, cfg, out, max_steps=max_steps)
    except NonFiniteLossError as exc:  # not bad input: a diverged run (exit 1), the last checkpoint kept
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"run folder: {run}")


@app.command()
@handles_bad_input
def export(
    run_dir: Annotated[Path, typer.Argument(help="Run folder written by `lcd-ssl train`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint folder to write (lcd-embed format).")],
    which: Annotated[
        str | None,
        typer.Option(help="teacher | student | init (the run's random initialization; default: teacher)."),
    ] = None,
) -> None:
    """Export the backbone and its model-input recipe, loadable by `lcd-embed embed --model`."""
    from .export import export_backbone

    folder = export_backbone(run_dir, out, **given(which=which))
    typer.echo(f"checkpoint: {folder}")


def main() -> None:
    """Entry point of the ``lcd-ssl`` script."""
    app(prog_name="lcd-ssl")
