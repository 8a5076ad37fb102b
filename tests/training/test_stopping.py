"""The wall time to N events as the training objective: the cost model on synthetic
measurements (exact arithmetic), and ``train(target="events")`` on a flat integrand
(the flows cannot help) and on the camel (they do)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from madnis_py.cards.run_card import RunCardError, load_run_card, parse_run_card
from madnis_py.events.unweight import truncation_max_weight
from madnis_py.run import RunRequest, run_card
from madnis_py.testfunctions import Camel
from madnis_py.training import Integrator
from madnis_py.training.stopping import (
    PROBE_SHARE,
    Measurement,
    StoppingRule,
    truncation_efficiency,
)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


class _Channels:
    """``f`` in every channel of ``n_channels`` unit hypercubes (alpha = 1/n_channels),
    with an optional cost per integrand call of ``cost`` seconds per point (a matrix
    element's)."""

    feature_dims = 1

    def __init__(self, f: object, dims: int, *, n_channels: int = 1,
                 cost: float = 0.0) -> None:
        self.f, self.d, self.n_channels, self.cost = f, dims, n_channels, cost

    def dims(self, channel: int = 0) -> int:
        return self.d

    def __call__(self, x: torch.Tensor, channel: int
                 ) -> tuple[torch.Tensor, torch.Tensor, None]:
        if self.cost:
            time.sleep(self.cost * len(x))
        return self.f(x), x[:, :1], None  # type: ignore[operator]


def _flat(x: torch.Tensor) -> torch.Tensor:
    return torch.ones(len(x), dtype=x.dtype)


# ------------------------------------------------------------------ the cost model

def test_generation_and_total_time_follow_n_over_eps_r() -> None:
    m = Measurement(steps=10, train_s=3.0, eps=0.25, rate=1000.0)
    assert m.generation_s(1000) == 4.0  # 1000 / (0.25 * 1000)
    assert m.total_s(1000) == 7.0
    assert m.generation_s(0) == 0.0 and m.total_s(0) == 3.0
    assert Measurement(0, 0.0, 0.0, 1000.0).generation_s(1) == math.inf


def test_truncation_efficiency_uses_the_unweightings_w_max() -> None:
    w = np.array([1.0, 1.0, 2.0, 4.0])
    assert truncation_efficiency(w, 0.0) == 2.0 / 4.0  # <w> / max w
    # a share 1/8 of sigma = 8 above w_max: 4 - t = 1, t = 3
    assert truncation_efficiency(w, 0.125) == 2.0 / 3.0
    rng = np.random.default_rng(1)
    v = rng.exponential(size=10_000)
    assert truncation_efficiency(v) == v.mean() / truncation_max_weight(v, 1e-3)
    assert truncation_efficiency(np.zeros(3)) == 0.0


def _rule(totals: list[tuple[float, float]], *, n: int = 100, patience: int = 2,
          explore: float = 0.0, smooth: int = 1) -> tuple[StoppingRule, list[str | None]]:
    """Measurements at ``(train_s, eps)`` with rate 1: generation time ``n / eps``."""
    rule = StoppingRule(n, patience=patience, explore=explore, smooth=smooth)
    rule.set_base(Measurement(0, 0.0, 0.1, 1.0))
    return rule, [rule.add(Measurement(10 * (k + 1), t, eps, 1.0))
                  for k, (t, eps) in enumerate(totals)]


def test_stops_when_the_total_has_not_improved_for_patience_measurements() -> None:
    # totals 1 + 100/0.2 = 501, 2 + 400 = 402, 3 + 100/0.24 = 419.67, 4 + 100/0.245 = 412.2
    rule, reasons = _rule([(1.0, 0.2), (2.0, 0.25), (3.0, 0.24), (4.0, 0.245)])
    assert reasons == [None, None, None, "no_improvement"]
    best = rule.best
    assert best is not None and best.steps == 20 and best.total_s(100) == 402.0


def test_stops_when_the_gain_per_training_second_falls_below_one() -> None:
    # generation times 500, 400, 398.5, 397, 397.2 at training times 1, ..., 5: totals
    # 501, 402, 401.5, 401, 402.2, so the best total improved within the last two
    rule, reasons = _rule([(1.0, 100 / 500), (2.0, 100 / 400), (3.0, 100 / 398.5),
                           (4.0, 100 / 397), (5.0, 100 / 397.2)])
    # a line through (2, 400), (3, 398.5), (4, 397): -1.5 s per s of training, go on
    assert reasons[:4] == [None, None, None, None]
    assert rule.generation_slope(rule.measurements[1:4]) == pytest.approx(-1.5, rel=1e-12)
    # through (3, 398.5), (4, 397), (5, 397.2): -0.65 s per s, less than it costs
    assert rule.generation_slope(rule.measurements[2:]) == pytest.approx(-0.65, rel=1e-12)
    assert reasons[4] == "marginal_gain_below_cost"


def test_a_plateau_may_cost_a_share_of_what_is_at_stake() -> None:
    # best at t = 2: generation 100 / 0.25 = 400 s, a perfect flow 100 s: 300 s at stake
    plateau = [(1.0, 0.2), (2.0, 0.25), (3.0, 0.24), (4.0, 0.245), (31.0, 0.25),
               (33.0, 0.25)]
    rule, reasons = _rule(plateau, explore=0.1)
    assert rule.at_stake() == 300.0
    # no better total since t = 2; stopped once t - 2 >= 0.1 * 300 = 30
    assert reasons == [None, None, None, None, None, "no_improvement"]
    _, reasons = _rule(plateau, explore=0.0)
    assert reasons[3] == "no_improvement"
    with pytest.raises(ValueError, match="explore"):
        StoppingRule(10, explore=-1.0)


def test_one_outlier_neither_stops_training_nor_becomes_the_best() -> None:
    # eps 0.2, 0.25, 0.004 (one huge weight), 0.3, 0.35, 0.9 (a lucky sample), 0.4
    series = [(1.0, 0.2), (2.0, 0.25), (3.0, 0.004), (4.0, 0.3), (5.0, 0.35),
              (6.0, 0.9), (7.0, 0.4)]
    rule, reasons = _rule(series, patience=3, smooth=3)
    assert [m.eps for m in rule.smoothed] == [0.2, 0.225, 0.2, 0.25, 0.3, 0.35, 0.4]
    assert reasons == [None] * 7
    best = rule.best
    assert best is not None and best.steps == 70 and best.eps == 0.4
    # as measured, the outlier's generation time of 25000 s tilts the line: stop
    _, reasons = _rule(series, patience=3, smooth=1)
    assert reasons[:4] == [None, None, None, "marginal_gain_below_cost"]
    with pytest.raises(ValueError, match="smooth"):
        StoppingRule(10, smooth=0)


def test_the_probe_decides_whether_flows_start() -> None:
    base = Measurement(0, 0.0, 0.5, 1000.0)
    cases = [
        (Measurement(10, 1.0, 0.6, 400.0), False),  # eps 1 at 400/s < 0.5 * 1000/s
        (Measurement(10, 1.0, 0.5, 900.0), False),  # no gain in eps at all
        (Measurement(10, 1.0, 0.51, 900.0), True),
    ]
    for probe, start in cases:
        rule = StoppingRule(10, patience=1)
        rule.set_base(base)
        rule.add(probe)
        assert rule.flows_start() is start, probe
        # at the end: faster generation than the base maps? 10 / (0.5 * 1000) = 0.02 s
        assert rule.flows_win() is (probe.eps * probe.rate > 500.0)


def test_the_probe_is_skipped_when_its_calls_cost_more_than_a_flow_could_save() -> None:
    base = Measurement(0, 0.0, 0.5, 1000.0)  # N / (eps r) - N / r = N / 1000 s at stake
    for n_events, probe_calls, worth in [(10, 100, False),  # 0.01 s vs 0.1 s
                                         (1000, 100, True),  # 1 s vs 0.1 s
                                         (1000, 1000, False),  # 1 s vs 1 s: not more
                                         (0, 1, False)]:  # no events left
        rule = StoppingRule(n_events)
        with pytest.raises(RuntimeError, match="base measurement"):
            rule.worth_probing(probe_calls)
        rule.set_base(base)
        assert rule.worth_probing(probe_calls) is worth, (n_events, probe_calls)


def test_the_probe_is_abandoned_when_its_first_step_extrapolates_past_its_share() -> None:
    # after the first step: its time times the probe's steps against PROBE_SHARE of what
    # a perfect flow could save (here 1 s at stake: the probe may cost 0.25 s)
    rule = StoppingRule(1000)
    rule.set_base(Measurement(0, 0.0, 0.5, 1000.0))
    assert rule.worth_probing(0, 0.2, share=PROBE_SHARE)
    assert not rule.worth_probing(0, 0.3, share=PROBE_SHARE)
    assert rule.worth_probing(0, 0.3)  # the whole of it before any step
    assert not rule.worth_probing(300, 0.1, share=PROBE_SHARE)  # its calls cost 0.3 s


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="patience"):
        StoppingRule(10, patience=0)
    mc = Integrator(_Channels(_flat, 2), seed=0)
    with pytest.raises(ValueError, match="target must be one of steps, events"):
        mc.train(10, target="event")
    with pytest.raises(ValueError, match="measure_every"):
        mc.train(10, target="events", n_events=10, measure_every=0)
    assert mc.steps_done == 0


