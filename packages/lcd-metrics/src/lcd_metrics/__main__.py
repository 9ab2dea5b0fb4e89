"""``python -m lcd_metrics`` and the ``lcd-metrics`` script (no typer import until the app is loaded)."""

from __future__ import annotations

from lcd_core import run_cli

INSTALL_HINT = "lcd-metrics: the command line needs the cli extra: pip install 'lcd-metrics[cli]'"


def main() -> None:
    """Run the ``lcd-metrics`` command, or say how to install the CLI extra when typer is missing."""
    run_cli("lcd_metrics.cli", install_hint=INSTALL_HINT)


if __name__ == "__main__":
    main()
