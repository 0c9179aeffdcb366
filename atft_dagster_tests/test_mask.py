"""The validity mask held as its distinct rows gives the model what the dense mask gives it."""

from __future__ import annotations

import pytest
import torch

from atft_dagster.model.layers import VariableSelection
from atft_dagster.model.mask import PatternMask


@pytest.fixture
def mask() -> PatternMask:
    g = torch.Generator().manual_seed(0)
    rows = (torch.rand(7, 11, generator=g) > 0.3).float()
    return PatternMask(torch.randint(0, 5, (9, 6), generator=g), rows)  # rows 5 and 6 unused


def test_pattern_mask_operations_equal_their_dense_definitions(mask):
    dense = mask.rows[mask.index]
    assert mask.shape == tuple(dense.shape) == (9, 6, 11)
    assert torch.equal(mask.dense(), dense)
    torch.testing.assert_close(mask.step_mean(), dense.mean(dim=1))
    w, b = torch.randn(4, 11), torch.randn(4)
    torch.testing.assert_close(mask.project(w, b), torch.nn.functional.linear(dense, w, b))
    small = mask.compact()
    assert len(small.rows) == len(mask.index.unique()) < len(mask.rows)
    assert torch.equal(small.dense(), dense)
    padded = mask.pad(3)
    assert torch.equal(padded.dense()[:9], dense) and padded.dense()[9:].abs().sum() == 0


def test_variable_selection_is_the_same_with_either_mask(mask):
    """In float64, so that only the order of additions differs."""
    torch.manual_seed(1)
    vsn = VariableSelection(11, 8).double()
    x = torch.randn(9, 6, 11, dtype=torch.float64)
    mask = PatternMask(mask.index, mask.rows.double())
    runs = []
    for m in (mask.dense(), mask):
        vsn.zero_grad()
        h, w = vsn(x, m)
        (h.square().sum() + w.square().sum()).backward()
        runs.append(((h.detach(), w.detach()), {k: p.grad.clone() for k, p in vsn.named_parameters()}))
    (dense_out, dense_grads), (ours, grads) = runs
    torch.testing.assert_close(ours, dense_out)
    assert grads.keys() == dense_grads.keys()
    for k in grads:
        torch.testing.assert_close(grads[k], dense_grads[k], msg=k)
    assert grads["project.weight"][:, 11:].abs().sum() > 0  # the mask half really gets a gradient
