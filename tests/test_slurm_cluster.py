"""Slurm executor against a real one-node Slurm (scripts/slurm-local.sh), first
alone, then whole searches through ``python -m hpsearch``.

The module fixture starts the cluster (and stops it again if it started it);
where Slurm cannot be provided (not root, no apt-get) every test is skipped
with the script's reason. The local cluster has MaxArraySize=5, so array
searches here are split into several chained arrays.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hpsearch.executors.base import Wakeup
from hpsearch.executors.slurm import SlurmExecutor, SlurmOptions
from tests.cluster_fixtures import (
    cluster_args,
    collect,
    job_spec,
    most_at_once,
    recorded_jobs,
    results,
    run_intervals,
    start_events,
)
from tests.helpers import hpsearch_cmd, read_results, run_hpsearch, write_project

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "slurm-local.sh"
UNAVAILABLE = 77
PY = sys.executable
NASTY = "a b; touch X \"'$(id)"
SMALL = ("--slurm_mem=100M",)
ACTIVE = "PENDING,RUNNING,COMPLETING,CONFIGURING,SUSPENDED,REQUEUED"


@pytest.fixture(scope="module", autouse=True)
def slurm_cluster(tmp_path_factory):
    """A running local Slurm; SLURM_CONF is set for this module's tests and their subprocesses.

    Jobs the tests leave behind (those working below pytest's temporary
    folder) are cancelled at the end.
    """
    base = os.environ.get("SLURM_LOCAL_BASE", "/tmp/hpsearch-slurm")
    was_running = subprocess.run([str(SCRIPT), "status"], capture_output=True).returncode == 0
    started = subprocess.run([str(SCRIPT), "start"], capture_output=True, text=True, timeout=600)
    if started.returncode == UNAVAILABLE:
        pytest.skip(started.stderr.strip().splitlines()[-1] if started.stderr.strip() else "Slurm unavailable")
    if started.returncode != 0:
        pytest.fail(f"scripts/slurm-local.sh start failed:\n{started.stderr}")
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = f"{base}/slurm.conf"
    yield
    ours = str(tmp_path_factory.getbasetemp())
    leftovers = [job_id for job_id, workdir in squeue("-o", "%A|%Z") if workdir.startswith(ours + os.sep)]
    if leftovers:
        subprocess.run(["scancel", *leftovers], capture_output=True)
    if previous is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = previous
    if not was_running:
        subprocess.run([str(SCRIPT), "stop"], capture_output=True, timeout=120)


def squeue(*args: str) -> list[list[str]]:
    out = subprocess.run(["squeue", "-h", *args], capture_output=True, text=True, check=True).stdout
    return [line.split("|") for line in out.splitlines() if line.strip()]


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout} s")


class QueueSampler(threading.Thread):
    """Counts this search's jobs (by working directory) in the queue, every 0.2 s."""

    def __init__(self, out: Path) -> None:
        super().__init__(daemon=True)
        self.out = str(out)
        self.queued: list[int] = []
        self.running: list[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            rows = [row for row in squeue("-t", ACTIVE, "-r", "-o", "%i|%T|%Z") if row[2].startswith(self.out)]
            self.queued.append(len(rows))
            self.running.append(sum(row[1] == "RUNNING" for row in rows))


@pytest.fixture
def sbatch_log(tmp_path, monkeypatch) -> Path:
    """An ``sbatch`` wrapper first on PATH that logs each call, to count submissions."""
    real = subprocess.run(["sh", "-c", "command -v sbatch"], capture_output=True, text=True, check=True).stdout.strip()
    folder = tmp_path / "wrap"
    folder.mkdir()
    log = tmp_path / "sbatch.log"
    wrapper = folder / "sbatch"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\nexec "{real}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return log


def sbatch_calls(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


# --------------------------------------------------------------------------- the executor alone


def test_executor_states_exit_code_and_outside_scancel(tmp_path):
    slurm = SlurmExecutor(Wakeup(), SlurmOptions(num_jobs=3, mem="100M", gres="gpu:1"), tmp_path,
                          poll_interval=0.3)
    specs = [job_spec(tmp_path, 1, python=PY), job_spec(tmp_path, 2, "--mode=exit3", python=PY),
             job_spec(tmp_path, 3, "--mode=hang", python=PY)]
    handles = slurm.submit_many(specs)
    assert all(h.job_id.isdigit() for h in handles) and slurm.capacity() == 0
    wait_until(lambda: (specs[2].run_dir / "argv.json").exists(), 30, "the third job starting")
    subprocess.run(["scancel", handles[2].job_id], check=True)
    outcomes = {o.key: o for o in collect(slurm, 3, timeout=60)}
    # from the run folders (exit_code.txt), with squeue's word if the same poll saw the job end
    assert (outcomes["key1"].exit_code, outcomes["key1"].backend_state) in ((0, "exit code 0"), (0, "COMPLETED"))
    assert (outcomes["key2"].exit_code, outcomes["key2"].backend_state) in ((3, "exit code 3"), (3, "FAILED"))
    cancelled = outcomes["key3"]
    assert (cancelled.exit_code, cancelled.signal, cancelled.interrupted) == (None, 15, False)
    assert cancelled.backend_state.startswith("CANCELLED")
    trace = json.loads((specs[0].run_dir / "trace.json").read_text())
    assert trace["gpu"] in {"0", "1", "2", "3"} and trace["key"] == "key1"
    assert list(specs[0].run_dir.glob("slurm-*.out"))


# --------------------------------------------------------------------------- whole searches


@pytest.fixture
def project(tmp_path):
    return write_project(tmp_path / "project", {"i": list(range(12)), "sleep": [1.5], "value": [NASTY]})


def test_search_keeps_at_most_num_jobs_in_the_queue(tmp_path, project):
    out = tmp_path / "search"
    sampler = QueueSampler(out)
    sampler.start()
    try:
        result = run_hpsearch(cluster_args(out, "slurm", "--num_jobs=3", "--slurm_gres=gpu:1", *SMALL), project,
                              timeout=240)
    finally:
        sampler.stop.set()
        sampler.join()
    assert result.returncode == 0, result.stderr
    assert max(sampler.queued) == 3, sampler.queued
    table = read_results(out)
    assert len(table) == 12 and set(table["status"]) == {"done"}
    assert set(table["value"]) == {NASTY}
    for folder in out.glob("sim_*"):
        assert f"--value={NASTY}" in json.loads((folder / "argv.json").read_text())
        trace = json.loads((folder / "trace.json").read_text())
        assert trace["gpu"] in {"0", "1", "2", "3"}
    assert not list(tmp_path.rglob("X"))
    assert {r["backend"] for r in results(out).values()} == {"slurm"}


def test_array_search_caps_running_tasks(tmp_path, project, sbatch_log):
    out = tmp_path / "search"
    sampler = QueueSampler(out)
    sampler.start()
    try:
        result = run_hpsearch(cluster_args(out, "slurm", "--num_jobs=3", "--slurm_array", "--slurm_gres=", *SMALL),
                              project, timeout=240)
    finally:
        sampler.stop.set()
        sampler.join()
    assert result.returncode == 0, result.stderr
    assert 1 <= max(sampler.running) <= 3, sampler.running
    assert most_at_once(run_intervals(out)) <= 3
    assert sbatch_calls(sbatch_log) == 3  # MaxArraySize=5: 12 runs in arrays of 5, 5 and 2
    assert "--dependency=afterany:" in sbatch_log.read_text()
    table = read_results(out)
    assert len(table) == 12 and set(table["status"]) == {"done"}


def test_failed_cancelled_and_timed_out_runs_are_recorded(tmp_path, project):
    write_project(project, {"i": [1, 2, 3, 4], "mode": ["hang"]},
                  conditions=[({"i": [1]}, {"mode": ["ok"]}), ({"i": [2]}, {"mode": ["exit3"]})])
    out = tmp_path / "search"
    driver = subprocess.Popen(
        hpsearch_cmd(*cluster_args(out, "slurm", "--num_jobs=4", "--slurm_gres=", "--slurm_extra=--time=0:01",
                                   *SMALL)),
        cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        hang_dirs = wait_until(
            lambda: [d for d in out.glob("sim_*") if "--mode=hang" in (d / "job.sh").read_text()]
            if len(list(out.glob("sim_*/job.sh"))) == 4 else None, 60, "four job scripts")
        victim = hang_dirs[0]
        wait_until(lambda: (victim / "argv.json").exists(), 60, "the job to cancel starting")
        [[job_id]] = squeue("-n", victim.name, "-o", "%i")
        subprocess.run(["scancel", job_id], check=True)
        output, _ = driver.communicate(timeout=200)
    finally:
        driver.kill()
    assert driver.returncode == 1, output
    runs = {name: r for name, r in results(out).items()}
    by_mode = {}
    for name, run in runs.items():
        mode = json.loads((out / name / "hpsearch_run.json").read_text())["config"]["mode"]
        by_mode.setdefault(mode, []).append((name, run))
    [(_, ok)] = by_mode["ok"]
    [(_, failed)] = by_mode["exit3"]
    assert ok["status"] == "done"
    assert (failed["status"], failed["exit_code"]) == ("failed", 3)
    assert failed["backend_state"] in ("exit code 3", "FAILED")
    hang = dict(by_mode["hang"])
    cancelled, timed_out = hang[victim.name], next(r for n, r in hang.items() if n != victim.name)
    assert (cancelled["status"], cancelled["signal"]) == ("failed", 15)
    assert cancelled["backend_state"].startswith("CANCELLED") and "signal 15" in cancelled["reason"]
    assert (timed_out["status"], timed_out["backend_state"]) == ("timed_out", "TIMEOUT after 0:01:00")
    assert cancelled["job_id"] == job_id


def test_killed_driver_is_resumed_and_nothing_is_submitted_twice(tmp_path, project, sbatch_log):
    write_project(project, {"i": [1, 2, 3, 4], "sleep": [3]})
    out = tmp_path / "search"
    events = tmp_path / "events.log"
    env = dict(os.environ, HPSEARCH_TEST_LOG=str(events))
    args = cluster_args(out, "slurm", "--num_jobs=2", "--slurm_gres=", *SMALL)
    driver = subprocess.Popen(hpsearch_cmd(*args), cwd=project, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: recorded_jobs(out) == 2, 60, "two jobs submitted and recorded")
        assert squeue("-n", ",".join(f.name for f in out.glob("sim_*")), "-o", "%i")  # still queued or running
    finally:
        driver.kill()
        driver.wait()
    resume = ["--grid_module=grid_cfg", f"--resume={out}", "--run_cluster", "--scheduler=slurm", "--num_jobs=2",
              "--slurm_gres=", *SMALL]
    result = run_hpsearch(resume, project, env=env, timeout=240)
    assert result.returncode == 0, result.stderr
    assert "re-attaching to 2 runs" in result.stderr + result.stdout
    assert sbatch_calls(sbatch_log) == 4
    assert sorted(start_events(events).values()) == [1, 1, 1, 1]
    assert sorted(r["status"] for r in results(out).values()) == ["done"] * 4
