"""One progress bar for every long loop of the LCD packages (rich, on stderr).

rich is optional for the light packages (their ``[cli]`` extra); without it, or with
``enabled=False``, the helpers are silent and cost nothing. Bars are transient: they disappear when
the loop ends, so logs keep only the lines a command prints itself.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def _noop(n: int = 1, **fields: Any) -> None:
    return None


@contextlib.contextmanager
def progress(
    total: int | None, description: str, *, enabled: bool = True, unit: str = ""
) -> Iterator[Callable[..., None]]:
    """Yield ``advance(n=1, **fields)``; draws a rich bar on stderr when ``enabled`` and rich is installed.

    Parameters
    ----------
    total
        Number of steps (``None``: unknown, a spinner with a count).
    description
        Shown left of the bar.
    enabled
        ``False`` for library calls that asked for silence (``progress=False``).
    unit
        Shown after the rate, e.g. ``"tiles"`` gives ``123 tiles/s``.

    Notes
    -----
    ``advance(info="loss 3.21")`` updates the text shown right of the bar (training loss, current file).
    """
    if not enabled or importlib.util.find_spec("rich") is None:
        yield _noop
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [
        SpinnerColumn() if total is None else TextColumn(""),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    ]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total, info="", rate="")
        unit_name = unit or "it"

        def advance(n: int = 1, **fields: Any) -> None:
            bar.advance(task, n)
            speed = bar.tasks[0].speed
            extra = {"rate": f"{speed:,.1f} {unit_name}/s" if speed else ""}
            extra.update({k: str(v) for k, v in fields.items()})
            bar.update(task, **extra)

        yield advance


def track(
    iterable: Iterable[T], description: str, *, total: int | None = None, enabled: bool = True, unit: str = ""
) -> Iterator[T]:
    """Iterate ``iterable`` with a :func:`progress` bar (``total`` from ``len()`` when it has one).

    Parameters
    ----------
    iterable
        What to iterate.
    description
        Shown left of the bar.
    total
        Number of items (default: ``len(iterable)``).
    enabled
        ``False``: no bar.
    unit
        Name of one item, for the rate.
    """
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with progress(total, description, enabled=enabled, unit=unit) as advance:
        for item in iterable:
            yield item
            advance()
