"""The hand-written gradients of :mod:`darkproxy.replica.gradops` (float64 gradcheck), and their
values: bit for bit those of the torch expressions they stand for."""

from __future__ import annotations

import torch

from darkproxy.replica.gradops import channel_min, div_channels


def test_gradops_values_and_gradients() -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(2, 3, 4, 5, generator=gen, dtype=torch.float64)
    b = torch.rand(2, 1, 4, 5, generator=gen, dtype=torch.float64) + 0.5
    a32, b32 = a.float(), b.float()
    assert torch.equal(div_channels(a32, b32), a32 / b32)
    assert torch.equal(channel_min(a32), a32.amin(1, keepdim=True))
    assert torch.autograd.gradcheck(div_channels, (a.clone().requires_grad_(True), b.clone().requires_grad_(True)))
    assert torch.autograd.gradcheck(channel_min, (a.clone().requires_grad_(True),))
    # a tie shares the gradient evenly, as amin's
    t = torch.tensor([0.2, 0.2, 0.5], dtype=torch.float64).reshape(1, 3, 1, 1).requires_grad_(True)
    (g,) = torch.autograd.grad(channel_min(t).sum(), t)
    assert g.flatten().tolist() == [0.5, 0.5, 0.0]
    # other shapes: the plain expression
    s = torch.tensor(2.0, dtype=torch.float64)
    assert torch.equal(div_channels(a, s), a / s)
