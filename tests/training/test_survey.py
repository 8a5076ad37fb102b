"""The VEGAS survey: its maps, its estimate, its allocation and its stopping."""

from __future__ import annotations

import math

import numpy as np
import pytest

from madnis_py.training.survey import _predicted_calls, _stop, survey


def gaussian_share(centres: list[float], width: float = 0.05):
    """Channel ``i``: a normalised Gaussian bump per dimension at ``centres[i]``, its
    integral over the unit cube ``prod erf`` (returned as the second value)."""
    calls = {"n": 0}

    def share(i: int, x: np.ndarray) -> np.ndarray:
        calls["n"] += len(x)
        z = (x - centres[i]) / width
        return np.prod(np.exp(-0.5 * z * z) / (width * math.sqrt(2 * math.pi)), axis=1)

    def exact(i: int, d: int) -> float:
        c = centres[i]
        one = 0.5 * (math.erf((1 - c) / (width * math.sqrt(2)))
                     + math.erf(c / (width * math.sqrt(2))))
        return one ** d

    return share, exact, calls


def test_the_estimate_agrees_with_the_exact_integral_and_every_call_is_counted() -> None:
    share, exact, calls = gaussian_share([0.3, 0.6])
    dims = [2, 3]
    res = survey(share, dims, np.array([True, True]), points=2000, iterations=8, seed=3)
    truth = exact(0, 2) + exact(1, 3)
    assert abs(res.value - truth) < 4 * res.error
    assert res.error < 0.01 * truth
    assert res.n_calls == calls["n"] == sum(m["points"] for m in res.measurements)
    assert res.rounds == 8 and res.reason == "max_iterations"
    for i, d in enumerate(dims):  # per channel too
        assert abs(res.values[i] - exact(i, d)) < 4 * res.errors[i] + 1e-12


