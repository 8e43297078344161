"""darktable's RCD as one tile (:func:`darkproxy.raw.demosaic.rcd_untiled`, the ``demosaic-rcd`` proxies' base)
against the tiled kernel the replica checks against darktable (tests/replica/test_mosaic.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from darkproxy.models.demosaic_rcd import RCD_REACH, packed_cfa
from darkproxy.raw.demosaic import rcd, rcd_untiled


def _mosaic(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A smooth random image with fine noise, mosaicked: ``(1, 1, h, w)``, values 0-2."""
    g = torch.Generator().manual_seed(seed)
    smooth = F.avg_pool2d(torch.rand(1, 1, h, w, generator=g) * 2.0, 5, 1, 2, count_include_pad=False)
    return smooth + 0.05 * torch.rand(1, 1, h, w, generator=g)


def test_rcd_untiled_is_darktables_rcd_on_one_tile_and_near_it_on_many() -> None:
    fc, sc = packed_cfa(55, 50, torch.device("cpu")), torch.tensor([2.0])
    x = _mosaic(110, 100)  # darktable's RCD: one tile (112 photosites)
    assert torch.equal(rcd_untiled(x, fc, sc), rcd(x, fc, sc))
    fc, x = packed_cfa(128, 128, torch.device("cpu")), _mosaic(256, 256, 1)  # 3 x 3 tiles
    a, b = rcd(x, fc, sc), rcd_untiled(x, fc, sc)
    diff = (a - b).abs()
    # measured on 3 such mosaics: up to 3e-4 - 2.0e-3 (of values up to 2) in 0.2 % of the values, at the seams
    assert 0 < float(diff.max()) < 5e-3 and float((diff > 1e-6).float().mean()) < 0.01


def test_a_window_of_rcd_untiled_is_the_whole_mosaics_beyond_rcd_reach() -> None:
    """Why ``demosaic-rcd`` skips RCD_REACH px at a crop's edges in training and reads as much halo per tile."""
    x = _mosaic(160, 160, 2)
    sc = torch.tensor([2.0])
    whole = rcd_untiled(x, packed_cfa(80, 80, torch.device("cpu")), sc)
    win = rcd_untiled(x[..., 40:120, 30:110], packed_cfa(40, 40, torch.device("cpu")), sc)
    r = RCD_REACH
    inner = (win - whole[..., 40:120, 30:110])[..., r:-r, r:-r]
    assert float(inner.abs().max()) == 0.0
    near = (win - whole[..., 40:120, 30:110])[..., r - 2 : -(r - 2), r - 2 : -(r - 2)]
    assert float(near.abs().max()) > 1e-4  # 8 px in, the window's edge still shows (measured 6.6e-4; 9 px: 7.8e-5)
