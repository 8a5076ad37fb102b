"""Checks of a ``[distributed]`` table before any work (:func:`check_distributed`).

The scheduler must answer, and the cluster's options must be keyword arguments its class
takes; otherwise :class:`DistributedError`, one line.
"""

from __future__ import annotations

import asyncio
import difflib
import inspect
import re
import socket
import struct
from typing import TYPE_CHECKING, Any

from madnis_py.distributed.clusters import JOBQUEUE_CLUSTERS

if TYPE_CHECKING:
    from madnis_py.cards.run_card import DistributedSettings

__all__ = ["DistributedError", "check_distributed"]


class DistributedError(ValueError):
    """A ``[distributed]`` setting that cannot work, found before any work is done: one
    line naming the setting, what is wrong and what was expected."""


#: Address schemes of Dask's communication layer; a bare ``host:port`` is ``tcp``.
_SCHEMES = ("tcp", "tls", "inproc", "ucx", "ws", "wss")
_HOST_PORT = re.compile(r"^(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[^\[\]:/\s]+)):"
                        r"(?P<port>\d+)$")
_ADDRESS_FORM = ("expected 'tcp://host:port', such as 'tcp://127.0.0.1:8786'; also tls://, "
                 "ws://, wss://, ucx:// with host:port, or inproc://")


