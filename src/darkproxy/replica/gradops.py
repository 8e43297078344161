"""Per-pixel operations with hand-written gradients: the same values as the torch expressions
they stand for, with a backward pass that is cheaper on CPU than autograd's.

Autograd's backward of a ``(B, C, H, W)`` by ``(B, 1, H, W)`` quotient computes the divisor's
gradient at the broadcast shape and reduces it, and that of
``amin`` over channels goes through a generic tie-counting path: both cost several times their
forward pass at full image size. These compute the same gradients (up to rounding) directly.
"""

from __future__ import annotations

from typing import Any

import torch

Tensor = torch.Tensor


def _per_channel(a: Tensor, b: Tensor) -> bool:
    """Is ``b`` one channel of ``a``'s shape (``(B, 1, H, W)`` beside ``(B, C, H, W)``), same dtype?"""
    return (
        a.ndim == 4
        and b.ndim == 4
        and b.shape[1] == 1
        and a.shape[0] == b.shape[0]
        and a.shape[2:] == b.shape[2:]
        and a.dtype == b.dtype
    )


class _DivChannels(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor) -> Tensor:
        q = a / b
        ctx.save_for_backward(b, q)
        return q

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, Tensor | None]:
        b, q = ctx.saved_tensors
        ga = g / b
        gb = -(ga * q).sum(1, keepdim=True) if ctx.needs_input_grad[1] else None
        return (ga if ctx.needs_input_grad[0] else None), gb


class _ChannelMin(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        y = x.amin(1, keepdim=True)
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> Tensor:
        x, y = ctx.saved_tensors
        hit = (x == y).to(g.dtype)  # ties share the gradient evenly, as amin's
        return hit * (g / hit.sum(1, keepdim=True))


def div_channels(a: Tensor, b: Tensor) -> Tensor:
    """``a / b`` for ``a (B, C, H, W)`` and ``b (B, 1, H, W)`` (any other shapes: plain ``a / b``)."""
    return _DivChannels.apply(a, b) if _per_channel(a, b) else a / b


def channel_min(x: Tensor) -> Tensor:
    """``x.amin(1, keepdim=True)`` of ``(B, C, H, W)``."""
    return _ChannelMin.apply(x)
