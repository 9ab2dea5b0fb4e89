"""The ``lcd-norm`` command (Typer app ``app``, mounted by ``lcd`` as ``lcd norm``).

typer and rich come with the ``[cli]`` extra; without them ``main()`` says how to install it.
"""

from __future__ import annotations

import sys

try:
    from lcd_norm._cli_app import app
except ImportError as exc:  # only a missing CLI extra is expected here
    if exc.name not in ("typer", "rich", "click"):
        raise
    app = None


def main() -> None:
    """Entry point of the ``lcd-norm`` script."""
    if app is None:
        print("the lcd-norm command needs the CLI extra: pip install 'lcd-norm[cli]'", file=sys.stderr)
        sys.exit(1)
    app()
