"""The run's pictures: panels with data and labelled axes, particle names, ranges that hold
the cut edges and resonances, exact observables, and weights that follow the seed."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from madnis_py.events import Unweighter
from madnis_py.events.generator import EventGenerator
from madnis_py.integrand import Integrand, TorchChannels
from madnis_py.physics.process import load_process
from madnis_py.plots import (
    collins_soper_cos_theta,
    final_state_names,
    observables,
    particle_name,
    plot_history,
    plot_kinematics,
    plot_weights,
    resonances,
    thrust,
)
from madnis_py.training import Integrator

pytest.importorskip("matplotlib")


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


# ----------------------------------------------------------------------------- helpers


def boost_z(p: np.ndarray, rapidity: float) -> np.ndarray:
    """Momenta (..., 4) boosted along +z by ``rapidity``."""
    ch, sh = np.cosh(rapidity), np.sinh(rapidity)
    out = p.copy()
    out[..., 0] = ch * p[..., 0] + sh * p[..., 3]
    out[..., 3] = sh * p[..., 0] + ch * p[..., 3]
    return out


def boost(p: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Momenta (n, 4) boosted by velocities (n, 3) (into the frame moving at -beta)."""
    b2 = (beta ** 2).sum(axis=1)
    gamma = 1 / np.sqrt(1 - b2)
    bp = (beta * p[:, 1:]).sum(axis=1)
    coef = np.where(b2 > 0, (gamma - 1) / np.where(b2 > 0, b2, 1), 0.0)
    out = np.empty_like(p)
    out[:, 0] = gamma * (p[:, 0] + bp)
    out[:, 1:] = p[:, 1:] + (coef * bp + gamma * p[:, 0])[:, None] * beta
    return out


def panel_data(ax: Any) -> tuple[np.ndarray, np.ndarray]:
    """The weighted histogram (values, edges) drawn on a kinematics panel."""
    from matplotlib.patches import StepPatch

    steps = [p for p in ax.patches if isinstance(p, StepPatch)]
    assert len(steps) == 1, ax.get_xlabel()
    data = steps[0].get_data()
    return np.asarray(data.values), np.asarray(data.edges)


def sample(process: str, n: int, seed: int = 5) -> tuple[Integrand, np.ndarray, np.ndarray,
                                                        np.ndarray]:
    """Momenta and weights of ``n`` uniform points per channel of a built-in process (one
    weighted sample), and a hit-or-miss unweighted subset of them."""
    integ = Integrand(process)
    rng = np.random.default_rng(seed)
    moms, weights = [], []
    for c in range(integ.n_channels):
        res = integ(rng.random((n, integ.dims(c))), c, prior=False)
        moms.append(res.momenta)
        weights.append(res.f / integ.n_channels)
    p, w = np.concatenate(moms), np.concatenate(weights)
    keep = rng.random(len(w)) * w.max() < w
    return integ, p, w, p[keep]


def axes_by_label(fig: Any) -> dict[str, Any]:
    return {ax.get_xlabel(): ax for ax in fig.axes}


# ------------------------------------------------------------------------------- names


def test_particle_names_are_madgraphs() -> None:
    assert [particle_name(p) for p in (11, -11, 13, -13, 2, -2, 21, 22, 6, -6, 12, -12,
                                       24, -24, 23, 25, 9000001)] == [
        "e-", "e+", "mu-", "mu+", "u", "u~", "g", "a", "t", "t~", "ve", "ve~", "W+", "W-",
        "Z", "h", "pdg9000001"]


def test_final_state_names_by_position() -> None:
    assert final_state_names([s.pdgs for s in load_process("zprime").subprocesses]) == [
        "e+", "e-"]
    assert final_state_names([s.pdgs for s in load_process("ee_qqg").subprocesses]) == [
        "q", "q~", "g"]
    assert final_state_names([(1, -1, 21, 21), (2, -2, 21, 21)]) == ["g1", "g2"]
    assert final_state_names([(1, -1, 21, 2), (2, -2, 1, 21)]) == ["j1", "j2"]
    with pytest.raises(ValueError, match="pdgs"):
        final_state_names([(1, -1, 21), (1, -1, 21, 21)])