def _parse_scheduler(address: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of a scheduler address (``inproc``: the whole location,
    no port)."""
    what = f"[distributed] scheduler {address!r}"
    text = address.strip()
    scheme, sep, location = text.partition("://")
    if not sep:
        scheme, location = "tcp", text  # Dask's default protocol
    if scheme not in _SCHEMES:
        raise DistributedError(f"{what}: unknown protocol {scheme!r} ({_ADDRESS_FORM})")
    if scheme == "inproc":
        if not location:
            raise DistributedError(f"{what}: no location after inproc:// ({_ADDRESS_FORM})")
        return scheme, location, None
    match = _HOST_PORT.match(location)
    if match is None:
        raise DistributedError(f"{what}: not a scheduler address ({_ADDRESS_FORM})")
    port = int(match["port"])
    if not 1 <= port <= 65535:
        raise DistributedError(f"{what}: port {port} is out of range (expected 1 to "
                               "65535)")
    return scheme, match["ipv6"] or match["host"], port


async def _identity(address: str, timeout: float) -> Any:
    """The ``identity`` reply of the Dask server at ``address``."""
    from distributed.comm.core import connect

    comm = await connect(address, timeout=timeout)  # type: ignore[no-untyped-call]
    try:
        await comm.write({"op": "identity", "reply": True})
        return await asyncio.wait_for(comm.read(), timeout)
    finally:
        comm.abort()


def _check_scheduler(address: str, timeout: float) -> None:
    scheme, host, port = _parse_scheduler(address)
    what = f"[distributed] scheduler {address}"
    expected = ("expected the address of a running Dask scheduler (`dask scheduler` prints "
                "it), or a cluster to start, such as cluster = \"local\"")
    if scheme == "inproc":
        from distributed.comm.inproc import global_manager

        try:
            listener = global_manager.get_listener_for(host)  # type: ignore[no-untyped-call]
        except ValueError:
            listener = None
        if listener is None:
            raise DistributedError(f"{what}: no Dask scheduler answers (no such in-process "
                                   f"address in this process): {expected}")
        return
    if scheme == "ucx":
        return  # UCX endpoints need not listen on TCP: left to Dask
    greeting = b""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            if scheme == "tcp":
                greeting = _read_greeting(sock)
    except ConnectionRefusedError:
        reason = "connection refused"
    except socket.gaierror as err:
        reason = f"unknown host {host!r}: {err.strerror or err}"
    except _GreetingTimeout:
        reason = (f"something accepts connections on port {port} but sends no Dask "
                  f"greeting within {timeout:g} s")
    except TimeoutError:
        reason = f"no answer within {timeout:g} s"
    except OSError as err:
        reason = err.strerror or str(err) or type(err).__name__
    else:
        reason = ""
    if reason:
        raise DistributedError(f"{what}: no Dask scheduler answers ({reason}): {expected}")
    if scheme != "tcp":
        return  # tls/ws need the cluster's security settings to talk: left to Dask
    # Dask's TCP greeting: the byte count of the frames that follow, then their number,
    # each an unsigned 64-bit integer; the handshake is a few dozen bytes in one frame.
    total, n_frames = struct.unpack("<QQ", greeting)
    if not (8 < total <= 1 << 20 and 1 <= n_frames <= 64):
        raise DistributedError(f"{what}: no Dask scheduler answers (something listens on "
                               f"port {port} but does not speak Dask's protocol): "
                               f"{expected}")
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return  # inside an event loop: the greeting is all that is checked
    try:
        reply = asyncio.run(_identity(f"tcp://{_host_port(host, port)}", timeout))
    except Exception as err:
        raise DistributedError(f"{what}: no Dask scheduler answers (the server on port "
                               f"{port} does not answer Dask's identity request: "
                               f"{type(err).__name__}: "
                               f"{' '.join(str(err).split()) or 'no reply'}): "
                               f"{expected}") from err
    kind = reply.get("type") if isinstance(reply, dict) else None
    if kind != "Scheduler":
        raise DistributedError(f"{what}: a Dask {kind or 'server'} answers, not a "
                               f"scheduler: {expected}")


def _read_greeting(sock: socket.socket) -> bytes:
    """The first 16 bytes a server sends on a fresh connection (a Dask server sends its
    handshake without waiting for the client's)."""
    data = b""
    try:
        while len(data) < 16:
            chunk = sock.recv(16 - len(data))
            if not chunk:
                raise ConnectionResetError(f"the server on port {sock.getpeername()[1]} "
                                           "closed the connection without a greeting")
            data += chunk
    except TimeoutError as err:
        raise _GreetingTimeout() from err
    return data


class _GreetingTimeout(TimeoutError):
    """Connected, but the server sent no greeting in time."""


def _host_port(host: str, port: int | None) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _own_parameters(cls: type) -> list[str]:
    """The named keyword parameters of ``cls``'s own ``__init__`` (none if it has none)."""
    init = vars(cls).get("__init__")
    if init is None:
        return []
    return [p.name for p in inspect.signature(init).parameters.values()
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _chain_parameters(cls: type, base: type) -> list[str]:
    """Named parameters of the ``__init__`` of ``cls`` and of its bases up to ``base``."""
    out: list[str] = []
    for k in cls.__mro__:
        if isinstance(k, type) and issubclass(k, base):
            out += [n for n in _own_parameters(k) if n not in out]
    return out


def _cluster_keywords(settings: DistributedSettings) -> tuple[str, list[str], dict[str, str]]:
    """The cluster class's name, the keyword arguments it takes (with those it passes on
    through ``**kwargs``), and the keywords the run sets itself, each with why."""
    name = settings.cluster
    if name == "local":
        from distributed import LocalCluster, Nanny, Worker
        from distributed.core import Server

        # LocalCluster passes unknown keywords to its workers: Nanny (processes=True),
        # which passes them to Worker, which passes them to Server.
        valid: list[str] = []
        for cls in (LocalCluster, Nanny, Worker, Server):
            valid += [n for n in _own_parameters(cls) if n not in valid]
        # given by the cluster (the scheduler's address) or by Worker to Server
        internal = ("scheduler_ip", "handlers", "stream_handlers", "connection_args",
                    "needs_workdir")
        valid = [n for n in valid if n not in internal]
        why = "set by [distributed] workers"
        return "distributed.LocalCluster or of its workers, Nanny and Worker", valid, {
            "n_workers": why, "workers": why,
            "threads_per_worker": "one thread per worker process, set by madnis-py",
            "processes": "worker processes, set by madnis-py"}
    if name not in JOBQUEUE_CLUSTERS:
        known = ", ".join(repr(c) for c in ["local", *JOBQUEUE_CLUSTERS])
        raise DistributedError(f"[distributed] cluster: unknown cluster {name!r} (expected "
                               f"one of {known}, or a scheduler address)")
    try:
        import dask_jobqueue
        from dask_jobqueue.core import Job, JobQueueCluster
    except ImportError as err:
        raise DistributedError(f"[distributed] cluster = {name!r} needs dask-jobqueue, "
                               "which is not installed (expected: pip install "
                               "dask-jobqueue)") from err
    cls = getattr(dask_jobqueue, JOBQUEUE_CLUSTERS[name])
    # JobQueueCluster passes unknown keywords (**job_kwargs) to its job class, whose own
    # **kwargs go to dask_jobqueue.core.Job.
    valid = _chain_parameters(cls, JobQueueCluster)
    valid += [n for n in _chain_parameters(cls.job_cls, Job) if n not in valid]
    internal = ("job_cls", "scheduler", "name", "loop", "asynchronous")
    valid = [n for n in valid if n not in internal]
    return (f"dask_jobqueue.{JOBQUEUE_CLUSTERS[name]}", valid,
            {"n_workers": "set by [distributed] workers (the cluster is scaled to it)"})


def check_distributed(settings: DistributedSettings, *, timeout: float = 5.0) -> None:
    """Check a ``[distributed]`` table before any work, without starting a cluster.

    * ``scheduler``: the address must parse (``tcp://host:port``, ``tls://``,
      ``ws://``, ``wss://``, ``ucx://`` with ``host:port``, ``inproc://...``; a bare
      ``host:port`` is ``tcp``, as for Dask), and a server must accept a TCP connection
      within ``timeout`` seconds; for ``tcp`` it must answer Dask's ``identity`` request
      as a scheduler (``tls``/``ws`` need the cluster's security settings: only the
      connection is checked; ``ucx`` only parses; ``inproc`` must be listening in this
      process).
    * ``cluster``: ``dask.distributed`` (and for ``slurm``, ``htcondor``, ``pbs``
      ``dask-jobqueue``) must be installed, and every key of ``options`` must be a
      keyword argument of the cluster class: ``LocalCluster``'s own and those it passes
      to its workers (``Nanny``, ``Worker``), or ``JobQueueCluster``'s and those of the
      batch system's job class (``SLURMJob``, ... and ``dask_jobqueue.core.Job``), read
      from their signatures. Keys the run sets itself (``n_workers``, and for a local
      cluster ``threads_per_worker`` and ``processes``) are errors too. A batch cluster
      needs ``cores`` and ``memory``, in ``options`` or in the Dask configuration
      (``jobqueue.<system>.cores``).

    Raises
    ------
    DistributedError
        One line naming the setting, what is wrong (with a close valid keyword where
        there is one) and what was expected.
    """
    try:
        import distributed  # noqa: F401
    except ImportError as err:
        raise DistributedError("[distributed]: needs dask.distributed, which is not "
                               "installed (expected: pip install 'dask[distributed]' "
                               "dask-jobqueue)") from err
    if settings.scheduler is not None:
        _check_scheduler(settings.scheduler, timeout)
        return
    cls_name, valid, reserved = _cluster_keywords(settings)
    options = settings.options
    unknown = [k for k in options if k not in valid and k not in reserved]
    if unknown:
        parts = []
        for key in unknown:
            close = difflib.get_close_matches(key, [*valid, *reserved], n=1, cutoff=0.6)
            hint = ""
            if close:
                hint = f" (did you mean {close[0]!r}?" + (
                    f" it is {reserved[close[0]]})" if close[0] in reserved else ")")
            parts.append(f"{key!r}{hint}")
        noun = "key" if len(unknown) == 1 else "keys"
        raise DistributedError(
            f"[distributed] options: unknown {noun} {', '.join(parts)} (expected keyword "
            f"arguments of {cls_name}, as their documentation lists them)")
    clash = [k for k in options if k in reserved]
    if clash:
        raise DistributedError("[distributed] options: " + "; ".join(
            f"{k!r} is {reserved[k]}" for k in clash) + " (expected it left out of options)")
    if settings.cluster in JOBQUEUE_CLUSTERS:
        import dask.config

        missing = [k for k in ("cores", "memory") if k not in options
                   and dask.config.get(f"jobqueue.{settings.cluster}.{k}", None) is None]
        if missing:
            raise DistributedError(
                f"[distributed] options: {cls_name.split()[0]} needs {' and '.join(missing)} "
                "per job "
                f"(expected options = {{ {', '.join(f'{k} = ...' for k in missing)} }}, "
                f"such as cores = 4, memory = \"8GB\", or jobqueue.{settings.cluster}."
                f"{missing[0]} in the Dask configuration)")
