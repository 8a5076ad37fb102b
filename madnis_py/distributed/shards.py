"""Seeds and event counts of the shards of a sharded generation.

Each shard draws its events with its own seed (:func:`shard_seed`), statistically
independent of the other shards' and of the same shard's in other runs, and the event
counts of the shards add up to the request exactly (:func:`split_events`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["shard_seed", "split_events"]


def shard_seed(run_seed: int, shard: int) -> int:
    """The seed of shard ``shard`` of a run seeded with ``run_seed``.

    Drawn from ``numpy.random.SeedSequence([run_seed, shard])``, so that shards of one
    run, and the same shard of different runs, get statistically independent streams
    (consecutive integers as seeds would not guarantee that for every generator).

    Raises
    ------
    ValueError
        ``run_seed`` or ``shard`` is not a non-negative integer.
    """
    for name, value in (("run_seed", run_seed), ("shard", shard)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(np.random.SeedSequence([int(run_seed), int(shard)]).generate_state(1)[0])


def split_events(n_events: int, shards: int) -> list[int]:
    """``n_events`` split into ``shards`` counts that differ by at most one and add up
    exactly (the first ``n_events % shards`` shards take one more).

    Raises
    ------
    ValueError
        ``n_events < 0`` or ``shards < 1``.
    """
    if n_events < 0:
        raise ValueError(f"n_events must be >= 0, got {n_events}")
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    base, extra = divmod(int(n_events), int(shards))
    return [base + (1 if i < extra else 0) for i in range(shards)]
