"""darkproxy train."""

from __future__ import annotations

import argparse
import json
from typing import Any

from darkproxy.cli._util import add_command, emit

ORDER = 40


def register(sub, common: argparse.ArgumentParser) -> None:
    p = add_command(
        sub,
        common,
        "train",
        "train a proxy of a module on a generated dataset (resumable)",
        "Train a param-conditioned neural proxy on DATASET (made by `darkproxy generate`) and write "
        "the run to RUN: model.safetensors (best weights by validation PSNR), run.json, metrics.json, "
        "history.jsonl, checkpoint.pt and TensorBoard logs in RUN/tb (with the [tensorboard] extra: "
        "pip install 'darkproxy[tensorboard]'; without it, one warning and no logs). Validation uses the val split "
        "(else test, else 10% of train) and reports PSNR on display-encoded images (linear -> clip "
        "[0,1] -> sRGB curve). --arch auto picks 'pointwise' when darktable's probe (recorded by "
        "generate) found the module pointwise, 'demosaic-rcd' for pre-demosaic modules (the module "
        "learnt in the mosaic, then darktable's RCD demosaic, then a learnt colour transform), else 'multiscale' "
        "(a per-pixel MLP over a Gaussian band-pass stack: the best local-operator proxy measured; the "
        "UNets 'spatial-film' and 'spatial-concat' are the alternatives). "
        "Options left out take the architecture's defaults (pointwise, multiscale: 8000 steps of 64 "
        "samples x 64 random pixels, lr 6e-3; spatial: 3000 steps of 8 crops of 64 px seen with 16 px "
        "of context, lr 1e-3; demosaic: the same with 4 px of context, demosaic-rcd with 10). With --time-budget the "
        "learning-rate schedule ends at the budget. Ctrl-C saves a checkpoint; --resume continues to "
        "the same total steps.",
        "  darkproxy train ds/ -o runs/exposure\n"
        "  darkproxy train ds/ -o runs/exposure --steps 4000 --batch 32\n"
        "  darkproxy train ds/ -o runs/channelmixerrgb --hparams '{\"width\": 128}' --loss mse\n"
        "  darkproxy train ds2/ -o runs/sharpen --arch spatial-film --crop 128 --device cuda\n"
        "  darkproxy train ds2/ -o runs/sharpen --time-budget 120\n"
        "  darkproxy train ds/ -o runs/exposure --resume\n"
        "  darkproxy train my-bilat-ds/ -o runs/bilat --init zoo:bilat --steps 2000 --lr 1e-3\n"
        "  tensorboard --logdir runs/exposure/tb\n",
    )
    p.add_argument("dataset", metavar="DATASET", help="dataset folder written by darkproxy generate")
    p.add_argument("-o", "--output", required=True, metavar="RUN", help="run folder to create (or resume)")
    p.add_argument(
        "--arch",
        default="auto",
        metavar="ARCH",
        help="auto, pointwise, positional, multiscale, spatial (= spatial-film), spatial-film, spatial-concat, "
        "demosaic-rcd or demosaic (pre-demosaic datasets; default auto: from the dataset's probe)",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, metavar="N", help="optimiser steps (default: per architecture)")
    g.add_argument("--epochs", type=float, metavar="N", help="passes over the train split instead of --steps")
    p.add_argument("--batch", type=int, metavar="B", help="samples per step (default: per architecture)")
    p.add_argument(
        "--pixels", type=int, metavar="K", help="random pixels per sample per step, pointwise/multiscale (default 64)"
    )
    p.add_argument("--lr", type=float, metavar="LR", help="peak learning rate (default: per architecture)")
    p.add_argument(
        "--hparams",
        default="{}",
        metavar="JSON",
        help="the architecture's hparams over its defaults, a JSON object, e.g. '{\"width\": 128}' "
        '(multiscale: \'{"tone_bands": 8, "sigmas": [0.5, 1, 2, 4, 8, 16, 32]}\'; an unknown name is refused '
        "with the ones the architecture takes)",
    )
    p.add_argument(
        "--init",
        metavar="RUN",
        help="start from RUN's weights (a run folder or zoo:MODULE) instead of a random draw: its architecture and "
        "hparams, fine-tuned on DATASET (same module, sliders and ranges; e.g. a zoo proxy on your photos, or "
        "with another --loss)",
    )
    p.add_argument("--loss", default="l1", choices=("l1", "mse", "charbonnier"), help="loss (default l1)")
    p.add_argument(
        "--loss-space",
        default="srgb",
        choices=("srgb", "linear", "mu_law", "log"),
        help="encoding the loss compares in (default srgb: sRGB curve, unclipped)",
    )
    p.add_argument("--crop", type=int, metavar="PX", help="training crop in output px, spatial/demosaic (default 64)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")
    p.add_argument(
        "--keep-outliers",
        action="store_true",
        help="also train on samples darktable rendered beyond float16's range (numerical blow-ups, stored "
        "float32; left out by default, see docs/zoo.md)",
    )
    p.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads (default: 1 for pointwise/multiscale, else torch's default)",
    )
    p.add_argument("--time-budget", type=float, metavar="SEC", help="stop after SEC seconds of training")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in RUN")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in RUN")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=run)


def _hparams(text: str) -> dict[str, Any]:
    """``--hparams``: a JSON object, else one line."""
    from darkproxy.errors import DarkproxyError

    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise DarkproxyError(f"--hparams: not JSON ({e.msg}): {text!r}") from None
    if not isinstance(value, dict):
        raise DarkproxyError(f"--hparams: expected a JSON object such as '{{\"width\": 128}}', got {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from darkproxy.engines.train import TrainConfig, train

    if args.device not in ("auto", "cpu", "cuda", "mps") and not args.device.startswith("cuda:"):
        from darkproxy.errors import DarkproxyError

        raise DarkproxyError(f"--device {args.device!r}: expected auto, cpu, cuda or mps")
    cfg = TrainConfig(
        arch=args.arch,
        steps=args.steps,
        epochs=args.epochs,
        batch=args.batch,
        lr=args.lr,
        loss=args.loss,
        loss_space=args.loss_space,
        crop=args.crop,
        pixels=args.pixels,
        device=args.device,
        seed=args.seed,
        time_budget_s=args.time_budget,
        threads=args.threads,
        keep_outliers=args.keep_outliers,
        hparams=_hparams(args.hparams),
        init=args.init,
    )
    res = train(args.dataset, args.output, cfg, resume=args.resume, progress=not args.quiet, overwrite=args.overwrite)
    ident = "" if res.val_identity_psnr is None else f" (identity {res.val_identity_psnr:.2f} dB)"
    emit(
        args,
        asdict(res),
        f"best_val_psnr {res.best_val_psnr:.2f} dB at step {res.best_step}/{res.steps}{ident}, "
        f"{res.seconds:.1f} s, arch {res.arch}\nrun: {res.run_dir}",
    )
    return 0
