"""``lcd-ssl`` command line: ``train`` and ``export``. Parses options and calls the Python API.

Heavy imports (torch, timm) happen inside the commands so ``lcd --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Self-supervised ViT training for brightfield (DINO + Barlow, cross-batch, plane-agnostic).",
    no_args_is_help=True,
)


def _fail(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)


def _json(text: str | None, name: str) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(f"{name} is not valid JSON ({exc})")
    if not isinstance(value, dict):
        _fail(f"{name} must be a JSON object")
    return value


@app.command()
def train(
    manifest: Annotated[Path, typer.Argument(help="Image manifest (CSV/parquet, lcd-embed format).")],
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
    planes: Annotated[str | None, typer.Option(help="Comma-separated plane indices, e.g. 0,1,2.")] = None,
    precision: Annotated[str | None, typer.Option(help="bf16 | fp32")] = None,
    device: Annotated[str | None, typer.Option(help="cpu | cuda")] = None,
    num_workers: Annotated[int | None, typer.Option()] = None,
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
    from .config import ConfigError, TrainConfig

    options: dict = {}
    if config is not None:
        if not config.is_file():
            _fail(f"config file not found: {config}")
        options.update(_json(config.read_text(), str(config)))
    cli = {
        "variant": variant,
        "model": model,
        "epochs": epochs,
        "steps_per_epoch": steps_per_epoch,
        "batch_size": batch_size,
        "lr": lr,
        "global_crop_size": global_crop_size,
        "local_crop_size": local_crop_size,
        "out_dim": out_dim,
        "precision": precision,
        "device": device,
        "num_workers": num_workers,
        "seed": seed,
        "checkpoint_every": checkpoint_every,
    }
    options.update({k: v for k, v in cli.items() if v is not None})
    if model_kwargs:
        options["model_kwargs"] = _json(model_kwargs, "--model-kwargs")
    if planes:
        try:
            options["planes"] = [int(p) for p in planes.split(",")]
        except ValueError:
            _fail(f"--planes must be comma-separated integers, got {planes!r}")
    options.update(_json(set_, "--set"))
    if not manifest.is_file():
        _fail(f"manifest not found: {manifest}")
    try:
        cfg = TrainConfig.from_dict(options).validate()
    except (ConfigError, TypeError) as exc:
        _fail(str(exc))

    from .data import DataError
    from .pairing import MetadataError
    from .trainer import NonFiniteLossError
    from .trainer import train as run_training

    try:
        import lcd_embed

        bad_input = (ConfigError, DataError, MetadataError, lcd_embed.InputError, FileNotFoundError)
        run = run_training(manifest, cfg, out, max_steps=max_steps)
    except bad_input as exc:
        _fail(str(exc))
    except NonFiniteLossError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"run folder: {run}")


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="Run folder written by `lcd-ssl train`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint folder to write (lcd-embed format).")],
    which: Annotated[str, typer.Option(help="teacher | student")] = "teacher",
) -> None:
    """Export the backbone as model.safetensors + config.json, loadable by `lcd-embed embed --model`."""
    from .export import export_backbone

    try:
        folder = export_backbone(run_dir, out, which=which)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(f"checkpoint: {folder}")


def main() -> None:
    """Entry point of the ``lcd-ssl`` script."""
    app(prog_name="lcd-ssl")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
