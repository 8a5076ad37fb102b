"""Dask-distributed event generation and matrix elements (madnis_py.distributed).

One local cluster of two worker processes (one thread each) and one small trained
checkpoint of e+ e- -> q q~ g (four subprocesses) serve the whole module.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

distributed = pytest.importorskip("distributed")
pylhe = pytest.importorskip("pylhe")

from madnis_py.cards import DistributedSettings, RunCard, load_run_card  # noqa: E402
from madnis_py.cli import main  # noqa: E402
from madnis_py.distributed import (  # noqa: E402
    DistributedChannels,
    IntegrandSpec,
    cluster_client,
    cluster_from_settings,
    generate_sharded,
    merge_lhe_parts,
    shard_seed,
    split_events,
)
from madnis_py.events import LHEInit, LHEProcessInfo, LHEWriter, check_lhe, read_lhe  # noqa: E402
from madnis_py.events.unweight import effective_sample_size  # noqa: E402
from madnis_py.integrand import Integrand, TorchChannels  # noqa: E402
from madnis_py.training import Integrator  # noqa: E402

CARD = """
[run]
process = "ee_qqg"
seed = 3
nevents = 100

[training]
steps = 12
batch = 1024
vegas = false
warmup = 4

[integration]
points = 30000
iterations = 3

[unweighting]
max_weight = "quantile"
quantile = 0.995