def test_rounds_grow_and_follow_the_channels_standard_deviations() -> None:
    share, _, _ = gaussian_share([0.5, 0.5])
    narrow = share

    def two(i: int, x: np.ndarray) -> np.ndarray:
        # channel 1 is 1e-3 of channel 0: it gets the minimum from the second round on
        return narrow(i, x) * (1.0 if i == 0 else 1e-3)

    res = survey(two, [2, 2], np.array([True, True]), points=1000, growth=1.5,
                 iterations=4, seed=0)
    sizes = [m["points"] for m in res.measurements]
    assert sizes[0] == 2000
    assert all(b > a for a, b in zip(sizes, sizes[1:], strict=False))
    assert res.sigmas[1] < 0.01 * res.sigmas[0]
    assert res.points[1] == 2 * (1000 // 10)  # the minimum, in the two rounds estimated


def test_inactive_channels_get_no_points_and_no_map() -> None:
    share, exact, calls = gaussian_share([0.4, 0.7])
    res = survey(share, [2, 2], np.array([False, True]), points=500, iterations=3)
    assert res.maps[0] is None and res.points[0] == 0 and res.values[0] == 0
    assert calls["n"] == res.n_calls
    assert abs(res.value - exact(1, 2)) < 4 * res.error


@pytest.mark.parametrize("floor", [0.0, 0.3])
def test_the_map_converges_to_the_integrand_whatever_floor_it_samples_with(
        floor: float) -> None:
    """f(x) = 3 x^2 in 1D: VEGAS' map converges to its inverse CDF x = y^(1/3) (away
    from y = 0, where the cube root is steeper than 40 increments follow), also when the
    points are drawn from the floored map and mapped back into the map's coordinates."""
    res = survey(lambda i, x: 3.0 * x[:, 0] ** 2, [1], np.array([True]), points=20_000,
                 growth=1.0, iterations=12, floor=floor, ninc=40, seed=1)
    vmap = res.maps[0]
    y = np.linspace(0.2, 0.95, 16)[:, None]
    x = np.empty_like(y)
    jac = np.empty(len(y))
    vmap.map(y, x, jac)
    assert np.max(np.abs(x[:, 0] - y[:, 0] ** (1 / 3))) < 0.02
    assert abs(res.value - 1.0) < 4 * res.error


def test_with_events_asked_for_it_stops_once_its_calls_reach_theirs() -> None:
    """The survey's calls stop at the calls its efficiency predicts for the events:
    a flat integrand (eps = 1) after the round that passes ``n_events`` calls, a peaked
    one (eps << 1) much later; without events asked for, all rounds run."""
    def flat(i: int, x: np.ndarray) -> np.ndarray:
        return np.ones(len(x))

    stopped = survey(flat, [3], np.array([True]), points=500, growth=1.3, iterations=10,
                     n_events=1000)
    # rounds of 500 and 650 points: 1150 calls >= 1000 / eps after the second
    assert (stopped.rounds, stopped.reason, stopped.n_calls) == (2, "balanced", 1150)
    assert abs(stopped.value - 1.0) < 1e-12  # every weight is exactly 1
    full = survey(flat, [3], np.array([True]), points=500, iterations=10)
    assert full.rounds == 10 and full.reason == "max_iterations"

    share, _, _ = gaussian_share([0.5], width=0.02)
    peaked = survey(share, [4], np.array([True]), points=500, iterations=10,
                    n_events=1000)
    last = peaked.measurements[-1]
    assert peaked.rounds > 2
    assert all(m["calls"] < 1000 / m["eps"] for m in peaked.measurements[1:-1])
    if peaked.reason == "balanced":
        assert last["calls"] >= 1000 / last["eps"]
    else:  # a round that no longer lowered the predicted calls to the events
        assert peaked.reason == "no_gain"
        ms = peaked.measurements
        assert (_predicted_calls(ms, 1000, 0) >= _predicted_calls(ms[:-1], 1000, 0))


def test_it_stops_when_a_round_no_longer_lowers_the_predicted_calls() -> None:
    """Far from the balance (many events) the survey stops once its efficiency no longer
    improves enough to pay for a round; rounds that give events count against them."""
    ms = [{"calls": 1000.0, "points": 1000.0, "eps": 0.1},
          {"calls": 2300.0, "points": 1300.0, "eps": 0.2},
          {"calls": 4000.0, "points": 1700.0, "eps": 0.3}]
    # median eps 0.2: 4000 + 10^4 / 0.2; with the last two rounds' 3000 points as events
    assert _predicted_calls(ms, 10_000, 0) == pytest.approx(4000 + 10_000 / 0.2)
    assert _predicted_calls(ms, 10_000, 2) == pytest.approx(4000 + (10_000 - 600) / 0.2)
    assert _predicted_calls(ms, 100, 2) == 4000  # the rounds give all the events
    # a round too large to record gives no events: only the recorded one counts
    ms[-1]["recorded"] = False
    assert _predicted_calls(ms, 10_000, 2) == pytest.approx(4000 + (10_000 - 260) / 0.2)
    ms[-1]["recorded"] = True
    share, _, _ = gaussian_share([0.5], width=0.05)
    found = survey(share, [2], np.array([True]), points=500, iterations=30,
                   n_events=10**5)
    assert found.reason == "no_gain" and 3 <= found.rounds < 30
    ms = found.measurements
    assert _predicted_calls(ms, 10**5, 0) >= _predicted_calls(ms[:-1], 10**5, 0)
    # only once the survey has spent half of what the events cost (at the median
    # efficiency of the last three rounds): not on the noise of its first, small rounds
    level = float(np.median([m["eps"] for m in ms[-3:]]))
    assert ms[-1]["calls"] >= 0.5 * 10**5 / level
    assert ms[-1]["calls"] < 10**5 / ms[-1]["eps"]  # not the balance
    far = survey(share, [2], np.array([True]), points=500, iterations=12, n_events=10**9)
    assert far.reason == "max_iterations"


def test_one_round_that_catches_a_rare_weight_does_not_keep_the_survey_going() -> None:
    """p p > j j j, 10^4 events (MadGraph 3.5.7, seed 0): round 7 caught a rare weight
    and measured 1.1e-4 between 1.4e-3 and 8.1e-4. Judged by that round alone, the
    plateau check waited for half of 10^4 / 1.1e-4 calls and round 8 ran (3.3 M calls,
    a fifth of the run) to stop on the balance; at the median of the last three rounds
    the check runs, and round 7 did not lower the predicted calls of round 6."""
    rounds = [(520000, 7.72e-05), (1211627, 4.58e-05), (2090384, 1.90e-04),
              (3242866, 3.14e-04), (4727901, 1.09e-03), (6667173, 1.37e-03),
              (9182294, 1.09e-04), (12446786, 8.09e-04)]
    ms: list[dict[str, float]] = []
    predicted, stop = math.inf, None
    for k, (calls, eps) in enumerate(rounds):
        ms.append({"round": k + 1, "calls": calls, "eps": eps,
                   "points": calls - (rounds[k - 1][0] if k else 0)})
        stop, predicted = _stop(ms, 10_000, 4, predicted)
        if stop is not None:
            break
    assert (stop, len(ms)) == ("no_gain", 7)
    assert predicted == pytest.approx(_predicted_calls(ms[:6], 10_000, 4))
    assert _predicted_calls(ms, 10_000, 4) >= predicted
    # round 7's own efficiency would not have allowed the check
    assert ms[-1]["calls"] < 0.5 * 10_000 / ms[-1]["eps"]


def test_the_same_seed_gives_the_same_maps_and_estimate() -> None:
    share, _, _ = gaussian_share([0.2, 0.8])
    a = survey(share, [2, 2], np.array([True, True]), points=300, iterations=3, seed=7)
    b = survey(share, [2, 2], np.array([True, True]), points=300, iterations=3, seed=7)
    c = survey(share, [2, 2], np.array([True, True]), points=300, iterations=3, seed=8)
    assert a.value == b.value and a.value != c.value
    for ma, mb in zip(a.maps, b.maps, strict=True):
        assert all(np.array_equal(ga, gb) for ga, gb in zip(ma.extract_grid(),
                                                             mb.extract_grid(), strict=True))


def test_its_efficiencies_are_at_the_truncation_the_events_are_drawn_with() -> None:
    """Every round's efficiency is that of its own event weights at the ``w_max`` the
    unweighting will use (the card's ``max_overweight_truncation``): a looser truncation
    predicts cheaper events, so the balance comes sooner on the same rounds."""
    from madnis_py.training.stopping import truncation_efficiency

    share, _, _ = gaussian_share([0.5], width=0.02)
    runs = {}
    for truncation in (1e-3, 1e-2):
        rounds: list[np.ndarray] = []
        res = survey(share, [4], np.array([True]), points=500, iterations=10, seed=2,
                     n_events=1000, on_round=rounds.append, truncation=truncation)
        for m, w in zip(res.measurements, rounds, strict=True):
            assert m["eps"] == truncation_efficiency(w, truncation)
        runs[truncation] = res
    tight, loose = runs[1e-3], runs[1e-2]
    shared = min(tight.rounds, loose.rounds)  # the same seed draws the same rounds
    for a, b in zip(tight.measurements[:shared], loose.measurements[:shared], strict=True):
        assert a["points"] == b["points"] and b["eps"] >= a["eps"]
    # once the map has found the peak, its remaining tail is what the truncation cuts
    last = shared - 1
    assert loose.measurements[last]["eps"] > 1.2 * tight.measurements[last]["eps"]
    assert loose.n_calls <= tight.n_calls


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"truncation": 1.0}, "truncation must be in"),
    ({"truncation": -0.1}, "truncation must be in"),
    ({"points": 10}, "points must be >= 20"),
    ({"growth": 0.9}, "growth must be >= 1"),
    ({"iterations": 1}, "iterations must be >= 2"),
    ({"floor": 1.0}, "floor must be in"),
])
def test_bad_settings_raise_one_clear_error(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        survey(lambda i, x: np.ones(len(x)), [2], np.array([True]), **kwargs)  # type: ignore[arg-type]
