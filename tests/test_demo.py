"""The main job (``madnis-py-demo``) runs end to end on the embedded default."""

from __future__ import annotations

import re

import pytest

from madnis_py.demo import main


def test_demo_drell_yan_short_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--steps", "5", "--batch", "512", "--points", "20000"]) == 0
    out = capsys.readouterr().out
    assert "p p -> e+ e- at 13 TeV" in out
    value = float(re.search(r"flow sampling:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    # The LO cross section with LHToyPDF is 1391.6 pb (tests/test_integrand.py quadrature);
    # a barely trained flow still gives an unbiased estimate, within a few percent here.
    assert value == pytest.approx(1391.6, rel=0.05)


def test_demo_camel(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--camel", "--dims", "2", "--steps", "5", "--batch", "256",
                 "--points", "5000"]) == 0
    assert "pull vs exact" in capsys.readouterr().out
