"""``torch.autograd.gradcheck`` (float64) of every registered architecture, with
respect to both the input image and the params: the analytic gradients that
training and slider regression follow are the true derivatives of the forward.

Inputs are kept away from the few kinks of the forward: linear values in
[0.05, 1.25] (the sRGB curve of the band-pass features switches branch at
0.0031; ``spatial`` clamps its linear input to [-1, 4]), params in (0, 1).
"""

from __future__ import annotations

import inspect
import time

import pytest
import torch

from darkproxy.models import arch_entry, build_model, list_archs

# small versions of the built-in architectures; a new architecture gets whichever of these its constructor takes
SMALL = {"width": 4, "depth": 2, "levels": 2, "param_hidden": 8}
N_PARAMS = 2


@pytest.fixture(autouse=True)
def one_thread():
    """Thousands of tiny forwards: with the default threads on a busy 2-core machine the
    full-Jacobian checks took 20-30 s each (thread contention), with one 0.5-1.7 s (measured)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _setup(
    arch: str, h: int, w: int, seed: int = 0, **extra: object
) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """A small float64 ``arch`` with every weight moved off its (zero)
    initialisation, so that all paths carry gradient; an image and params."""
    e = arch_entry(arch)
    takes = inspect.signature(e.cls.__init__).parameters
    c = 4 if e.pre_demosaic else 3
    torch.manual_seed(seed)
    small = {k: v for k, v in SMALL.items() if k in takes}
    model = build_model(arch, N_PARAMS, in_channels=c, **small, **extra).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    x = 0.05 + 1.2 * torch.rand(1, c, h, w, generator=g, dtype=torch.float64)
    p = 0.1 + 0.8 * torch.rand(1, N_PARAMS, generator=g, dtype=torch.float64)
    return model, x.requires_grad_(True), p.requires_grad_(True)


@pytest.mark.parametrize("arch", list_archs())
def test_gradcheck_wrt_image_and_params(arch: str) -> None:
    pre = arch_entry(arch).pre_demosaic
    t0 = time.perf_counter()
    # full Jacobian on a tiny image (6 px: not a multiple of 4, so the UNet's pad and crop are in it)
    model, x, p = _setup(arch, *((3, 3) if pre else (6, 6)))
    y = model(x, p)
    assert y.dtype == torch.float64 and y.shape[-2:] == ((6, 6) if pre else x.shape[-2:])
    # the check is not vacuous: the output really depends on every param and on the image
    gx, gp = torch.autograd.grad((y**2).sum(), (x, p))
    assert float(gx.abs().max()) > 1e-3 and float(gp.abs().min()) > 1e-6, (gx.abs().max(), gp)
    assert torch.autograd.gradcheck(model, (x, p), eps=1e-6, atol=1e-5, rtol=1e-3)
    # a larger image (no padding, reflected blurs) with random projections of the Jacobian
    model, x, p = _setup(arch, *((8, 8) if pre else (16, 16)), seed=1)
    assert torch.autograd.gradcheck(model, (x, p), eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=True)
    print(f"\n{arch}: gradcheck {time.perf_counter() - t0:.2f} s")


def test_gradcheck_multiscale_with_blur_bases() -> None:
    """The blurred bases' blend (an option of ``multiscale``) is differentiable too."""
    model, x, p = _setup("multiscale", 6, 6, blur_bases=True)
    assert torch.autograd.gradcheck(model, (x, p), eps=1e-6, atol=1e-5, rtol=1e-3)


def test_gradcheck_multiscale_with_image_stats() -> None:
    """The whole image's quantiles (``image_stats``, an option of ``multiscale``) are differentiable: a sort's
    values, interpolated (36 distinct pixels per plane: no ties)."""
    model, x, p = _setup("multiscale", 6, 6, image_stats=True)
    assert torch.autograd.gradcheck(model, (x, p), eps=1e-6, atol=1e-5, rtol=1e-3)


def test_gradcheck_positional_with_projections() -> None:
    """The param-conditioned projections of the position features (``proj``, an option of
    ``positional``) are differentiable too, and the output depends on them."""
    model, x, p = _setup("positional", 6, 6, proj=3)
    assert torch.autograd.gradcheck(model, (x, p), eps=1e-6, atol=1e-5, rtol=1e-3)
    y = model(x, p)
    with torch.no_grad():
        model.proj_mlp.net[-1].bias.add_(1.0)  # other projections: another output
    assert not torch.allclose(model(x, p), y)


def test_gradcheck_pointwise_with_mixes() -> None:
    """The param-conditioned linear maps of the linear pixel (``mix``, an option of ``pointwise``) are
    differentiable, and the MLP reads them: each is ``log_encode(m . rgb + o)`` of the pixel's linear RGB."""
    from darkproxy.colour.encodings import log_encode

    model, x, p = _setup("pointwise", 6, 6, mix=2)
    assert torch.autograd.gradcheck(model, (x, p), eps=1e-6, atol=1e-5, rtol=1e-3)
    y = model(x, p)
    with torch.no_grad():
        model.mix_mlp.net[-1].weight.zero_()
        model.mix_mlp.net[-1].bias.copy_(torch.tensor([0.5, -1.0, 0.25, 0.1, 0.0, 2.0, 0.0, -0.3], dtype=x.dtype))
        feats = model.features(x).flatten(2).transpose(1, 2)
        seen: list[torch.Tensor] = []
        hook = model.layers[0].register_forward_hook(lambda _m, inp, _o: seen.append(inp[0]))
        changed = model(x, p)
        hook.remove()
    rgb = x.flatten(2).transpose(1, 2)
    want = log_encode(
        torch.stack([rgb @ torch.tensor([0.5, -1.0, 0.25], dtype=x.dtype) + 0.1, 2.0 * rgb[..., 1] - 0.3], -1)
    )
    torch.testing.assert_close(seen[0], torch.cat([feats, want], -1))
    assert not torch.allclose(changed, y)


@pytest.mark.parametrize("arch", list_archs())
def test_archs_keep_float64(arch: str) -> None:
    model, x, p = _setup(arch, 6, 6)
    assert model(x, p).dtype == torch.float64


def test_gradcheck_catches_a_wrong_gradient() -> None:
    """The tolerances used above do fail on a gradient that is off by 1 %."""

    class Off(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):  # type: ignore[override]
            ctx.save_for_backward(x)
            return x**3

        @staticmethod
        def backward(ctx, g):  # type: ignore[override]
            (x,) = ctx.saved_tensors
            return g * 3 * x**2 * 1.01

    x = (0.5 + torch.rand(4, dtype=torch.float64)).requires_grad_(True)
    assert not torch.autograd.gradcheck(Off.apply, (x,), eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=False)
