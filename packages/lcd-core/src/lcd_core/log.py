"""Verbosity shared by the CLIs (``-v`` / ``-q``) and the library's messages (no typer, no rich needed).

Library code logs through ``logging.getLogger("lcd.<package>")``; the CLIs set the level once. Progress
bars are shown unless ``-q`` was given (:func:`show_progress`).
"""

from __future__ import annotations

import logging
import sys

_state = {"verbosity": 0}


def set_verbosity(level: int) -> None:
    """``-1`` quiet (warnings only, no progress bars), ``0`` normal, ``1`` and more: debug messages.

    Parameters
    ----------
    level
        The verbosity level.
    """
    _state["verbosity"] = int(level)
    root = logging.getLogger("lcd")
    root.setLevel(logging.WARNING if level < 0 else logging.INFO if level == 0 else logging.DEBUG)
    if not any(getattr(h, "_lcd", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._lcd = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.propagate = False


def verbosity() -> int:
    """The level set by :func:`set_verbosity` (0 when never set)."""
    return _state["verbosity"]


def show_progress() -> bool:
    """Whether CLI commands draw progress bars (not under ``-q``)."""
    return _state["verbosity"] >= 0


def get_logger(name: str) -> logging.Logger:
    """The logger ``lcd.<name>`` (``name`` without the ``lcd_`` prefix is fine either way).

    Parameters
    ----------
    name
        Package or module name.
    """
    short = name.removeprefix("lcd_").removeprefix("lcd.")
    return logging.getLogger(f"lcd.{short}")
