"""``python -m lcd_moa`` and the ``lcd-moa`` script: the CLI, or how to install it when typer is missing."""

from lcd_core import run_cli

INSTALL_HINT = "the lcd-moa command needs the CLI extra: pip install 'lcd-moa[cli]'"


def main() -> None:
    """Run the ``lcd-moa`` command (:mod:`lcd_moa.cli`)."""
    run_cli("lcd_moa.cli", install_hint=INSTALL_HINT)


if __name__ == "__main__":
    main()
