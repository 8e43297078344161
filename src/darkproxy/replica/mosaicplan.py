"""What ``--from-mosaic`` plans beyond the chain (:mod:`darkproxy.replica.chain`): which mosaic stages
and which stages between demosaic and colorin the replica can run from the raw's CFA, and the CFA
pattern rawprepare hands on.

The replica applies colorin's camera matrix right after demosaic (the chain's stages then all see
linear Rec2020, as every tap-out is). darktable applies it at colorin, so a stage in between runs on
camera RGB in darktable: only those that commute with the matrix are accepted there
(:data:`MATRIX_COMMUTES`), any other is refused in one line.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from darkproxy.replica.blend import stage_blend
from darkproxy.replica.blend_camera import stage_needs_matrix
from darkproxy.replica.ports.rawprepare import crop_margins
from darkproxy.replica.registry import EXACT, StageContext

# a permutation of pixels, and exposure's (x - black) / white, equal on the three channels (colorin's matrix
# maps camera white to (1, 1, 1): its rows sum to 1, so it commutes with both)
MATRIX_COMMUTES = ("flip", "exposure")
# exact ports that run there through colorin's matrix as darktable's renders measure it
# (``ctx.camera_matrix``: back to camera RGB, the module, the matrix again): the chain measures it for them
CAMERA_RGB = ("profile_gamma", "graduatednd", "denoiseprofile", "hazeremoval", "toneequal")
# ports that run on camera RGB but not from the mosaic, and why
NOT_FROM_MOSAIC = {
    "denoiseprofile": "its transform reads the white balance coefficients, which the replica takes from the history "
    "and --from-mosaic may regress",
}


def before_colorin(order: Sequence[str], m: str) -> bool:
    """Does ``m`` run between demosaic and colorin in pipe ``order`` (on camera RGB)?"""
    if "colorin" not in order or "demosaic" not in order or m not in order:
        return False
    return order.index("demosaic") < order.index(m) < order.index("colorin")


def needs_camera_matrix(stages: Sequence[Any], modules: Sequence[str]) -> bool:
    """Whether a stage of the chain (``stages``: plans with ``module`` and ``kind``) is an exact port of
    :data:`CAMERA_RGB` that ``modules`` (the pipe's, in order) runs before colorin: the chain then needs
    colorin's matrix (``ctx.camera_matrix``), measured from darktable's renders; so does a stage's blend on
    camera RGB (:func:`darkproxy.replica.blend_camera.camera_blend`)."""
    if "colorin" not in modules:
        return False
    cut = list(modules).index("colorin")
    return any(
        st.kind == "exact" and st.module in CAMERA_RGB and st.module in modules and modules.index(st.module) < cut
        for st in stages
    ) or stage_needs_matrix(stages, modules)  # a blend on camera RGB (replica/blend_camera.py)


def mosaic_refusal(
    m: str,
    item: Any,
    values: Mapping[str, Any],
    version: int | None,
    undecoded: str | None,
    ctx: StageContext,
    order: Sequence[str],
    mosaic: bool,
) -> str | None:
    """Why ``--from-mosaic`` cannot run module ``m`` (a mosaic stage: its exact port at the history's
    ``values``, decoded at ``version``, or ``undecoded``'s reason; a stage between demosaic and colorin:
    one of :data:`MATRIX_COMMUTES`), as one line; ``None`` when it can."""
    if not mosaic:
        if m in NOT_FROM_MOSAIC:
            return f"{m} cannot run from the mosaic ({NOT_FROM_MOSAIC[m]})"
        if m in MATRIX_COMMUTES or m in CAMERA_RGB:
            return None
        return (
            f"{m} runs on camera RGB between demosaic and colorin: --from-mosaic models only "
            f"{', '.join(MATRIX_COMMUTES)} there (they commute with colorin's matrix) and "
            f"{', '.join(c for c in CAMERA_RGB if c not in NOT_FROM_MOSAIC)} (through its measured matrix)"
        )
    op = EXACT.get(m)
    if op is None or not op.mosaic:
        why: str | None = "no exact port of this mosaic stage"
    elif undecoded is not None:
        why = undecoded
    elif version not in op.versions:
        why = f"params version {version}: the exact stage implements version(s) {', '.join(map(str, op.versions))}"
    else:
        blend, blend_why = stage_blend(item, m, order)
        why = op.supports(values, ctx) or blend_why
        why = why or (f"{m} is blended ({blend.mode_name})" if blend is not None else None)
    return None if why is None else f"{m} cannot run from the mosaic ({why})"


def cfa_after_crop(raw: str | os.PathLike[str] | None, prefix: Sequence[Any]) -> tuple[int, int, int, int] | None:
    """The CFA colours (0 R, 1 G, 2 B) of the 2x2 sites of rawprepare's output: the raw's pattern shifted
    by rawprepare's crop (``prefix``: the mosaic stages' plans); ``None`` when rawpy cannot read it (the
    chain then refuses to run)."""
    if raw is None:
        return None
    from darkproxy.errors import RawError
    from darkproxy.raw.mosaic import read_cfa_pattern

    try:
        pat = read_cfa_pattern(raw)
    except RawError:
        return None
    rp: Mapping[str, Any] = next((st.values for st in prefix if st.module == "rawprepare"), {})
    x, y = crop_margins(rp)[:2] if rp else (0, 0)
    site = [pat[((i + y) % 2) * 2 + (j + x) % 2] for i in (0, 1) for j in (0, 1)]
    return site[0], site[1], site[2], site[3]


def _demosaic_region(x: torch.Tensor, ctx: StageContext) -> torch.Tensor:
    """``x (B, 1, H, W)``, rawprepare's output, cut to the top-left region darktable's demosaic reads for the
    chain's output size (:func:`~darkproxy.replica.ports.resample.demosaic_roi`; the whole image but on darktable
    4.8 on below full size): the mosaic stages between run on it as darktable's do (inpaint opposed's estimate
    included)."""
    from darkproxy.replica.ports.resample import demosaic_roi

    assert ctx.out_size is not None
    oh, ow = ctx.out_size
    h, w = demosaic_roi((int(x.shape[-2]), int(x.shape[-1])), (oh, ow), ctx.darktable_version)
    return x[..., :h, :w]


def run_mosaic(
    prefix: Sequence[Any],
    x: torch.Tensor,
    ctx: StageContext,
    stage: Callable[[Any, torch.Tensor, StageContext], torch.Tensor],
    values: Callable[[Any], dict[str, Any]],
    upto: str | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The mosaic stages ``prefix`` (their plans) on ``x (B, 1, H, W)`` the raw's uncropped CFA, then colorin's
    camera matrix (``ctx.camera_matrix``) -> (linear Rec2020 ``(B, 3, h, w)``, every stage's output).
    ``stage(plan, y, ctx)`` runs one stage at its sliders, ``values(plan)`` gives them; darktable's
    ``processed_maximum`` is carried from stage to stage (``ExactOp.maximum``) in ``ctx``. ``upto``: stop
    after that stage (the later mosaic stages off, as in darktable's render of that tap-out), then demosaic."""
    from darkproxy.errors import DarkproxyError

    if ctx.camera_matrix is None:
        raise DarkproxyError("--from-mosaic: colorin's camera matrix is not measured (build the chain with renders)")
    if upto is not None:
        k = [st.module for st in prefix].index(upto)
        prefix = [*prefix[: k + 1], *[st for st in prefix[k + 1 :] if st.module == "demosaic"]]
    cur, outs = x, []
    pm = torch.ones(x.shape[0], 3, dtype=x.dtype, device=x.device)  # rawprepare's processed_maximum
    cut = ctx.out_size is None or not any(st.module == "demosaic" for st in prefix)
    for st in prefix:
        op = EXACT[st.module]
        if not cut and st.module != "rawprepare":  # rawprepare's output: the region demosaic reads of it
            ctx = dataclasses.replace(ctx, mosaic_size=(int(cur.shape[-2]), int(cur.shape[-1])))
            cur, cut = _demosaic_region(cur, ctx), True
        c = dataclasses.replace(ctx, processed_maximum=pm)
        cur = stage(st, cur, c)
        if op.maximum is not None:
            pm = op.maximum(values(st), c, pm)
        outs.append(cur)
    if cur.shape[1] != 3:
        raise DarkproxyError("--from-mosaic: the history has no demosaic stage")
    m = torch.as_tensor(ctx.camera_matrix, dtype=cur.dtype, device=cur.device)
    return torch.einsum("ij,bjhw->bihw", m, cur), outs
