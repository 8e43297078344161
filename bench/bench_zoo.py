"""The zoo's figures: ``bench/results/zoo.md`` and ``zoo.json`` from a zoo
folder's ``zoo.json`` records (written by ``darkproxy zoo train``), and the
README's module table generated from them (between the ``zoo-table`` markers).

    python bench/bench_zoo.py --zoo src/darkproxy/zoo/weights [--readme README.md] [--eval-new-raws 4]

``--eval-new-raws N`` also runs ``darkproxy eval zoo:MODULE --images DIR -n N``
(the command a user runs) on raws made here from the zoo's held-out photos with
other sensor noise, and reports that PSNR beside: for the modules new or
retrained since ``--previous`` (default: the zoo.json this run replaces; the
others keep the figure measured then), every module with ``--eval-all``.

Goals (issue: the proxy zoo), held out, display PSNR: pointwise modules >= 45 dB
median and >= 38 dB worst; local modules >= 38 dB median; demosaic and
highlights >= 40 dB; the zoo's average >= 42 dB.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from darkproxy.proxy.locate import list_zoo  # noqa: E402

KIND = {
    "pointwise": "pointwise",
    "positional": "position",
    "demosaic": "pre-demosaic",
    "multiscale": "local",
    "spatial": "local",
    "spatial-film": "local",
    "spatial-concat": "local",
}


def goal(r: dict[str, Any]) -> tuple[str, bool]:
    """The issue's goal for this module and whether it is met."""
    med, worst = r["heldout_psnr_median"], r["heldout_psnr_min"]
    if r["module"] in ("demosaic", "highlights") or r.get("pre_demosaic"):  # the mosaic stages
        return ">= 40 median", med >= 40
    kind = KIND.get(r["arch"], "local")
    if kind == "pointwise":
        return ">= 45 median, >= 38 worst", med >= 45 and worst >= 38
    return ">= 38 median", med >= 38


def new_raws(r: dict[str, Any]) -> str:
    if "new_raws_exit" not in r:
        return "-"
    if r["new_raws_exit"]:
        return f"exit {r['new_raws_exit']}"
    return f"{r['new_raws_psnr']:.1f} / {r['new_raws_psnr_min']:.1f}"


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| module | arch | sliders | samples | gen s | train s | held-out PSNR median / worst / pooled | "
        "baseline | PU21 | HDR-FLIP | ΔE2000 | `eval zoo:M` on new raws, all sliders drawn | goal |"
    )
    out = [head, "|---" * (head.count("|") - 1) + "|"]
    for r in rows:
        g, ok = goal(r)
        b = r.get("baseline_psnr", r["identity_psnr"])
        ident = "-" if b is None else f"{b:.1f}" + ("" if r.get("baseline_kind", "identity") == "identity" else " †")
        out.append(
            f"| {r['module']} | {r['arch']} | {len(r['params'])}/{r['float_params_in_schema']} | {r['samples']} | "
            f"{r['generate_seconds']:.0f} | {r['train_seconds']:.0f} | {r['heldout_psnr_median']:.1f} / "
            f"{r['heldout_psnr_min']:.1f} / {r['heldout_psnr']:.1f} | {ident} | {r['heldout_pu21_psnr']:.1f} | "
            f"{r['heldout_hdrflip_mean']:.3f} | {r['heldout_deltae_mean']:.2f} | {new_raws(r)} | "
            f"{g}: {'met' if ok else 'missed'} |"
        )
    return "\n".join(out)


def scale_table(rows: list[dict[str, Any]]) -> str:
    """The modules trained over render scales: held-out median / worst / pooled PSNR at each evaluated scale, the
    identity's pooled PSNR, and the goal (local modules: >= 38 dB median and >= 30 dB worst at every scale)."""
    scaled = [r for r in rows if r.get("heldout_per_scale")]
    if not scaled:
        return ""
    scales = sorted({p["scale"] for r in scaled for p in r["heldout_per_scale"]})
    head = (
        "| module | samples | steps | trained scales | "
        + " | ".join(f"scale {s:g}: median / worst / pooled (identity)" for s in scales)
        + " | goal |"
    )
    out = [head, "|---" * (head.count("|") - 1) + "|"]
    for r in scaled:
        by = {p["scale"]: p for p in r["heldout_per_scale"]}
        cells, ok = [], True
        for s in scales:
            p = by.get(s)
            if p is None:
                cells.append("-")
                continue
            med = p.get("psnr_median")
            ok &= med is not None and med >= 38 and p["psnr_min"] >= 30
            ident = "-" if p.get("identity_psnr") is None else f"{p['identity_psnr']:.1f}"
            med_s = "-" if med is None else f"{med:.1f}"
            cells.append(f"{med_s} / {p['psnr_min']:.1f} / {p['psnr']:.1f} ({ident})")
        lo, hi = r["scales"]
        out.append(
            f"| {r['module']} | {r['samples']} | {r['train_steps']} | {lo:g}-{hi:g} | {' | '.join(cells)} | "
            f">= 38 median, >= 30 worst at each: {'met' if ok else 'missed'} |"
        )
    return "\n".join(out)


