"""The thread defaults: one thread unless the environment or the caller says otherwise."""

from __future__ import annotations

import pytest
import torch

from madnis_py.threads import THREADS_ENV, configure_threads, default_threads


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_default_is_one_thread(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert default_threads() == 1
    assert configure_threads() == 1
    assert torch.get_num_threads() == 1


def test_environment_wins_in_order(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert default_threads() == 3
    monkeypatch.setenv(THREADS_ENV, "2")
    assert default_threads() == 2
    assert configure_threads() == 2 and torch.get_num_threads() == 2
    assert configure_threads(1) == 1 and torch.get_num_threads() == 1


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_bad_environment_names_the_variable(monkeypatch, value):
    monkeypatch.setenv(THREADS_ENV, value)
    with pytest.raises(ValueError, match=THREADS_ENV):
        default_threads()


def test_bad_argument():
    with pytest.raises(ValueError, match="positive"):
        configure_threads(0)
