"""The channel layouts: madevent's channels per matrix element against shared ones."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from madnis_py.integrand import Integrand
from madnis_py.physics.channels import ChannelLayout
from madnis_py.physics.process import Subprocess

# g u and g c share a matrix element, their mirrors another; u u~ has a third; the
# first and third diagrams of g u share topology 0
SUBPROCESSES = [
    Subprocess((21, 2, 11, -11, 2), diagram_channels=(0, 1, 0), matrix_element="gu"),
    Subprocess((2, 21, 11, -11, 2), diagram_channels=(0, 2, -1), mirror=True,
               matrix_element="gu"),
    Subprocess((21, 4, 11, -11, 4), diagram_channels=(0, 1, 0), matrix_element="gu"),
    Subprocess((2, -2, 11, -11, 21), diagram_channels=(3, 1), matrix_element="uux"),
]


def test_grouped_channels_follow_the_matrix_elements() -> None:
    layout = ChannelLayout.of(SUBPROCESSES, 4, "grouped")
    assert layout.groups == ((0, 2), (1,), (3,))
    # per group, the topologies its diagrams reach, in order
    assert layout.topology == (0, 1, 0, 2, 1, 3)
    assert layout.group == (0, 0, 1, 1, 2, 2)
    assert layout.channels_of(1) == (2, 3)
    assert layout.columns == ((0, 1, 0), (2, 3, -1), (0, 1, 0), (5, 4))


def test_shared_channels_are_the_topologies() -> None:
    layout = ChannelLayout.of(SUBPROCESSES, 4, "shared")
    assert layout.groups == ((0, 1, 2, 3),)
    assert layout.topology == (0, 1, 2, 3) and layout.group == (0, 0, 0, 0)
    assert layout.columns == ((0, 1, 0), (0, 2, -1), (0, 1, 0), (3, 1))
    # subprocesses without a matrix-element name form one group: the same channels
    unnamed = [Subprocess(s.pdgs, diagram_channels=s.diagram_channels, mirror=s.mirror)
               for s in SUBPROCESSES]
    assert ChannelLayout.of(unnamed, 4, "grouped") == layout
    with pytest.raises(ValueError, match="subprocess_channels must be one of grouped, "
                                         "shared, got 'madevent'"):
        ChannelLayout.of(SUBPROCESSES, 4, "madevent")


@pytest.fixture(scope="module")
def drell_yan() -> tuple[Integrand, Integrand]:
    options = {"sqrt_s": 13000.0, "dynamical_scale_choice": 4, "cuts": {"mmll": 50.0},
               "pdf": "LHToyPDF"}
    return (Integrand("drell_yan", **options),
            Integrand("drell_yan", subprocess_channels="grouped", **options))


def test_the_groups_add_up_to_the_shared_integrand(
        drell_yan: tuple[Integrand, Integrand]) -> None:
    # the same points of a topology in every group's channel of it: their f add up to
    # the shared channel's, their subprocess parts are the shared ones, and each group's
    # prior sums to one over its own channels wherever its f is not zero
    shared, grouped = drell_yan
    assert shared.n_channels == 2 and grouped.n_channels == 8
    assert len(grouped.layout.groups) == 4
    rng = np.random.default_rng(11)
    for t in range(shared.n_channels):
        x = rng.random((4000, shared.dims(t)))
        whole = shared(x, t, details=True)
        total = np.zeros(len(x))
        parts = np.zeros_like(whole.subprocess_f)
        for c in [c for c in range(grouped.n_channels) if grouped.layout.topology[c] == t]:
            b = grouped(x, c, details=True)
            total += b.f
            parts += b.subprocess_f
            mine = list(grouped.layout.channels_of(grouped.layout.group[c]))
            others = np.setdiff1d(np.arange(grouped.n_channels), mine)
            assert np.all(b.prior[:, others] == 0)
            np.testing.assert_allclose(b.prior[b.f > 0][:, mine].sum(axis=1), 1.0,
                                       rtol=1e-14)
            # the compact prior is the group's columns, bit for bit
            (small,) = grouped.evaluate_channels([(x, c)], details=True, compact_prior=True)
            np.testing.assert_array_equal(grouped.group_channels(grouped.layout.group[c]),
                                          mine)
            np.testing.assert_array_equal(small.prior, b.prior[:, mine])
            np.testing.assert_array_equal(small.f, b.f)
        assert np.count_nonzero(whole.f) > 1000
        np.testing.assert_allclose(total, whole.f, rtol=1e-13, atol=0)
        np.testing.assert_array_equal(parts, whole.subprocess_f)


def test_a_grouped_run_gives_the_cross_section(
        drell_yan: tuple[Integrand, Integrand]) -> None:
    from madnis_py.training import Integrator
    from tests.test_integrand import drell_yan_quadrature

    _, grouped = drell_yan
    exact = drell_yan_quadrature(13000.0, 50.0, grouped.pdf)
    torch.manual_seed(0)
    mc = Integrator(grouped, seed=4)
    mc.pretrain_vegas(nitn=5, neval=1000)
    r = mc.integrate(200_000, iterations=2)
    assert r.error < 5e-3 * r.value
    assert abs(r.value - exact) < 3 * r.error, (r.value / exact - 1, r.error / r.value)
    assert math.isfinite(r.value)


class _TwoGroups:
    """Two groups of two channels (the toy's pair twice); channel 3 has no share."""

    n_channels = 4
    channel_groups = (0, 0, 1, 1)

    def __init__(self) -> None:
        from madnis_py.testfunctions import RidgeAndPeak

        self.toy = RidgeAndPeak()

    def dims(self, channel: int) -> int:
        return 2

    def __call__(self, x: torch.Tensor, channel: int):
        f, y, prior = self.toy(x, channel % 2)
        zeros = torch.zeros_like(prior)
        if channel < 2:
            return f, y, torch.cat([prior, zeros], dim=1)
        # the second group: all of its share on its first channel
        one = torch.cat([torch.ones_like(f)[:, None], torch.zeros_like(f)[:, None]], dim=1)
        return f, y, torch.cat([zeros, one], dim=1)


def test_dropping_keeps_a_channel_of_every_group() -> None:
    from madnis_py.training import Integrator

    integrand = _TwoGroups()
    # every channel's share (at most a half) is below the threshold: the smaller of each
    # group goes (channel 3 has none), the last of each group stays
    mc = Integrator(integrand, feature_dims=2, seed=7, warmup=2, drop_patience=3,
                    drop_threshold=0.6)
    with pytest.warns(UserWarning, match="dropping channel 3"):
        mc.train(8, batch=1024)
    assert mc.active.tolist().count(True) == 2
    assert mc.active[2] and not mc.active[3] and mc.active[:2].sum() == 1
    r = mc.integrate(80_000)
    assert abs(r.value - 2 * integrand.toy.exact) < 3 * r.error


def test_a_row_without_prior_falls_back_to_its_own_group() -> None:
    from madnis_py.training.channel_weights import ChannelWeights

    weights = ChannelWeights(4, 2, trainable=False, groups=[0, 0, 1, 1])
    prior = torch.tensor([[0.0, 0.0, 0.0, 1.0], [0.3, 0.7, 0.0, 0.0]], dtype=torch.float64)
    active = torch.tensor([True, False, True, False])
    alpha = weights(torch.zeros(2, 2, dtype=torch.float64), prior, active)
    # row 0: its group's channel with prior is dropped, so its group's other one takes
    # it all (not every active channel); row 1 keeps its group
    assert alpha.tolist() == [[0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]]
    one = ChannelWeights(4, 2, trainable=False)
    assert one(torch.zeros(2, 2, dtype=torch.float64), prior,
               active)[0].tolist() == [0.5, 0.0, 0.5, 0.0]


def test_a_grouped_run_writes_its_events_and_generates_from_its_checkpoint(
        tmp_path: Path) -> None:
    # zprime: four groups, twelve channels; the events' resonances come from each
    # channel's topology (the card's Z and Z' channels), not from its index
    from madnis_py.cards import load_run_card
    from madnis_py.events import check_lhe, read_lhe
    from madnis_py.run import RunRequest, run_card
    from madnis_py.training.checkpoint import CheckpointMismatchError

    torch.set_num_threads(1)
    text = ('[run]\nprocess = "zprime"\nseed = 5\nnevents = 400\noutput = "{out}"\n'
            '[training]\ntarget = "steps"\nsteps = 2\nbatch = 1024\nvegas_iterations = 4\n'
            'vegas_points = 500\nsubprocess_channels = "grouped"\n'
            '[integration]\npoints = 20000\niterations = 2\n'
            '[output]\nlhe = "events.lhe"\nplots = false\n')
    (tmp_path / "run.toml").write_text(text.format(out="run"))
    summary = run_card(load_run_card(tmp_path / "run.toml"), RunRequest("run", n_events=400))
    assert len(summary.channel_sigma_pb) == 12
    lhe = tmp_path / "run" / "events.lhe"
    assert check_lhe(lhe).n_events == 400
    _, events = read_lhe(lhe)
    events = list(events)
    resonant = {q.idup for e in events for q in e.particles if q.istup == 2}
    assert resonant <= {23, 32} and 23 in resonant
    assert len({e.idprup for e in events}) >= 4  # flavours from every group
    (tmp_path / "gen.toml").write_text(text.format(out="gen"))
    again = run_card(load_run_card(tmp_path / "gen.toml"),
                     RunRequest("generate", n_events=200,
                                checkpoint=tmp_path / "run" / "checkpoint.pt"))
    assert again.events is not None and again.events.events == 200
    assert check_lhe(tmp_path / "gen" / "events.lhe").n_events == 200
    # the shared layout is another integrator: the checkpoint is refused, naming the field
    shared = text.replace('subprocess_channels = "grouped"', 'subprocess_channels = "shared"')
    (tmp_path / "shared.toml").write_text(shared.format(out="shared"))
    with pytest.raises(CheckpointMismatchError,
                       match="trained with subprocess_channels = .grouped., the card says "
                             ".shared."):
        run_card(load_run_card(tmp_path / "shared.toml"),
                 RunRequest("generate", n_events=10,
                            checkpoint=tmp_path / "run" / "checkpoint.pt"))


def test_a_survey_in_chunks_is_the_survey_at_once(
        drell_yan: tuple[Integrand, Integrand], monkeypatch: pytest.MonkeyPatch) -> None:
    """A channel's survey points are evaluated in pieces of SURVEY_CHUNK (a late round
    can give one channel millions of points): the values, and so the maps and the
    estimate, are those of one evaluation."""
    import madnis_py.training.multichannel as multichannel
    from madnis_py.training import Integrator

    _, grouped = drell_yan
    results = []
    for chunk in (multichannel.SURVEY_CHUNK, 97):
        monkeypatch.setattr(multichannel, "SURVEY_CHUNK", chunk)
        torch.manual_seed(0)
        mc = Integrator(grouped, seed=4)
        results.append(mc.pretrain_vegas(nitn=3, neval=500))
    assert results[0].value == results[1].value and results[0].error == results[1].error
    assert results[0].n_calls == results[1].n_calls
