"""Run-once stages: a record is reused for the plan that made it and refused for another."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from darkproxy.jobsteps import JobStepError, JobSteps


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> dict:
        self.calls += 1
        return {"value": self.calls}


def _one_line(e: pytest.ExceptionInfo) -> str:
    assert "\n" not in str(e.value)
    return str(e.value)


def test_same_plan_reused_another_refused(tmp_path: Path) -> None:
    logs: list[str] = []
    f = Counter()
    plan = {"samples": 64, "modules": ("exposure", "sharpen")}
    assert JobSteps(tmp_path, logs.append, plan).run("gen", f, plan={"n": 4}) == {"value": 1}
    # a new job (a re-run), the same plan (a tuple reads back from JSON as a list: the same)
    again = JobSteps(tmp_path, logs.append, {"samples": 64, "modules": ["exposure", "sharpen"]})
    assert again.run("gen", f, plan={"n": 4}) == {"value": 1} and f.calls == 1
    assert "[gen] done earlier" in logs[-1] and "reused" in logs[-1]
    # the job's plan changed: the record is not this job's
    with pytest.raises(JobStepError) as e:
        JobSteps(tmp_path, logs.append, {**plan, "samples": 128}).run("gen", f, plan={"n": 4})
    msg = _one_line(e)
    assert "stage gen was done with another plan (job.samples: 64 -> 128)" in msg and "gen.json" in msg
    # the stage's own plan changed
    with pytest.raises(JobStepError, match=r"stage\.n: 4 -> 8"):
        JobSteps(tmp_path, logs.append, plan).run("gen", f, plan={"n": 8})
    assert f.calls == 1  # never run again over a record
    # deleting the record (as the message says) redoes the stage with the new plan
    (tmp_path / "stages" / "gen.json").unlink()
    assert JobSteps(tmp_path, logs.append, plan).run("gen", f, plan={"n": 8}) == {"value": 2}


def test_a_redone_upstream_stage_makes_the_next_record_stale(tmp_path: Path) -> None:
    gen, train = Counter(), Counter()
    st = JobSteps(tmp_path, lambda _: None)
    st.run("generate", gen, plan={"n": 4})
    st.run("train", train, plan={"steps": 10}, after=("generate",))
    st2 = JobSteps(tmp_path, lambda _: None)  # resumed: both reused
    st2.run("generate", gen, plan={"n": 4})
    st2.run("train", train, plan={"steps": 10}, after=("generate",))
    assert (gen.calls, train.calls) == (1, 1)
    # the dataset is redone with another n; train's own plan did not change, but its input did
    (tmp_path / "stages" / "generate.json").unlink()
    st3 = JobSteps(tmp_path, lambda _: None)
    st3.run("generate", gen, plan={"n": 8})
    with pytest.raises(JobStepError, match="stage train was done with another plan \\(after.generate: "):
        st3.run("train", train, plan={"steps": 10}, after=("generate",))
    with pytest.raises(JobStepError, match="builds on stage nothing, which has not run"):
        st3.run("eval", Counter(), after=("nothing",))
    assert (gen.calls, train.calls) == (2, 1)


def test_a_record_without_a_plan_is_refused(tmp_path: Path) -> None:
    """A record written before plans were recorded cannot be told apart from another plan's."""
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "old.json").write_text(json.dumps({"result": {"x": 1}, "seconds": 1.0}))
    with pytest.raises(JobStepError, match="records no plan"):
        JobSteps(tmp_path, lambda _: None).run("old", Counter())
    (tmp_path / "stages" / "bad.json").write_text("{")
    with pytest.raises(JobStepError, match="unreadable"):
        JobSteps(tmp_path, lambda _: None).run("bad", Counter())


def test_a_stage_plan_narrowed_to_what_it_uses_keeps_its_record(tmp_path: Path) -> None:
    """A record made under a stage plan with more keys is reused when every key the stage now records is equal
    (the zoo's generation no longer records the training's steps), and refused when one of them differs."""
    logs: list[str] = []
    f = Counter()
    JobSteps(tmp_path, logs.append).run("gen", f, plan={"samples": 64, "steps": 8000})
    assert JobSteps(tmp_path, logs.append).run("gen", f, plan={"samples": 64}) == {"value": 1} and f.calls == 1
    assert "also set what it does not use" in logs[-1]
    with pytest.raises(JobStepError, match=r"stage\.samples: 64 -> 96"):
        JobSteps(tmp_path, logs.append).run("gen", f, plan={"samples": 96})
    with pytest.raises(JobStepError):  # a key the old plan did not have is not narrowing
        JobSteps(tmp_path, logs.append).run("gen", f, plan={"samples": 64, "scales": [0.1, 1.0]})
    assert f.calls == 1
