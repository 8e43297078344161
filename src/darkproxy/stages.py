"""Run-once stages of a long job (the demo, the zoo): each stage's result and
seconds are written to ``ROOT/stages/NAME.json`` when it finishes, and a re-run
reuses them, so an interrupted job resumes at the first unfinished stage."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from darkproxy.darktable.schema import write_json_atomic


class Stages:
    """Run-once stages with their results and timings on disk."""

    def __init__(self, root: Path, log: Callable[[str], None]) -> None:
        self.dir = root / "stages"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = log
        self.results: dict[str, dict[str, Any]] = {}

    def run(self, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        path = self.dir / f"{name}.json"
        if path.is_file():
            rec = json.loads(path.read_text())
            self.log(f"[{name}] done earlier ({rec['seconds']:.1f} s), reused")
        else:
            self.log(f"[{name}] ...")
            t0 = time.time()
            result = fn()
            rec = {"result": result, "seconds": time.time() - t0}
            write_json_atomic(path, rec)
            self.log(f"[{name}] {rec['seconds']:.1f} s")
        self.results[name] = rec
        return rec["result"]
