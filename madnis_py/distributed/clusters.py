"""Dask clusters from the run card's ``[distributed]`` table.

An existing scheduler, a ``LocalCluster`` of worker processes, or a batch-system cluster
of ``dask_jobqueue`` (SLURM, HTCondor, PBS): :func:`cluster_from_settings`, and
:func:`cluster_client` as a context that closes them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distributed import Client

    from madnis_py.cards.run_card import DistributedSettings

__all__ = ["JOBQUEUE_CLUSTERS", "cluster_client", "cluster_from_settings"]

#: The ``[distributed] cluster`` names and the ``dask_jobqueue`` class of each batch system.
JOBQUEUE_CLUSTERS: dict[str, str] = {"slurm": "SLURMCluster", "htcondor": "HTCondorCluster",
                                     "pbs": "PBSCluster"}


def cluster_from_settings(settings: DistributedSettings) -> tuple[Client, Any]:
    """A client for the run card's ``[distributed]`` table, and the cluster it started.

    ``scheduler = "tcp://host:8786"`` joins a running scheduler (the cluster is then
    ``None``: someone else owns it). ``cluster = "local"`` starts a ``LocalCluster`` of
    ``workers`` processes with one thread each; ``"slurm"``, ``"htcondor"`` and
    ``"pbs"`` start the ``dask_jobqueue`` cluster of that batch system with ``options``
    as its keyword arguments (``queue``, ``cores``, ``memory``, ``walltime``, ...) and
    scale it to ``workers`` workers. Close both when done (``client.close()``,
    ``cluster.close()``).

    Raises
    ------
    ValueError
        An unknown cluster name, or neither a scheduler nor a cluster.
    ImportError
        ``dask_jobqueue`` (or ``distributed``) is not installed; the message says how to
        install it.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as err:
        raise ImportError("[distributed] needs dask.distributed: pip install "
                          "'dask[distributed]' dask-jobqueue") from err
    if settings.scheduler is not None:
        return Client(settings.scheduler), None  # type: ignore[no-untyped-call]
    name = settings.cluster
    if name == "local":
        cluster: Any = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=settings.workers, threads_per_worker=1, processes=True,
            **settings.options)
        return Client(cluster), cluster  # type: ignore[no-untyped-call]
    if name not in JOBQUEUE_CLUSTERS:
        known = ", ".join(["local", *JOBQUEUE_CLUSTERS])
        raise ValueError(f"[distributed] cluster: unknown cluster {name!r} (expected one of "
                         f"{known}, or a scheduler address)")
    try:
        import dask_jobqueue
    except ImportError as err:
        raise ImportError(f"[distributed] cluster = {name!r} needs dask-jobqueue: pip "
                          "install dask-jobqueue") from err
    cluster = getattr(dask_jobqueue, JOBQUEUE_CLUSTERS[name])(**settings.options)
    try:
        cluster.scale(settings.workers)
        client = Client(cluster)  # type: ignore[no-untyped-call]
    except BaseException:
        cluster.close()
        raise
    return client, cluster


@contextmanager
def cluster_client(settings: DistributedSettings) -> Iterator[Client]:
    """:func:`cluster_from_settings` as a context: the client, closed with the cluster it
    started (if any) when the block ends.

    Examples
    --------
    >>> with cluster_client(card.distributed) as client:           # doctest: +SKIP
    ...     generate_sharded(card, checkpoint, 100_000, client, output=out)
    """
    client, cluster = cluster_from_settings(settings)
    try:
        yield client
    finally:
        client.close()  # type: ignore[no-untyped-call]
        if cluster is not None:
            cluster.close()
