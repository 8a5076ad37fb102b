"""Subprocesses sharing a matrix element (``matrix_element`` in the process card) are
evaluated once per point: the same integrand, bit for bit, with fewer library calls."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from madnis_py.integrand import Integrand
from madnis_py.physics.process import ProcessCardError, load_process


@pytest.mark.parametrize(("name", "groups"), [("drell_yan", 4), ("ee_qqg", 2),
                                              ("ttbar", 2)])
def test_a_shared_matrix_element_gives_the_same_integrand(name: str, groups: int) -> None:
    grouped = load_process(name)
    names = {s.matrix_element for s in grouped.subprocesses} - {None}
    assert len(names) == groups
    alone = dataclasses.replace(grouped, subprocesses=tuple(
        dataclasses.replace(s, matrix_element=None) for s in grouped.subprocesses))
    a, b = Integrand(grouped), Integrand(alone)
    rng = np.random.default_rng(3)
    for channel in range(a.n_channels):
        x = rng.random((3000, a.dims(channel)))
        one, two = a(x, channel, details=True), b(x, channel, details=True)
        for field in ("f", "prior", "subprocess_f", "momenta", "passed"):
            np.testing.assert_array_equal(getattr(one, field), getattr(two, field),
                                          err_msg=field)
        assert one.passed.any()
    # each shared matrix element is called once per point instead of once per flavour
    # (every subprocess passes the same points here: same cuts, no zero luminosity)
    total = len(grouped.subprocesses)
    shared = sum(1 for s in grouped.subprocesses if s.matrix_element is not None)
    assert a.n_calls * total == b.n_calls * (total - shared + groups)


def test_the_card_field_is_checked(tmp_path: Path) -> None:
    card = load_process("ee_mumu").card.read_text()
    bad = tmp_path / "process.toml"
    bad.write_text(card.replace("pdgs = [-11, 11, -13, 13]",
                                "pdgs = [-11, 11, -13, 13]\nmatrix_element = 3"))
    with pytest.raises(ProcessCardError, match="matrix_element = 3 is not a string"):
        load_process(str(bad))
