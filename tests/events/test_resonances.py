"""Resonances in the event record: which are written, their rows, mothers and colours."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from madnis_py.events import LHEInit, LHEProcessInfo, LHEWriter, check_lhe, read_lhe
from madnis_py.events.resonances import (
    Resonance,
    ResonanceError,
    ResonanceTable,
    add_resonances,
    channel_resonances,
    madgraph_bwcutoff,
    resolve_pdg,
)
from madnis_py.phasespace.topology import Decay, Propagator, TChannel, Topology
from madnis_py.physics.process import load_process
from madnis_py.physics.slha import read_slha

MZ, WZ = 91.188, 2.441404
MT, WT = 173.0, 1.4915
MW, WW = 80.419, 2.0476


def boost(p: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Boost four-vectors ``(..., 4)`` by the velocity ``beta (..., 3)``."""
    b2 = np.sum(beta ** 2, axis=-1, keepdims=True)
    gamma = 1 / np.sqrt(1 - b2)
    bp = np.sum(beta * p[..., 1:], axis=-1, keepdims=True)
    e = gamma * (p[..., :1] + bp)
    coef = np.where(b2 > 0, (gamma - 1) * bp / np.where(b2 > 0, b2, 1), 0.0)
    return np.concatenate([e, p[..., 1:] + coef * beta + gamma * beta * p[..., :1]], axis=-1)


