"""Distributed matrix elements during training (:class:`DistributedChannels`).

The flows train on the driver; only the integrand (phase-space mapping, PDFs and matrix
element) is evaluated on the workers, on chunks of each batch, and reassembled in
order. The evaluation is deterministic per point, so a training gives the same losses
and integral as in one process for the same seed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from madnis_py.distributed.specs import (
    _LOCK,
    IntegrandSource,
    IntegrandSpec,
    _spec_of,
    _worker_integrand,
)

if TYPE_CHECKING:
    import torch
    from distributed import Client

__all__ = ["DistributedChannels"]


def _describe_channels(spec: IntegrandSpec) -> tuple[int, list[int], int, tuple[int, ...]]:
    from madnis_py.integrand import TorchChannels

    with _LOCK:
        channels = TorchChannels(_worker_integrand(spec)[0])
    n = channels.n_channels
    return (n, [channels.dims(i) for i in range(n)], channels.feature_dims,
            tuple(channels.channel_groups))


def _evaluate_chunk(spec: IntegrandSpec, x: np.ndarray,
                    channel: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``TorchChannels(integrand)(x, channel)`` on a worker, as numpy arrays (the same code
    path as in one process, so the same numbers)."""
    import torch

    from madnis_py.integrand import TorchChannels

    with _LOCK:
        f, features, prior = TorchChannels(_worker_integrand(spec)[0])(torch.from_numpy(x),
                                                                       channel)
    return f.numpy(), features.numpy(), None if prior is None else prior.numpy()


class DistributedChannels:
    """A multi-channel integrand whose evaluations run on Dask workers.

    It implements the protocol of :class:`~madnis_py.training.Integrator`
    (``n_channels``, ``dims(channel)``, ``feature_dims`` and
    ``(x, channel) -> (f, features, prior)`` on torch float64 points), splitting every
    batch into chunks that workers evaluate with their cached
    :class:`~madnis_py.integrand.Integrand` and putting the results back in order. The
    flows, the optimiser and the random numbers stay on the driver, so with the same seed
    a training gives the same losses and integral as with ``TorchChannels``.

    Parameters
    ----------
    source : IntegrandSpec, RunCard, Integrand, TorchChannels or str
        The integrand: a spec, a run card's, an existing integrand's recipe (rebuilt on
        the workers, never shipped), or a process name or path with its card's defaults.
    client : distributed.Client
        Client of the cluster that evaluates.
    chunks : int, optional
        Tasks per batch (default: the number of workers when constructed).
    min_chunk : int
        Fewest points per task: smaller batches use fewer tasks, since a task round trip
        costs a few milliseconds.
    retries : int
        Dask ``retries`` of each task (a lost worker is handled by the scheduler anyway).

    Examples
    --------
    >>> channels = DistributedChannels(card, client)                 # doctest: +SKIP
    >>> mc = Integrator(channels, feature_dims=channels.feature_dims, seed=1)
    >>> mc.train(100, batch=4096)
    """

    def __init__(self, source: IntegrandSource, client: Client, *, chunks: int | None = None,
                 min_chunk: int = 256, retries: int = 1) -> None:
        from madnis_py.integrand import Integrand, TorchChannels

        if chunks is not None and chunks < 1:
            raise ValueError(f"chunks must be >= 1, got {chunks}")
        if min_chunk < 1:
            raise ValueError(f"min_chunk must be >= 1, got {min_chunk}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.spec = _spec_of(source)
        self.client = client
        if chunks is None:
            chunks = max(1, len(client.scheduler_info().get("workers", {})))
        self.chunks = int(chunks)
        self.min_chunk = int(min_chunk)
        self.retries = int(retries)
        local = (TorchChannels(source) if isinstance(source, Integrand)
                 else source if isinstance(source, TorchChannels) else None)
        if local is not None:
            n = local.n_channels
            self._dims = [local.dims(i) for i in range(n)]
            self.feature_dims = local.feature_dims
            self.channel_groups = tuple(local.channel_groups)
        else:  # only the workers load the library
            n, self._dims, self.feature_dims, self.channel_groups = client.submit(
                _describe_channels, self.spec, pure=False).result()
        self.n_channels = n

    def dims(self, channel: int) -> int:
        return self._dims[channel]

    def __call__(self, x: torch.Tensor,
                 channel: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        import torch

        if not 0 <= channel < self.n_channels:
            raise IndexError(f"channel {channel}: the integrand has {self.n_channels} "
                             "channels")
        points = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != self._dims[channel]:
            raise ValueError(f"x must have shape (n, {self._dims[channel]}) for channel "
                             f"{channel}, got {tuple(points.shape)}")
        n = len(points)
        if n == 0:
            return (torch.zeros(0).to(x), torch.zeros(0, self.feature_dims).to(x),
                    torch.zeros(0, self.n_channels).to(x))
        k = max(1, min(self.chunks, n // self.min_chunk))
        pieces = np.array_split(points, k)
        futures = self.client.map(_evaluate_chunk, [self.spec] * k, pieces, [channel] * k,
                                  pure=False, retries=self.retries)
        parts = self.client.gather(futures)  # type: ignore[no-untyped-call]
        f = np.concatenate([p[0] for p in parts])
        features = np.concatenate([p[1] for p in parts])
        priors = [p[2] for p in parts]
        prior = (None if any(p is None for p in priors)
                 else torch.from_numpy(np.concatenate(priors)).to(x))
        return torch.from_numpy(f).to(x), torch.from_numpy(features).to(x), prior
