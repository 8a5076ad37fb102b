"""check_distributed: a [distributed] table that cannot work fails in seconds, before
any training, with one line naming the setting (not after the training plus Dask's
30 s connect timeout, nor as 'Nanny failed to start' after a hundred log lines)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from madnis_py.cards import DistributedSettings
from madnis_py.distributed import DistributedError, check_distributed

distributed = pytest.importorskip("distributed")


def scheduler(address: str) -> DistributedSettings:
    return DistributedSettings(scheduler=address, cluster=None)


def error_of(settings: DistributedSettings, timeout: float = 5.0) -> str:
    with pytest.raises(DistributedError) as info:
        check_distributed(settings, timeout=timeout)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_it_is_a_value_error() -> None:
    assert issubclass(DistributedError, ValueError)


@pytest.mark.parametrize("address,fragment", [
    ("notanaddress", "not a scheduler address"),
    ("tcp://host", "not a scheduler address"),
    ("tcp://host:port", "not a scheduler address"),
    ("http://127.0.0.1:8786", "unknown protocol 'http'"),
    ("tcp://127.0.0.1:70000", "port 70000 is out of range"),
    ("inproc://", "no location after inproc://"),
])
def test_an_address_that_does_not_parse(address: str, fragment: str) -> None:
    message = error_of(scheduler(address))
    assert message.startswith(f"[distributed] scheduler {address!r}: {fragment}"), message
    assert "expected 'tcp://host:port'" in message or "expected 1 to 65535" in message


def test_a_refused_port_answers_within_the_timeout() -> None:
    t0 = time.perf_counter()
    message = error_of(scheduler("tcp://127.0.0.1:1"))
    assert time.perf_counter() - t0 < 10
    assert message.startswith("[distributed] scheduler tcp://127.0.0.1:1: no Dask scheduler "
                              "answers (connection refused)"), message


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and says nothing."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        yield srv.getsockname()[1]


def test_a_server_that_is_not_dask_is_found_within_the_timeout(silent_server: int) -> None:
    t0 = time.perf_counter()
    message = error_of(scheduler(f"tcp://127.0.0.1:{silent_server}"), timeout=1.0)
    assert time.perf_counter() - t0 < 10
    assert "no Dask scheduler answers (something accepts connections" in message, message
    assert "no Dask greeting within 1 s" in message


def test_an_unknown_inproc_address() -> None:
    message = error_of(scheduler("inproc://192.0.2.2/1/1"))
    assert "no such in-process address" in message


def test_a_running_scheduler_passes_and_a_worker_does_not() -> None:
    cluster = distributed.LocalCluster(n_workers=1, processes=False, protocol="tcp://",
                                       dashboard_address=None)
    try:
        address = cluster.scheduler_address
        assert address.startswith("tcp://")
        check_distributed(scheduler(address))
        check_distributed(scheduler(address.removeprefix("tcp://")))  # Dask's default
        worker = next(iter(cluster.scheduler_info["workers"]))
        message = error_of(scheduler(worker))
        assert "a Dask Worker answers, not a scheduler" in message, message
    finally:
        cluster.close()


def test_unknown_local_cluster_options_are_listed_with_suggestions() -> None:
    message = error_of(DistributedSettings(options={
        "memory_limt": "2GB", "dashboard_adress": None, "frobnicate": 1}))
    assert message.startswith("[distributed] options: unknown keys 'memory_limt' (did you "
                              "mean 'memory_limit'?), 'dashboard_adress' (did you mean "
                              "'dashboard_address'?), 'frobnicate' (expected keyword "
                              "arguments of distributed.LocalCluster"), message


def test_options_the_run_sets_itself_are_errors() -> None:
    message = error_of(DistributedSettings(options={"n_workers": 3}))
    assert "'n_workers' is set by [distributed] workers" in message
    message = error_of(DistributedSettings(options={"threads_per_worker": 2}))
    assert "'threads_per_worker' is one thread per worker process" in message


def test_valid_local_cluster_options_pass_without_starting_a_cluster() -> None:
    t0 = time.perf_counter()
    # LocalCluster's own keywords and those it passes to Nanny and Worker
    check_distributed(DistributedSettings(options={
        "dashboard_address": None, "memory_limit": "2GB", "lifetime": "1h",
        "silence_logs": 40, "local_directory": "/tmp"}))
    check_distributed(DistributedSettings())
    assert time.perf_counter() - t0 < 5


def test_an_unknown_cluster_name() -> None:
    message = error_of(DistributedSettings(cluster="kubernetes"))  # type: ignore[arg-type]
    assert "[distributed] cluster: unknown cluster 'kubernetes'" in message


def test_jobqueue_options() -> None:
    pytest.importorskip("dask_jobqueue")
    good = {"queue": "short", "cores": 4, "memory": "8GB", "walltime": "01:00:00",
            "job_extra_directives": ["--exclusive"], "account": "me"}
    check_distributed(DistributedSettings(cluster="slurm", options=good))
    message = error_of(DistributedSettings(cluster="slurm",
                                           options={**good, "wall_time": "01:00:00"}))
    assert message.startswith("[distributed] options: unknown key 'wall_time' (did you "
                              "mean 'walltime'?) (expected keyword arguments of "
                              "dask_jobqueue.SLURMCluster"), message
    check_distributed(DistributedSettings(cluster="pbs", options={
        "cores": 1, "memory": "1GB", "resource_spec": "select=1:ncpus=1"}))
    check_distributed(DistributedSettings(cluster="htcondor", options={
        "cores": 1, "memory": "1GB", "disk": "1GB"}))
    message = error_of(DistributedSettings(cluster="htcondor", options={
        "cores": 1, "memory": "1GB", "disk": "1GB", "queue": "short"}))
    assert "unknown key 'queue'" in message  # a SLURM/PBS keyword, not HTCondor's


def test_jobqueue_needs_cores_and_memory() -> None:
    pytest.importorskip("dask_jobqueue")
    import dask.config

    with dask.config.set({"jobqueue.slurm.cores": None, "jobqueue.slurm.memory": None}):
        message = error_of(DistributedSettings(cluster="slurm", options={"queue": "q"}))
    assert "dask_jobqueue.SLURMCluster needs cores and memory per job" in message, message
