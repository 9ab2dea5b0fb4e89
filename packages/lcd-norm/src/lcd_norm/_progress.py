"""Optional rich progress bars (rich lives in the [cli] extra; without it work runs silently)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def progress_bar(description: str, total: int, enabled: bool) -> Iterator:
    """Yield an ``advance()`` callable; shows a rich bar when ``enabled`` and rich is installed."""
    if enabled:
        try:
            from rich.progress import Progress
        except ImportError:
            enabled = False
    if not enabled:
        yield lambda n=1: None
        return
    with Progress(transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
