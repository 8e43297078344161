"""Generation and zoo training on a Ray cluster (``darkproxy.cluster``), through a real local Ray on
127.0.0.1: a head node with darktable and 2 CPUs, and a second node whose darktable-cli does not
exist (``$DARKPROXY_DARKTABLE_CLI`` pointed nowhere in that node's environment), which the node check
must report and leave out. Renders run the real darktable-cli; nothing is mocked."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from tests.conftest import SRC, importorskip_unless_ci, run_cli

importorskip_unless_ci("ray", "pip install 'darkproxy[cluster]'")  # under CI=true a missing ray fails, never skips

from darkproxy.cli import main  # noqa: E402
from darkproxy.cluster import Cluster, ClusterError, pin_loopback, renderer_factory, session  # noqa: E402
from darkproxy.data.generate import GenerateOptions, generate  # noqa: E402

MISSING_CLI = "/nonexistent/darktable-cli"
GEN = dict(module="exposure", n=6, size=48, seed=3, batch=2, workers=2, probe=False)
CLI_GEN = ["-n", "6", "--size", "48", "--seed", "3", "--no-probe"]  # GEN on the command line (batch/workers differ)


@pytest.fixture(scope="module")
def ray_cluster(dt) -> Iterator[SimpleNamespace]:
    """A two-node Ray on 127.0.0.1 for this module's tests; the second node has no darktable."""
    from ray.cluster_utils import Cluster as LocalRay

    pin_loopback()
    old = os.environ.get("RAY_USAGE_STATS_ENABLED")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    c = LocalRay(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "include_dashboard": False, "object_store_memory": 100 << 20},
    )
    bare = c.add_node(num_cpus=1, object_store_memory=80 << 20, env_vars={"DARKPROXY_DARKTABLE_CLI": MISSING_CLI})
    # the head's raylet, which starts its task workers: the processes of this cluster are found from its pid
    raylet = c.head_node.all_processes["raylet"][0].process.pid
    try:
        yield SimpleNamespace(address=c.address, head=c.head_node.node_id, bare=bare.node_id, raylet=raylet)
    finally:
        c.shutdown()
        if old is None:
            os.environ.pop("RAY_USAGE_STATS_ENABLED", None)
        else:
            os.environ["RAY_USAGE_STATS_ENABLED"] = old


