"""An optional rich progress bar (rich is in the [cli] extra; without it progress is silent)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(total: int, description: str, enabled: bool) -> Iterator[Callable[[], None]]:
    """Yield an ``advance()`` callable; draws a rich bar when ``enabled`` and rich is installed."""
    if not enabled:
        yield lambda: None
        return
    try:
        from rich.progress import Progress
    except ImportError:
        yield lambda: None
        return
    with Progress(transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)
