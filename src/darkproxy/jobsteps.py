"""Run-once steps of a long job (the demo, the zoo): each stage's result and
seconds are written to ``ROOT/stages/NAME.json`` when it finishes, and a re-run
reuses them, so an interrupted job resumes at the first unfinished stage.

A record is reused only for the plan that made it: the job's plan (``JobSteps(plan=...)``),
the stage's own (``run(plan=...)``: its inputs and options) and the records of the
stages it builds on (``run(after=...)``) are fingerprinted into it, and a record
with another fingerprint is refused in one line (:class:`JobStepError`) rather than
handed to a job that asked for something else. Plans hold settings, not absolute
paths: a work folder gathered from another machine keeps its records. A record made under a
stage plan that held more keys, all the others equal, is reused (a stage's plan narrowed to what it
uses keeps the records made before)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from darkproxy.errors import DarkproxyError
from darkproxy.fsutil import write_json


class JobStepError(DarkproxyError):
    """A finished stage's record was made with another plan than the one running now."""


def plan_json(plan: Any) -> Any:
    """``plan`` as JSON holds it (tuples as lists, paths and other objects as strings)."""
    return json.loads(json.dumps(plan, sort_keys=True, default=str))


def fingerprint(plan: Any) -> str:
    """sha256 of ``plan``'s canonical JSON (sorted keys)."""
    text = json.dumps(plan_json(plan), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new)):
            out += _differences(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: {json.dumps(old)} -> {json.dumps(new)}"]


def _narrowed(old: Any, new: Mapping[str, Any]) -> bool:
    """Was ``old`` (a record's full plan) made with the plan ``new`` holds, and more? The same job plan and the
    same upstream records, and every key of the new stage plan set to the value the old one recorded: a stage
    whose plan was narrowed to what it uses (the zoo's generation no longer records the training's steps) keeps
    the records made before."""
    if not isinstance(old, dict) or old.get("job") != new.get("job") or old.get("after") != new.get("after"):
        return False
    was, now = old.get("stage"), new.get("stage")
    return isinstance(was, dict) and isinstance(now, dict) and all(k in was and was[k] == v for k, v in now.items())


class JobSteps:
    """Run-once stages with their results, timings and plans on disk. ``plan``: the
    job's settings, part of every stage's fingerprint."""

    def __init__(self, root: Path, log: Callable[[str], None], plan: Mapping[str, Any] | None = None) -> None:
        self.dir = root / "stages"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = log
        self.plan = plan_json(dict(plan)) if plan is not None else None
        self.results: dict[str, dict[str, Any]] = {}

    def _record(self, name: str) -> dict[str, Any] | None:
        if name in self.results:
            return self.results[name]
        path = self.dir / f"{name}.json"
        if not path.is_file():
            return None
        try:
            rec: dict[str, Any] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise JobStepError(f"{path} is unreadable ({e}): delete it to redo stage {name}") from None
        return rec

    def run(
        self,
        name: str,
        fn: Callable[[], dict[str, Any]],
        plan: Mapping[str, Any] | None = None,
        after: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Stage ``name``'s result: ``fn()``, run now, or the record a run of the same
        plan left. ``plan``: what the stage is made of (its inputs and options);
        ``after``: the stages whose results it uses (already run or recorded): a
        redone one makes this record stale too. Raises :class:`JobStepError` for a
        record of another plan."""
        deps: dict[str, str | None] = {}
        for a in after:
            dep = self._record(a)
            if dep is None:
                raise JobStepError(f"stage {name} builds on stage {a}, which has not run")
            deps[a] = dep.get("fingerprint")
        full = {"job": self.plan, "stage": plan_json(dict(plan)) if plan is not None else None, "after": deps}
        fp = fingerprint(full)
        path = self.dir / f"{name}.json"
        rec = self._record(name)
        if rec is not None and rec.get("fingerprint") != fp and _narrowed(rec.get("plan"), plan_json(full)):
            self.log(f"[{name}] done earlier ({rec['seconds']:.1f} s) under a plan that also set what it does not use")
            self.results[name] = rec
            return rec["result"]
        if rec is not None:
            if rec.get("fingerprint") != fp:
                why = (
                    "; ".join(_differences(rec.get("plan"), plan_json(full))[:4])
                    if "plan" in rec
                    else "it records no plan (an older darkproxy)"
                )
                raise JobStepError(
                    f"stage {name} was done with another plan ({why}): use another output folder, or delete "
                    f"{path} (and what the stage made) to redo it"
                )
            self.log(f"[{name}] done earlier ({rec['seconds']:.1f} s), reused")
        else:
            self.log(f"[{name}] ...")
            t0 = time.time()
            result = fn()
            rec = {"result": result, "seconds": time.time() - t0, "plan": plan_json(full), "fingerprint": fp}
            write_json(path, rec)
            self.log(f"[{name}] {rec['seconds']:.1f} s")
        self.results[name] = rec
        return rec["result"]