def test_resonances_from_the_channels() -> None:
    res = resonances(load_process("zprime").channels)
    assert [(r.name, r.mass, r.width, r.legs) for r in res] == [
        ("Z", 91.188, 2.441404, (2, 3)), ("Z'", 400.0, 0.5, (2, 3))]
    w = resonances(load_process("udx_enug").channels)  # W+ inside t-channel blocks
    assert [(r.name, r.mass, r.legs) for r in w] == [("W+", 80.419, (2, 3))]
    assert resonances(load_process("ttbar").channels) == []  # t-channel tops are no peaks


# -------------------------------------------------------------------------- observables


def test_collins_soper_angle_against_the_rest_frame() -> None:
    rng = np.random.default_rng(3)
    n = 500
    cos = rng.uniform(-1, 1, n)
    phi = rng.uniform(0, 2 * np.pi, n)
    m = rng.uniform(20, 500, n)
    sin = np.sqrt(1 - cos ** 2)
    lep = np.stack([m / 2, m / 2 * sin * np.cos(phi), m / 2 * sin * np.sin(phi),
                    m / 2 * cos], axis=1)
    anti = lep * np.array([1, -1, -1, -1])
    # without transverse momentum: the rest-frame angle to +z, times the sign of q_z
    for y in (0.7, 2.1):
        assert np.allclose(collins_soper_cos_theta(boost_z(lep, y), boost_z(anti, y)), cos,
                           atol=1e-12)
        assert np.allclose(collins_soper_cos_theta(boost_z(lep, -y), boost_z(anti, -y)), -cos,
                           atol=1e-12)
    # with transverse momentum: the angle to the bisector of the beam directions in the
    # pair's rest frame (Collins and Soper's definition), computed by explicit boosts
    beta = rng.uniform(-0.5, 0.5, (n, 3))
    lab_l, lab_a = boost(lep, beta), boost(anti, beta)
    q = lab_l + lab_a
    to_rest = -q[:, 1:] / q[:, :1]
    beam1 = boost(np.tile([1.0, 0, 0, 1], (n, 1)), to_rest)[:, 1:]
    beam2 = boost(np.tile([1.0, 0, 0, -1], (n, 1)), to_rest)[:, 1:]
    axis = (beam1 / np.linalg.norm(beam1, axis=1)[:, None]
            - beam2 / np.linalg.norm(beam2, axis=1)[:, None])
    axis /= np.linalg.norm(axis, axis=1)[:, None]
    rest_l = boost(lab_l, to_rest)[:, 1:]
    ref = (rest_l * axis).sum(axis=1) / np.linalg.norm(rest_l, axis=1) * np.sign(q[:, 3])
    assert np.allclose(collins_soper_cos_theta(lab_l, lab_a), ref, atol=1e-10)


def test_thrust_is_exact() -> None:
    rng = np.random.default_rng(4)
    n = 300
    p3 = np.zeros((n, 3, 4))
    p3[:, :2, 1:] = rng.normal(size=(n, 2, 3))
    p3[:, 2, 1:] = -p3[:, :2, 1:].sum(axis=1)
    p3[..., 0] = np.linalg.norm(p3[..., 1:], axis=-1)
    # three momenta summing to zero: one particle against the other two
    mag = np.linalg.norm(p3[..., 1:], axis=-1)
    assert np.allclose(thrust(p3), 2 * mag.max(axis=1) / mag.sum(axis=1), rtol=1e-13)
    back_to_back = np.array([[[1.0, 0, 0, 1], [1.0, 0, 0, -1]]])
    assert thrust(back_to_back)[0] == pytest.approx(1.0, abs=1e-15)
    # four particles: no direction gives more than the exact value, a fine scan nearly as much
    p4 = np.zeros((20, 4, 4))
    p4[:, :3, 1:] = rng.normal(size=(20, 3, 3))
    p4[:, 3, 1:] = -p4[:, :3, 1:].sum(axis=1)
    exact = thrust(p4)
    u = rng.normal(size=(20_000, 3))
    u /= np.linalg.norm(u, axis=1)[:, None]
    scan = (np.abs(p4[:, :, 1:] @ u.T).sum(axis=1).max(axis=1)
            / np.linalg.norm(p4[:, :, 1:], axis=-1).sum(axis=1))
    assert np.all(scan <= exact + 1e-12) and np.all(scan > exact - 2e-3)
    with pytest.raises(ValueError, match="thrust"):
        thrust(np.zeros((1, 1, 4)))


