"""Topologies shared by the phase-space tests."""

from __future__ import annotations

import math

from madnis_py.phasespace import Decay, Propagator, TChannel, Topology


def massless_volume(n: int, s: float) -> float:
    """(2 pi)^(4-3n) (pi/2)^(n-1) s^(n-2) / ((n-1)! (n-2)!)."""
    return ((2 * math.pi) ** (4 - 3 * n) * (math.pi / 2) ** (n - 1) * s ** (n - 2)
            / (math.factorial(n - 1) * math.factorial(n - 2)))


def two_body_volume(s: float, m1: float, m2: float) -> float:
    lam = (s - m1 ** 2 - m2 ** 2) ** 2 - 4 * m1 ** 2 * m2 ** 2
    return math.sqrt(lam) / (8 * math.pi * s)


def s_chain(legs: list[int], prop: Propagator | None = None) -> Decay:
    """root -> (l0, X), X -> (l1, Y), ...: the s-channel chain of a parton shower."""
    p = prop or Propagator()
    if len(legs) == 2:
        return Decay(p, (legs[0], legs[1]))
    return Decay(p, (legs[0], s_chain(legs[1:], prop)))


def s_tree(legs: list[int]) -> Decay:
    """A balanced s-channel tree (pairs decaying into pairs)."""
    if len(legs) == 2:
        return Decay(Propagator(), (legs[0], legs[1]))
    h = len(legs) // 2
    left = legs[0] if h == 1 else s_tree(legs[:h])
    right = legs[h] if len(legs) - h == 1 else s_tree(legs[h:])
    return Decay(Propagator(), (left, right))


def topologies(n: int) -> dict[str, Topology]:
    """Every channel type for a massless 2 -> n final state (legs 2 .. n+1)."""
    legs = list(range(2, n + 2))
    out = {
        "s-chain": Topology(s_channel=s_chain(legs), name="s-chain"),
        "t-chain": Topology(t_channel=TChannel(tuple(legs), (Propagator(),) * (n - 1)),
                            name="t-chain"),
    }
    if n >= 3:
        out["s-tree"] = Topology(s_channel=s_tree(legs), name="s-tree")
        out["t+decay"] = Topology(
            t_channel=TChannel((legs[0], s_chain(legs[1:])), (Propagator(nu=0.5),)),
            name="t+decay")
    if n >= 4:
        out["t3+decay"] = Topology(
            t_channel=TChannel((s_chain(legs[:2]), legs[2], s_chain(legs[3:]) if n > 4
                                else legs[3]),
                               (Propagator(mass=80.4), Propagator(nu=0.3))),
            name="t3+decay")
    return out
