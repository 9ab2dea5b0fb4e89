"""Run the many small BLAS calls of probe fitting on one thread.

The probes are small (hundreds of wells × hundreds of features): multi-threaded BLAS gains nothing
there and, on a busy machine, thread oversubscription made a single fit ~30× slower in our
measurements (packages/lcd-moa/README.md). Results do not depend on the thread count.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def single_thread_blas() -> Iterator[None]:
    """Limit BLAS/OpenMP pools to one thread for the duration of the block."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield
