"""Entry points that work without the CLI extra (no typer import here).

The light packages (lcd-metrics, lcd-norm, lcd-moa) install typer and rich only with their
``[cli]`` extra. Their script calls :func:`run_cli`, which imports the package's command module and,
when typer is missing, prints how to install the extra (exit 1) instead of a traceback.
"""

from __future__ import annotations

import sys
from importlib import import_module
from typing import Any

CLI_MODULES = ("typer", "rich", "click")


def load_app(module: str, attr: str = "app") -> Any | None:
    """``module.attr`` (a Typer app), or ``None`` when typer/rich/click is not installed.

    Parameters
    ----------
    module
        Dotted module path of the command module.
    attr
        Name of the Typer app in it.
    """
    try:
        return getattr(import_module(module), attr)
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in CLI_MODULES:
            raise
        return None


def run_cli(module: str, *, install_hint: str, attr: str = "app") -> None:
    """Run the Typer app ``module.attr``; without the CLI extra print ``install_hint`` and exit 1.

    Parameters
    ----------
    module
        Dotted module path of the command module.
    install_hint
        Printed when typer is missing.
    attr
        Name of the Typer app in it.
    """
    app = load_app(module, attr)
    if app is None:
        print(install_hint, file=sys.stderr)
        sys.exit(1)
    app()
