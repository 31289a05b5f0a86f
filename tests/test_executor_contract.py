"""The promises of the Executor interface, written once and kept by every backend.

In the spirit of Optuna's storage test suite: each test states one promise
the driver relies on, and runs against every executor there is:

* local CPU runs, dying with the driver or outliving it (``--detached_runs``);
* local GPU runs over the fake ``nvidia-smi`` (tests/fakes/nvidia-smi);
* Slurm through its fake (tests/fakes/slurm);
* LSF through its fake (tests/fakes/lsf);
* the real one-node Slurm (scripts/slurm-local.sh), marked ``slurm``.

The runs are real processes of tests/scripts/job.py. Backend-specific
behaviour (job scripts, arrays, parsers, back-off timing) stays in each
backend's own tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import psutil
import pytest

from hpsearch.errors import SubmissionError
from hpsearch.executors.base import Executor, Wakeup
from hpsearch.executors.factory import choose_executor
from hpsearch.executors.lsf import LsfExecutor, LsfOptions
from hpsearch.executors.slurm import SlurmExecutor, SlurmOptions
from hpsearch.runs import LaunchSpec, Outcome
from hpsearch.settings import SearchSettings
from tests.cluster_fixtures import job_spec, most_at_once, run_intervals, start_events

PY = sys.executable
ROOT = Path(__file__).resolve().parent.parent
NASTY = "a b; touch X \"'$(id)"
HOSTILE = ["line1\nline2", "ünïcødé ✓", "`touch X`", "", "$HOME %j %%", "--lr=0.1", "* ~"]


@dataclass
class Backend:
    """One executor under test, and how to reach behind it where a promise needs that.

    Attributes:
        name: Test id.
        make: ``(wakeup, num_jobs) -> Executor``; successive calls see the same
            runs (a second executor is a later driver).
        limit: Runs in flight at once that ``make(..., 2)`` allows.
        root: Where run folders go.
        fail_queries: Make the next ``n`` status queries fail (None: the
            backend has no status query).
        refuse: Turn a spec into one whose submission is refused.
        time_limit: Extra arguments for ``make`` giving runs a one-second
            limit (None: the backend cannot be made that fast).
        submissions: How many submissions the backend has seen.
        timeout: Seconds a few short runs may take here.
    """

    name: str
    make: Callable[[Wakeup, int], Executor]
    root: Path
    limit: int = 2
    fail_queries: Callable[[int], None] | None = None
    refuse: Callable[[LaunchSpec], LaunchSpec] = lambda spec: spec
    time_limit: Callable[[Wakeup], Executor] | None = None
    submissions: Callable[[], int] | None = None
    timeout: float = 30.0
    made: list[Executor] = field(default_factory=list)

    @property
    def log(self) -> Path:
        """Where tests/scripts/job.py logs each start (``HPSEARCH_TEST_LOG``)."""
        return self.root / "events.log"

    def pids(self) -> list[int]:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [json.loads(line)["pid"] for line in lines if json.loads(line)["event"] == "start"]

    def executor(self, num_jobs: int = 2) -> Executor:
        executor = self.make(Wakeup(), num_jobs)
        self.made.append(executor)
        return executor

    def spec(self, number: int, *flags: str) -> LaunchSpec:
        return job_spec(self.root, number, *flags, python=PY)


def _refuse_locally(spec: LaunchSpec) -> LaunchSpec:
    return LaunchSpec(spec.key, spec.name, ("/nonexistent/python", *spec.argv[1:]), spec.cwd, spec.run_dir)


def _refuse_in_job_script(spec: LaunchSpec) -> LaunchSpec:
    return LaunchSpec(spec.key, spec.name, spec.argv, spec.cwd, spec.run_dir, env={"NOT-A-NAME": "x"})


def _local(settings: SearchSettings) -> Callable[[Wakeup, int], Executor]:
    def make(wakeup: Wakeup, num_jobs: int) -> Executor:
        chosen = SearchSettings(**{**settings.__dict__, "num_jobs": num_jobs})
        return choose_executor(chosen, lambda message: None)(wakeup, Path("."))
    return make


def _slurm_like(cls, options_cls, search_dir: Path, **options):
    def make(wakeup: Wakeup, num_jobs: int) -> Executor:
        return cls(wakeup, options_cls(num_jobs=num_jobs, **options), search_dir, poll_interval=0.1,
                   max_poll_interval=0.4)
    return make


def _real_slurm_conf() -> str | None:
    """SLURM_CONF of the running one-node Slurm, or None if it is not running."""
    base = os.environ.get("SLURM_LOCAL_BASE", "/tmp/hpsearch-slurm")
    status = subprocess.run([str(ROOT / "scripts" / "slurm-local.sh"), "status"], capture_output=True)
    return f"{base}/slurm.conf" if status.returncode == 0 else None


BACKENDS = ["local_cpu", "local_detached", "local_gpu", "slurm_fake", "lsf_fake", pytest.param("slurm_real", marks=pytest.mark.slurm)]


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path, monkeypatch) -> Backend:
    root = tmp_path / "search"
    root.mkdir()
    monkeypatch.setenv("HPSEARCH_TEST_LOG", str(root / "events.log"))
    yield (backend := _backend(request, request.param, root, monkeypatch))
    for executor in backend.made:  # leave no run of ours behind (in the shared queue, too)
        executor.shutdown(cancel=True)


def _backend(request, name: str, root: Path, monkeypatch) -> Backend:
    if name == "local_cpu":
        return Backend(name, _local(SearchSettings(grid_module="", visible_gpus="-1")), root,
                       refuse=_refuse_locally)
    if name == "local_detached":  # the search service's drivers: runs outlive them, through hpsearch/runwrap.py
        return Backend(name, _local(SearchSettings(grid_module="", visible_gpus="-1", detached_runs=True)), root,
                       refuse=_refuse_locally)
    if name == "local_gpu":
        fakes = request.getfixturevalue("fake_gpus")
        fakes.configure(2)
        settings = SearchSettings(grid_module="", visible_gpus="", sim_startup_time=0.0, gpu_poll_interval=0.05)
        return Backend(name, _local(settings), root, fail_queries=lambda n: fakes.set(fail=n != 0),
                       refuse=_refuse_locally)
    if name == "slurm_fake":
        fake = request.getfixturevalue("fake_slurm")
        make = _slurm_like(SlurmExecutor, SlurmOptions, root, mem="", gres="")
        return Backend(name, make, root, fail_queries=fake.fail_squeue, refuse=_refuse_in_job_script,
                       time_limit=lambda wakeup: SlurmExecutor(wakeup, SlurmOptions(mem="", gres="",
                                                                                    extra=["--time=1"]), root,
                                                               poll_interval=0.1, max_poll_interval=0.4),
                       submissions=lambda: len(fake.calls("sbatch")))
    if name == "lsf_fake":
        fake = request.getfixturevalue("fake_lsf")
        make = _slurm_like(LsfExecutor, LsfOptions, root)
        return Backend(name, make, root, fail_queries=fake.fail_bjobs, refuse=_refuse_in_job_script,
                       time_limit=lambda wakeup: LsfExecutor(wakeup, LsfOptions(extra=["-W", "1"]), root,
                                                             poll_interval=0.1, max_poll_interval=0.4),
                       submissions=lambda: len(fake.calls("bsub")))
    conf = _real_slurm_conf()
    if conf is None:
        pytest.skip("the local Slurm is not running (scripts/slurm-local.sh start)")
    monkeypatch.setenv("SLURM_CONF", conf)
    return Backend(name, _slurm_like(SlurmExecutor, SlurmOptions, root, mem="100M", gres=""), root,
                   refuse=_refuse_in_job_script, timeout=120.0)


# --------------------------------------------------------------------------- driving like the driver


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@dataclass
class Drive:
    outcomes: dict[str, list[Outcome]]
    most_in_flight: int
    capacity_overrun: bool


def drive(executor: Executor, specs: list[LaunchSpec], timeout: float, *, limit: int | None = None) -> Drive:
    """Submit within capacity(), poll until nothing is in flight, as the driver's loop does."""
    queue, outcomes, most, overrun = list(specs), {}, 0, False
    deadline = time.monotonic() + timeout
    while queue or executor.in_flight():
        assert time.monotonic() < deadline, f"{executor.in_flight()} runs still in flight after {timeout} s"
        capacity = executor.capacity()
        batch, queue = queue[:capacity], queue[capacity:]
        if batch:
            for result in executor.submit_many(batch):
                assert not isinstance(result, SubmissionError), result
        most = max(most, executor.in_flight())
        overrun |= limit is not None and executor.in_flight() > limit
        for outcome in executor.poll():
            outcomes.setdefault(outcome.key, []).append(outcome)
        wait = executor.next_event_in()
        executor.wakeup.wait(min(0.2 if wait is None else wait, 0.2))
    return Drive(outcomes, most, overrun)


