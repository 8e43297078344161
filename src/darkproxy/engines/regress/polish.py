"""A Levenberg-Marquardt polish of a regression's answer (after Adam: :func:`darkproxy.engines.regress.engine.regress`).

Adam on the logits finds the basin in a few dozen iterations but crawls along its valleys: sliders that trade
with each other (exposure with color balance rgb's brilliance, saturation with chroma, a tone mapper's contrast
with both) leave a long, narrow floor that its first-order steps, shrunk by the cosine schedule, do not reach
the end of. A few Gauss-Newton steps on the same logits do: the Jacobian of the loss-encoded output by central
differences (one batch of ``2 k`` evaluations for ``k`` sliders), the L1 loss as iteratively reweighted least
squares (weights ``1 / max(|r|, eps)``), Marquardt's damping on the diagonal, a batched backtracking line search
along the step, and a watchdog (Chamberlain et al. 1982): where the full step raises the loss, since along a valley
it leaves the steep side a little off while it crosses the floor, the next step from there is tried too and the
pair kept when it ends lower. The loss is the engine's own; the polish never returns a worse point than it was
given.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

EPS_R = 1e-4  # IRLS: residuals below this count as this (the L1 kink)
# Marquardt's damping, relative to the diagonal: it starts (and returns) near pure Gauss-Newton, since a valley is
# where the curvature across the sliders differs by orders (4e4 in test_polish's): a damping of 1e-3 there held the
# step to the steep direction and crawled along the floor
LAMBDA0 = 1e-9
STEP = 1e-2  # central-difference step on the logits (float32 outputs: rounding ~1e-7 / 1e-2, truncation ~STEP^2)
ALPHAS = torch.tensor([1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625])  # the line search's step lengths


def lm_polish(
    model: Callable[[torch.Tensor], torch.Tensor],
    z0: torch.Tensor,
    target: torch.Tensor,
    kind: str,
    iters: int,
    chunk: int = 16,
) -> tuple[torch.Tensor, float, float]:
    """``model(z (B, k)) -> (B, C, H, W)`` loss-encoded outputs for ``B`` logit vectors; ``z0 (k,)`` the start,
    ``target (1, C, H, W)`` the encoded target, ``kind`` ``"l1"`` or ``"mse"``. At most ``iters`` iterations
    (each one or two Jacobians). Returns ``(z, loss at z0, loss at z)`` with ``loss(z) <= loss(z0)``."""

    def residuals(z: torch.Tensor) -> torch.Tensor:
        out = [model(z[i : i + chunk]) - target for i in range(0, z.shape[0], chunk)]
        return torch.cat(out).flatten(1).double()

    def loss_of(r: torch.Tensor) -> torch.Tensor:
        lo = r.abs().mean(1) if kind == "l1" else (r * r).mean(1)
        return torch.where(torch.isfinite(r).all(1), lo, torch.full_like(lo, float("inf")))

    k = int(z0.numel())
    h = STEP * torch.eye(k, dtype=z0.dtype, device=z0.device)

    def gn_step(z: torch.Tensor, r: torch.Tensor, lam: float) -> torch.Tensor | None:
        """The damped Gauss-Newton step at ``z (1, k)`` with residuals ``r (N,)``; ``None`` where it cannot."""
        probes = residuals(torch.cat([z + h, z - h]))
        jac = ((probes[:k] - probes[k:]) / (2 * STEP)).T  # (N, k)
        if not (torch.isfinite(jac).all() and torch.isfinite(r).all()):
            return None
        w = 1.0 / r.abs().clamp_min(EPS_R) if kind == "l1" else torch.ones_like(r)
        jw = jac * w[:, None]
        a = jac.T @ jw
        diag = torch.diagonal(a).clamp_min(1e-12)
        try:
            return torch.linalg.solve(a + lam * torch.diag(diag), -(jw.T @ r)).to(z.dtype)
        except RuntimeError:  # singular even damped
            return None

    def search(z: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Candidates along ``d`` (a batched backtracking line search): (points, residuals, losses)."""
        cand = z + ALPHAS.to(z)[:, None] * d[None]
        rc = residuals(cand)
        return cand, rc, loss_of(rc)

    z = z0.detach().clone().reshape(1, k)
    with torch.no_grad():
        r = residuals(z)[0]
        start = cur = float(loss_of(r[None])[0])
        lam = LAMBDA0
        for _ in range(iters):
            d = gn_step(z, r, lam)
            if d is None:
                break
            cand, rc, lc = search(z, d)
            j = int(torch.argmin(lc))
            best = (cand[j : j + 1], rc[j], float(lc[j]))
            if j != 0 and torch.isfinite(lc[0]):  # the watchdog: the full step, then the next step from there
                d2 = gn_step(cand[:1], rc[0], lam)
                if d2 is not None:
                    c2, r2, l2 = search(cand[:1], d2)
                    j2 = int(torch.argmin(l2))
                    if float(l2[j2]) < best[2]:
                        best = (c2[j2 : j2 + 1], r2[j2], float(l2[j2]))
            if best[2] < cur:
                gain = (cur - best[2]) / max(cur, 1e-12)
                z, r, cur = best
                lam = max(lam / 10.0, LAMBDA0)
                if gain < 1e-6:
                    break
            else:
                lam *= 100.0
                if lam > 1e6:
                    break
    return z[0], start, cur