# ------------------------------------------------------------ the integrator's decision

@pytest.mark.parametrize(("n_channels", "vegas"), [(1, False), (2, False), (1, True)])
def test_flat_integrand_no_training_beyond_the_first_window(n_channels: int,
                                                             vegas: bool) -> None:
    mc = Integrator(_Channels(_flat, 2, n_channels=n_channels), seed=1,
                    flow_options={"bins": 8})
    if vegas:
        mc.pretrain_vegas(nitn=4, neval=2000)
    weights = {n: v.clone() for n, v in mc.weights.state_dict().items()}
    sigmas = mc.sigmas.copy()
    losses = mc.train(200, batch=512, target="events", n_events=100_000, measure_every=5,
                      measure_points=4000)
    d = mc.training_decision
    assert d is not None and d.target == "events"
    # the base maps are nearly perfect: the probe's calls alone would cost more than a
    # perfect flow could save, so not even the probe is trained
    assert losses == [] and mc.steps_done == 0 and d.steps == 0
    assert d.reason == "vegas_alone" and not d.use_flow
    # the base maps generate with what they were measured with: the channel weights
    # (the VEGAS maps were adapted to alpha_i f) and the allocation of before the probe
    assert all(torch.equal(v, weights[n]) for n, v in mc.weights.state_dict().items())
    np.testing.assert_array_equal(mc.sigmas, sigmas)
    assert mc.use_flow == [False] * n_channels
    assert d.eps_final == d.eps_base and len(d.measurements) == 1 and d.chosen_steps == 0
    assert d.predicted_total_s is not None and d.predicted_total_s > 0


