"""``run_demo``: the stages in order (each reused once recorded), then summary.json and report.html."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

from darkproxy.demo import steps
from darkproxy.demo.plan import DemoPlan
from darkproxy.demo.report import write_demo_report
from darkproxy.fsutil import write_json
from darkproxy.jobsteps import JobSteps


def run_demo(
    dt: Any,
    out_dir: str | os.PathLike[str],
    quick: bool = True,
    log: Callable[[str], None] = print,
    device: str = "auto",
    plan: DemoPlan | None = None,
) -> dict[str, Any]:
    """Run every stage (see the package docstring); returns ``summary.json``.
    ``plan`` overrides the sizes that ``quick`` picks (tests run a tiny one)."""
    out = Path(out_dir)
    plan = plan or DemoPlan.make(quick)
    st = JobSteps(out, log, plan=asdict(plan))  # a record of another plan is refused, not reused
    t_start = time.time()
    d = steps.DemoRun(dt, out, plan, device, log)
    st.run("samples", partial(steps.samples, d))
    for m in plan.modules:
        st.run(f"generate-{m}", partial(steps.generate_module, d, m))
        st.run(f"train-{m}", partial(steps.train_module, d, m))
        d.runs[m] = out / "runs" / m
    evals = {m: st.run(f"eval-{m}", partial(steps.eval_module, d, m)) for m in plan.modules}
    results = {
        "slider_regression": st.run("regress", partial(steps.slider_regression, d)),
        "pipeline_regression": st.run("pipeline", partial(steps.pipeline_regression, d)),
        "sweep": st.run("sweep", partial(steps.exposure_sweep, d)),
        "replica": st.run("replica", partial(steps.replica, d)),
        "match": st.run("match", partial(steps.match_references, d)),
    }
    summary = {
        "quick": plan.quick,
        "darktable_version": dt.version,
        "plan": asdict(plan),
        "proxies": {m: _proxy_summary(evals[m], st.results[f"train-{m}"]["result"]) for m in plan.modules},
        **results,
        "stage_seconds": {k: v["seconds"] for k, v in st.results.items()},
        "total_seconds_this_run": time.time() - t_start,
    }
    write_demo_report(out, summary, plan)
    write_json(out / "summary.json", summary)
    log(f"report: {out / 'report.html'}")
    return summary


def _proxy_summary(ev: dict[str, Any], trained: dict[str, Any]) -> dict[str, Any]:
    """One module's figures in summary.json: held-out metrics beside the identity's, training's best."""
    p, ident = ev["proxy"], ev["identity"]
    return {
        "heldout_psnr": p["psnr"],
        "identity_psnr": ident["psnr"],
        **{
            f"heldout_{k}": p[k]
            for k in ("psnr_min", "psnr_p05", "pu21_psnr", "pu21_psnr_min", "hdrflip_mean", "hdrflip_max")
        },
        "identity_pu21_psnr": ident["pu21_psnr"],
        "identity_hdrflip_mean": ident["hdrflip_mean"],
        "heldout_ssim": p["ssim"],
        "heldout_deltae": p["deltae_mean"],
        "best_val_psnr": trained["best_val_psnr"],
        "arch": trained["arch"],
    }
