"""The proxy zoo: one trained proxy per darktable module, over the sliders
:data:`darkproxy.data.ranges.ZOO_MODULES` lists, with its held-out fidelity.

A zoo folder holds ``MODULE/run.json``, ``MODULE/model.safetensors`` (what
:meth:`darkproxy.proxy.Proxy.load` reads) and ``MODULE/zoo.json`` (how it was
made and how it scored on raws it never saw). The package ships one for
darktable 4.2.1 (``darkproxy/zoo/weights``); ``DARKPROXY_ZOO`` points
``zoo:MODULE`` at another (e.g. one ``darkproxy zoo train`` wrote).

``zoo:MODULE`` is accepted wherever a run folder is: finding and listing a zoo's
proxies is the proxy layer's (:mod:`darkproxy.proxy.locate`: :func:`resolve_run`,
:func:`list_zoo`), and so is checking one against the installed darktable
(:mod:`darkproxy.proxy.compat`); this package trains and evaluates them.
:mod:`.plan` reads ``plan.toml``; :mod:`.training` (:func:`train_zoo`) runs
generate, train, eval and publish per module as resumable stages
(:class:`darkproxy.jobsteps.JobSteps`); :mod:`.evaluation` (:func:`eval_zoo`).
"""

from darkproxy.zoo.evaluation import eval_zoo
from darkproxy.zoo.plan import ModulePlan, ZooPlan
from darkproxy.zoo.training import check_modules, pre_demosaic_module, publish, run_module_stages, train_zoo

__all__ = [
    "ModulePlan",
    "ZooPlan",
    "check_modules",
    "eval_zoo",
    "pre_demosaic_module",
    "publish",
    "run_module_stages",
    "train_zoo",
]
