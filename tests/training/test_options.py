"""One table of integrator options and one loss registry, shared by the Integrator, its
checkpoints and the run card."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from madnis_py.cards.run_card import RunCardError, TrainingSettings, parse_run_card
from madnis_py.testfunctions import RidgeAndPeak
from madnis_py.training import LOSSES, Integrator, TrainingOptions
from madnis_py.training.checkpoint import CONFIG_KEYS


def test_the_card_integrator_and_checkpoint_share_the_options(tmp_path: Path) -> None:
    defaults = TrainingOptions()
    card_defaults = TrainingSettings()
    for name in TrainingOptions.names():
        if name not in ("flow_options", "seed"):
            assert getattr(card_defaults, name) == getattr(defaults, name), name
    assert set(TrainingOptions.names()) | {"feature_dims", "process"} == CONFIG_KEYS
    card = parse_run_card('[run]\nprocess = "drell_yan"\nseed = 4\n[training]\n'
                          'top_fraction = 0.05\nloss = "reverse_kl"\n')
    opts = card.integrator_options()
    assert opts["top_fraction"] == 0.05 and opts["loss"] == "reverse_kl" and opts["seed"] == 4
    assert set(opts) == set(TrainingOptions.names())
    mc = Integrator(RidgeAndPeak(), feature_dims=2, **opts)
    assert mc.top_fraction == 0.05 and mc.options == TrainingOptions(**opts)
    mc.save(tmp_path / "c.pt")
    again = Integrator.load(tmp_path / "c.pt", RidgeAndPeak())
    assert again.options == mc.options and again.config == mc.config
    assert "top_fraction = 0.05" in card.to_toml()


@pytest.mark.parametrize("key, value, expected", [
    ("top_fraction", "0.0", "0 < top_fraction <= 1"),
    ("mixture", "1.0", "0 <= mixture < 1"),
    ("lr", "0.0", "a learning rate > 0")])
def test_bad_options_name_the_card_line_and_the_field(key: str, value: str,
                                                      expected: str) -> None:
    text = f'[run]\nprocess = "drell_yan"\n[training]\n{key} = {value}\n'
    with pytest.raises(RunCardError, match=rf"run.toml:4: \[training\] {key}: .*{expected}"):
        parse_run_card(text, "run.toml")
    with pytest.raises(ValueError, match=rf"{key} must be {expected}, got {value}"):
        TrainingOptions(**{key: float(value)})


def test_one_loss_registry() -> None:
    card = TrainingSettings()
    assert card.loss in LOSSES
    for name in LOSSES:
        parse_run_card(f'[run]\nprocess = "drell_yan"\n[training]\nloss = "{name}"\n')
        Integrator(RidgeAndPeak(), feature_dims=2, loss=name)
    with pytest.raises(RunCardError, match="'kl' is not allowed"):
        parse_run_card('[run]\nprocess = "drell_yan"\n[training]\nloss = "kl"\n')
    with pytest.raises(ValueError, match="loss must be one of variance, stratified"):
        TrainingOptions(loss="kl")
    assert dataclasses.fields(TrainingOptions)[0].name == "flow_options"


def test_single_flow_losses_at_q_equal_q_old() -> None:
    """At q = q_old the variance loss is the squared relative std, the forward KL is
    -E_p[log q] and the reverse KL is E_q[log q - log f] (float64, exact formulas)."""
    gen = torch.Generator().manual_seed(0)
    f = torch.rand(200, dtype=torch.float64, generator=gen) + 0.1
    log_q = torch.randn(200, dtype=torch.float64, generator=gen)
    w = f / log_q.exp()
    expect = {"variance": float(w.var(unbiased=False) / w.mean() ** 2),
              "forward_kl": float(-(w * log_q).mean() / w.mean()),
              "reverse_kl": float((log_q - f.log()).mean())}
    expect["stratified"] = expect["variance"]
    for name, info in LOSSES.items():
        value = float(info.one_flow(f, log_q, log_q.clone()))
        assert abs(value - expect[name]) < 1e-12 * max(1.0, abs(expect[name])), name
