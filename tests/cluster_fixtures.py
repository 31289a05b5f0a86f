"""Helpers shared by the LSF and Slurm executor tests (imported by those modules)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Sequence

import pytest

from hpsearch.executors.base import Executor
from hpsearch.runs import LaunchSpec, Outcome
from tests.helpers import FAKES, JOB_SCRIPT, run_folders

FOLDER_FLAGS = ("--force_out_dir", "--dont_force_new_dir", "--deterministic_search")
FAKE_LSF = FAKES / "lsf"
FAKE_SLURM = FAKES / "slurm"


def collect(executor: Executor, count: int, timeout: float) -> list[Outcome]:
    """Poll as the driver would until ``count`` outcomes arrived."""
    outcomes: list[Outcome] = []
    deadline = time.monotonic() + timeout
    while len(outcomes) < count:
        assert time.monotonic() < deadline, f"only {len(outcomes)} of {count} runs ended within {timeout} s"
        wait = executor.next_event_in()
        time.sleep(min(wait if wait is not None else 0.1, 0.5))
        outcomes += executor.poll()
    return outcomes


def job_spec(root: Path, number: int, *flags: str, python: str) -> LaunchSpec:
    """A run of the test job script (tests/scripts/job.py) in ``root/sim_<number>``."""
    run_dir = root / f"sim_{number:02d}"
    run_dir.mkdir(parents=True, exist_ok=True)
    argv = (python, str(JOB_SCRIPT), f"--i={number}", *flags, f"--out_dir={run_dir}")
    return LaunchSpec(key=f"key{number}", name=run_dir.name, argv=argv, cwd=root, run_dir=run_dir,
                      env={"HPSEARCH_SEARCH_DIR": str(root)})


def most_at_once(intervals: Sequence[tuple[float, float]]) -> int:
    """The largest number of (start, end) intervals that overlap at one moment."""
    return max((sum(1 for start, end in intervals if start <= moment < end) for moment, _ in intervals), default=0)


def run_intervals(search_dir: Path) -> list[tuple[float, float]]:
    """(start, end) of every run that wrote its trace.json."""
    spans = []
    for trace_file in search_dir.glob("*/trace.json"):
        trace = json.loads(trace_file.read_text())
        spans.append((trace["start"], trace["end"]))
    return spans


def results(search_dir: Path) -> dict[str, dict]:
    """Each run folder's hpsearch_result.json, by folder name (runs without one are left out)."""
    return {
        folder.name: json.loads((folder / "hpsearch_result.json").read_text())
        for folder in run_folders(search_dir)
        if (folder / "hpsearch_result.json").is_file()
    }


def cluster_args(out: Path, scheduler: str, *extra: str) -> list[str]:
    return ["--grid_module=grid_cfg", f"--out_dir={out}", *FOLDER_FLAGS, "--run_cluster", f"--scheduler={scheduler}",
            *extra]


def start_events(log: Path) -> dict[str, int]:
    """How often each run folder was started, from the job script's HPSEARCH_TEST_LOG."""
    counts: dict[str, int] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            event = json.loads(line)
            if event["event"] == "start":
                counts[event["out_dir"]] = counts.get(event["out_dir"], 0) + 1
    return counts


def recorded_jobs(search_dir: Path) -> int:
    """How many runs the driver has recorded as running with a job id (read-only look at its store)."""
    db = search_dir / "hpsearch.db"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as connection:
            [(count,)] = connection.execute("SELECT count(*) FROM runs WHERE status = 'running' AND job_id != ''")
    except sqlite3.OperationalError:  # the driver is still creating the store
        return 0
    return count


# --------------------------------------------------------------------------- the fake schedulers


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class FakeScheduler:
    """A fake scheduler's state folder: its call log, failure injection, and clean-up."""

    def __init__(self, state: Path) -> None:
        self.state = state

    def calls(self, tool: str) -> list[list[str]]:
        log = self.state / "calls.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return [entry["argv"] for entry in map(json.loads, lines) if entry["tool"] == tool]

    def call_times(self, tool: str) -> list[float]:
        """When each call of ``tool`` came (wall clock), in order."""
        log = self.state / "calls.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return [entry["time"] for entry in map(json.loads, lines) if entry["tool"] == tool]

    def write(self, name: str, text: str) -> None:
        (self.state / name).write_text(text)

    def env(self, **extra: str) -> dict[str, str]:
        return dict(os.environ, **extra)

    def kill_leftovers(self) -> None:
        """Stop runner processes and jobs the fake started (each is its own process group)."""
        for pid_file in self.state.glob("jobs/*/runner.pid"):
            _kill_group(int(pid_file.read_text()))
        for element in [*self.state.glob("jobs/*/element_*.json"), *self.state.glob("jobs/*/task_*.json")]:
            try:
                pgid = json.loads(element.read_text()).get("pgid")
            except ValueError:
                continue
            if pgid:
                _kill_group(pgid)


class FakeLsf(FakeScheduler):
    def fail_bjobs(self, times: int) -> None:
        self.write("fail_bjobs", str(times))


class FakeSlurm(FakeScheduler):
    def fail_squeue(self, times: int) -> None:
        self.write("fail_squeue", str(times))


def _fake_on_path(monkeypatch, folder: Path) -> None:
    # The interpreter's folder second, so the fakes' `#!/usr/bin/env python3` starts quickly.
    monkeypatch.setenv("PATH", os.pathsep.join([str(folder), os.path.dirname(sys.executable), os.environ["PATH"]]))


@pytest.fixture
def fake_lsf(tmp_path, monkeypatch):
    """tests/fakes/lsf first on PATH, with its own state folder; its minute lasts a second."""
    state = tmp_path / "lsf_state"
    state.mkdir()
    _fake_on_path(monkeypatch, FAKE_LSF)
    monkeypatch.setenv("FAKE_LSF_STATE", str(state))
    monkeypatch.setenv("FAKE_LSF_MINUTE", "1")  # -W 1 means one second
    fake = FakeLsf(state)
    yield fake
    fake.kill_leftovers()


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """tests/fakes/slurm first on PATH, with its own state folder; its minute lasts a second."""
    state = tmp_path / "slurm_state"
    state.mkdir()
    _fake_on_path(monkeypatch, FAKE_SLURM)
    monkeypatch.delenv("SLURM_CONF", raising=False)
    monkeypatch.setenv("FAKE_SLURM_STATE", str(state))
    monkeypatch.setenv("FAKE_SLURM_MINUTE", "1")  # --time=1 means one second
    fake = FakeSlurm(state)
    yield fake
    fake.kill_leftovers()