[output]
lhe = "events.lhe.gz"
plots = false
"""

#: The run that the reproducibility and the worker-failure tests compare against.
N_EVENTS, SHARDS, BATCH = 6000, 6, 5000


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Any, Any]]:
    lc = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0")
    client = distributed.Client(lc)
    try:
        yield client, lc
    finally:
        client.close()
        lc.close()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunCard, Path]:
    """A card, the card read, and the checkpoint of ``madnis-py integrate`` on it."""
    root = tmp_path_factory.mktemp("trained")
    path = root / "card.toml"
    path.write_text(CARD)
    torch.set_num_threads(1)
    assert main(["integrate", str(path), "--output", str(root / "run"), "--quiet"]) == 0
    return path, load_run_card(path), root / "run" / "checkpoint.pt"


@pytest.fixture(scope="module")
def reference(cluster: tuple[Any, Any], trained: tuple[Path, RunCard, Path],
              tmp_path_factory: pytest.TempPathFactory) -> Any:
    _, card, checkpoint = trained
    out = tmp_path_factory.mktemp("reference")
    return generate_sharded(card, checkpoint, N_EVENTS, cluster[0], output=out,
                            shards=SHARDS, batch=BATCH)


def lines(path: Path) -> list[str]:
    return gzip.open(path, "rt").read().splitlines()


# ------------------------------------------------------------------------- helpers


def test_shard_seeds_are_deterministic_and_distinct() -> None:
    seeds = [shard_seed(3, i) for i in range(100)]
    assert seeds == [shard_seed(3, i) for i in range(100)]
    assert len(set(seeds)) == 100 and shard_seed(4, 0) != shard_seed(3, 0)
    assert all(isinstance(s, int) and 0 <= s < 2 ** 32 for s in seeds)
    with pytest.raises(ValueError, match="shard"):
        shard_seed(3, -1)
    with pytest.raises(ValueError, match="run_seed"):
        shard_seed(1.5, 0)  # type: ignore[arg-type]


def test_split_events_adds_up_exactly() -> None:
    assert split_events(10, 4) == [3, 3, 2, 2]
    assert split_events(2, 4) == [1, 1, 0, 0]
    for n, k in ((0, 3), (1, 1), (12345, 7)):
        parts = split_events(n, k)
        assert len(parts) == k and sum(parts) == n and max(parts) - min(parts) <= 1
    with pytest.raises(ValueError, match="shards"):
        split_events(10, 0)
    with pytest.raises(ValueError, match="n_events"):
        split_events(-1, 2)


def _events(writer: LHEWriter, rng: np.random.Generator, n: int) -> None:
    e = rng.uniform(10, 50, size=n)
    p = np.zeros((n, 4, 4))
    p[:, 0] = np.stack([e, 0 * e, 0 * e, e], axis=1)
    p[:, 1] = np.stack([e, 0 * e, 0 * e, -e], axis=1)
    p[:, 2] = np.stack([e, e, 0 * e, 0 * e], axis=1)
    p[:, 3] = np.stack([e, -e, 0 * e, 0 * e], axis=1)
    writer.write_batch(idup=[-11, 11, -13, 13], istup=[-1, -1, 1, 1],
                       mothup=[[0, 0], [0, 0], [1, 2], [1, 2]], icolup=np.zeros((4, 2)),
                       momenta=p, masses=np.zeros(4), weights=np.full(n, 2.5),
                       scales=np.full(n, 91.188), aqed=1 / 132.5, aqcd=0.118,
                       idprup=rng.integers(1, 3, size=n))


@pytest.mark.parametrize("name", ["all.lhe", "all.lhe.gz"])
def test_merged_parts_equal_one_writer_byte_for_byte(tmp_path: Path, name: str) -> None:
    init = LHEInit((-11, 11), (50.0, 50.0), 3,
                   [LHEProcessInfo(1.5, 0.1, 2.5, 1), LHEProcessInfo(1.0, 0.1, 2.5, 2)])
    sizes = [7, 0, 5]
    parts = []
    for i, n in enumerate(sizes):
        parts.append(tmp_path / f"part-{i}.lhe")
        with LHEWriter(parts[-1], init) as w:
            _events(w, np.random.default_rng(i), n)
    with LHEWriter(tmp_path / f"one-{name}", init, header="card = 'x' # <tag>") as w:
        for i, n in enumerate(sizes):
            _events(w, np.random.default_rng(i), n)
    merged = merge_lhe_parts(parts, tmp_path / name, init, header="card = 'x' # <tag>")
    assert merged.read_bytes() == (tmp_path / f"one-{name}").read_bytes()
    assert check_lhe(merged).n_events == 12
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    (tmp_path / "bad.lhe").write_text("<LesHouchesEvents>\n<init>\n")
    with pytest.raises(ValueError, match="bad.lhe"):
        merge_lhe_parts([tmp_path / "bad.lhe"], tmp_path / "x.lhe", init)
    assert not (tmp_path / "x.lhe").exists()


# ----------------------------------------------------------------- sharded generation


def test_sharded_generation_matches_single_process(cluster: tuple[Any, Any],
                                                   trained: tuple[Path, RunCard, Path],
                                                   tmp_path: Path) -> None:
    card_path, card, checkpoint = trained
    n = 3001  # not a multiple of the shards
    single = tmp_path / "single"
    assert main(["generate", str(card_path), "--checkpoint", str(checkpoint), "-n", str(n),
                 "--output", str(single), "--quiet"]) == 0
    seen: list[int] = []
    result = generate_sharded(card, checkpoint, n, cluster[0], output=tmp_path / "sharded",
                              shards=4, progress=lambda r: seen.append(r.shard))
    assert sorted(seen) == [0, 1, 2, 3]
    assert [r.n_events for r in result.shards] == [751, 750, 750, 750]
    assert [r.seed for r in result.shards] == [shard_seed(3, i) for i in range(4)]
    assert result.path == tmp_path / "sharded" / "events.lhe.gz"
    summary = json.loads((single / "summary.json").read_text())
    # the driver calibrates exactly as madnis-py generate does
    assert result.w_max == summary["max_weight"]
    assert result.sigma == summary["sigma_pb"]
    assert result.batch == 5000 and result.n_calls > n
    assert result.efficiency == pytest.approx(summary["efficiency"], rel=0.25)
    # the merged weight report: the reference side is the driver's calibration sample,
    # the very sample of madnis-py generate; ESS and largest weight from the shards' sums
    assert result.report is not None and result.calibration_calls == summary["calibration_calls"]
    merged = result.report.as_dict()
    for name in ("share_above", "eps_truncation", "eps_raw", "eps_quantile"):
        assert merged[name] == summary["weights"][name], name
    written = np.array([e.xwgtup for e in read_lhe(result.path)[1]])
    assert merged["ess"] == pytest.approx(effective_sample_size(written), rel=1e-12)
    assert merged["max_weight_ratio"] == pytest.approx(
        written.max() / (result.sigma * result.norm), rel=1e-14)

    one, many = check_lhe(single / "events.lhe.gz"), check_lhe(result.path)
    assert one.n_events == many.n_events == n == result.n_events
    assert (one.idbmup, one.ebmup, one.idwtup) == (many.idbmup, many.ebmup, many.idwtup)
    assert sum(many.xsecup) == pytest.approx(sum(one.xsecup), rel=1e-12)
    assert sum(many.xsecup) == pytest.approx(result.sigma, rel=1e-12)
    # per subprocess: both are sigma times the share of events, equal within errors
    a = {p.lprup: p for p in one.processes}
    b = {p.lprup: p for p in many.processes}
    assert set(a) == set(b) == {1, 2, 3, 4}
    for k in a:
        assert abs(a[k].xsecup - b[k].xsecup) < 4 * np.hypot(a[k].xerrup, b[k].xerrup)
    # the <init> follows the events summed over the shards
    init, events = read_lhe(result.path)
    idprup = np.bincount([e.idprup for e in events], minlength=5)[1:]
    assert idprup.tolist() == result.subprocess_events
    assert [p.xsecup for p in init.processes] == pytest.approx(
        [result.sigma * c / n for c in result.subprocess_events], rel=1e-12)
    assert max(p.xmaxup for p in init.processes) == max(
        max(r.max_weights) for r in result.shards)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lhef = pylhe.LHEFile.fromfile(result.path)
        read = list(lhef.events)
    # the Z of the Z channels (sqrt s = MZ) is written as a resonance
    assert len(read) == n and all(len(e.particles) in (5, 6) for e in read)
    assert lhef.init.initInfo.weightingStrategy == one.idwtup
    text = lines(result.path)
    assert "<MadNISRunCard>" in text and text.count("</init>") == 1
    assert sorted(p.name for p in (tmp_path / "sharded").iterdir()) == ["events.lhe.gz"]


def test_same_seed_and_shards_give_identical_files(cluster: tuple[Any, Any],
                                                   trained: tuple[Path, RunCard, Path],
                                                   reference: Any, tmp_path: Path) -> None:
    _, card, checkpoint = trained
    again = generate_sharded(card, checkpoint, N_EVENTS, cluster[0], output=tmp_path,
                             shards=SHARDS, w_max=reference.w_max, norm=reference.norm,
                             channel_maxima=reference.channel_maxima, batch=BATCH)
    assert again.path.read_bytes() == reference.path.read_bytes()
    assert check_lhe(again.path).n_events == N_EVENTS
    # a shard's events follow from its seed: another split gives other events
    other = generate_sharded(card, checkpoint, 50, cluster[0], output=tmp_path / "o",
                             shards=2, w_max=reference.w_max, norm=reference.norm,
                             batch=BATCH)
    assert other.n_events == 50 and check_lhe(other.path).n_events == 50
    body = lines(reference.path)[lines(reference.path).index("</init>") + 1:][:30]
    assert body != lines(other.path)[lines(other.path).index("</init>") + 1:][:30]


def test_bad_requests_name_the_input(cluster: tuple[Any, Any],
                                     trained: tuple[Path, RunCard, Path],
                                     tmp_path: Path) -> None:
    _, card, checkpoint = trained
    with pytest.raises(ValueError, match="shards"):
        generate_sharded(card, checkpoint, 10, cluster[0], output=tmp_path, shards=0)
    with pytest.raises(ValueError, match="w_max"):
        generate_sharded(card, checkpoint, 10, cluster[0], output=tmp_path, w_max=-1.0)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        generate_sharded(card, tmp_path / "missing.pt", 10, cluster[0], output=tmp_path)


def test_a_worker_killed_mid_shard_changes_nothing(cluster: tuple[Any, Any],
                                                   trained: tuple[Path, RunCard, Path],
                                                   reference: Any, tmp_path: Path) -> None:
    client, _ = cluster
    _, card, checkpoint = trained
    pids = client.run(os.getpid)
    parts = tmp_path / "parts"
    victim = shard = None
    key_killed = ""

    def executing(dask_worker: Any) -> list[str]:
        return [str(ts.key) for ts in dask_worker.state.executing
                if str(ts.key).startswith("madnis-shard-")]

    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(generate_sharded, card, checkpoint, N_EVENTS, client,
                              output=tmp_path, shards=SHARDS, w_max=reference.w_max,
                              norm=reference.norm, channel_maxima=reference.channel_maxima,
                              batch=BATCH)
        deadline = time.monotonic() + 60
        while victim is None and time.monotonic() < deadline and not running.done():
            for addr, keys in client.run(executing).items():
                for key in keys:
                    i = int(key.split("-")[2])
                    if victim is None and not (parts / f"part-{i:04d}.lhe").exists():
                        victim, shard, key_killed = addr, i, key
            time.sleep(0.01)
        assert victim is not None and shard is not None, "no shard was seen running"
        os.kill(pids[victim], signal.SIGKILL)  # as the OOM killer or a lost node would
        result = running.result(timeout=180)
    # the scheduler ran the shard again after its worker died (mid-shard, the usual case;
    # or, if it had just finished, to recompute the result lost with the worker) ...
    story = [tuple(t) for t in client.run_on_scheduler(lambda dask_scheduler: [
        t[1:3] for t in dask_scheduler.story(key_killed)])]
    assert sum(finish == "processing" for _, finish in story) >= 2, story
    if ("processing", "released") in story:
        assert result.shards[shard].worker not in ("", victim)
    assert victim not in client.run(os.getpid)
    # ... and the file is the undisturbed one
    assert result.path.read_bytes() == reference.path.read_bytes()
    assert check_lhe(result.path).n_events == N_EVENTS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.lhe.gz"]
    client.wait_for_workers(2, timeout=60)  # the nanny restarted the killed worker


# ------------------------------------------------------- distributed matrix elements


@pytest.mark.parametrize("layout", ["shared", "grouped"])
def test_distributed_channels_evaluate_as_one_process(cluster: tuple[Any, Any],
                                                      layout: str) -> None:
    client, _ = cluster
    # proton beams: the PDF must travel by name; the channel layout with the options
    integrand = Integrand("drell_yan", subprocess_channels=layout)
    local = TorchChannels(integrand)
    remote = DistributedChannels(integrand, client, min_chunk=100)
    assert remote.spec == IntegrandSpec.from_integrand(integrand)
    assert (remote.n_channels, remote.feature_dims) == (local.n_channels, local.feature_dims)
    assert remote.channel_groups == tuple(local.channel_groups)
    assert remote.n_channels == (2 if layout == "shared" else 8)
    described = DistributedChannels(IntegrandSpec.from_integrand(integrand), client)
    assert (described.n_channels, described.channel_groups) == (remote.n_channels,
                                                                remote.channel_groups)
    gen = torch.Generator().manual_seed(0)
    for c in range(local.n_channels):
        x = torch.rand(1001, local.dims(c), dtype=torch.float64, generator=gen)
        for ours, theirs in zip(remote(x, c), local(x, c), strict=True):
            assert theirs is not None and ours is not None
            assert ours.dtype == theirs.dtype == torch.float64
            assert torch.equal(ours, theirs)
    f, features, prior = remote(torch.zeros(0, local.dims(0), dtype=torch.float64), 0)
    assert f.shape == (0,) and features.shape == (0, local.feature_dims)
    assert prior is not None and prior.shape == (0, local.n_channels)
    with pytest.raises(ValueError, match="shape"):
        remote(torch.zeros(4, local.dims(0) + 1, dtype=torch.float64), 0)
    with pytest.raises(IndexError, match="channel 9"):
        remote(torch.zeros(4, local.dims(0), dtype=torch.float64), 9)
    with pytest.raises(TypeError, match="source"):
        DistributedChannels(3.0, client)


def test_an_integrand_spec_keeps_the_channel_prior() -> None:
    """Workers build the integrand with the run's channel prior (the propagators, from
    a MadGraph sde_strategy = 2), from the integrand as from the card."""
    integrand = Integrand("drell_yan", channel_prior="propagators")
    spec = IntegrandSpec.from_integrand(integrand)
    assert spec.build().fingerprint() == integrand.fingerprint()
    assert IntegrandSpec.from_integrand(Integrand("drell_yan")).build().channel_prior == \
        "amplitudes"


def test_distributed_training_reproduces_one_process(cluster: tuple[Any, Any],
                                                     trained: tuple[Path, RunCard, Path]
                                                     ) -> None:
    client, _ = cluster
    card = trained[1]
    spec = IntegrandSpec.from_card(card)

    def run(channels: Any) -> tuple[list[float], Any, Any]:
        torch.manual_seed(11)  # the flows' initialisation
        mc = Integrator(channels, feature_dims=channels.feature_dims, seed=11, warmup=2)
        mc.pretrain_vegas(nitn=2, neval=500)
        losses = mc.train(5, batch=600)
        return losses, mc.integrate(4000), mc.history

    local = run(TorchChannels(spec.build()))
    remote_channels = DistributedChannels(spec, client, min_chunk=64)
    assert remote_channels.chunks == 2
    remote = run(remote_channels)
    assert remote[0] == local[0]  # bitwise: same points, same integrand values
    assert remote[1] == local[1]
    assert remote[2].value == local[2].value and remote[2].rel_std == local[2].rel_std
    # the integrand was built on the workers (once each, cached), not shipped
    cached = client.run(lambda: spec in __import__("madnis_py.distributed.specs").distributed
                        .specs._INTEGRANDS)
    assert any(cached.values())


# --------------------------------------------------------------------------- clusters


def test_cluster_from_settings(cluster: tuple[Any, Any],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    _, lc = cluster
    client, none = cluster_from_settings(DistributedSettings(scheduler=lc.scheduler_address,
                                                             cluster=None))
    try:
        assert none is None and len(client.scheduler_info()["workers"]) >= 1
    finally:
        client.close()
    with cluster_client(DistributedSettings(cluster="local", workers=1,
                                            options={"dashboard_address": ":0"})) as client:
        info = client.scheduler_info()["workers"]
        assert len(info) == 1 and [w["nthreads"] for w in info.values()] == [1]
        assert client.scheduler_info()["address"] != lc.scheduler_address
    assert client.status == "closed"
    with pytest.raises(ValueError, match="'kubernetes'.*local, slurm, htcondor, pbs"):
        cluster_from_settings(DistributedSettings(cluster="kubernetes"))  # type: ignore[arg-type]

    made: dict[str, Any] = {}

    class FakeSLURM:
        def __init__(self, **options: Any) -> None:
            made["options"] = options

        def scale(self, n: int) -> None:
            made["scale"] = n

    import dask_jobqueue

    monkeypatch.setattr(dask_jobqueue, "SLURMCluster", FakeSLURM)
    monkeypatch.setattr(distributed, "Client", lambda c: ("client of", c))
    client, slurm = cluster_from_settings(DistributedSettings(
        cluster="slurm", workers=8, options={"queue": "short", "cores": 4}))
    assert isinstance(slurm, FakeSLURM) and client == ("client of", slurm)
    assert made == {"options": {"queue": "short", "cores": 4}, "scale": 8}


def test_a_sharded_generate_counts_its_calls_and_reports_its_weights(
        cluster: tuple[Any, Any], trained: tuple[Path, RunCard, Path], tmp_path: Path
        ) -> None:
    card_path, _, checkpoint = trained
    out = tmp_path / "gen"
    assert main(["generate", str(card_path), "--checkpoint", str(checkpoint), "-n", "400",
                 "--output", str(out), "--scheduler", cluster[1].scheduler_address,
                 "--shards", "3", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    steps = summary["calls_by_step"]
    assert set(steps) == {"calibration", "shards"} and steps["shards"] > 0
    assert summary["calls"] == sum(steps.values()) == summary["generation_calls"]
    assert summary["calibration_calls"] == steps["calibration"]
    assert summary["calls_per_event"] == summary["calls"] / 400
    assert summary["shards"] == 3
    written = np.array([e.xwgtup for e in read_lhe(out / "events.lhe.gz")[1]])
    assert summary["weights"]["ess"] == pytest.approx(effective_sample_size(written),
                                                      rel=1e-12)


def test_a_shard_draws_at_least_200_points_per_channel() -> None:
    from madnis_py.distributed.generation import shard_batch

    # few channels: half the shard's events, between 5,000 and 20,000
    assert [shard_batch(n, 2) for n in (100, 751, 30_000, 10**6)] == [5_000, 5_000, 15_000,
                                                                      20_000]
    # many: a draw's fixed cost per channel is amortised over 200 points each
    assert shard_batch(751, 48) == 9_600 and shard_batch(10**6, 1464) == 292_800