def labels(obs: list[Any]) -> list[str]:
    return [o.xlabel for o in obs]


def inside(o: Any, x: float, margin: float = 0.05) -> bool:
    """x inside the range, at least ``margin`` of its width (in log for a log axis) from
    either edge."""
    f = np.log if o.log_x else (lambda v: v)
    lo, hi = f(o.lo), f(o.hi)
    return bool(lo + margin * (hi - lo) <= f(x) <= hi - margin * (hi - lo))


def test_drell_yan_like_panels_from_cuts_and_resonances() -> None:
    proc = load_process("zprime")
    obs = observables([s.pdgs for s in proc.subprocesses], hadronic=True, sqrt_s=13000,
                      cuts=proc.cuts, channels=proc.channels)
    by = {o.xlabel: o for o in obs}
    assert labels(obs)[:4] == ["m(e+ e-) [GeV]", "pT(e+ e-) [GeV]", "y(e+ e-)",
                               "cos theta*_CS(e-)"]
    mll = by["m(e+ e-) [GeV]"]
    for x in (50.0, 91.188, 400.0):  # the cut edge, the Z and the Z' away from the edges
        assert inside(mll, x), x
    assert {x for x, _ in mll.marks} == {50.0, 91.188, 400.0}
    assert inside(by["pT(e-) [GeV]"], 10.0) and inside(by["pT(e-) [GeV]"], 200.0)
    assert inside(by["eta(e+)"], 2.5) and inside(by["eta(e+)"], -2.5)
    assert inside(by["y(e+ e-)"], 2.45)
    # other cuts move the ranges with them
    tight = observables([s.pdgs for s in proc.subprocesses], hadronic=True, sqrt_s=13000,
                        cuts={"ptl": 30.0, "etal": 1.5, "mmll": 120.0}, channels=proc.channels)
    by = {o.xlabel: o for o in tight}
    assert inside(by["m(e+ e-) [GeV]"], 120.0) and inside(by["pT(e-) [GeV]"], 30.0)
    assert inside(by["eta(e-)"], 1.5) and by["eta(e-)"].hi < 2
    # cuts far above the resonances: the ranges follow the cuts, not the Z'
    hard = observables([s.pdgs for s in proc.subprocesses], hadronic=True, sqrt_s=13000,
                       cuts={"ptl": 300.0, "mmll": 1500.0}, channels=proc.channels)
    by = {o.xlabel: o for o in hard}
    assert inside(by["m(e+ e-) [GeV]"], 1500.0) and inside(by["pT(e+) [GeV]"], 300.0)
    assert inside(by["pT(e+) [GeV]"], 750.0)  # the Jacobian peak of m = 1500
    # mmll acts on opposite-sign same-flavour pairs only (MadGraph): e+ mu- is not marked
    emu = observables([(2, -2, -11, 13)], hadronic=True, sqrt_s=13000,
                      cuts={"mmll": 50.0, "ptl": 10.0})
    assert labels(emu)[0] == "m(e+ mu-) [GeV]" and not emu[0].marks


def test_panels_of_the_other_classes() -> None:
    ee = load_process("ee_qqg")
    obs = observables([s.pdgs for s in ee.subprocesses], hadronic=False, sqrt_s=91.188,
                      cuts=ee.cuts, channels=ee.channels)
    assert labels(obs) == ["thrust T", "x(q) = 2E/sqrt(s)", "x(q~) = 2E/sqrt(s)",
                           "x(g) = 2E/sqrt(s)", "m(q q~) [GeV]", "m(q g) [GeV]",
                           "m(q~ g) [GeV]"]
    y_cut = 10.0 ** 2 / 91.188 ** 2
    assert inside(obs[0], 1 - y_cut, margin=0.01) and inside(obs[0], 0.7)
    assert all(inside(o, 10.0) for o in obs[4:])
    tt = load_process("ttbar")
    obs = observables([s.pdgs for s in tt.subprocesses], hadronic=True, sqrt_s=13000,
                      cuts=tt.cuts, channels=tt.channels, masses=tt.final_masses())
    assert labels(obs)[:2] == ["m(t t~) [GeV]", "pT(t) [GeV]"]
    assert inside(obs[0], 2 * 173.0, margin=0.01) and obs[0].marks[0][0] == 2 * 173.0
    w = load_process("udx_enug")
    obs = observables([s.pdgs for s in w.subprocesses], hadronic=True, sqrt_s=13000,
                      cuts=w.cuts, channels=w.channels)
    by = {o.xlabel: o for o in obs}
    assert {"pT(e+) [GeV]", "eta(g)", "missing pT [GeV]", "m(e+ ve) [GeV]",
            "m(final state) [GeV]"} <= set(by)
    assert inside(by["m(e+ ve) [GeV]"], 80.419, margin=0.3)
    assert inside(by["pT(g) [GeV]"], 20.0) and inside(by["eta(g)"], 5.0)
    with pytest.raises(ValueError, match="sqrt_s"):
        observables([(2, -2, 11, -11)], hadronic=True, sqrt_s=0.0)


