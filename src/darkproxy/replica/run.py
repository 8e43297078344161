"""``darkproxy replica``: run a history raw to display through the replica, beside darktable's export.

Renders (two darktable-cli processes, ``--hq false`` as every darkproxy render):

* float linear Rec2020: the replica's input (every module of the chain that darktable
  can switch off switched off: darktable's demosaiced image seen through colorin)
  and darktable's tap-out after each stage of the chain (later stages off);
* darktable's own 8-bit sRGB export of the whole history (``darktable.png``), the
  reference of every display figure.

Display figures: PSNR of the sRGB display values (``[0, 1]``, data range 1) and
CIEDE2000 (CIELAB of the sRGB images, D65). Per-stage attribution: for each stage,
``psnr_vs_tapout`` (the chained replica after the stage against darktable's tap-out
there; display PSNR, the project's display encoding for linear images) and
``psnr_alone`` (the stage alone, on darktable's own input to it). The tap-outs are
rendered with a linear Rec2020 output profile, to which filmic rgb v6 gamut-maps:
the linear stages are compared in that context (:attr:`StageContext.output_profile`),
the display in sRGB; after such a stage, the display stages' input "alone" is the
replica's (sRGB context) from darktable's last image that does not depend on it.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from darkproxy.colour.metrics import PSNR_CAP, display_image_deltae2000, display_image_psnr, display_psnr
from darkproxy.fsutil import write_json
from darkproxy.replica.chain import ReplicaChain
from darkproxy.replica.plan import ReplicaError, ReplicaPlan, plan_replica, replica_coverage
from darkproxy.replica.ports.rawprepare import crop_margins
from darkproxy.replica.references import (
    Renders,
    fit_camera_matrix,
    load_proxies,
    pick_size,
    precheck_scale,
    render_references,
    replica_history,
)
from darkproxy.replica.registry import EXACT
from darkproxy.replica.report import write_report
from darkproxy.viz.images import error_map_display, save_png, to_uint8

Log = Callable[[str], None]


def build_chain(plan: ReplicaPlan, renders: Renders, device: str = "cpu") -> ReplicaChain:
    """The plan's chain at the renders' scale (passthrough stages take darktable's tap-outs)."""
    plan.context = dataclasses.replace(
        plan.context,
        scale=renders.scale,
        full_size=renders.full_size,
        image_size=renders.image_size,
        export_room=renders.export_room,
    )
    if plan.from_mosaic:
        if renders.camera is None or plan.context.cfa is None:
            raise ReplicaError("--from-mosaic: darktable's camera RGB render or the raw's CFA pattern is missing")
        rp = next((st.values for st in plan.prefix if st.module == "rawprepare"), {})
        if renders.scale < 1.0 and rp and any(crop_margins(rp)):
            raise ReplicaError(  # the export scale's correction reads the uncropped size: not modelled
                "--from-mosaic: darktable's resampling of a raw rawprepare crops is not modelled below full size; "
                "render at full size (--max-size = the raw's long side)"
            )
        if renders.scale == 1.0 and renders.mosaic is not None:
            from darkproxy.replica.ports.rawprepare import crop_box

            t, b, lft, r = crop_box(rp, *renders.mosaic.shape[-2:])
            if (b - t, r - lft) != renders.input.shape[-2:]:
                raise ReplicaError(
                    f"--from-mosaic: rawpy's sensor array cropped as rawprepare crops it is {r - lft}x{b - t}, "
                    f"darktable's image {renders.input.shape[2]}x{renders.input.shape[1]}: not the same array"
                )
        m, _ = fit_camera_matrix(renders.input, renders.camera)
        plan.context = dataclasses.replace(
            plan.context,
            camera_matrix=tuple(tuple(float(v) for v in row) for row in m),
            out_size=(int(renders.input.shape[1]), int(renders.input.shape[2])),
        )
    elif renders.camera is not None:  # an exact port on camera RGB before colorin (mosaicplan.CAMERA_RGB)
        m, _ = fit_camera_matrix(renders.input, renders.camera)
        cam = torch.from_numpy(renders.camera)[None]
        matrix = tuple(tuple(float(v) for v in row) for row in m)
        plan.context = dataclasses.replace(plan.context, camera_matrix=matrix, camera_input=cam)
    proxies = load_proxies(plan, renders.scale, device, renders.image_size)
    taps = {st.key: torch.from_numpy(renders.taps[st.key]) for st in plan.stages if st.kind == "passthrough"}
    return ReplicaChain(plan, proxies, taps)


# ----------------------------------------------------------------- evaluation
def score_replica(chain: ReplicaChain, renders: Renders) -> tuple[np.ndarray, dict[str, Any]]:
    """Run the chain on darktable's input: (display (3, H, W), figures: ``psnr``,
    ``deltae_mean``, ``deltae_p95`` against darktable's export, ``stages``)."""
    x = torch.from_numpy(renders.chain_input)[None]
    # the tap-outs are rendered with a linear Rec2020 output profile (render_references), which filmic
    # rgb v6 gamut-maps to: the linear stages are compared with them in that context, the display in sRGB
    tap_ctx = dataclasses.replace(chain.ctx, output_profile="lin_rec2020")
    with torch.no_grad():
        out, outs = chain.run_stages(x, chain.history_u())
        _, tap_outs = chain.run_stages(x, chain.history_u(), ctx=tap_ctx)
    disp = out[0].numpy().astype(np.float32)
    stages: list[dict[str, Any]] = []
    for st in chain.plan.prefix:
        if chain.plan.from_mosaic:
            stages.append(_mosaic_record(chain, st.module, renders, x, tap_ctx))
            continue
        stages.append({"module": st.module, "kind": "passthrough", "psnr_vs_tapout": PSNR_CAP, "note": st.note})
    # prev_ref: darktable's input to the stage (its tap-out pipe); disp_in: that input as in the sRGB export's
    # pipe, known until a stage depends on the output profile (filmic rgb v6's gamut mapping): from there on
    # the replica's stages (sRGB context) on darktable's last profile-independent image
    prev_ref = disp_in = renders.input
    for st, o, o_tap in zip(chain.plan.stages, outs, tap_outs, strict=True):
        op_display = _is_display(chain, st.key)
        o_np = (o if op_display else o_tap)[0].numpy()
        if op_display:
            ref = renders.export
            vs = display_image_psnr(o_np, ref)
        else:
            ref = renders.taps[st.key]
            vs = display_psnr(o_np, ref)
        rec: dict[str, Any] = {"module": st.module, "kind": st.kind, "psnr_vs_tapout": vs, "note": st.note}
        if st.instance:
            rec["instance"] = st.instance
        rec["version"] = st.version  # the params version the stage read (upgraded_from: the history item's)
        if st.upgraded_from is not None:
            rec["upgraded_from"] = st.upgraded_from
        nxt_disp_in = ref
        if st.kind != "passthrough":
            with torch.no_grad():
                if op_display:
                    alone = chain.stage_alone(st.key, torch.from_numpy(disp_in))[0].numpy()
                    rec["psnr_alone"] = display_image_psnr(alone, ref) if disp_in.shape == ref.shape else None
                else:
                    alone = chain.stage_alone(st.key, torch.from_numpy(prev_ref), ctx=tap_ctx)[0].numpy()
                    rec["psnr_alone"] = display_psnr(alone, ref)
                    if st.kind == "exact" or disp_in is not prev_ref:
                        alone_srgb = chain.stage_alone(st.key, torch.from_numpy(disp_in))[0].numpy()
                        if disp_in is not prev_ref or not np.array_equal(alone_srgb, alone):
                            nxt_disp_in = alone_srgb
        if st.kind == "proxy":
            rec["run"] = st.run
        stages.append(rec)
        prev_ref, disp_in = ref, nxt_disp_in
    m, p95 = display_image_deltae2000(disp, renders.export)
    return disp, {
        "psnr": display_image_psnr(disp, renders.export),
        "deltae_mean": m,
        "deltae_p95": p95,
        "stages": stages,
    }


MOSAIC_FIGURES = (
    "seen through the replica's demosaic and colorin matrix, against darktable's linear Rec2020 render with the "
    "later mosaic stages it can switch off, off; psnr_alone = psnr_vs_tapout (its input, the raw, is darktable's)"
)


def _mosaic_record(chain: ReplicaChain, module: str, renders: Renders, x: torch.Tensor, ctx: Any) -> dict[str, Any]:
    """A mosaic stage's figures --from-mosaic (see :data:`MOSAIC_FIGURES`); demosaic's also in camera RGB
    (``psnr_camera_rgb``, against darktable's image with colorin passing camera RGB through) and the fit
    of colorin's matrix on darktable's images (``camera_matrix_fit_psnr``)."""
    st = next(s for s in chain.plan.prefix if s.module == module)
    with torch.no_grad():
        y, outs = chain.run_mosaic(x, chain.history_u(), ctx=ctx, upto=module)
    ref = renders.mosaic_taps.get(module, renders.input)
    psnr = display_psnr(y[0].numpy(), ref) if y.shape[-2:] == ref.shape[-2:] else None
    rec: dict[str, Any] = {"module": module, "kind": "exact", "psnr_vs_tapout": psnr, "psnr_alone": psnr}
    rec |= {"note": f"{st.note}; {MOSAIC_FIGURES}", "version": st.version}
    if module == "demosaic" and renders.camera is not None:
        rec["psnr_camera_rgb"] = display_psnr(outs[-1][0].numpy(), renders.camera)
        m = torch.as_tensor(chain.ctx.camera_matrix, dtype=torch.float64).numpy()
        fit = np.einsum("ij,jhw->ihw", m, renders.camera.astype(np.float64)).astype(np.float32)
        rec["camera_matrix_fit_psnr"] = display_psnr(fit, renders.input)
    return rec


def _is_display(chain: ReplicaChain, key: str) -> bool:
    """Is the output of stage ``key`` display-encoded (colorout and what follows it)?"""
    seen = False
    for st in chain.plan.stages:
        op = EXACT.get(st.module)
        if st.kind == "exact" and op is not None and op.output == "display":
            seen = True
        if st.key == key:
            return seen
    return False


# ----------------------------------------------------------------- the command
def run_replica(
    dt: Any,
    raw: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    xmp: str | os.PathLike[str] | None = None,
    sets: Mapping[str, Mapping[str, Any]] | None = None,
    max_size: int | None = None,
    allow_missing: bool = False,
    prefer_proxy: Sequence[str] = (),
    runs: Mapping[str, str] | None = None,
    log: Log | None = None,
    from_mosaic: bool = False,
) -> dict[str, Any]:
    """``darkproxy replica``: writes ``replica.png``, ``darktable.png``,
    ``error.png``, ``history.xmp`` (the history run), ``summary.json`` and
    ``index.html`` into ``out_dir``; returns the summary."""
    from darkproxy.errors import RawError

    say = log or (lambda s: None)
    t0 = time.perf_counter()
    raw = Path(raw)
    if not raw.is_file():
        raise RawError(f"raw file {raw} does not exist")
    hist = replica_history(dt, raw, xmp, sets)
    plan = plan_replica(
        dt, hist, raw, allow_missing=allow_missing, prefer_proxy=prefer_proxy, runs=runs, from_mosaic=from_mosaic
    )
    size = pick_size(raw, plan, max_size)
    precheck_scale(raw, plan, size)
    say(f"rendering {raw.name} with darktable at {size} px: input, {len(plan.stages)} tap-outs, sRGB export")
    renders = render_references(dt, raw, plan, size)
    chain = build_chain(plan, renders)
    say("running the replica: " + " -> ".join(f"{s.key} ({s.kind})" for s in plan.prefix + plan.stages))
    t1 = time.perf_counter()
    disp, fig = score_replica(chain, renders)
    replica_seconds = time.perf_counter() - t1
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_png(out / "replica.png", to_uint8(disp))
    save_png(out / "darktable.png", to_uint8(renders.export))
    save_png(out / "error.png", error_map_display(disp, renders.export))
    plan.history.write(out / "history.xmp")
    first = plan.prefix if plan.from_mosaic else plan.stages  # where the gradient reaches back to
    passthrough = [s["module"] for s in fig["stages"] if s["kind"] == "passthrough" and s["module"] in plan.modules]
    summary = {
        "raw": str(raw),
        "xmp": str(xmp) if xmp else None,
        "set": {m: dict(v) for m, v in (sets or {}).items()},
        "darktable_version": dt.version,
        "size": [int(disp.shape[2]), int(disp.shape[1])],
        "render_scale": renders.scale,
        "psnr": fig["psnr"],
        "deltae_mean": fig["deltae_mean"],
        "deltae_p95": fig["deltae_p95"],
        "seconds": time.perf_counter() - t0,
        "render_seconds": renders.seconds,
        "replica_seconds": replica_seconds,
        "reference": "darktable-cli's 8-bit sRGB export of the same history at the same size (--hq false)",
        "stages": fig["stages"],
        "passthrough_allowed": passthrough,
        "differentiable_from": first[0].module if first else None,
        "from_mosaic": plan.from_mosaic,
    }
    if passthrough:
        summary["warning"] = (
            f"--allow-missing: {', '.join(passthrough)} ran as darktable's tap-out; no gradient reaches "
            "the stages before them"
        )
    write_json(out / "summary.json", summary)
    write_report(out, summary)
    return summary


def dry_run(
    dt: Any,
    raw: str | os.PathLike[str],
    xmp: str | os.PathLike[str] | None = None,
    sets: Mapping[str, Mapping[str, Any]] | None = None,
    allow_missing: bool = False,
    prefer_proxy: Sequence[str] = (),
    runs: Mapping[str, str] | None = None,
    from_mosaic: bool = False,
) -> dict[str, Any]:
    """``darkproxy replica --dry-run``: every item of the history (``xmp`` or
    darktable's defaults, plus ``sets``) with what would run it, rendering nothing:
    ``items`` (:class:`~darkproxy.replica.chain.ItemCoverage` as JSON), ``runnable``
    (no item refused) and ``refused`` (their modules)."""
    from darkproxy.errors import RawError

    raw = Path(raw)
    if not raw.is_file():
        raise RawError(f"raw file {raw} does not exist")
    hist = replica_history(dt, raw, xmp, sets)
    items = replica_coverage(
        dt, hist, raw, allow_missing=allow_missing, prefer_proxy=prefer_proxy, runs=runs, from_mosaic=from_mosaic
    )
    refused = [c.module for c in items if c.runs == "refused"]
    return {
        "raw": str(raw),
        "xmp": str(xmp) if xmp else None,
        "darktable_version": dt.version,
        "items": [c.to_json() for c in items],
        "runnable": not refused,
        "refused": refused,
    }


def format_dry_run(rep: Mapping[str, Any]) -> str:
    """The dry run as a table: module, instance, on/off, params version, what runs it."""
    rows = [("module", "inst", "on", "version", "runs as")]
    for c in rep["items"]:
        v = "-" if c["version"] is None else f"v{c['version']}"
        if c.get("upgraded_from") is not None:
            v = f"v{c['upgraded_from']}->v{c['darktable_version']}"
        elif c["version"] is not None and c["darktable_version"] not in (None, c["version"]):
            v += f" (dt v{c['darktable_version']})"
        if c["runs"] == "proxy":
            what = c["detail"]  # "proxy RUN ..."
        else:
            impl = f" (implements v{', v'.join(map(str, c['implements']))})" if c["runs"] == "exact" else ""
            what = f"{c['runs']}{impl if c['implements'] else ''}: {c['detail']}"
        inst = str(c["instance"]) + (f" {c['name']}" if c["name"] else "")
        rows.append((c["module"], inst, "on" if c["enabled"] else "off", v, what))
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(r[i].ljust(w[i]) for i in range(4)) + "  " + r[4] for r in rows]
    verdict = "runnable" if rep["runnable"] else f"refused: {', '.join(rep['refused'])}"
    src = Path(str(rep["xmp"])).name if rep["xmp"] else "darktable's defaults"
    return f"{Path(str(rep['raw'])).name} ({src}), darktable {rep['darktable_version']}: {verdict}\n" + "\n".join(lines)