def trained_as(r: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two zoo.json records the same training: samples, steps, render scales, and the validation PSNR
    and seconds it ended with (a retraining on other photos keeps the first three)."""
    return r["samples"], r["train_steps"], r.get("scales"), r.get("val_psnr"), r.get("train_seconds")


def shape(arch: str, hp: dict[str, Any]) -> str:
    """What a run's hparams change from its architecture's defaults that the table should say (``, width 128``)."""
    import inspect

    from darkproxy.models.registry import arch_entry

    width = inspect.signature(arch_entry(arch).cls.__init__).parameters.get("width")
    out = [f", width {hp['width']}"] if width is not None and hp.get("width", width.default) != width.default else []
    if max(hp.get("sigmas") or [0.0]) > 16.0:
        out.append(f", blurs to {max(hp['sigmas']):g} px")
    if hp.get("tone_bands"):
        out.append(f", {hp['tone_bands']} tone bands")
    if hp.get("blur_bases"):
        out.append(", blurred bases")
    if hp.get("proj"):
        out.append(f", {hp['proj']} slider-driven projections of the position")
    return "".join(out)


def before_after(rows: list[dict[str, Any]], previous: list[dict[str, Any]]) -> str:
    """The modules retrained since ``previous`` (the zoo.json this run replaces): old and new figures side by side."""
    prev = {r["module"]: r for r in previous}

    def fig(r: dict[str, Any]) -> str:
        raws = f" from {len(r['train_raws'])} raws" if r.get("train_raws") else ""
        drawn = f" ({r['sampler']})" if r.get("sampler") not in (None, "sparse") else ""
        how = f"{r['arch']}, {r['samples']}{drawn} samples{raws}, {r['train_steps']} steps, " + (
            f"scales {r['scales'][0]:g}-{r['scales'][1]:g}" if r.get("scales") else f"{r['render_size']} px"
        )
        how += shape(r["arch"], r.get("hparams") or {})
        return f"{how}: {r['heldout_psnr_median']:.1f} / {r['heldout_psnr_min']:.1f}"

    out = []
    for r in rows:
        old = prev.get(r["module"])
        if old is None or trained_as(old) == trained_as(r):
            continue
        out.append(f"| {r['module']} | {fig(old)} | {fig(r)} |")
    if not out:
        return ""
    head = ["| module | before: how, held-out median / worst | now: how, held-out median / worst |", "|---|---|---|"]
    return "\n".join(head + out)


def eval_new_raws(rows: list[dict[str, Any]], zoo: Path, n: int, out: Path) -> None:
    """``darkproxy eval zoo:MODULE`` (a subprocess: the real command) per module on new raws;
    each report's ``metrics.json`` is kept under ``out/MODULE``."""
    import os
    import shutil
    import tempfile

    from darkproxy.raw.synth import make_samples

    with tempfile.TemporaryDirectory(prefix="zoo-newraws-") as td:
        infos = make_samples(td, size=256, seed=1000)
        keep = set(rows[0]["heldout_raws"])
        for i in infos:
            if i.path.stem not in keep:
                i.path.unlink()
        env = {**os.environ, "DARKPROXY_ZOO": str(zoo.resolve())}
        for r in rows:
            m, t0 = r["module"], time.time()
            cmd = [
                sys.executable,
                "-m",
                "darkproxy",
                "eval",
                "--quiet",
                f"zoo:{m}",
                "--images",
                td,
                "-n",
                str(n),
                "-o",
                str(Path(td) / "reports" / m),
            ]
            p = subprocess.run(cmd, capture_output=True, text=True, env=env)
            r["new_raws_exit"] = p.returncode
            if p.returncode == 0:  # keep metrics.json (the evidence), not the report's images
                (out / m).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(Path(td) / "reports" / m / "metrics.json", out / m / "metrics.json")
                mj = json.loads((out / m / "metrics.json").read_text())
                r["new_raws_psnr"], r["new_raws_psnr_min"] = mj["proxy"]["psnr"], mj["proxy"]["psnr_min"]
            else:
                r["new_raws_error"] = p.stderr.strip().splitlines()[-1:]
            print(
                f"eval zoo:{m}: exit {p.returncode}, {r.get('new_raws_psnr', float('nan')):.1f} dB, "
                f"{time.time() - t0:.0f} s",
                file=sys.stderr,
            )


def exact_section(out: Path) -> list[str]:
    """The modules with an exact port too: the port's figure beside the proxy's, on the same darktable renders
    (``proxy_vs_exact.json``, written by bench/bench_proxy_vs_exact.py), and the slider regression through each
    (``regress_exact_MODULE.json``, bench/bench_regress_exact.py) and through each proxy corrected by darktable's
    renders (``regress_corrections_MODULE.json``, bench/bench_regress_corrections.py) where measured."""
    p = out / "proxy_vs_exact.json"
    if not p.is_file():
        return []

    def mw(rows: list[dict[str, Any]], k: str) -> str:
        v = [r[k] for r in rows if r[k] is not None]
        if not v and k.startswith("proxy") and any(r.get("proxy_refused") for r in rows):
            return "refused"  # the replica refuses the proxy on these renders (proxy_vs_exact.md says why)
        return f"{statistics.median(v):.1f} / {min(v):.1f}" if v else "-"

    lines = [
        "## Proxy or exact port",
        "",
        "The modules darktable computes in closed form that the replica ports exactly (`replica/ports/`): the port "
        "is the stage the replica runs, the proxy only on `--prefer-proxy`. Both on the same held-out darktable "
        "renders (`proxy_vs_exact.md`: the edits drawn as the zoo draws its held-out ones, 128 px): display PSNR "
        "of the stage alone against darktable's tap-out, median / worst; the port's columns over the edits it runs "
        "(the others it refuses in one line: counted).",
        "",
        "| module | exact port alone | proxy alone | replica with the port | replica with the proxy | refused by the "
        "port |",
        "|---|---|---|---|---|---|",
    ]
    for m, rows in json.loads(p.read_text())["modules"].items():
        refused = sum(1 for r in rows if r.get("exact_refused"))
        lines.append(
            f"| {m} | {mw(rows, 'exact_alone')} | {mw(rows, 'proxy_alone')} | {mw(rows, 'exact_chain')} | "
            f"{mw(rows, 'proxy_chain')} | {refused} of {len(rows)} |"
        )
    reg = sorted(out.glob("regress_exact_*.json"))
    if reg:
        lines += [
            "",
            "Slider regression from a darktable target through each (`regress_exact_MODULE.md`: the proxy's "
            "sliders uniform in its ranges, held-out raws; slider error as a fraction of the range, median / max; "
            "darktable's render of the recovered sliders against the target, median / worst):",
            "",
            "| module | through | slider error | darktable PSNR |",
            "|---|---|---|---|",
        ]
        for f in reg:
            rows = json.loads(f.read_text())["rows"]
            for meth in ("exact", "proxy"):
                errs = [e for r in rows for e in r[meth]["errors"].values()]
                ps = [r[meth]["darktable_psnr"] for r in rows]
                lines.append(
                    f"| {f.stem.removeprefix('regress_exact_')} | {meth} | {statistics.median(errs):.4f} / "
                    f"{max(errs):.4f} | {statistics.median(ps):.1f} / {min(ps):.1f} |"
                )
        for f in sorted(out.glob("regress_corrections_*.json")):  # bench/bench_regress_corrections.py
            rows = json.loads(f.read_text())["rows"]
            k = len(rows[0]["rounds"]) - 1
            for label, fits in (
                (f"proxy ({f.stem}.md's first fit)", [r["rounds"][0] for r in rows]),
                (f"proxy, then {k} corrections by darktable", [r["kept"] for r in rows]),
            ):
                errs = [e for fit in fits for e in fit["errors"].values()]
                ps = [fit["darktable_psnr"] for fit in fits]
                lines.append(
                    f"| {f.stem.removeprefix('regress_corrections_')} | {label} | {statistics.median(errs):.4f} / "
                    f"{max(errs):.4f} | {statistics.median(ps):.1f} / {min(ps):.1f} |"
                )
    return [*lines, ""]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zoo", required=True, help="zoo folder (MODULE/zoo.json)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"), help="results folder")
    ap.add_argument("--readme", help="README to update between <!-- zoo-table --> markers")
    ap.add_argument("--note", default="", help="a line about how the zoo was trained (machine load etc.)")
    ap.add_argument("--eval-new-raws", type=int, default=0, metavar="N", help="darkproxy eval each module, N samples")
    ap.add_argument("--eval-all", action="store_true", help="with --eval-new-raws: every module, not only new ones")
    ap.add_argument("--previous", help="an earlier zoo.json to set retrained modules against (default: OUT/zoo.json)")
    a = ap.parse_args()
    rows = list_zoo(a.zoo)
    if not rows:
        print(f"no zoo.json records in {a.zoo}", file=sys.stderr)
        return 1
    for r in rows:  # the architecture's settings, from the run the record describes
        run_json = Path(a.zoo) / r["module"] / "run.json"
        if run_json.is_file():
            r["hparams"] = json.loads(run_json.read_text()).get("hparams") or {}
    prev_p = Path(a.previous) if a.previous else Path(a.out) / "zoo.json"
    previous = json.loads(prev_p.read_text())["modules"] if prev_p.is_file() else []
    # a module trained as before keeps the figure its last run measured (its metrics.json in zoo-eval/); with
    # --eval-new-raws the others (new or retrained) are evaluated, --eval-all every module
    cur_p = Path(a.out) / "zoo.json"  # and the figures this file holds now (a rerun keeps them)
    current = json.loads(cur_p.read_text())["modules"] if cur_p.is_file() and cur_p != prev_p else []
    same = {r["module"]: r for r in [*previous, *current]} if not a.eval_all else {}
    for r in rows:
        old = same.get(r["module"])
        if old is not None and "new_raws_exit" in old and trained_as(old) == trained_as(r):
            r.update({k: v for k, v in old.items() if k.startswith("new_raws_")})
    if a.eval_new_raws and (todo := [r for r in rows if "new_raws_exit" not in r]):
        eval_new_raws(todo, Path(a.zoo), a.eval_new_raws, Path(a.out) / "zoo-eval")
    met = [goal(r)[1] for r in rows]
    avg = statistics.mean(r["heldout_psnr_median"] for r in rows)
    try:
        out_v = subprocess.run(["darktable-cli", "--version"], capture_output=True, text=True).stdout
        found = re.search(r"\d+\.\d+\.\d+", out_v)
        dt_version = found.group(0) if found else "?"
    except OSError:
        dt_version = "?"
    import torch

    from darkproxy.machine import machine_info

    mi = machine_info()
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{mi['cpu']}, {mi['nproc']} cores, {'CUDA' if torch.cuda.is_available() else 'no GPU'}",
        "darktable_version_trained": rows[0]["darktable_version"],
        "darktable_cli_here": dt_version,
        "modules": len(rows),
        "goals_met": sum(met),
        "average_heldout_psnr_median": avg,
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "zoo.json").write_text(json.dumps({"meta": meta, "modules": rows}, indent=1, default=str) + "\n")
    tab = table(rows)
    md = [
        "# The proxy zoo: held-out fidelity per module",
        "",
        f"Generated by `python bench/bench_zoo.py --zoo {a.zoo}` on {meta['date']} ({meta['machine']}), from the "
        f"zoo.json records `darkproxy zoo train` wrote (darktable {meta['darktable_version_trained']}).",
        "",
        "Training raws: synthetic DNGs from scikit-image's photos (`darkproxy samples`); held out: raws the zoo "
        "never generated from (`heldout_raws` in zoo.json). Held-out samples are fresh darktable renders with "
        "the sliders drawn like the training ones (`sparse`: 1-3 sliders moved from the defaults, a quarter "
        "of the draws move all). PSNR in dB on `srgb_display_rec709` (median, worst sample, pooled MSE); "
        "PU21 PSNR and HDR-FLIP see the linear values above 1.0 the display clips. Identity = doing nothing "
        "(none before demosaic, where input and output differ in kind).",
        "",
        a.note,
        "",
        tab,
        "",
        "Baseline: doing nothing (output = input); † before demosaic, where that is no image: a bilinear "
        "demosaic of the module's input mosaic with the least-squares colour matrix fitted to each target "
        "(an oracle a proxy must beat).",
        "",
        f"Goals met: {sum(met)} of {len(rows)}. Average held-out median PSNR: {avg:.2f} dB (goal >= 42 dB: "
        f"{'met' if avg >= 42 else 'missed'}).",
        "",
    ]
    if ba := before_after(rows, previous):
        md += [
            "## Retrained: before and now",
            "",
            "The modules whose training changed since the zoo.json this file replaced (held-out display PSNR in "
            "dB; before at one render scale, now pooled over the scales evaluated).",
            "",
            ba,
            "",
        ]
    if stab := scale_table(rows):
        md += [
            "## Over render scales",
            "",
            "Local modules trained on regions of 1024 px raws rendered at scales drawn log-uniformly in their "
            "trained range (darktable scales their radii with it), held out at each scale below (the same draws "
            "at every scale; the row's held-out figures above pool them). Display PSNR in dB.",
            "",
            stab,
            "",
        ]
    md += exact_section(out)
    (out / "zoo.md").write_text("\n".join(md))
    print("\n".join(md))
    if a.readme:
        p = Path(a.readme)
        text = p.read_text()
        marker = "<!-- zoo-table: generated by bench/bench_zoo.py from bench/results/zoo.json -->"
        block = f"{marker}\n{tab}\n<!-- /zoo-table -->"
        new, n = re.subn(r"<!-- zoo-table.*?<!-- /zoo-table -->", lambda _: block, text, flags=re.S)
        if n != 1:
            print(f"{p}: no <!-- zoo-table --> ... <!-- /zoo-table --> block to replace", file=sys.stderr)
            return 1
        p.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
