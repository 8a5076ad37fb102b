"""Colour flows: the built-in cards' flows conserve colour and are leading-colour flows."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from madnis_py.events.colour import ColourFlowError, check_colour_flow, leading_colour_flows
from madnis_py.physics.builtin import builtin_processes
from madnis_py.physics.process import load_process


def canonical(flow: Sequence[Sequence[int]]) -> tuple[tuple[int, int], ...]:
    """The flow with its tags renumbered 501, 502, ... in order of first appearance."""
    names: dict[int, int] = {}
    out = []
    for pair in flow:
        new = []
        for tag in pair:
            if tag and tag not in names:
                names[tag] = 501 + len(names)
            new.append(names.get(tag, 0))
        out.append((new[0], new[1]))
    return tuple(out)


@pytest.mark.parametrize("name", builtin_processes())
def test_builtin_flows_conserve_colour_and_are_leading_colour(name: str) -> None:
    proc = load_process(name)
    for sub in proc.subprocesses:
        assert sub.colour_flows, (name, sub.pdgs)
        lc = {canonical(f) for f in leading_colour_flows(sub.pdgs)}
        for flow in sub.colour_flows:
            check_colour_flow(sub.pdgs, flow)
            assert canonical(flow) in lc, (name, sub.pdgs, flow)


def test_leading_colour_flows_of_standard_processes() -> None:
    # q q~ -> l+ l-: one line through the two incoming quarks
    assert leading_colour_flows([2, -2, -11, 11]) == [((501, 0), (0, 501), (0, 0), (0, 0))]
    # e+ e- -> q q~ g: q -> g -> q~
    assert leading_colour_flows([-11, 11, 1, -1, 21]) == [
        ((0, 0), (0, 0), (501, 0), (0, 502), (502, 501))]
    # g g -> t t~: the two orderings of the gluons
    assert {canonical(f) for f in leading_colour_flows([21, 21, 6, -6])} == {
        canonical(((501, 502), (503, 501), (503, 0), (0, 502))),
        canonical(((501, 502), (502, 503), (501, 0), (0, 503)))}
    # q q~ -> t t~: both pairings (photon-like and gluon-like)
    assert len(leading_colour_flows([1, -1, 6, -6])) == 2
    # four gluons: one closed loop, (4 - 1)! distinct orderings
    gggg = leading_colour_flows([21, 21, 21, 21])
    assert len(gggg) == len({canonical(f) for f in gggg}) == 6
    assert len(leading_colour_flows([21] * 6, max_flows=10)) == 10


def test_impossible_colour_content_and_broken_flows_are_errors() -> None:
    with pytest.raises(ColourFlowError, match="triplets"):
        leading_colour_flows([2, 2, -11, 11])
    with pytest.raises(ColourFlowError, match="single gluon"):
        leading_colour_flows([-11, 11, 21])
    with pytest.raises(ColourFlowError, match="conserve"):
        check_colour_flow([2, -2, -11, 11], [(501, 0), (0, 502), (0, 0), (0, 0)])
    with pytest.raises(ColourFlowError, match="representation"):
        check_colour_flow([2, -2, -11, 11], [(501, 0), (0, 501), (502, 0), (0, 0)])
    with pytest.raises(ColourFlowError, match="representation"):
        check_colour_flow([21, 21, 6, -6], [(501, 501), (0, 0), (0, 0), (0, 0)])
