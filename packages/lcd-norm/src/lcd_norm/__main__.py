"""``python -m lcd_norm`` and the ``lcd-norm`` script (no typer import until the app is loaded)."""

from __future__ import annotations

from lcd_core import run_cli

INSTALL_HINT = "lcd-norm: the command line needs the cli extra: pip install 'lcd-norm[cli]'"


def main() -> None:
    """Run the ``lcd-norm`` command, or say how to install the CLI extra when typer is missing."""
    run_cli("lcd_norm.cli", install_hint=INSTALL_HINT)


if __name__ == "__main__":
    main()