def test_camel_trains_and_beats_vegas_alone() -> None:
    camel = Camel(2)
    mc = Integrator(_Channels(camel, 2, cost=2e-5), seed=1, flow_options={"bins": 8})
    mc.pretrain_vegas(nitn=4, neval=4000)
    window = 10
    mc.train(150, batch=1024, target="events", n_events=1_000_000, measure_every=window,
             measure_points=10_000)
    d = mc.training_decision
    assert d is not None and d.steps > window and d.use_flow, d
    assert d.reason in ("max_steps", "no_improvement", "marginal_gain_below_cost")
    assert window <= d.chosen_steps <= d.steps and d.chosen_steps % window == 0
    chosen = [m for m in d.measurements if m["steps"] == d.chosen_steps]
    assert chosen[0]["eps_smoothed"] == d.eps_final
    assert d.eps_base is not None and d.eps_final is not None
    assert d.eps_final > 1.2 * d.eps_base, d
    # measured afresh: VEGAS + flow against VEGAS alone, on the same 40000 points each
    eps = {}
    for flag in (False, True):
        mc.use_flow = [flag]
        eps[flag] = truncation_efficiency(mc.random_batch(40_000).weights())
    assert eps[True] > 1.2 * eps[False], eps
    r = mc.integrate(40_000)
    assert abs(r.value - camel.exact) < 4 * r.error