def wait_for_start(specs: list[LaunchSpec], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all((spec.run_dir / "argv.json").exists() for spec in specs):
        assert time.monotonic() < deadline, "the runs never started"
        time.sleep(0.05)


def collect_until(executor: Executor, keys: set[str], timeout: float) -> dict[str, list[Outcome]]:
    outcomes: dict[str, list[Outcome]] = {}
    deadline = time.monotonic() + timeout
    while set(outcomes) != keys or executor.in_flight():
        assert time.monotonic() < deadline, f"outcomes for {sorted(outcomes)} only, {executor.in_flight()} in flight"
        for outcome in executor.poll():
            outcomes.setdefault(outcome.key, []).append(outcome)
        wait = executor.next_event_in()
        executor.wakeup.wait(min(0.2 if wait is None else wait, 0.2))
    return outcomes


# --------------------------------------------------------------------------- the promises


def test_every_submitted_run_is_reported_ended_exactly_once(backend):
    executor = backend.executor()
    specs = [backend.spec(i) for i in range(3)] + [backend.spec(3, "--mode=exit3")]
    result = drive(executor, specs, backend.timeout)
    assert {key: len(found) for key, found in result.outcomes.items()} == {spec.key: 1 for spec in specs}
    assert {key: found[0].exit_code for key, found in result.outcomes.items()} == {
        "key0": 0, "key1": 0, "key2": 0, "key3": 3}
    assert executor.poll() == [] and executor.shutdown(cancel=False) == []


def test_in_flight_counts_submitted_runs_until_they_are_reported(backend):
    executor = backend.executor()
    assert executor.in_flight() == 0
    specs = [backend.spec(i, "--sleep=0.3") for i in range(2)]
    executor.submit_many(specs)
    assert executor.in_flight() == 2
    collect_until(executor, {spec.key for spec in specs}, backend.timeout)
    assert executor.in_flight() == 0


def test_capacity_is_never_exceeded(backend):
    executor = backend.executor(2)
    specs = [backend.spec(i, "--sleep=0.4") for i in range(5)]
    result = drive(executor, specs, backend.timeout * 2, limit=backend.limit)
    assert not result.capacity_overrun and result.most_in_flight == backend.limit
    assert len(result.outcomes) == 5
    assert most_at_once(run_intervals(backend.root)) <= backend.limit


def test_cancel_reports_the_runs_interrupted_and_stops_them(backend):
    executor = backend.executor()
    specs = [backend.spec(i, "--mode=hang") for i in range(2)]
    executor.submit_many(specs)
    wait_for_start(specs, backend.timeout)
    outcomes = executor.shutdown(cancel=True)
    assert sorted((o.key, o.interrupted) for o in outcomes) == [("key0", True), ("key1", True)]
    assert executor.in_flight() == 0 and executor.poll() == []
    pids = backend.pids()
    assert len(pids) == 2
    deadline = time.monotonic() + backend.timeout
    while any(_alive(pid) for pid in pids):
        assert time.monotonic() < deadline, "cancelled runs still alive"
        time.sleep(0.05)
    assert not any((spec.run_dir / "trace.json").exists() for spec in specs)  # none ran to its end


def test_shutdown_without_cancel_keeps_only_runs_that_outlive_the_driver(backend):
    executor = backend.executor()
    specs = [backend.spec(i, "--sleep=1") for i in range(2)]
    executor.submit_many(specs)
    outcomes = executor.shutdown(cancel=False)
    if executor.runs_outlive_driver:
        assert outcomes == [] and executor.in_flight() == 2
        assert executor.poll() == [] and executor.next_event_in() is None  # no longer followed
    else:
        assert sorted((o.key, o.interrupted) for o in outcomes) == [("key0", True), ("key1", True)]
        assert executor.in_flight() == 0


def test_adopt_never_submits_again(backend):
    first = backend.executor()
    specs = [backend.spec(i, "--sleep=0.5") for i in range(2)]
    handles = first.submit_many(specs)
    first.shutdown(cancel=False)
    submitted = backend.submissions() if backend.submissions else None
    second = backend.executor()
    outcomes: dict[str, list[Outcome]] = {}
    for outcome in second.adopt(handles):
        outcomes.setdefault(outcome.key, []).append(outcome)
    for key, found in collect_until(second, {s.key for s in specs} - set(outcomes), backend.timeout).items():
        outcomes.setdefault(key, []).extend(found)
    assert {key: len(found) for key, found in outcomes.items()} == {"key0": 1, "key1": 1}
    if first.runs_outlive_driver:  # followed to their real end
        assert [found[0].exit_code for found in outcomes.values()] == [0, 0]
    assert all(count == 1 for count in start_events(backend.log).values())  # no run started twice
    if submitted is not None:
        assert backend.submissions() == submitted


def test_adopting_a_run_that_cannot_be_followed_reports_it_at_once(backend):
    from hpsearch.runs import JobHandle

    executor = backend.executor()
    run_dir = backend.root / "sim_gone"
    run_dir.mkdir()
    gone = JobHandle("gone", executor.name, "4000000", extra={"run_dir": str(run_dir), "create_time": 1.0})
    [outcome] = executor.adopt([gone])
    assert outcome.key == "gone" and outcome.interrupted and outcome.exit_code is None
    assert executor.in_flight() == 0


def test_a_failing_status_query_never_decides_a_run(backend):
    if backend.fail_queries is None:
        pytest.skip(f"{backend.name} has no status query to fail")
    executor = backend.executor()
    spec = backend.spec(1, "--sleep=0.3")
    executor.submit(spec)
    backend.fail_queries(3)
    try:
        deadline = time.monotonic() + 1.5
        early: list[Outcome] = []
        while time.monotonic() < deadline:  # the run ends meanwhile; failed queries decide nothing
            early += executor.poll()
            executor.capacity()
            time.sleep(0.1)
        assert all(not o.interrupted and o.exit_code == 0 for o in early)
    finally:
        backend.fail_queries(0)
    outcomes = early + [o for found in collect_until(executor, set() if early else {spec.key}, backend.timeout)
                        .values() for o in found]
    assert [(o.key, o.exit_code, o.interrupted, o.timed_out) for o in outcomes] == [("key1", 0, False, False)]


def test_a_refused_submission_is_returned_and_nothing_is_in_flight(backend):
    executor = backend.executor()
    good, bad = backend.spec(0), backend.refuse(backend.spec(1))
    results = executor.submit_many([bad, good])
    assert isinstance(results[0], SubmissionError) and not isinstance(results[1], SubmissionError)
    assert executor.in_flight() == 1
    assert set(collect_until(executor, {good.key}, backend.timeout)) == {good.key}


def test_the_run_gets_its_argv_exactly_and_its_output_lands_in_the_run_folder(backend):
    executor = backend.executor()
    spec = backend.spec(1, f"--value={NASTY}", "--mode=crash", *HOSTILE)
    executor.submit(spec)
    [outcome] = collect_until(executor, {spec.key}, backend.timeout)[spec.key]
    assert outcome.exit_code == 1
    assert json.loads((spec.run_dir / "argv.json").read_text())[1:] == list(spec.argv[2:])
    assert "RuntimeError: deliberate crash" in spec.stderr_path.read_text()
    trace = json.loads((spec.run_dir / "trace.json").read_text())
    assert trace["key"] == spec.key  # the run's processes carry its key
    assert not list(backend.root.rglob("X"))


def test_a_run_past_its_time_limit_is_reported_timed_out(backend):
    if backend.name.startswith("local"):
        executor = backend.executor()
        spec = job_spec(backend.root, 1, "--mode=hang", python=PY)
        spec = LaunchSpec(spec.key, spec.name, spec.argv, spec.cwd, spec.run_dir, spec.env, timeout=1.0)
    elif backend.time_limit is not None:
        executor = backend.time_limit(Wakeup())
        backend.made.append(executor)
        spec = backend.spec(1, "--mode=hang")
    else:
        pytest.skip(f"{backend.name} has no time limit short enough for a test")
    executor.submit(spec)
    [outcome] = collect_until(executor, {spec.key}, backend.timeout)[spec.key]
    assert outcome.timed_out and not outcome.interrupted