def two_body(parent: np.ndarray, m1: float, m2: float,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic decay of ``parent (n, 4)`` into masses m1, m2, in the lab."""
    n = parent.shape[0]
    m = np.sqrt(parent[:, 0] ** 2 - np.sum(parent[:, 1:] ** 2, axis=1))
    k = np.sqrt((m ** 2 - (m1 + m2) ** 2) * (m ** 2 - (m1 - m2) ** 2)) / (2 * m)
    cos, phi = rng.uniform(-1, 1, n), rng.uniform(0, 2 * np.pi, n)
    sin = np.sqrt(1 - cos ** 2)
    d = k[:, None] * np.stack([sin * np.cos(phi), sin * np.sin(phi), cos], axis=1)
    a = np.concatenate([np.sqrt(k ** 2 + m1 ** 2)[:, None], d], axis=1)
    b = np.concatenate([np.sqrt(k ** 2 + m2 ** 2)[:, None], -d], axis=1)
    beta = parent[:, 1:] / parent[:, :1]
    return boost(a, beta), boost(b, beta)


def inv_mass(p: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(p[..., 0] ** 2 - np.sum(p[..., 1:] ** 2, axis=-1), 0))


def drell_yan_events(m: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """q q~ -> e+ e- with lepton-pair masses ``m``, boosted along z."""
    n = len(m)
    y = rng.uniform(-1, 1, n)
    x1, x2 = m / 13000 * np.exp(y), m / 13000 * np.exp(-y)
    p = np.zeros((n, 4, 4))
    p[:, 0] = np.stack([x1 * 6500, 0 * x1, 0 * x1, x1 * 6500], 1)
    p[:, 1] = np.stack([x2 * 6500, 0 * x2, 0 * x2, -x2 * 6500], 1)
    p[:, 2], p[:, 3] = two_body(p[:, 0] + p[:, 1], 0.0, 0.0, rng)
    return p


Z_CHANNEL = (Resonance(23, MZ, WZ, (2, 3), name="Z"),)


def dy_columns(n: int) -> dict[str, object]:
    return dict(idup=[2, -2, -11, 11], istup=[-1, -1, 1, 1],
                mothup=[[0, 0], [0, 0], [1, 2], [1, 2]],
                icolup=[[501, 0], [0, 501], [0, 0], [0, 0]], masses=np.zeros(4))


def test_z_written_only_inside_its_breit_wigner_window() -> None:
    rng = np.random.default_rng(1)
    m = np.concatenate([MZ + WZ * np.array([-15.01, -14.99, -3, 0, 2, 14.99, 15.01]),
                        rng.uniform(50, 300, 200)])
    p = drell_yan_events(m, rng)
    channel = rng.integers(-1, 2, len(m))  # -1: no topology; 0: photon; 1: Z
    out = add_resonances(channel=channel, momenta=p, resonances=[(), Z_CHANNEL],
                         **dy_columns(len(m)))  # type: ignore[arg-type]
    want = (channel == 1) & (np.abs(inv_mass(p[:, 2] + p[:, 3]) - MZ) < 15 * WZ)
    assert want.sum() > 3 and (~want).sum() > 3
    assert out["present"].shape == (len(m), 5)
    np.testing.assert_array_equal(out["present"][:, 2], want)
    assert out["present"][:, [0, 1, 3, 4]].all()
    z = out["momenta"][want, 2]
    np.testing.assert_array_equal(z, p[want, 2] + p[want, 3])  # exactly the sum
    np.testing.assert_allclose(out["masses"][want, 2], inv_mass(z), rtol=1e-14)
    assert (out["idup"][want, 2] == 23).all() and (out["istup"][:, 2] == 2).all()
    np.testing.assert_array_equal(out["mothup"][want, 2], [[1, 2]] * want.sum())
    np.testing.assert_array_equal(out["icolup"][want, 2], 0)
    # decay products point at the Z (row 3) when it is written, else at the partons
    moth = out["mothup"][:, 3:]
    np.testing.assert_array_equal(moth[want], 3)
    np.testing.assert_array_equal(moth[~want], [[[1, 2], [1, 2]]] * (~want).sum())
    # the original rows are unchanged
    np.testing.assert_array_equal(out["momenta"][:, [0, 1, 3, 4]], p)
    np.testing.assert_array_equal(out["idup"][:, [0, 1, 3, 4]], [[2, -2, -11, 11]] * len(m))


def test_bwcutoff_narrows_the_window() -> None:
    rng = np.random.default_rng(2)
    m = MZ + WZ * np.array([0.5, 4.0, -6.0, 10.0])
    p = drell_yan_events(m, rng)
    out = add_resonances(channel=np.ones(4, int), momenta=p, resonances=[(), Z_CHANNEL],
                         bwcutoff=5.0, **dy_columns(4))  # type: ignore[arg-type]
    np.testing.assert_array_equal(out["present"][:, 2], [True, True, False, False])


def top_events(rng: np.random.Generator, n: int, mt: np.ndarray,
               mw: np.ndarray) -> np.ndarray:
    """g g -> t~ (t -> b (W+ -> e+ ve)) in momentum order t~ b e+ ve: particles 2..5."""
    e_beam = 600.0
    p = np.zeros((n, 6, 4))
    p[:, 0] = [e_beam, 0, 0, e_beam]
    p[:, 1] = [e_beam, 0, 0, -e_beam]
    p[:, 2] = 0  # filled below
    tbar = np.zeros((n, 4))
    top = np.zeros((n, 4))
    for i in range(n):  # each event its own top mass: split 2 e_beam into t~ and t
        a, b = two_body((p[i:i + 1, 0] + p[i:i + 1, 1]), MT, float(mt[i]), rng)
        tbar[i], top[i] = a[0], b[0]
    p[:, 2] = tbar
    bq = np.zeros((n, 4))
    w = np.zeros((n, 4))
    for i in range(n):
        a, b = two_body(top[i:i + 1], 0.0, float(mw[i]), rng)
        bq[i], w[i] = a[0], b[0]
    p[:, 3] = bq
    p[:, 4], p[:, 5] = two_body(w, 0.0, 0.0, rng)
    return p


def top_channel() -> Topology:
    w = Decay(Propagator(MW, WW, name="W+"), (4, 5))
    t = Decay(Propagator(MT, WT, name="t"), (3, w))
    return Topology(s_channel=Decay(Propagator(name="g"), (2, t)), name="gg-ttx")


def test_nested_top_and_w_mothers_signs_and_colour() -> None:
    rng = np.random.default_rng(3)
    # (top on, W on), (top on, W off), (top off, W on), (both off)
    mt = np.array([MT + 2 * WT, MT - 3 * WT, MT + 40 * WT, MT - 30 * WT])
    mw = np.array([MW - WW, MW + 20 * WW, MW + 5 * WW, MW - 16 * WW])
    p = top_events(rng, 4, mt, mw)
    (res_t, res_w) = channel_resonances(top_channel(), pdgs=[21, 21, -6, 5, -11, 12])
    assert (res_t.pdg, res_t.legs, res_t.parent) == (6, (3, 4, 5), -1)
    assert (res_w.pdg, res_w.legs, res_w.parent) == (24, (4, 5), 0)
    cols = dict(idup=[21, 21, -6, 5, -11, 12], istup=[-1, -1, 1, 1, 1, 1],
                mothup=[[0, 0], [0, 0]] + [[1, 2]] * 4,
                icolup=[[501, 502], [503, 501], [0, 503], [502, 0], [0, 0], [0, 0]],
                masses=[0, 0, MT, 0, 0, 0])
    out = add_resonances(channel=np.zeros(4, int), momenta=p, resonances=[(res_t, res_w)],
                         **cols)  # type: ignore[arg-type]
    present = out["present"]
    np.testing.assert_array_equal(present[:, 2:4], [[1, 1], [1, 0], [0, 1], [0, 0]])
    np.testing.assert_array_equal(out["idup"][present[:, 2], 2], 6)
    np.testing.assert_array_equal(out["idup"][present[:, 3], 3], 24)
    # top's colour is its b's; the W is a singlet
    np.testing.assert_array_equal(out["icolup"][present[:, 2], 2], [[502, 0]] * 2)
    np.testing.assert_array_equal(out["icolup"][present[:, 3], 3], 0)
    # momenta: t = b + e+ + ve, W = e+ + ve
    np.testing.assert_array_equal(out["momenta"][0, 2], p[0, 3] + p[0, 4] + p[0, 5])
    np.testing.assert_array_equal(out["momenta"][0, 3], p[0, 4] + p[0, 5])
    # mothers as written (rows compacted): positions 1-based among present rows
    def written(i: int) -> list[tuple[int, int, int]]:
        keep = present[i]
        return [(int(a), int(m[0]), int(m[1])) for a, m in
                zip(out["idup"][i][keep], out["mothup"][i][keep], strict=True)]
    assert written(0) == [(21, 0, 0), (21, 0, 0), (6, 1, 2), (24, 3, 3), (-6, 1, 2),
                          (5, 3, 3), (-11, 4, 4), (12, 4, 4)]
    assert written(1) == [(21, 0, 0), (21, 0, 0), (6, 1, 2), (-6, 1, 2), (5, 3, 3),
                          (-11, 3, 3), (12, 3, 3)]
    assert written(2) == [(21, 0, 0), (21, 0, 0), (24, 1, 2), (-6, 1, 2), (5, 1, 2),
                          (-11, 3, 3), (12, 3, 3)]
    assert written(3) == [(21, 0, 0), (21, 0, 0), (-6, 1, 2), (5, 1, 2), (-11, 1, 2),
                          (12, 1, 2)]

    # the charge conjugate: t~ and W- with the anticolour of the b~
    conj = dict(cols, idup=[21, 21, 6, -5, 11, -12],
                icolup=[[501, 502], [503, 501], [503, 0], [0, 502], [0, 0], [0, 0]])
    out = add_resonances(channel=np.zeros(4, int), momenta=p, resonances=[(res_t, res_w)],
                         **conj)  # type: ignore[arg-type]
    np.testing.assert_array_equal(out["idup"][0, 2:4], [-6, -24])
    np.testing.assert_array_equal(out["icolup"][0, 2], [0, 502])


def test_colour_singlet_whose_products_connect_to_the_beams_is_not_written() -> None:
    # u g -> u (Z -> q q~): the q and q~ colours flow to the beams in this flow.
    rng = np.random.default_rng(4)
    p = drell_yan_events(np.full(3, 500.0), rng)
    p = np.concatenate([p[:, :2], p[:, 2:3] * 0.5, p[:, 2:3] * 0.25, p[:, 2:3] * 0.25 +
                        p[:, 3:4]], axis=1)
    z = (Resonance(23, MZ, 1e6, (3, 4), name="Z"),)  # any mass passes this "width"
    base = dict(idup=[2, 21, 2, 1, -1], istup=[-1, -1, 1, 1, 1],
                mothup=[[0, 0], [0, 0], [1, 2], [1, 2], [1, 2]], masses=np.zeros(5))
    singlet = add_resonances(channel=np.zeros(3, int), momenta=p, resonances=[z],
                             icolup=[[501, 0], [502, 501], [503, 0], [502, 0], [0, 503]],
                             **base)  # type: ignore[arg-type]
    assert not singlet["present"][:, 2].any()
    connected = add_resonances(channel=np.zeros(3, int), momenta=p, resonances=[z],
                               icolup=[[501, 0], [502, 501], [502, 0], [503, 0], [0, 503]],
                               **base)  # type: ignore[arg-type]
    assert connected["present"][:, 2].all()
    np.testing.assert_array_equal(connected["icolup"][:, 2], 0)


def test_pdg_ids_from_names_and_param_card() -> None:
    card = read_slha(load_process("zprime").param_card)
    assert resolve_pdg("Z", MZ, WZ, card) == 23
    assert resolve_pdg("Z'", 400.0, 0.5, card) == 32
    assert resolve_pdg("", 400.0, 0.5, card) == 32  # by mass and width
    assert resolve_pdg("w-", MW, WW, None) == -24
    assert resolve_pdg("x1", 1234.0, 5.0, card) is None
    topo = Topology(s_channel=Decay(Propagator(1234.0, 5.0, name="x1"), (2, 3)))
    with pytest.warns(UserWarning, match="not written as a resonance"):
        found = channel_resonances(topo, card=card)
    assert found == ()
    # a channel's W+ serves a subprocess with e- ve~ as a W-, none with e- mu-
    w = Topology(t_channel=TChannel((4, Decay(Propagator(MW, WW, name="W+"), (2, 3))),
                                    (Propagator(),)))
    assert channel_resonances(w, pdgs=[-2, 1, 11, -12, 21])[0].pdg == -24
    with pytest.warns(UserWarning, match="cannot decay into"):
        found = channel_resonances(w, pdgs=[-2, 1, 11, 13, 21])
    assert found == ()


def test_table_of_a_process_and_madgraph_bwcutoff(tmp_path: Path) -> None:
    table = ResonanceTable.from_process(load_process("zprime"))
    assert table.bwcutoff == 15.0
    for row in table.table:  # every subprocess: photon none, Z, Z'
        assert [[r.pdg for r in rs] for rs in row] == [[], [23], [32]]
    ttbar = ResonanceTable.from_process(load_process("ttbar"))
    assert ttbar.empty  # t-channel tops and an s-channel gluon: nothing to write
    udx = ResonanceTable.from_process(load_process("udx_enug"))
    assert {r.pdg for row in udx.table for rs in row for r in rs} == {24}
    (tmp_path / "Cards").mkdir()
    (tmp_path / "Cards" / "run_card.dat").write_text(
        "# run card\n  10000 = nevents ! n\n  25.0 = bwcutoff ! (M+/-bwcutoff*Gamma)\n")
    assert madgraph_bwcutoff(tmp_path) == 25.0
    assert madgraph_bwcutoff(tmp_path / "Cards") is None


def test_lhe_file_with_resonances_reads_back(tmp_path: Path) -> None:
    pylhe = pytest.importorskip("pylhe")
    rng = np.random.default_rng(5)
    n = 300
    m = np.where(rng.uniform(size=n) < 0.5, rng.normal(MZ, 3 * WZ, n),
                 rng.uniform(60, 400, n))
    p = drell_yan_events(np.abs(m), rng)
    channel = rng.integers(0, 2, n)
    rows = add_resonances(channel=channel, momenta=p, resonances=[(), Z_CHANNEL],
                          **dy_columns(n))  # type: ignore[arg-type]
    init = LHEInit((2212, 2212), (6500.0, 6500.0), 3, [LHEProcessInfo(10.0, 0.1, 10.0, 1)])
    path = tmp_path / "z.lhe.gz"
    with LHEWriter(path, init) as writer:
        writer.write_batch(weights=np.full(n, 10.0), scales=MZ, aqed=1 / 132.5, aqcd=0.118,
                           **rows)
    n_res = rows["present"][:, 2].sum()
    assert 20 < n_res < n - 20
    s = check_lhe(path)
    assert s.n_events == n and s.idwtup == 3
    np.testing.assert_array_equal(s.n_particles, 4 + rows["present"][:, 2])
    _, events = read_lhe(path)
    for i, event in enumerate(events):
        q = event.momenta()
        status = np.array([x.istup for x in event.particles])
        # incoming = final state (status 1); a resonance = the sum of its daughters
        np.testing.assert_allclose(q[status == -1].sum(0), q[status == 1].sum(0),
                                   rtol=0, atol=1e-9 * 13000)
        for j, part in enumerate(event.particles):
            if part.istup == 2:
                kids = [k for k, x in enumerate(event.particles) if x.mothup == (j + 1,) * 2]
                assert [event.particles[k].idup for k in kids] == [-11, 11]
                np.testing.assert_array_equal(q[j], q[kids].sum(0))
                assert abs(part.m - MZ) < 15 * WZ
            elif part.istup == 1:
                assert part.mothup == ((3, 3) if rows["present"][i, 2] else (1, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read = list(pylhe.LHEFile.fromfile(path).events)
    assert [len(e.particles) for e in read] == s.n_particles.tolist()
    for e in read:
        for part in e.particles:
            if part.status == 2:
                assert part.id == 23 and (part.mother1, part.mother2) == (1, 2)


def test_bad_input_is_named() -> None:
    p = drell_yan_events(np.full(2, MZ), np.random.default_rng(6))
    with pytest.raises(ValueError, match="channel has entries outside"):
        add_resonances(channel=np.array([0, 2]), momenta=p, resonances=[(), Z_CHANNEL],
                       **dy_columns(2))  # type: ignore[arg-type]
    with pytest.raises(ResonanceError, match="decays into particle 7"):
        add_resonances(channel=np.array([0, 0]), momenta=p,
                       resonances=[(Resonance(23, MZ, WZ, (2, 7)),)],
                       **dy_columns(2))  # type: ignore[arg-type]
    with pytest.raises(ResonanceError, match="positive"):
        Resonance(23, MZ, 0.0, (2, 3))
