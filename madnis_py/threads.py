"""CPU thread defaults that hold on a shared machine.

Measured (``benchmarks/bench_threads.py``, results in ``benchmarks/RESULTS.md``): the
batches of a run (a few thousand to 10^5 points, small subnets, a single-threaded
matrix-element library) gain little from torch's intra-op threads on an idle machine,
and on a loaded one torch's OpenMP threads spin-wait for cores that are busy, which made
whole runs many times slower than one thread with bit-for-bit the same result. A run
therefore uses one thread unless asked for more; parallelism across cores is the Dask
workers' job (one thread each).
"""

from __future__ import annotations

import os

import torch

__all__ = ["THREADS_ENV", "configure_threads", "default_threads"]

THREADS_ENV = "MADNIS_PY_THREADS"
"""Environment variable naming the thread count when neither the card nor the command does."""


def default_threads() -> int:
    """The thread count a run uses when it is not given one.

    ``MADNIS_PY_THREADS`` when set, else ``OMP_NUM_THREADS`` when set (the user chose),
    else 1.

    Raises
    ------
    ValueError
        When the variable is set to something that is not a positive integer, naming it.
    """
    for name in (THREADS_ENV, "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value:
            try:
                n = int(value)
            except ValueError:
                raise ValueError(f"{name}={value!r} is not a positive integer") from None
            if n < 1:
                raise ValueError(f"{name}={value!r} is not a positive integer")
            return n
    return 1


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads (which the compiled kernels follow) for this process.

    Parameters
    ----------
    threads : int, optional
        Threads to use; default :func:`default_threads`.

    Returns
    -------
    int
        The thread count now in effect.
    """
    n = default_threads() if threads is None else int(threads)
    if n < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
