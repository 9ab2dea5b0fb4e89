"""Thread policy for small numeric kernels.

Multithreaded BLAS pays a start-up cost on every call; for the many small products of the LCD
kernels (a 31 x 384 GEMM per mAP-ES draw group, a 300 x 300 probe fit) the threads cannot be used and
on a busy machine they made runs several times slower (lcd-metrics and lcd-moa READMEs). A kernel
that knows its sizes asks for one thread; large products keep the library's default. Results do not
depend on the thread count (tested per package).

threadpoolctl is optional here (the packages that use this declare it); without it the limit is a
no-op.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator

#: Below this many floating-point operations per call a product is run on one thread.
SMALL_WORK_FLOPS = 2.0e7


@contextlib.contextmanager
def blas_threads(limit: int | None) -> Iterator[None]:
    """Limit BLAS/OpenMP pools to ``limit`` threads inside the block (``None``: leave them as they are).

    Parameters
    ----------
    limit
        Threads for BLAS/OpenMP inside the block; ``None`` leaves them unchanged.
    """
    if limit is None or importlib.util.find_spec("threadpoolctl") is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=int(limit)):
        yield


def threads_for(flops_per_call: float) -> int | None:
    """One thread for products smaller than :data:`SMALL_WORK_FLOPS`, else ``None`` (library default).

    Parameters
    ----------
    flops_per_call
        Floating-point operations of one call of the kernel.
    """
    return 1 if flops_per_call < SMALL_WORK_FLOPS else None