@pytest.fixture(scope="module")
def raws(make_raw, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cluster-raws")
    for s in ("astronaut", "coffee"):
        shutil.copyfile(make_raw(source=s, size=96), d / f"{s}.dng")
    return d


@pytest.fixture(scope="module")
def local_ds(dt, raws: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: the same dataset generated here, without a cluster."""
    ds = tmp_path_factory.mktemp("cluster-local") / "ds"
    generate(dt, raws, ds, GenerateOptions(**GEN), progress=False, log=lambda _: None)
    return ds


def _manifest(ds: Path) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in map(json.loads, (ds / "manifest.jsonl").read_text().splitlines())}


def assert_same_dataset(ds: Path, ref: Path) -> None:
    """Same ids, params, splits and every other manifest field; images equal within darktable's
    run-to-run noise (two local runs differ too: darktable is not bit-reproducible here)."""
    a, b = _manifest(ds), _manifest(ref)
    assert sorted(a) == sorted(b)
    for sid, rec in a.items():
        assert {k: v for k, v in rec.items() if k != "sha256"} == {k: v for k, v in b[sid].items() if k != "sha256"}
        for role in ("input", "output"):
            x = np.load(ds / rec["files"][role]).astype(np.float32)
            y = np.load(ref / b[sid]["files"][role]).astype(np.float32)
            assert np.allclose(x, y, rtol=2e-2, atol=2e-3), (sid, role, float(np.abs(x - y).max()))
    info, ref_info = json.loads((ds / "dataset.json").read_text()), json.loads((ref / "dataset.json").read_text())
    assert info["splits"] == ref_info["splits"]


def _kill_one_render_worker(raylet: int, stop: threading.Event, killed: list[int]) -> None:
    """SIGKILL the first worker of this test's head node (a child of its raylet, ``raylet``) seen
    running a render task."""
    import psutil

    from darkproxy.cluster.node_tasks import render_on_node

    title = f"ray::{render_on_node.__name__}"  # Ray titles a task's worker process with the task's name
    parent = psutil.Process(raylet)
    while not stop.is_set() and not killed:
        for child in parent.children(recursive=True):
            try:
                running = " ".join(child.cmdline()).startswith(title)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if running:
                child.kill()
                killed.append(child.pid)
                return
        time.sleep(0.02)


def test_generation_on_ray_equals_local_and_leaves_out_a_node_without_darktable(
    dt, raws: Path, local_ds: Path, ray_cluster: SimpleNamespace, tmp_path: Path
) -> None:
    logs: list[str] = []
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_one_render_worker, args=(ray_cluster.raylet, stop, killed), daemon=True)
    with session(ray_cluster.address, dt.version, log=logs.append) as c:
        assert c is not None
        assert [n.node_id for n in c.nodes] == [ray_cluster.head]
        assert [n.node_id for n in c.excluded] == [ray_cluster.bare]
        killer.start()
        try:
            res = generate(
                dt,
                raws,
                tmp_path / "ds",
                GenerateOptions(
                    **GEN, renderer_factory=renderer_factory(ray_cluster.address, dt, workers=2, log=logs.append)
                ),
                progress=False,
                log=logs.append,
            )
        finally:
            stop.set()
            killer.join()
        stats = c.stats
    # the node without darktable: one line at start, and no task
    bad = [ln for ln in logs if ray_cluster.bare[:8] in ln]
    assert len(bad) == 1 and "not using node" in bad[0] and f"darktable-cli {MISSING_CLI} does not exist" in bad[0]
    assert any("1 of 2 node(s) used, 2 CPUs, darktable" in ln for ln in logs)
    assert set(stats.tasks_per_node) == {ray_cluster.head} and stats.tasks >= 3
    # a render worker SIGKILLed mid-task: Ray ran its task again, the dataset is whole
    assert killed, "no render task was seen running"
    assert res.total == res.written == GEN["n"] and res.failed == 0 and res.images > 0
    assert_same_dataset(tmp_path / "ds", local_ds)


def test_cli_generate_on_ray_killed_resumes_and_verifies(
    dt, raws: Path, local_ds: Path, ray_cluster: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The driver SIGKILLed on an existing cluster after its first samples; the same command with a
    local Ray (``--cluster ray``) resumes; ``darkproxy verify`` passes; the dataset is the local one."""
    ds = tmp_path / "ds"
    args = ["generate", "exposure", "-o", str(ds), "--images", str(raws), *CLI_GEN]
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "darkproxy", *args, "--batch", "1", "--workers", "1", "--cluster", ray_cluster.address]
    err = open(tmp_path / "killed.err", "wb")  # noqa: SIM115 - closed below, after the kill
    proc = subprocess.Popen(
        cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        man = ds / "manifest.jsonl"
        while time.monotonic() < deadline and proc.poll() is None:
            if man.is_file() and man.read_text().count("\n") >= 1:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"ended before it could be killed: {(tmp_path / 'killed.err').read_text()[-500:]}"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver (and anything it started)
        proc.wait()
        err.close()
    before = len(_manifest(ds))
    assert 1 <= before < 6
    r = run_cli(*args, "--cluster", "ray", "--workers", "2")
    assert r.returncode == 0, r.stderr
    assert f"6/6 samples ({6 - before} new, {before} already there)" in r.stdout
    assert "cluster ray: 1 of 1 node(s) used, 2 CPUs" in r.stderr
    assert main(["verify", str(ds)]) == 0 and "ok: 6 samples verified" in capsys.readouterr().out
    assert_same_dataset(ds, local_ds)


TINY_PLAN = """
raw_size = 64
train_sources = ["chart", "astronaut"]
heldout_sources = ["coffee"]
samples = 4
size = 32
steps = 20
eval_n = 1
"""


@pytest.mark.slow
def test_zoo_trains_two_modules_through_ray(dt, ray_cluster: SimpleNamespace, tmp_path: Path) -> None:
    from darkproxy.proxy import Proxy
    from darkproxy.zoo import ZooPlan, train_zoo

    (tmp_path / "plan.toml").write_text(TINY_PLAN)
    plan = ZooPlan.load(tmp_path / "plan.toml")
    work, zoo = tmp_path / "work", tmp_path / "zoo"
    logs: list[str] = []
    mods = ["exposure", "vignette"]
    recs = train_zoo(dt, mods, work, zoo, plan, "cpu", logs.append, cluster=ray_cluster.address)
    by = {r["module"]: r for r in recs}
    assert sorted(by) == mods
    assert by["exposure"]["arch"] == "pointwise" and by["vignette"]["arch"] != "pointwise"  # the probe ran there
    for m in mods:
        assert any(f"[zoo] {m}: generate, train and eval on node" in ln and ray_cluster.head[:8] in ln for ln in logs)
        assert any(f"[zoo] {m}:" in ln and "gathered into" in ln for ln in logs)
        # the zoo folder as a local run writes it
        assert {p.name for p in (zoo / m).iterdir()} == {"run.json", "model.safetensors", "metrics.json", "zoo.json"}
        assert by[m]["samples"] == 4 and by[m]["heldout_n"] == 1 and by[m]["darktable_version"] == dt.version
        # the work folder: stage records, dataset, run (no checkpoint), eval; node paths replaced by the work folder's
        assert all((work / "stages" / f"{s}-{m}.json").is_file() for s in ("generate", "train", "eval"))
        assert len((work / "datasets" / m / "manifest.jsonl").read_text().splitlines()) == 4
        assert not (work / "runs" / m / "checkpoint.pt").exists()
        run_info = json.loads((work / "runs" / m / "run.json").read_text())
        assert run_info["dataset"] == str((work / "datasets" / m).resolve())
        assert json.loads((work / "eval" / m / "metrics.json").read_text())["run"] == str((work / "runs" / m).resolve())
    assert Proxy.load(zoo / "exposure").module == "exposure"
    # a re-run reuses every stage and starts no Ray task
    logs.clear()
    train_zoo(dt, mods, work, zoo, plan, "cpu", logs.append, cluster=ray_cluster.address)
    assert sum("reused" in ln for ln in logs) == 1 + 3 * 2 and not any("on node" in ln for ln in logs)


def test_cluster_errors_are_one_line(dt, ray_cluster: SimpleNamespace, monkeypatch, capsys) -> None:
    # no node with this darktable: the run is refused, saying why for a node
    there = re.escape(dt.version)  # the nodes' darktable: this machine's
    with pytest.raises(ClusterError, match=rf"no node of the Ray cluster .* darktable 9\.9\.9 .*{there} there"):
        Cluster(ray_cluster.address, "9.9.9", log=lambda _: None).open()
    with pytest.raises(ClusterError, match=f"2 node\\(s\\) checked; .*darktable-cli {MISSING_CLI} does not exist"):
        Cluster(ray_cluster.address, dt.version, node_cli=MISSING_CLI, log=lambda _: None).open()
    # nothing listens there
    with pytest.raises(ClusterError, match=r"cannot reach the Ray cluster at ray://127\.0\.0\.1:9: "):
        Cluster("ray://127.0.0.1:9", dt.version).open()
    with pytest.raises(ClusterError, match="expected ray, auto, ray://HOST:PORT or HOST:PORT"):
        Cluster("ray://head:port", dt.version).open()
    # ray not installed: the command says how to install it, in one line
    monkeypatch.setitem(sys.modules, "ray", None)
    rc = main(["generate", "exposure", "-o", "unused", "--images", "unused", "--cluster", "ray"])
    err = capsys.readouterr().err
    assert rc == 2 and err.strip().splitlines() == [
        "darkproxy generate: error: --cluster needs ray, which is not installed: pip install 'darkproxy[cluster]'"
    ]
