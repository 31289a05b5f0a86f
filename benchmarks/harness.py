"""What every workload needs: a project folder, the fake GPUs, a timed driver
process with its memory sampled, and the runs' own start/end stamps.

The driver is always a subprocess started exactly as a user would start it,
so a figure includes everything a user waits for (imports, set-up, exit).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import psutil

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "benchmarks"
SLEEPER = BENCH_DIR / "sleeper.py"
SHELL_SLEEPER = BENCH_DIR / "sleeper.sh"
GRID_MODULE = "bench_grid"
REPORT_WRITER = "hpsearch.report_writer"  # in the command line of our driver's CSV helper

if str(REPO) not in sys.path:  # run.py is started as a script from anywhere
    sys.path.insert(0, str(REPO))

from benchmarks.sleeper import SUMMARY_FILENAME, SUMMARY_KEYWORDS  # noqa: E402
from tests.fakes.fakegpu import FAKES_DIR, STATE_ENV, FakeGpus  # noqa: E402


def write_project(folder: Path, grid_source: str, script: Path = SLEEPER) -> Path:
    """A fresh project folder: the sleeper as ``train.py`` (or ``train.sh``)
    and a grid module.

    Args:
        folder: Where to build it (an empty folder, see ``Context.folder``).
        grid_source: Python expression of the ``grid`` dict; a source string
            so that huge grids stay small (``list(range(10))``).
        script: The training script to copy in.
    """
    folder.mkdir(parents=True, exist_ok=True)
    script_name = "train" + script.suffix
    shutil.copy(script, folder / script_name)
    (folder / f"{GRID_MODULE}.py").write_text(
        f"grid = {grid_source}\n"
        "conditions = []\n"
        f"_SCRIPT_NAME = {script_name!r}\n"
        f"_SUMMARY_FILENAME = {SUMMARY_FILENAME!r}\n"
        f"_SUMMARY_KEYWORDS = {list(SUMMARY_KEYWORDS)!r}\n"
        "_OUT_ARG = 'out_dir'\n"
        "_PERFORMANCE_KEY = 'run_time'\n"
        "_PERFORMANCE_SORT_ASC = True\n"
    )
    return folder


def sleep_grid(runs: int, seconds: float) -> str:
    """Grid source of ``runs`` configurations that each sleep ``seconds``."""
    return f"{{'i': list(range({runs})), 'sleep': [{seconds!r}]}}"


def fake_gpus(folder: Path, count: int = 4, **settings: float) -> FakeGpus:
    """Idle fake GPUs whose ``nvidia-smi`` calls are logged in ``folder`` (a fresh log per workload)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nvidia-smi-calls.log").unlink(missing_ok=True)
    return FakeGpus(folder / "gpu_state.json", folder / "nvidia-smi-calls.log").configure(count, **settings)


def environment(gpus: FakeGpus | None = None, first_on_path: Sequence[Path] = ()) -> dict[str, str]:
    """The environment of a driver: the fake ``nvidia-smi`` first on PATH.

    The running interpreter's folder comes next, so the fake's
    ``#!/usr/bin/env python3`` starts a plain interpreter rather than a slow
    version-manager shim (which would make every GPU poll cost 0.1 s).
    """
    env = dict(os.environ)
    env.pop(STATE_ENV, None)
    folders = [str(FAKES_DIR), *map(str, first_on_path), os.path.dirname(sys.executable)]
    env["PATH"] = os.pathsep.join([*folders, env.get("PATH", "")])
    if gpus is not None:
        env[STATE_ENV] = str(gpus.state_path)
    return env


def nvidia_smi_calls(gpus: FakeGpus) -> list[float]:
    """Wall-clock times of every ``nvidia-smi`` call so far."""
    if not gpus.calls_log.exists():
        return []
    return [float(line.split(" ", 1)[0]) for line in gpus.calls_log.read_text().splitlines() if line]


def hpsearch_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "hpsearch", *args]


@dataclass
class ProcessRun:
    """One timed process: wall-clock start and exit, exit status, and the
    resident memory samples ``(time, bytes)`` taken while it ran."""

    argv: list[str]
    returncode: int
    started: float
    ended: float
    log: Path
    rss: list[tuple[float, int]] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return self.ended - self.started

    def check(self) -> ProcessRun:
        """Fail loudly: a figure from a broken run would be meaningless."""
        if self.returncode != 0:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(self.argv[:4])} ... exited {self.returncode}; log {self.log}:\n{tail}")
        return self


