"""Masks and coupling blocks."""

import itertools

import pytest
import torch

from madnis_py.flows import RQSCoupling, SplineOptions, binary_masks


@pytest.mark.parametrize("dims", [2, 3, 4, 5, 8, 16, 17])
def test_every_dimension_conditions_every_other(dims: int) -> None:
    masks = binary_masks(dims)
    assert len(masks) == 2 * (dims - 1).bit_length()
    for i, j in itertools.permutations(range(dims), 2):
        # some block conditions on i while transforming j
        assert any(bool(m[i]) and not bool(m[j]) for m in masks), (i, j)
    for m in masks:
        assert 0 < int((~m).sum()) < dims + 1


def test_one_dimension_and_repeats() -> None:
    assert [m.tolist() for m in binary_masks(1)] == [[False]]
    masks = binary_masks(4, blocks=6)
    assert torch.equal(masks[4], masks[0]) and torch.equal(masks[5], masks[1])
    with pytest.raises(ValueError, match="dims"):
        binary_masks(0)


@pytest.mark.parametrize("backend", ["kernel", "reference"])
def test_coupling_leaves_conditioning_dims_alone(backend: str) -> None:
    mask = torch.tensor([True, False, True, False])
    block = RQSCoupling(mask, SplineOptions(8), condition_dims=2, backend=backend).double()
    for p in block.parameters():
        torch.nn.init.normal_(p, std=0.5)
    x = torch.rand(100, 4, dtype=torch.float64)
    c = torch.rand(100, 2, dtype=torch.float64)
    y, ld = block(x, c)
    assert torch.equal(y[:, mask], x[:, mask])
    assert not torch.allclose(y[:, ~mask], x[:, ~mask])
    x2, ld2 = block(y, c, inverse=True)
    assert torch.allclose(x2, x, atol=1e-10)
    assert torch.allclose(ld + ld2, torch.zeros_like(ld), atol=1e-9)


def test_bad_backend() -> None:
    with pytest.raises(ValueError, match="backend"):
        RQSCoupling(torch.tensor([True, False]), SplineOptions(), backend="fast")
