"""Optional rich progress bar (rich lives in the `cli` extra; without it progress is silent)."""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def progress(total: int, description: str, enabled: bool) -> Iterator[Callable[[int], None]]:
    """Yield an `advance(n)` callable; draws a rich bar on stderr when enabled and rich is installed."""
    if not enabled or importlib.util.find_spec("rich") is None:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
