"""Differentiable pipelines: trained proxies chained in darktable's pipe order.

A pipeline config (TOML) lists the stages, in pipe order::

    name = "demo"
    [[stage]]
    module = "exposure"
    run = "runs/exposure"          # a trained proxy run (relative to this file)
    free = ["exposure"]            # optimised by `pipeline regress` (default: all of the run's params)
    fixed = { black = 0.0 }        # pinned values (default: the run's defaults)

    [[stage]]
    module = "colorbalancergb"
    run = "runs/colorbalancergb"

:func:`check_pipeline` verifies the order against darktable's own pipe order
(read from libdarktable, not a hand-kept list) and that neighbouring proxies
share a data space (a stage's output, linear Rec2020, must be the next stage's
input; only the first stage may take the packed mosaic).

When darktable renders a pipeline (evaluation, verification), the raw's default
history is used upstream of the first stage, every module between and after
the stages that is not a stage (nor one of darktable's pass-through modules) is
disabled, so that darktable computes exactly what the chain of proxies models.

Files: :mod:`.config` (configs and checks), :mod:`.chain` (the chained proxies, darktable's
histories and renders of a chain), :mod:`.evaluate` (:func:`pipeline_eval`), :mod:`.regress`
(:func:`pipeline_regress`).
"""

from darkproxy.pipeline.chain import FlatPipelineProxy, ProxyPipeline, chain_histories, render_chain, stage_settings
from darkproxy.pipeline.config import (
    CheckResult,
    PipelineConfig,
    PipelineError,
    StageConfig,
    check_pipeline,
    stage_spaces,
)
from darkproxy.pipeline.evaluate import pipeline_eval
from darkproxy.pipeline.regress import pipeline_regress

__all__ = [
    "CheckResult",
    "FlatPipelineProxy",
    "PipelineConfig",
    "PipelineError",
    "ProxyPipeline",
    "StageConfig",
    "chain_histories",
    "check_pipeline",
    "pipeline_eval",
    "pipeline_regress",
    "render_chain",
    "stage_settings",
    "stage_spaces",
]
