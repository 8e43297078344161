"""Where a window lies in its image (``origin``), and the affine head as a matrix."""

from __future__ import annotations

import pytest
import torch

from darkproxy.models import build_model
from darkproxy.models.layers import affine_apply, affine_matrix


def _perturbed(arch: str) -> torch.nn.Module:
    torch.manual_seed(0)
    m = build_model(arch, 2, width=8, depth=2, param_hidden=8)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.2 * torch.randn(p.shape))
    return m


@pytest.mark.parametrize("arch", ["positional", "multiscale"])
def test_a_window_with_its_origin_sees_what_the_whole_image_sees(arch: str) -> None:
    """Position features of a window told its origin are the whole image's
    there: coordinates (positional), border distances (multiscale; the bands
    differ near the window's edge, so compare those channels only)."""
    m = _perturbed(arch)
    assert m.takes_origin
    x = torch.rand(2, 3, 40, 52)
    whole = m.features(x)
    torch.testing.assert_close(m.features(x, torch.tensor([[0, 0, 40, 52]] * 2)), whole)
    win = x[:, :, 10:30, 7:40]
    part = m.features(win, torch.tensor([[10, 7, 40, 52], [10, 7, 40, 52]]))
    pos = slice(3, None) if arch == "positional" else slice(-4, None)  # coordinates / border distances
    torch.testing.assert_close(part[:, pos], whole[:, pos, 10:30, 7:40], atol=0, rtol=0)
    assert not torch.equal(m.features(win)[:, pos], part[:, pos])  # without it: the window is an image


def test_positional_projections_of_a_window_are_the_whole_images() -> None:
    """With ``proj``, a window told its origin gets the whole image's output there (the projections
    are of the whole image's coordinates), and another without it."""
    torch.manual_seed(0)
    m = build_model("positional", 2, width=8, depth=2, param_hidden=8, proj=3)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.2 * torch.randn(p.shape))
    x, p = torch.rand(2, 3, 40, 52), torch.rand(2, 2)
    with torch.no_grad():
        whole = m(x, p)
        part = m(x[:, :, 10:30, 7:40], p, origin=torch.tensor([[10, 7, 40, 52]] * 2))
        alone = m(x[:, :, 10:30, 7:40], p)
    torch.testing.assert_close(part, whole[:, :, 10:30, 7:40])
    assert not torch.allclose(alone, part)


def test_pointwise_forward_with_and_without_origin() -> None:
    m = _perturbed("pointwise")
    x, p = torch.rand(1, 3, 9, 11), torch.rand(1, 2)
    torch.testing.assert_close(m(x, p, origin=torch.tensor([[3, 4, 30, 40]])), m(x, p))


def test_affine_matrix_is_affine_apply() -> None:
    g = torch.Generator().manual_seed(0)
    coef = torch.randn(500, 15, generator=g)
    coef[:5, :3] = torch.tensor([30.0, -30.0, 0.0])  # beyond the gain limit: clamped alike
    x = torch.randn(500, 3, generator=g) * 2
    a, o = affine_matrix(coef)
    torch.testing.assert_close((a @ x[..., None])[..., 0] + o, affine_apply(coef, x), rtol=1e-5, atol=1e-4)


def test_head_is_the_affine_transform_of_its_coefficients() -> None:
    m = _perturbed("pointwise")
    x, p = torch.rand(2, 30, 3), torch.rand(2, 2)
    feats = m.features(x.transpose(1, 2)[..., None])[..., 0].transpose(1, 2)
    torch.testing.assert_close(m.head(feats, x, p), affine_apply(m.coefficients(feats, p), x))
