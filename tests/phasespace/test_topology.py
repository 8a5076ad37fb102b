"""Topologies as data: TOML and dict input, compilation, and errors that name the place."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from madnis_py.phasespace import (
    Beams,
    Decay,
    Propagator,
    TChannel,
    Topology,
    TopologyError,
    channel_mappings,
    load_topologies,
)
from madnis_py.phasespace.topology import (
    I_SAMPLER,
    NODE_LEAF,
    NODE_S,
    NODE_T,
    ROOT_NU,
    ROOT_NU_RESONANT,
    SAMPLER_BREIT_WIGNER,
    SAMPLER_BREIT_WIGNER_TAIL,
    SAMPLER_NONE,
    SAMPLER_POWER,
    TAIL_CUTOFF,
    compile_topology,
)

# Channel shapes of u d~ -> e+ ve g (legs 2 e+, 3 ve, 4 g): the W -> e+ ve decay inside
# an s-channel tree, and as a block of a t-channel chain (the quark exchange diagrams).
UDX_ENUG = """
[[channel]]
name = "s-channel W*"
min_shat = 400.0
s_channel = { propagator = { name = "W*" }, decay = [4, { propagator = { mass = 80.419, width = 2.0476, name = "W+" }, decay = [2, 3] }] }

[[channel]]
name = "t-channel d"
min_shat = 400.0
t_channel = { blocks = [4, { propagator = { mass = 80.419, width = 2.0476, name = "W+" }, decay = [2, 3] }], propagators = [{ name = "d", nu = 0.5 }] }

[[channel]]
name = "s-channel u*"
min_shat = 400.0

