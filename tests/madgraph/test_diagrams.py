"""MadGraph diagram structure -> channel topologies, on diagrams written here in MadGraph's
``get_s_and_t_channels`` form (the vertices below are what MadGraph 3.5.7 returns for the
processes named): the channels must be the expected trees and reproduce the exact massless
phase-space volume."""

from __future__ import annotations

import numpy as np
import pytest

from madnis_py.madgraph.diagrams import (
    Diagram,
    DiagramError,
    Line,
    Vertex,
    channel_key,
    channel_table,
    group_channels,
)
from madnis_py.phasespace import Beams, ChannelMapping, Topology
from tests.phasespace.conftest import massless_volume

SQRT_S = 500.0


def v(daughters: tuple[int, ...], mother: int, pdg: int, mass: float = 0.0,
      width: float = 0.0, name: str = "") -> Vertex:
    return Vertex(daughters, mother, Line(pdg, mass, width, name))


# e+ e- > mu+ mu- a, MadGraph's diagram 1: s-channel photon, the photon radiated off mu-.
S_TREE = Diagram(1, (v((5, 3), -1, -13, name="mu+"), v((4, -1), -2, 22, name="a")),
                 (v((1, -2), -3, -11),))
# e+ e- > mu+ mu- a, diagram 5: photon from the incoming e+, then e e -> a* -> mu+ mu-.
MIXED = Diagram(5, (v((4, 3), -1, 22, name="a"),),
                (v((1, 5), -2, 11, name="e-"), v((-2, -1), -3, -11)))
# g g > t t~ g, diagram 4 with massless quarks: a t-channel chain with three blocks.
T_CHAIN = Diagram(4, (), (v((1, 3), -1, 6, name="t"), v((-1, 5), -2, 6, name="t"),
                          v((-2, 4), -3, 21)))
# A 2 -> 4 diagram: two s-channel pairs joined by a t-channel line (e+ e- > mu+ mu- e+ e-).
TWO_PAIRS = Diagram(7, (v((4, 3), -1, 22), v((6, 5), -2, 23, 91.188, 2.441404, "z")),
                    (v((1, -1), -3, 11), v((-3, -2), -4, -11)))


def test_s_channel_tree_table() -> None:
    table = channel_table(S_TREE, 5, name="ee>mumua #1")
    assert table == {"name": "ee>mumua #1",
                     "s_channel": {"propagator": {"name": "a"},
                                   "decay": [{"propagator": {"name": "mu+"},
                                              "decay": [2, 4]}, 3]}}


def test_t_channel_chain_and_mixed_tables() -> None:
    assert channel_table(T_CHAIN, 5)["t_channel"] == {
        "blocks": [2, 4, 3], "propagators": [{"name": "t"}, {"name": "t"}]}
    mixed = channel_table(MIXED, 5)["t_channel"]
    assert mixed == {"blocks": [4, {"propagator": {"name": "a"}, "decay": [2, 3]}],
                     "propagators": [{"name": "e-"}]}
    pairs = channel_table(TWO_PAIRS, 6)["t_channel"]
    assert pairs["blocks"][1] == {"propagator": {"mass": 91.188, "width": 2.441404,
                                                 "name": "z"}, "decay": [4, 5]}


def test_a_chain_from_leg_two_is_reversed() -> None:
    # The same diagram as MIXED with the chain written from incoming leg 2.
    from_two = Diagram(5, MIXED.s_channels, (v((2, -1), -2, 11, name="e-"),
                                             v((-2, 5), -3, -11)))
    assert channel_table(from_two, 5)["t_channel"] == channel_table(MIXED, 5)["t_channel"]


@pytest.mark.parametrize("diagram, n", [(S_TREE, 3), (MIXED, 3), (T_CHAIN, 3),
                                        (TWO_PAIRS, 4)])
def test_channels_reproduce_the_massless_volume(diagram: Diagram, n: int) -> None:
    table = channel_table(diagram, n + 2)
    # Massless propagators only, for the exact volume (the Z of TWO_PAIRS made massless).
    topo = Topology.from_dict(_massless(table))
    mapping = ChannelMapping(topo, [0.0] * n, Beams(SQRT_S))
    batch = mapping.map(np.random.default_rng(diagram.number).random((200_000,
                                                                       mapping.dims)))
    w = batch.weight
    mean, err = w.mean(), w.std() / np.sqrt(len(w))
    exact = massless_volume(n, SQRT_S ** 2)
    assert abs(mean - exact) <= 4 * err, (mean / exact, err / exact)
    # Every final-state momentum index appears once: the momenta sum to the beams'.
    np.testing.assert_allclose(batch.momenta[:, 2:].sum(axis=1)[:, 0], SQRT_S, rtol=1e-9)


def _massless(obj):  # type: ignore[no-untyped-def]
    if isinstance(obj, dict):
        return {k: _massless(x) for k, x in obj.items() if k not in ("mass", "width")}
    if isinstance(obj, list):
        return [_massless(x) for x in obj]
    return obj


def test_bad_diagrams_raise() -> None:
    four = Diagram(16, (v((4, 3, 5), -1, 21),), (v((1, -1), -2, 21),))
    with pytest.raises(DiagramError, match="3 daughters"):
        channel_table(four, 5)
    twice = Diagram(2, (v((3, 3), -1, 22),), (v((1, -1), -2, 11),))
    with pytest.raises(DiagramError, match="used twice"):
        channel_table(twice, 4)
    missing = Diagram(3, (v((4, 3), -1, 22),), (v((1, -1), -2, 11),))
    with pytest.raises(DiagramError, match=r"leg\(s\) \[5\] are missing"):
        channel_table(missing, 5)
    broken = Diagram(4, (), (v((1, 3), -1, 2), v((-7, 5), -2, 2), v((-2, 4), -3, 21)))
    with pytest.raises(DiagramError, match="does not continue the chain"):
        channel_table(broken, 5)


def test_grouping_merges_identical_topologies_across_subprocesses() -> None:
    a = channel_table(S_TREE, 5, name="u u~ #1")
    b = channel_table(S_TREE, 5, name="d d~ #1")
    c = channel_table(MIXED, 5)
    channels, mapping = group_channels([[a, c], [b, None, c]])
    assert len(channels) == 2 and channels[0]["name"] == "u u~ #1"
    assert mapping == [[0, 1], [0, -1, 1]]
    assert channel_key(a) == channel_key(b) != channel_key(c)


def test_json_round_trip() -> None:
    assert Diagram.from_json(TWO_PAIRS.to_json()) == TWO_PAIRS
