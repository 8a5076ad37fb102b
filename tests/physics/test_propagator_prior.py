"""The propagator prior of all channels of a group at once, against each channel's
denominators written out, one topology at a time."""

from __future__ import annotations

import numpy as np
import torch

from madnis_py.phasespace.topology import Decay, Propagator, TChannel, Topology
from madnis_py.physics.propagator_prior import PropagatorPrior, propagator_lines

MZ, WZ, MW, WW = 91.1876, 2.4414, 80.419, 2.0476
Z = Propagator(MZ, WZ, name="Z")
W = Propagator(MW, WW, name="W+")
A = Propagator(name="a")
G = Propagator(name="g")


def inv2(p: np.ndarray, plus: list[int], minus: tuple[int, ...] = ()) -> np.ndarray:
    q = p[:, plus].sum(axis=1) - (p[:, list(minus)].sum(axis=1) if minus else 0.0)
    return np.asarray(q[:, 0] ** 2 - (q[:, 1:] ** 2).sum(axis=1))


def bw(q2: np.ndarray, prop: Propagator) -> np.ndarray:
    return 1.0 / ((q2 - prop.mass ** 2) ** 2 + (prop.mass * prop.width) ** 2)


# p p > e+ e- j j (legs 0, 1 in; 2 e+, 3 e-, 4 j, 5 j): VBF, Z-strahlung, s-channel
VBF = Topology(t_channel=TChannel(blocks=(4, Decay(Z, (2, 3)), 5), propagators=(W, W)))
VBF_PHOTON = Topology(t_channel=TChannel(blocks=(4, Decay(A, (2, 3)), 5),
                                         propagators=(Z, A)))
STRAHLUNG = Topology(t_channel=TChannel(blocks=(Decay(G, (4, 5)), Decay(Z, (2, 3))),
                                        propagators=(Propagator(name="u"),)))
S_CHANNEL = Topology(s_channel=Decay(Z, (Decay(A, (2, 3)), Decay(G, (4, 5)))))


def written_out(p: np.ndarray) -> np.ndarray:
    """The four channels' priors, each denominator by hand."""
    t1, t2 = inv2(p, [0], (4,)), inv2(p, [0], (4, 2, 3))
    mll, mjj, shat = inv2(p, [2, 3]), inv2(p, [4, 5]), inv2(p, [0, 1])
    return np.stack([
        bw(t1, W) * bw(mll, Z) * bw(t2, W),
        bw(t1, Z) * bw(mll, A) * bw(t2, A),
        bw(inv2(p, [0], (4, 5)), STRAHLUNG.t_channel.propagators[0])  # type: ignore[union-attr]
        * bw(mjj, G) * bw(mll, Z),
        bw(shat, Z) * bw(mll, A) * bw(mjj, G),
    ], axis=1)


def momenta(n: int, seed: int) -> np.ndarray:
    """Four-vectors of p p > 4 at 13 TeV scales (the prior is algebraic in them)."""
    rng = np.random.default_rng(seed)
    p = rng.normal(0.0, 300.0, (n, 6, 4))
    p[..., 0] = np.abs(p[..., 0]) + np.sqrt((p[..., 1:] ** 2).sum(axis=-1))
    return p


def test_every_channel_is_its_denominators_written_out() -> None:
    p = momenta(2000, 1)
    prior = PropagatorPrior([VBF, VBF_PHOTON, STRAHLUNG, S_CHANNEL], n_legs=6)
    np.testing.assert_allclose(prior(p), written_out(p), rtol=1e-10, atol=0)


def test_channels_share_their_invariants_and_denominators() -> None:
    prior = PropagatorPrior([VBF, VBF_PHOTON, STRAHLUNG, S_CHANNEL, VBF], n_legs=6)
    # momentum sums: p0-p4, p0-p4-p2-p3, p2+p3, p0-p4-p5, p4+p5, p0+p1
    assert prior.coefficients.shape == (6, 6)
    # VBF: W(t1) W(t2) Z(mll); photon: Z(t1) A(t2) A(mll); strahlung: u, g(mjj), Z(mll)
    # (shared); s-channel: Z(shat), A(mll) (shared), g(mjj) (shared)
    assert len(prior.mass2) == 9
    assert prior.gather.shape == (5, 3)
    p = momenta(50, 2)
    out = prior(p)
    np.testing.assert_array_equal(out[:, 4], out[:, 0])
    assert propagator_lines(VBF, 6) == [((1, 0, 0, 0, -1, 0), MW, WW),
                                        ((1, 0, -1, -1, -1, 0), MW, WW),
                                        ((0, 0, 1, 1, 0, 0), MZ, WZ)]


def test_channels_of_fewer_propagators_are_padded_with_ones() -> None:
    two_body = Topology(s_channel=Decay(Z, (2, 3)))
    prior = PropagatorPrior([two_body, Topology(s_channel=Decay(Z, (Decay(A, (2, 3)), 4)))],
                            n_legs=5)
    p = momenta(20, 3)[:, :5]
    out = prior(p)
    np.testing.assert_allclose(out[:, 0], bw(inv2(p, [0, 1]), Z), rtol=1e-12)
    np.testing.assert_allclose(out[:, 1], bw(inv2(p, [0, 1]), Z) * bw(inv2(p, [2, 3]), A),
                               rtol=1e-12)


def test_torch_tensors_give_the_numpy_values() -> None:
    """(In float64: products of three denominators of 13 TeV invariants, 1e-40 and less,
    are below float32's range.)"""
    p = momenta(500, 4)
    prior = PropagatorPrior([VBF, VBF_PHOTON, STRAHLUNG, S_CHANNEL], n_legs=6)
    got = prior(torch.as_tensor(p))
    assert got.dtype == torch.float64 and got.shape == (500, 4)
    np.testing.assert_allclose(got.numpy(), prior(p), rtol=1e-12, atol=0)


def test_no_points_give_no_rows() -> None:
    prior = PropagatorPrior([VBF, S_CHANNEL], n_legs=6)
    assert prior(np.zeros((0, 6, 4))).shape == (0, 2)
    assert prior(torch.zeros((0, 6, 4), dtype=torch.float64)).shape == (0, 2)


def test_a_vanishing_massless_denominator_is_infinite() -> None:
    p = momenta(3, 5)
    p[0, 2] = p[0, 3] = [5.0, 3.0, 4.0, 0.0]  # collinear massless e+ e-: m_ll = 0 exactly
    out = PropagatorPrior([VBF_PHOTON], n_legs=6)(p)
    assert np.isinf(out[0, 0]) and np.all(np.isfinite(out[1:, 0]))