class _MemorySampler(threading.Thread):
    """Samples a process's RSS from a thread, so the main thread can block in
    ``wait()`` and see the exit the moment it happens.

    The RSS of our driver's report-writer helper (which holds the results
    table) is added in, so that moving memory out of the driver never looks
    like saving it.
    """

    def __init__(self, pid: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self.done = threading.Event()
        self.helper: psutil.Process | None = None

    def run(self) -> None:
        while not self.done.is_set():
            try:
                rss = self.process.memory_info().rss
            except psutil.Error:
                return
            if rss == 0:  # a zombie: the process has exited, the reading means nothing
                return
            helper = self._helper_rss()
            if helper is None:  # the writer has made its last write: the search is over
                return
            self.samples.append((time.time(), rss + helper))
            self.done.wait(self.interval)

    def _helper_rss(self) -> int | None:
        """The report writer's RSS (0 before it shows up); None once it has exited."""
        if self.helper is None:
            try:
                self.helper = next((child for child in self.process.children()
                                    if REPORT_WRITER in " ".join(child.cmdline())), None)
            except psutil.Error:
                return 0
            if self.helper is None:
                return 0
        try:
            return self.helper.memory_info().rss
        except psutil.Error:
            return None


class TimedProcess:
    """A process started now and timed until it exits; output goes to ``log``.

    Split into start and :meth:`wait` so a workload can act while it runs
    (free the fake GPUs, watch the ``nvidia-smi`` log).
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        log: Path,
        rss_interval: float | None = None,
        stdin: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as out, open(stdin or os.devnull, "rb") as feed:
            self.started = time.time()
            self.proc = subprocess.Popen(self.argv, cwd=cwd, env=dict(env), stdin=feed, stdout=out,
                                         stderr=subprocess.STDOUT)
        self.sampler = _MemorySampler(self.proc.pid, rss_interval) if rss_interval else None
        if self.sampler:
            self.sampler.start()

    def __enter__(self) -> TimedProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Never leave the process behind when a workload fails midway;
        SIGTERM first, so a driver can stop its runs."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.sampler:
            self.sampler.done.set()

    def wait(self, timeout: float) -> ProcessRun:
        try:
            returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{' '.join(self.argv[:4])} ... did not finish within {timeout} s; "
                               f"log {self.log}") from None
        ended = time.time()
        samples: list[tuple[float, int]] = []
        if self.sampler:
            self.sampler.done.set()
            self.sampler.join()
            samples = self.sampler.samples
        return ProcessRun(self.argv, returncode, self.started, ended, self.log, samples)


def run_process(argv: Sequence[str], *, timeout: float, **options) -> ProcessRun:
    """Start ``argv`` (options as :class:`TimedProcess`), wait for it, time it."""
    with TimedProcess(argv, **options) as process:
        return process.wait(timeout)


@dataclass(frozen=True)
class RunStamp:
    """A run's own account of when it ran (wall clock, seconds)."""

    started: float
    ended: float

    @property
    def duration(self) -> float:
        return self.ended - self.started


def read_stamps(folders: Iterable[Path]) -> list[RunStamp]:
    """Stamps from every run folder that holds a summary, sorted by start."""
    stamps = []
    for folder in folders:
        try:
            lines = (folder / SUMMARY_FILENAME).read_text().split("\n")
        except FileNotFoundError:
            continue
        values = dict(line.split(" ", 1) for line in lines if " " in line)
        stamps.append(RunStamp(float(values["started"]), float(values["ended"])))
    return sorted(stamps, key=lambda s: s.started)


def run_folders(parent: Path) -> list[Path]:
    return [entry for entry in parent.iterdir() if entry.is_dir()]


def max_concurrency(stamps: Sequence[RunStamp]) -> int:
    """Most runs alive at one instant, from their stamps."""
    events = sorted([(s.started, 1) for s in stamps] + [(s.ended, -1) for s in stamps])
    alive = peak = 0
    for _, step in events:
        alive += step
        peak = max(peak, alive)
    return peak


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.02) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