def test_the_generation_cost_is_measured_at_the_unweightings_truncation() -> None:
    """The base maps' efficiency is that of the measured weights at the ``w_max`` the
    events will be unweighted against (the card's ``max_overweight_truncation``):
    the same draw, measured at two truncations."""
    camel = Camel(2)

    def fresh() -> Integrator:
        mc = Integrator(_Channels(camel, 2), seed=4, flow_options={"bins": 4})
        mc.pretrain_vegas(nitn=3, neval=2000)
        return mc

    weights = fresh().random_batch(4000).weights()  # what train's measurement draws
    for truncation in (1e-3, 1e-2):
        mc = fresh()
        mc.train(0, target="events", n_events=10_000, measure_points=4000,
                 truncation=truncation)
        d = mc.training_decision
        assert d is not None
        assert d.eps_base == pytest.approx(truncation_efficiency(weights, truncation), rel=1e-12)
    assert truncation_efficiency(weights, 1e-2) > truncation_efficiency(weights, 1e-3)
    with pytest.raises(ValueError, match="truncation must be in"):
        fresh().train(5, target="events", n_events=10, truncation=1.0)


def test_steps_target_records_its_decision() -> None:
    mc = Integrator(_Channels(_flat, 2), seed=0, flow_options={"bins": 4})
    mc.train(3, batch=64)
    d = mc.training_decision
    assert d is not None and (d.target, d.reason, d.steps) == ("steps", "max_steps", 3)
    assert d.predicted_total_s is None


def test_a_run_reports_the_decision_and_the_actual_times(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """e+ e- -> q q~ g with a short VEGAS pre-training and 50000 events: a window at
    least (e+ e- -> mu+ mu-, where VEGAS is nearly perfect, abandons the probe after its
    first step: a flow could save 0.05 s there, the probe costs 0.09 s)."""
    card = tmp_path / "run.toml"
    card.write_text('[run]\nprocess = "ee_qqg"\nseed = 3\nnevents = 50000\n'
                    'output = "out"\n[training]\nsteps = 100\nbatch = 512\n'
                    'target = "events"\nmeasure_every = 5\nmeasure_points = 4000\n'
                    'vegas_iterations = 4\nvegas_points = 2000\n'
                    '[integration]\npoints = 4000\niterations = 2\n'
                    '[output]\nplots = false\n')
    summary = run_card(load_run_card(card), RunRequest("run", n_events=50_000))
    d = summary.training_decision
    assert d["target"] == "events" and d["reason"] != "max_steps"
    # the flows are trained for the events the recorded points will not give
    assert 0 < d["expected_recycled_events"] < 50_000
    assert d["n_events"] == math.ceil(50_000 - d["expected_recycled_events"])
    assert 5 <= d["steps"] < 100 and d["steps"] % 5 == 0
    assert len(d["measurements"]) == d["steps"] // 5 + 1
    assert d["predicted_total_s"] > 0 and d["actual_generation_s"] > 0
    assert d["actual_total_s"] == d["actual_training_s"] + d["actual_generation_s"]
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written["training_decision"] == json.loads(json.dumps(d))
    assert summary.events is not None and summary.events.events == 50_000
    from madnis_py.cli import _summary_table

    _summary_table(summary)
    table = " ".join(capsys.readouterr().err.split())
    assert f"{d['reason']} after {d['steps']} steps" in table
    assert f"{d['predicted_total_s']:.1f} / {d['actual_total_s']:.1f}" in table


def test_the_card_key_is_checked_with_its_line() -> None:
    text = '[run]\nprocess = "drell_yan"\n[training]\ntarget = "event"\n'
    with pytest.raises(RunCardError, match=r"run.toml:4: \[training\] target: 'event' is "
                                           r"not allowed.*'steps', 'events'"):
        parse_run_card(text, "run.toml")
    card = parse_run_card('[run]\nprocess = "drell_yan"\n[training]\ntarget = "events"\n'
                          'patience = 5\n')
    assert card.stopping_options() == {"target": "events", "measure_every": 10,
                                       "measure_points": 20_000, "patience": 5,
                                       "explore": 0.1, "truncation": 1e-3}
    assert 'target = "events"' in card.to_toml()
    # the survey and the training measure the events' cost at the card's truncation
    loose = parse_run_card('[run]\nprocess = "drell_yan"\n[unweighting]\n'
                           'max_overweight_truncation = 0.01\n')
    assert loose.stopping_options()["truncation"] == loose.vegas_options()["truncation"] == 0.01
    with pytest.raises(RunCardError, match=r"run.toml:4: \[training\] patience"):
        parse_run_card('[run]\nprocess = "drell_yan"\n[training]\npatience = 0\n',
                       "run.toml")