# ------------------------------------------------------------------------------ figures


def test_kinematics_figure_of_a_process(tmp_path: Path) -> None:
    integ, p, w, unweighted = sample("zprime", 3000)
    fig = plot_kinematics(unweighted, p, w, tmp_path / "kin.png", process=integ.process,
                          cuts=integ.cut_values, sqrt_s=integ.sqrt_s)
    assert (tmp_path / "kin.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    by = axes_by_label(fig)
    # LO Drell-Yan has pT(e+ e-) = 0: no panel for it, and no empty panel anywhere
    assert "pT(e+ e-) [GeV]" not in by and "m(e+ e-) [GeV]" in by
    assert "cos theta*_CS(e-)" in by and "eta(e-)" in by and "pT(e+) [GeV]" in by
    for label, ax in by.items():
        values, edges = panel_data(ax)
        assert label and ax.get_ylabel().startswith("1/N dN/d") and values.sum() > 0
        assert np.count_nonzero(values) > len(values) // 3, label
        assert "(3)" not in label and "(4)" not in label
    # the mass panel: cut edge and both resonances inside, normalised to the whole sample
    ax = by["m(e+ e-) [GeV]"]
    values, edges = panel_data(ax)
    lo, hi = ax.get_xlim()
    assert lo < 50.0 and hi > 1.5 * 400.0 and ax.get_xscale() == "log"
    assert "GeV" in ax.get_ylabel()
    m = np.sqrt(np.maximum((p[:, 2, 0] + p[:, 3, 0]) ** 2
                           - ((p[:, 2, 1:] + p[:, 3, 1:]) ** 2).sum(axis=1), 0))
    ok = w > 0
    share = w[ok & (m >= edges[0]) & (m <= edges[-1])].sum() / w[ok].sum()
    assert (values * np.diff(edges)).sum() == pytest.approx(share, rel=1e-12)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "Z' 400 GeV" in legend and "Z 91.188 GeV" in legend and "cut m > 50" in legend
    lo, hi = by["eta(e+)"].get_xlim()
    assert lo < -2.5 and hi > 2.5
    assert by["pT(e-) [GeV]"].get_xlim()[0] < 10.0


def test_kinematics_without_a_process_keeps_the_old_call(tmp_path: Path) -> None:
    _, p, w, unweighted = sample("ee_mumu", 2000)
    fig = plot_kinematics(unweighted, p, w, tmp_path / "kin.png",
                          event_weights=np.ones(len(unweighted)))
    for ax in fig.axes:
        values, _ = panel_data(ax)
        assert ax.get_xlabel() and ax.get_ylabel() and values.sum() > 0
    # m(final state) is fixed by the lepton beams: left out
    assert "m(final state) [GeV]" not in axes_by_label(fig)
    with pytest.raises(ValueError, match="weights"):
        plot_kinematics(unweighted, p, w[:-1], tmp_path / "bad.png")


def history(n: int, k: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    frac = rng.dirichlet(np.ones(k), n)
    frac[n // 2:, -1] = 0.0  # a channel dropped halfway
    return {"loss": list(np.geomspace(1, 1e-2, n)), "value": list(5 + rng.normal(0, .1, n)),
            "rel_std": list(np.geomspace(.5, .05, n)), "eps_uw": list(np.linspace(.01, .2, n)),
            "fractions": frac.tolist()}


def test_history_figure(tmp_path: Path) -> None:
    h = history(40, 3)
    (tmp_path / "history.json").write_text(json.dumps(h))
    for source in (json.loads((tmp_path / "history.json").read_text()),
                   SimpleNamespace(**h)):
        fig = plot_history(source, tmp_path / "training.png",
                           channel_names=["photon", "Z", "Zprime"])
        assert len(fig.axes) == 5
        for ax in fig.axes:
            assert ax.get_xlabel() == "training step" and ax.get_ylabel()
            assert ax.lines and all(np.isfinite(ln.get_ydata()).any() for ln in ax.lines)
        loss, integral, rel, _, shares = fig.axes
        assert integral.get_ylabel() == "integral [pb]"
        assert loss.get_yscale() == rel.get_yscale() == shares.get_yscale() == "log"
        assert [t.get_text() for t in shares.get_legend().get_texts()] == [
            "photon", "Z", "Zprime"]
        styles = {(ln.get_linestyle(), ln.get_marker(), ln.get_color()) for ln in shares.lines}
        assert len(styles) == 3
    with pytest.raises(ValueError, match="channel_names"):
        plot_history(h, tmp_path / "x.png", channel_names=["a", "b"])
    empty = plot_history({"loss": []}, tmp_path / "vegas_only.png")
    assert "no flow training" in empty.axes[0].texts[0].get_text()


# ------------------------------------------------------------------------------ weights


def test_weighted_points_follow_the_generators_seed(tmp_path: Path) -> None:
    integ = Integrand("ee_mumu")
    channels = TorchChannels(integ)
    mc = Integrator(channels, feature_dims=channels.feature_dims, seed=11)
    sigma = float(mc.integrate(4000).value)
    u = Unweighter(method="quantile", quantile=0.99)

    def weights(seed: int) -> np.ndarray:
        return EventGenerator(mc, sigma, unweighter=u, seed=seed).weighted(3000)[0]

    first, other = weights(1), weights(2)
    mc.sample(500)  # the integrator's generator moves on (a loaded checkpoint: any state)
    again = weights(1)
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    fig = plot_weights(first, float(np.quantile(first, 0.99)), tmp_path / "w1.png")
    plot_weights(again, float(np.quantile(again, 0.99)), tmp_path / "w1b.png")
    plot_weights(other, float(np.quantile(other, 0.99)), tmp_path / "w2.png")
    png = {name: (tmp_path / name).read_bytes() for name in ("w1.png", "w1b.png", "w2.png")}
    assert png["w1.png"] == png["w1b.png"] and png["w1.png"] != png["w2.png"]
    ax = fig.axes[0]
    assert ax.get_xlabel() == "log10(w / <w>)" and ax.get_ylabel() and ax.patches


CARD = """
[run]
process = "{process}"
seed = 3
nevents = 300

[training]
steps = 8
batch = 512
vegas = false
warmup = 2

[integration]
points = 6000
iterations = 2

[unweighting]
max_weight = "quantile"
quantile = 0.995

[output]
lhe = "events.lhe"
plots = true
"""


def test_cli_plots_follow_the_seed(tmp_path: Path) -> None:
    from madnis_py.cli import main

    card = tmp_path / "card.toml"
    card.write_text(CARD.format(process="ee_mumu"))
    assert main(["run", str(card), "--output", str(tmp_path / "run"), "--quiet"]) == 0
    for name in ("training.png", "weights.png", "kinematics.png"):
        assert (tmp_path / "run" / name).read_bytes()[:4] == b"\x89PNG", name
    checkpoint = str(tmp_path / "run" / "checkpoint.pt")

    def generate(seed: int, out: str) -> bytes:
        assert main(["generate", str(card), "--checkpoint", checkpoint, "-n", "200",
                     "--seed", str(seed), "--output", str(tmp_path / out), "--quiet"]) == 0
        return (tmp_path / out / "weights.png").read_bytes()

    # generation from one checkpoint: the checkpoint restores the integrator's generator,
    # and the seed used to reach only the accept/reject step
    seven, eight, again = generate(7, "g7"), generate(8, "g8"), generate(7, "g7b")
    assert seven != eight and seven == again