[channel.s_channel]
propagator = { name = "u*" }
decay = [4, { propagator = { mass = 80.419, width = 2.0476, name = "W+" }, decay = [2, 3] }]
"""


def test_toml_topologies_compile_and_map(tmp_path: Path) -> None:
    path = tmp_path / "channels.toml"
    path.write_text(UDX_ENUG)
    topos = load_topologies(path)
    assert [t.name for t in topos] == ["s-channel W*", "t-channel d", "s-channel u*"]
    assert topos[1].t_channel is not None
    assert topos[1].t_channel.propagators[0] == Propagator(nu=0.5, name="d")
    assert topos[2].min_shat == 400.0
    rng = np.random.default_rng(0)
    channels = channel_mappings(topos, [0.0, 0.0, 0.0], Beams(13000.0, hadronic=True))
    assert [c.topology.name for c in channels] == [t.name for t in topos]
    for mapping in channels:
        batch = mapping.map(rng.random((1000, mapping.dims)))
        assert mapping.dims == 7 and batch.n_outside == 0


def test_compiled_tables_are_a_preorder_tree() -> None:
    topo = Topology(t_channel=TChannel((2, Decay(Propagator(91.0, 2.0), (3, 4)), 5),
                                       (Propagator(), Propagator(80.0))))
    prog = compile_topology(topo, [0.0, 1.0, 2.0, 3.0])
    kinds = prog.int_table[:, 0].tolist()
    # root t -> (leaf 2, X), X t -> (Z s -> (3, 4), leaf 5)
    assert kinds == [NODE_T, NODE_LEAF, NODE_T, NODE_S, NODE_LEAF, NODE_LEAF, NODE_LEAF]
    assert prog.int_table[0, 1:3].tolist() == [1, 2]
    assert prog.int_table[2, 1:3].tolist() == [3, 6]
    # minimum masses: the Z's threshold 1 + 2, X's 3 + 3, the root 0 + 6
    np.testing.assert_allclose(prog.float_table[[0, 2, 3], 1], [6.0, 6.0, 3.0])
    assert prog.float_table[2, 5] == 80.0 ** 2  # t-propagator mass^2 of the second line


def test_errors_name_file_channel_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[channel]]\nname = "z"\ns_channel = { propagator = { mass = 91.0, '
                   'widht = 2.0 }, decay = [2, 3] }\n')
    with pytest.raises(TopologyError, match=r"bad.toml: \[\[channel\]\] #0: channel z: "
                                            r"s_channel.propagator has unknown field.*widht"):
        load_topologies(bad)
    bad.write_text('[[channel]]\ns_channel = { decay = [2, 3, 4] }\n')
    with pytest.raises(TopologyError, match="exactly two daughters"):
        load_topologies(bad)
    bad.write_text("[[channel]\n")
    with pytest.raises(TopologyError, match="bad.toml"):
        load_topologies(bad)
    bad.write_text("x = 1\n")
    with pytest.raises(TopologyError, match=r"no \[\[channel\]\] tables"):
        load_topologies(bad)
    with pytest.raises(TopologyError, match="unknown field"):
        Topology.from_dict({"s_chanel": {}})


def test_massive_propagators_get_the_tail_but_the_hadronic_partonic_energy() -> None:
    z = Propagator(91.188, 2.441404, name="Z")
    inner = Topology(s_channel=Decay(z, (2, Decay(z, (3, 4)))), name="Z > j Z")
    lepton = compile_topology(inner, [0.0, 0.0, 0.0])
    assert lepton.int_table[0, I_SAMPLER] == SAMPLER_NONE  # shat = S
    assert lepton.int_table[2, I_SAMPLER] == SAMPLER_BREIT_WIGNER_TAIL
    hadron = compile_topology(inner, [0.0, 0.0, 0.0], hadronic=True)
    # the parton luminosity already falls faster than the Breit-Wigner above the pole
    assert hadron.int_table[0, I_SAMPLER] == SAMPLER_BREIT_WIGNER
    assert hadron.int_table[2, I_SAMPLER] == SAMPLER_BREIT_WIGNER_TAIL


def test_a_pole_at_the_threshold_keeps_the_plain_breit_wigner() -> None:
    # g g > t t~ g: t* -> t g, the top's pole at the decay's threshold (m_t + 0): the
    # integrand falls from the threshold like the gluon emission; a Z* -> mu mu (threshold
    # 0, far below the pole) gets the tail
    top = Propagator(173.0, 1.4915, name="t")
    tg = compile_topology(Topology(s_channel=Decay(Propagator(name="g"), (
        Decay(top, (2, 4)), 3)), name="t* > t g"), [173.0, 173.0, 0.0])
    assert tg.int_table[1, I_SAMPLER] == SAMPLER_BREIT_WIGNER
    z = Propagator(91.188, 2.441404, name="Z")
    zmm = compile_topology(Topology(s_channel=Decay(Propagator(name="a"), (
        Decay(z, (2, 3)), 4)), name="Z* > mu mu"), [0.0, 0.0, 0.0])
    assert zmm.int_table[1, I_SAMPLER] == SAMPLER_BREIT_WIGNER_TAIL
    # a cut on the pair's mass above the window's lower edge: the plain Breit-Wigner
    cut = compile_topology(Topology(s_channel=Decay(Propagator(name="a"), (
        Decay(z, (2, 3), min_mass=80.0), 4)), name="Z* > mu mu, m > 80"), [0.0, 0.0, 0.0])
    assert cut.int_table[1, I_SAMPLER] == SAMPLER_BREIT_WIGNER


def test_a_root_below_what_its_products_need_keeps_the_tail() -> None:
    """Hadron beams: a massive root whose products need more than its on-shell window
    (``products_mass >= M + TAIL_CUTOFF G``; u d~ > W+* > Z W+ of VBF Z, 171 GeV against
    the W's 111) keeps the Breit-Wigner with the 1/s tail; a window that reaches the
    products, or a cut above the window, the plain Breit-Wigner; lepton beams do not
    sample the root."""
    w = Propagator(80.419, 2.0476, name="W+")
    z = Propagator(91.188, 2.441404, name="Z")
    wz = Topology(s_channel=Decay(w, (Decay(z, (2, 3)), Decay(w, (4, 5)))), name="W* > Z W",
                  min_shat=3600.0, products_mass=z.mass + w.mass)
    for topo in (wz, replace(wz, min_shat=0.0)):
        program = compile_topology(topo, [0.0] * 4, hadronic=True)
        assert program.int_table[0, I_SAMPLER] == SAMPLER_BREIT_WIGNER_TAIL
        assert program.float_table[0, 2:4].tolist() == [w.mass, w.width]
        assert program.int_table[1, I_SAMPLER] == SAMPLER_BREIT_WIGNER_TAIL  # the inner Z
    edge = w.mass + TAIL_CUTOFF * w.width
    for topo in (replace(wz, products_mass=0.0), replace(wz, products_mass=edge * (1 - 1e-9)),
                 replace(wz, min_shat=(edge + 1.0) ** 2)):
        within = compile_topology(topo, [0.0] * 4, hadronic=True)
        assert within.int_table[0, I_SAMPLER] == SAMPLER_BREIT_WIGNER
        assert within.float_table[0, 2:4].tolist() == [w.mass, w.width]
    assert compile_topology(wz, [0.0] * 4).int_table[0, I_SAMPLER] == SAMPLER_NONE


def test_t_channel_scales_set_the_offset_and_are_checked() -> None:
    """A line's power-law offset is the larger of its scale and mass squared; with a scale
    a massless line may take nu >= 1; a wrong number of scales or a negative one is
    refused, naming the channel."""
    props = (Propagator(nu=1.0, name="q"), Propagator(mass=30.0, nu=0.8))
    chain = TChannel((2, 3, 4), props, (400.0, 100.0))
    program = compile_topology(Topology(t_channel=chain, name="c"), [0.0] * 3)
    assert program.float_table[:, 4:6][program.int_table[:, 0] == 2].tolist() == [
        [1.0, 400.0], [0.8, 900.0]]
    with pytest.raises(TopologyError, match="channel c: t-channel propagator q is massless "
                                            "with nu = 1.0 >= 1"):
        compile_topology(Topology(t_channel=TChannel((2, 3, 4), props), name="c"), [0.0] * 3)
    with pytest.raises(TopologyError, match="channel c: a t-channel chain of 3 blocks needs "
                                            "2 scales"):
        compile_topology(Topology(t_channel=TChannel((2, 3, 4), props, (1.0,)), name="c"),
                         [0.0] * 3)
    with pytest.raises(TopologyError, match="channel c: t_channel scale 1 must be"):
        compile_topology(Topology(t_channel=TChannel((2, 3, 4), props, (1.0, -2.0)),
                                  name="c"), [0.0] * 3)


def test_partonic_energy_of_massless_channels_above_a_cut_is_sampled_as_a_power() -> None:
    """Hadron beams: the partonic energy of a t-channel chain, and of a massless s-channel
    above a cut (min_shat or min_mass), follows ROOT_NU whatever the propagator's nu, or
    ROOT_NU_RESONANT with a resonance below; a massless s-channel without a cut keeps its
    propagator's nu < 1."""
    q = Propagator(nu=0.8, name="u")
    s_chan = Topology(s_channel=Decay(q, (Decay(Propagator(name="a"), (2, 3)), 4)),
                      name="u* > a u", min_shat=1600.0)
    t_chan = Topology(t_channel=TChannel((4, Decay(Propagator(name="a"), (2, 3))), (q,)),
                      name="t", min_shat=1600.0)
    for topo in (s_chan, t_chan):
        program = compile_topology(topo, [0.0] * 3, hadronic=True)
        assert program.int_table[0, I_SAMPLER] == SAMPLER_POWER
        assert program.float_table[0, 1:4].tolist() == [40.0, ROOT_NU, 0.0]
    z = Propagator(91.188, 2.441404, name="Z")
    for topo in (Topology(s_channel=Decay(q, (Decay(z, (2, 3)), 4)), min_shat=1600.0),
                 Topology(t_channel=TChannel((4, Decay(z, (2, 3))), (q,)), min_shat=1600.0)):
        # a resonance below the root: 1/shat
        program = compile_topology(topo, [0.0] * 3, hadronic=True)
        assert program.float_table[0, 1:4].tolist() == [40.0, ROOT_NU_RESONANT, 0.0]
    uncut = compile_topology(Topology(s_channel=s_chan.s_channel, name="no cut"), [0.0] * 3,
                             hadronic=True)
    assert uncut.float_table[0, 1:4].tolist() == [0.0, 0.8, 0.0]
    lepton = compile_topology(s_chan, [0.0] * 3)
    assert lepton.int_table[0, I_SAMPLER] == SAMPLER_NONE
