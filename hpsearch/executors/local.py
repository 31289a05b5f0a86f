"""Run configurations as subprocesses of the driver, on local GPUs or CPUs.

Each run is started from its argument list (never through a shell) as the
leader of a new session, with stdout/stderr streaming into its run folder. A
thread per run waits for its exit and wakes the driver, so nothing polls in a
loop. Whenever a run ends, is timed out or is stopped, every process it
started goes with it, also those that double-forked, left its session or
ignore SIGTERM: the driver is their subreaper, each run has a marker in its
environment and, where the machine allows, a cgroup of its own (see
:mod:`hpsearch.proctree`, :mod:`hpsearch.cgroup`). With
``runs_die_with_driver`` (the foreground search) the runs also die with the
driver, even with ``kill -9`` of it (see :mod:`hpsearch.guardian`). With
``detached_runs`` (the search service's drivers) they outlive it instead:
each starts through :mod:`hpsearch.runwrap`, which records its exit status in
the run folder, and a later driver adopts the runs still alive.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import psutil

from hpsearch import proctree
from hpsearch.atomic import write_json_atomic
from hpsearch.containment import RUN_MARKER_ENV, Containment
from hpsearch.errors import SubmissionError, UsageError
from hpsearch.executors.base import Executor, Wakeup
from hpsearch.gpu.allocate import Reservation
from hpsearch.gpu.claims import ClaimBoard
from hpsearch.gpu.monitor import BackgroundPoll, GpuMonitor, GpuReading, GpuSnapshot
from hpsearch.gpu.planner import SlotLimits, SlotPlanner
from hpsearch.options import LOCAL_NUM_JOBS, default_of
from hpsearch.runs import EXIT_CODE_FILE, RUN_KEY_ENV, JobHandle, LaunchSpec, Outcome, read_exit_code
from hpsearch.searchdir import RUN_JOB_FILE

log = logging.getLogger(__name__)

CREATE_TIME_TOLERANCE = 0.01
"""Seconds by which a live process's start time may differ from the recorded
one and still be the same process (psutil reports it in clock ticks)."""

RUNWRAP = str(Path(__file__).resolve().parent.parent / "runwrap.py")
"""The wrapper of detached runs, run by path (``python -I -S``): it imports
nothing of hpsearch's, so no ``PYTHONPATH`` has to reach the run."""

_FOREIGN_POLL = 1.0
"""Seconds between two looks at an adopted run where ``pidfd_open`` is missing."""

LAUNCH_FILE = "hpsearch_launch.json"
"""Written into the run folder of a detached run *before* it starts: which
launch it is and the marker its wrapper carries. A driver killed before it
recorded the start leaves the run queued; its successor finds the launch
here, looks for the wrapper by its marker or takes its exit status, and so
adopts the run instead of starting it twice (:meth:`LocalExecutor.harvest`)."""

TEST_STOP_ENV = "HPSEARCH_TEST_STOP_AT"
"""Tests only: ``before_start`` or ``after_start`` makes the driver stop
itself (SIGSTOP) once at that point of a detached run's launch, so a test can
``kill -9`` it exactly between starting a run and recording it."""

_PR_SET_PDEATHSIG = 1
_SETPRIV = shutil.which("setpriv") if sys.platform.startswith("linux") else None


@dataclass
class _Run:
    spec: LaunchSpec
    proc: subprocess.Popen | None  # None for a run adopted from an earlier driver
    process: psutil.Process
    gpu: int | None
    deadline: float | None
    marker: str = ""  # HPSEARCH_RUN of an adopted run (its earlier driver's session)
    reservation: Reservation | None = None
    waiter: threading.Thread | None = None
    killer: threading.Thread | None = None
    stopped: set[int] = field(default_factory=set)  # processes other than the leader that we stopped


def _carries_key(proc: psutil.Process, key: str) -> bool:
    """Whether ``proc`` belongs to the run ``key`` (it inherited our marker);
    guards every kill that is not anchored on a process we know."""
    try:
        return proc.environ().get(RUN_KEY_ENV) == key
    except (psutil.Error, OSError):
        return False


def _run_processes(pid: int, key: str) -> list[psutil.Process]:
    """Processes left in the session of a run whose leader had ``pid``."""
    return [p for p in proctree.session_members(pid) if _carries_key(p, key)]


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGKILL when the driver dies
    (Linux ``PR_SET_PDEATHSIG``), so ``kill -9`` of the driver leaves no run.

    The signal follows the *thread* that started the child: runs must be
    submitted from a thread that lives as long as the driver (the main one).
    The function does no more than one C call and a check, as code run between
    fork and exec in a threaded parent must.
    """
    prctl = proctree.prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def set_parent_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the driver died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return set_parent_death_signal


def _with_parent_death_signal(argv: list[str]) -> tuple[list[str], Callable[[], None] | None]:
    """Make the run die with the driver, preferably without a ``preexec_fn``.

    A ``preexec_fn`` forces Python to fork the whole driver instead of using
    vfork, which costs milliseconds per start; util-linux's ``setpriv`` sets
    the same ``PR_SET_PDEATHSIG`` and then execs the run unchanged. The
    signal is SIGKILL: a run that ignores SIGTERM must not outlive the driver.
    What the run started is left to the guardian (a driver killed in the
    millisecond before ``setpriv`` has armed the signal leaves that run to it
    as well).
    """
    if _SETPRIV:
        return [_SETPRIV, "--pdeathsig", "KILL", "--", *argv], None
    return argv, _die_with_parent()


_FOUND_PROGRAMS: set[tuple[str, str, str | None]] = set()


def _find_program(program: str, cwd: Path, env: dict[str, str]) -> bool:
    """Whether the program can be started. A program once found is not looked
    up again for every run (one removed later still fails clearly, in ``Popen``)."""
    found = (program, str(cwd), env.get("PATH"))
    if found in _FOUND_PROGRAMS:
        return True
    if os.sep in program:
        exists = os.access(os.path.join(cwd, program), os.X_OK)
    else:
        exists = shutil.which(program, path=found[2]) is not None
    if exists:
        _FOUND_PROGRAMS.add(found)
    return exists


def _describe_end(returncode: int) -> str:
    if returncode >= 0:
        return f"exit code {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"


class LocalExecutor(Executor):
    """Runs on this machine: on GPUs when given a monitor, else on CPUs.

    GPU mode asks a :class:`~hpsearch.gpu.planner.SlotPlanner` where runs
    may go and when to look again, giving it this search's runs per GPU;
    after the first, its polls run in a background thread
    (:class:`~hpsearch.gpu.monitor.BackgroundPoll`) whose answer wakes the
    driver to plan again. A run on GPU ``i`` gets
    ``CUDA_VISIBLE_DEVICES=i`` and ``CUDA_DEVICE_ORDER=PCI_BUS_ID``. CPU mode
    runs up to ``num_jobs`` at once and leaves ``CUDA_VISIBLE_DEVICES`` as the
    driver has it (a user who wants runs off the GPUs sets it empty). Every run
    gets ``HPSEARCH_RUN_KEY`` so its processes can be recognised later.

    Args:
        wakeup: Set whenever a run ends.
        gpu_monitor: GPU source; None for CPU mode.
        max_per_gpu: ``--max_num_jobs_per_gpu``.
        allowed_memory: ``--allowed_memory`` (fraction of a GPU's memory).
        allowed_load: ``--allowed_load`` (fraction).
        startup_time: ``--sim_startup_time`` in seconds: how long a new run's
            memory is reserved on its GPU before it must show in the readings.
        num_jobs: Parallel runs in CPU mode.
        gpu_poll_interval: Minimum seconds between two GPU polls.
        kill_grace: Seconds between SIGTERM and SIGKILL when stopping a run.
        gpu_error_patience: Seconds the GPU poll may keep failing mid-search
            (no new runs meanwhile) before :meth:`capacity` raises.
        clock: Monotonic clock, replaceable in tests.
        detached_runs: Runs outlive the driver (``--detached_runs``): started
            through :mod:`hpsearch.runwrap` in a session of their own, with no
            parent-death signal, guardian or cgroup; left running when the
            driver stops without ``cancel``; adopted by a later driver.
        slot_source: A search service's broker (:class:`hpsearch.service.slots.SlotSource`):
            it decides where runs go instead of this executor's own planner
            and ``num_jobs``, which then caps only this search's runs.
    """

    name = "local"
    runs_die_with_driver = True
    """A foreground search's runs end with its driver, even ``kill -9`` of it
    (direct children by ``PR_SET_PDEATHSIG``, the rest by the guardian). A
    service whose runs must outlive it for adoption sets this False."""

    def __init__(
        self,
        wakeup: Wakeup,
        *,
        gpu_monitor: GpuMonitor | None,
        max_per_gpu: int = default_of("max_num_jobs_per_gpu"),
        allowed_memory: float = default_of("allowed_memory"),
        allowed_load: float = default_of("allowed_load"),
        startup_time: float = default_of("sim_startup_time"),
        num_jobs: int = LOCAL_NUM_JOBS,
        gpu_poll_interval: float = default_of("gpu_poll_interval"),
        kill_grace: float = proctree.DEFAULT_GRACE,
        gpu_error_patience: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        first_readings: list[GpuReading] | None = None,
        detached_runs: bool = False,
        slot_source: Any = None,
    ) -> None:
        super().__init__(wakeup)
        if detached_runs:
            self.runs_die_with_driver = False
        _check_at_least("--max_num_jobs_per_gpu", max_per_gpu, 1)
        _check_at_least("--num_jobs", num_jobs, 1)
        _check_at_least("--sim_startup_time", startup_time, 0)
        _check_positive("--allowed_memory", allowed_memory)
        _check_positive("--allowed_load", allowed_load)
        self.monitor = gpu_monitor
        self.limits = SlotLimits(max_per_gpu, allowed_memory, allowed_load, startup_time)
        self.num_jobs = num_jobs
        self.kill_grace = kill_grace
        self.clock = clock
        self._runs: dict[str, _Run] = {}
        self._containment = Containment(self.kill_grace)
        # Read once: decoding os.environ for every run costs more than the rest of building it.
        self._base_env = dict(os.environ)
        self._ended: queue.Queue[tuple[str, int]] = queue.Queue()
        self.planner: SlotPlanner | None = None
        if gpu_monitor is not None:
            # A poll the caller just made (the start-up check) serves the first round.
            first = None if first_readings is None else GpuSnapshot(clock(), tuple(first_readings))
            self.planner = SlotPlanner(
                gpu_monitor.poll,
                BackgroundPoll(gpu_monitor.poll, self._wake),
                poll_interval=gpu_poll_interval,
                error_patience=gpu_error_patience,
                clock=clock,
                first=first,
            )
        self.slot_source = slot_source
        self._granted: list[str | None] = []  # slots the broker gave at the last capacity() not yet taken
        self._plan: list[int] = []  # GPU ids the planner offered at the last capacity() not yet taken
        self._refused = False  # the last capacity() found no free slot
        self._closed = False
        self._wake_lock = threading.Lock()  # no thread wakes the driver once shutdown() has begun
        if self.planner is not None:  # other processes' start-up reservations, and ours for them
            self.planner.claims = ClaimBoard.from_environment()

    @property
    def runs_outlive_driver(self) -> bool:
        return not self.runs_die_with_driver

    # ---- capacity and GPU planning

    def capacity(self) -> int:
        if self.slot_source is not None:
            want = self.num_jobs - len(self._runs) - len(self._granted)
            if want > 0 and self.slot_source.may_ask():
                holding = [None if run.gpu is None else str(run.gpu) for run in self._runs.values()] + self._granted
                self._granted += self.slot_source.acquire(want, self.limits, holding)
            return len(self._granted)
        if self.monitor is None:
            return max(0, self.num_jobs - len(self._runs))
        self._plan = self.planner.free_slots(self.limits, self._running_per_gpu(), self._reservations())
        self._refused = not self._plan
        return len(self._plan)

    def _reservations(self) -> list[Reservation]:
        """Reservations of runs still starting up; a run that ended takes its
        reservation with it."""
        return [run.reservation for run in self._runs.values() if run.reservation]

    def _running_per_gpu(self) -> Counter[int]:
        return Counter(run.gpu for run in self._runs.values() if run.gpu is not None)

    def _waiting_for_gpu(self) -> bool:
        """True when the last :meth:`capacity` found no free slot, so the
        planner says when a slot may free up."""
        return self.monitor is not None and self._refused

    def next_event_in(self) -> float | None:
        if self._granted:  # the driver had fewer queued runs than slots: others may use them
            self.slot_source.release(self._granted, satisfied=True)
            self._granted = []
        now = self.clock()
        times = [run.deadline for run in self._runs.values() if run.deadline is not None and run.killer is None]
        if self._waiting_for_gpu():
            wake = self.planner.wake_at(self.limits, self._running_per_gpu(), self._reservations())
            if wake is not None:
                times.append(wake)
        if not times:
            return None
        return max(0.0, min(times) - now)

    # ---- starting runs

    def submit(self, spec: LaunchSpec) -> JobHandle:
        if spec.key in self._runs:
            raise RuntimeError(f"run {spec.key} is already in flight")
        gpu = self._claim_slot()
        launch = self._record_launch(spec, gpu) if self.runs_outlive_driver else None
        proc = self._start(spec, gpu)
        if launch is not None:
            _stop_here_in_tests("after_start")
        now = self.clock()
        process = psutil.Process(proc.pid)  # not reaped yet: the waiter starts below
        create_time = process.create_time()
        run = _Run(
            spec=spec,
            proc=proc,
            process=process,
            gpu=gpu,
            deadline=None if spec.timeout is None else now + spec.timeout,
        )
        if gpu is not None and self.slot_source is None:
            self._plan.pop(0)
            run.reservation = self.planner.reservation(gpu, self.limits)
            if self.runs_outlive_driver:  # the start-up claim lives as long as the run, not as we do
                self.planner.hand_over(run.reservation, proc.pid, create_time)
        elif gpu is not None:  # the service's broker holds the slot's claim: it becomes the run's
            self.slot_source.started(str(gpu), proc.pid, create_time)
        self._runs[spec.key] = run
        run.waiter = threading.Thread(
            target=self._wait_for, args=(run,), name=f"hpsearch-wait-{proc.pid}", daemon=True
        )
        run.waiter.start()
        extra: dict = {"create_time": create_time, "gpu": gpu}
        if launch is not None:  # what a later driver needs to adopt it
            extra.update(launch)
        return JobHandle(
            key=spec.key,
            backend=self.name,
            job_id=str(proc.pid),
            where="cpu" if gpu is None else f"gpu {gpu}",
            extra=extra,
        )

    def _record_launch(self, spec: LaunchSpec, gpu: int | None) -> dict[str, Any]:
        """Write :data:`LAUNCH_FILE` before the run starts; returns its facts
        (they also go into the run's handle, so a recorded launch is known as such).
        Not fsynced: it guards against a killed driver, and after a crash of
        the machine the run is gone anyway."""
        launch = {"detached": True, "launch": uuid.uuid4().hex, "marker": self._containment.marker(spec.key),
                  "run_dir": str(spec.run_dir), "started": time.time(), "timeout": spec.timeout, "gpu": gpu}
        try:
            write_json_atomic(spec.run_dir / LAUNCH_FILE, launch, durable=False)
        except OSError as exc:
            raise SubmissionError(f"run {spec.name}: cannot write {LAUNCH_FILE}: {exc.strerror or exc}") from exc
        _stop_here_in_tests("before_start")
        return launch

    def _claim_slot(self) -> int | None:
        """The GPU for the next run (None in CPU mode); the driver is expected
        to respect :meth:`capacity`, anything else is a bug."""
        if self.slot_source is not None:
            if not self._granted:
                raise RuntimeError("submit() called with no slot granted")
            slot = self._granted.pop(0)
            return None if slot is None else int(slot)
        if self.monitor is None:
            if len(self._runs) >= self.num_jobs:
                raise RuntimeError("submit() called with all CPU slots busy")
            return None
        if not self._plan and not self.capacity():
            raise RuntimeError("submit() called with no free GPU slot")
        return self._plan[0]

    def _environment(self, spec: LaunchSpec, gpu: int | None) -> dict[str, str]:
        env = self._base_env.copy()
        env.update(spec.run_env)
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(gpu)
            env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        return env

    def _start(self, spec: LaunchSpec, gpu: int | None) -> subprocess.Popen:
        if not spec.argv:
            raise SubmissionError(f"run {spec.name}: empty command line")
        program = spec.argv[0]
        env = self._environment(spec, gpu)
        if not os.path.isdir(spec.cwd):
            raise SubmissionError(f"run {spec.name}: working directory {spec.cwd} does not exist")
        if not _find_program(program, spec.cwd, env):
            raise SubmissionError(f"run {spec.name}: program {program!r} not found")
        argv, preexec = list(spec.argv), None
        if self.runs_die_with_driver:
            argv, preexec = _with_parent_death_signal(argv)
        else:
            argv = [sys.executable, "-I", "-S", RUNWRAP, str(spec.run_dir / EXIT_CODE_FILE), "--", *argv]
        containment = self._containment
        containment.prepare(guard=self.runs_die_with_driver, cgroups=self.runs_die_with_driver)
        env[RUN_MARKER_ENV] = containment.marker(spec.key)
        try:
            with open(spec.stdout_path, "ab") as out, open(spec.stderr_path, "ab") as err, containment.lock:
                proc = subprocess.Popen(
                    argv,
                    cwd=spec.cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                    preexec_fn=preexec,
                )
                wrapper = _SETPRIV if argv[0] == _SETPRIV else None
                containment.started(spec.name, spec.key, proc.pid, wrapper=wrapper)
                return proc
        except (OSError, subprocess.SubprocessError) as exc:
            filename = getattr(exc, "filename", None)
            if filename not in (None, program):  # the output files, not the program
                raise SubmissionError(f"run {spec.name}: cannot open {filename}: {exc.strerror}") from exc
            raise SubmissionError(f"run {spec.name}: cannot start {program!r}: {exc}") from exc

    def _wait_for(self, run: _Run) -> None:
        """Waiter thread: reap the run, stop what it left behind, wake the driver.

        The time limit is the leader's: once it has exited, stopping its
        leftovers (which may take the grace period) is no time-out.
        """
        returncode = run.proc.wait()
        run.deadline = float("inf")  # one assignment: the driver thread reads it unlocked
        run.stopped |= self._containment.finish(run.spec.key, run.proc.pid)
        self._ended.put((run.spec.key, returncode))
        self._wake()

    def _wait_for_adopted(self, run: _Run, pid_fd: int | None) -> None:
        """Waiter thread of a run an earlier driver started: it is not our
        child, so sleep on its pidfd (or look every second where there is
        none), then take its exit status from the file its wrapper wrote."""
        _wait_foreign(run.process, pid_fd)
        run.deadline = float("inf")
        run.stopped |= self._containment.stop_foreign(run.spec.key, run.process, run.marker, with_leader=False)
        self._ended.put((run.spec.key, recorded_returncode(run.spec.run_dir)))
        self._wake()

    def _wake(self) -> None:
        """Wake the driver from a thread, unless it has shut us down: it may
        close the wakeup's pipe next, and a write to a reused descriptor would
        land in some other file."""
        with self._wake_lock:
            if not self._closed:
                self.wakeup.set()

    # ---- ending runs

    def poll(self) -> list[Outcome]:
        self._enforce_timeouts(self.clock())
        ended = self._drain()
        if self.planner is not None:
            for run, _code in ended:
                self.planner.release(run.reservation)
        return [self._outcome(run, code) for run, code in ended]

    def _drain(self) -> list[tuple[_Run, int]]:
        ended = []
        while True:
            try:
                key, returncode = self._ended.get_nowait()
            except queue.Empty:
                return ended
            run = self._runs.pop(key)
            for thread in (run.killer, run.waiter):
                if thread is not None:
                    thread.join()
            if self.slot_source is not None:
                self.slot_source.release([None if run.gpu is None else str(run.gpu)])
            ended.append((run, returncode))

    def _outcome(self, run: _Run, returncode: int | None, *, interrupted: bool = False) -> Outcome:
        pid = run.process.pid
        if returncode is None:  # an adopted run whose wrapper left no exit status
            state = f"pid {pid} ended without recording an exit status"
            interrupted = run.killer is None
        else:
            state = f"pid {pid} {_describe_end(returncode)}"
        if run.proc is None:
            state = f"adopted {state}"
        if run.killer is not None:
            interrupted = False
            state = f"timed out after {run.spec.timeout:g}s; {state}"
        elif interrupted:
            state = f"stopped by the driver; {state}"
        if run.stopped:
            state = f"{state}; {len(run.stopped)} leftover process(es) stopped"
        return Outcome(
            key=run.spec.key,
            exit_code=returncode if returncode is not None and returncode >= 0 else None,
            signal=-returncode if returncode is not None and returncode < 0 else None,
            timed_out=run.killer is not None,
            interrupted=interrupted,
            backend_state=state,
            leftovers_killed=len(run.stopped),
        )

    def _enforce_timeouts(self, now: float) -> None:
        """Stop every run past its deadline, in the background: the kill's
        grace period must not stall the driver."""
        for run in self._runs.values():
            deadline = run.deadline  # the waiter thread sets it to inf when the leader exits
            if deadline is not None and run.killer is None and now >= deadline:
                run.killer = threading.Thread(
                    target=self._stop,
                    args=([run],),
                    name=f"hpsearch-timeout-{run.process.pid}",
                    daemon=True,
                )
                run.killer.start()

    def _stop(self, runs: Sequence[_Run]) -> None:
        """Stop the runs and every process they started (TERM, then KILL after the grace)."""
        ours = [run for run in runs if run.proc is not None]
        stopped = self._containment.stop([(run.spec.key, run.process) for run in ours])
        for run in ours:
            run.stopped |= stopped[run.spec.key]
        for run in runs:
            if run.proc is None:
                run.stopped |= self._containment.stop_foreign(run.spec.key, run.process, run.marker, with_leader=True)

    def in_flight(self) -> int:
        return len(self._runs)

    def attempt_files(self) -> tuple[str, ...]:
        return (EXIT_CODE_FILE, LAUNCH_FILE)  # what a detached run's launch and wrapper leave

    def submit_many(self, specs: Sequence[LaunchSpec]) -> list[JobHandle | SubmissionError]:
        """Start the runs; slots the last :meth:`capacity` offered and these did
        not take are no longer claimed for other processes."""
        try:
            return super().submit_many(specs)
        finally:
            if self.planner is not None and self.planner.claims is not None:
                self.planner.withdraw_offers()

    def shutdown(self, cancel: bool) -> list[Outcome]:
        """Stop every run and report the ones still in flight as interrupted;
        runs that outlive the driver are left running unless ``cancel`` (they
        stay in flight, for a later driver to adopt). In a service's driver
        the service says whether the search is cancelled and whether its runs
        are killed without the grace."""
        if self.slot_source is not None:  # the service says whether it cancels the search, and how
            cancelled, kill = self.slot_source.stop_request()
            cancel = cancel or cancelled
            if kill:
                self._containment.grace = 0.0
        outcomes = self.poll()
        if self.planner is not None:
            self.planner.close()
        if self.runs_outlive_driver and not cancel:
            with self._wake_lock:
                self._closed = True
            self._containment.close()
            return outcomes
        runs = list(self._runs.values())
        self._stop(runs)
        with self._wake_lock:  # a GPU poll still in flight is left to its daemon thread
            self._closed = True
        for run in runs:
            run.waiter.join(timeout=self.kill_grace + 5.0)
        outcomes.extend(self._outcome(run, code, interrupted=True) for run, code in self._drain())
        for run in self._runs.values():  # stuck in the kernel even after SIGKILL
            state = f"pid {run.process.pid} did not exit after SIGKILL"
            outcomes.append(Outcome(key=run.spec.key, exit_code=None, interrupted=True, backend_state=state))
        self._runs.clear()
        self._containment.close()
        return outcomes

    def kill_now(self) -> None:
        """SIGKILL every process of every run at once (a second Ctrl-C); safe
        to call from a signal handler, does not wait. Runs that outlive the
        driver are left alone."""
        if self.runs_outlive_driver:
            return
        table = proctree.scan()
        for run in list(self._runs.values()):
            procs = [run.process, *self._containment.members(run.spec.key, run.process.pid, table, leader=True)]
            proctree.signal_all(procs, signal.SIGKILL)
        self._containment.kill_all()

    # ---- resume

    def adopt(self, handles: Sequence[JobHandle]) -> list[Outcome]:
        """Follow a previous driver's detached runs that are still alive; for
        those that ended meanwhile, report the exit status their wrapper
        recorded. Kill what is left of its other runs and report them as
        interrupted: they are not our children, so their exit codes are lost."""
        outcomes, doomed = [], []
        for handle in handles:
            if handle.extra.get("detached"):
                outcome = self._adopt_detached(handle)
                if outcome is not None:
                    outcomes.append(outcome)
                continue
            procs, state = _orphan(handle)
            doomed.extend(procs)
            outcomes.append(Outcome(key=handle.key, exit_code=None, interrupted=True, backend_state=state))
        proctree.terminate_processes(doomed, self.kill_grace)
        return outcomes

    def _adopt_detached(self, handle: JobHandle) -> Outcome | None:
        """Track a detached run whose wrapper still runs (same pid, start time
        and marker) and return None; else its outcome from ``exit_code.txt``
        (none recorded: interrupted, so it runs again)."""
        extra = handle.extra
        run_dir = Path(str(extra.get("run_dir") or "."))
        found = _live_wrapper(handle)
        if found is None:
            returncode = recorded_returncode(run_dir)
            if returncode is None:
                return Outcome(handle.key, None, interrupted=True,
                               backend_state="previous driver died; run ended without an exit status")
            return Outcome(handle.key, returncode if returncode >= 0 else None,
                           signal=-returncode if returncode < 0 else None,
                           backend_state=f"ended while no driver ran; {_describe_end(returncode)}")
        process, pid_fd = found
        timeout = extra.get("timeout")
        deadline = None
        if isinstance(timeout, (int, float)) and isinstance(extra.get("started"), (int, float)):
            deadline = self.clock() + max(0.0, float(extra["started"]) + timeout - time.time())
        gpu = extra.get("gpu") if isinstance(extra.get("gpu"), int) else None
        spec = LaunchSpec(key=handle.key, name=run_dir.name, argv=(), cwd=run_dir, run_dir=run_dir,
                          timeout=timeout if isinstance(timeout, (int, float)) else None)
        run = _Run(spec=spec, proc=None, process=process, gpu=gpu, deadline=deadline, marker=str(extra["marker"]))
        self._runs[handle.key] = run
        run.waiter = threading.Thread(target=self._wait_for_adopted, args=(run, pid_fd),
                                      name=f"hpsearch-adopted-{process.pid}", daemon=True)
        run.waiter.start()
        return None

    def harvest(self, key: str, run_dir: Path) -> tuple[JobHandle, Outcome | None] | None:
        """A queued run whose detached launch an earlier driver began but never
        recorded (it died in between; see :data:`LAUNCH_FILE`): adopted if its
        wrapper runs (outcome None), else its outcome from ``exit_code.txt``.
        None if it never started: it stays queued and starts now."""
        if not self.runs_outlive_driver:
            return None
        launch = unrecorded_launch(run_dir)
        if launch is None:
            return None
        gpu = launch.get("gpu") if isinstance(launch.get("gpu"), int) else None
        where = "cpu" if gpu is None else f"gpu {gpu}"
        wrapper = find_wrapper(str(launch["marker"]))
        if wrapper is not None:
            handle = JobHandle(key, self.name, str(wrapper.pid), where,
                               {**launch, "create_time": wrapper.create_time()})
            outcome = self._adopt_detached(handle)
            if outcome is None:
                return handle, None
            return handle, outcome
        returncode = recorded_returncode(run_dir)
        if returncode is None:  # never started, or its wrapper was killed: what it left goes, the run starts anew
            proctree.terminate_processes(_marked_processes(str(launch["marker"])), self.kill_grace)
            return None
        handle = JobHandle(key, self.name, "", where, dict(launch))
        return handle, Outcome(key, returncode if returncode >= 0 else None,
                               signal=-returncode if returncode < 0 else None,
                               backend_state=f"started just before its driver died; {_describe_end(returncode)}")

    def describe(self) -> str:
        if self.slot_source is not None:
            return "slots of the hpsearch service"
        if self.monitor is None:
            return f"CPU, {self.num_jobs} run(s) at a time"
        ids = self.monitor.visible
        if ids is None and self.planner.readings:
            ids = [r.id for r in self.planner.readings]
        where = "all GPUs" if ids is None else "GPUs " + ",".join(map(str, ids))
        return f"{where} x {self.limits.max_per_gpu} runs"


def recorded_returncode(run_dir: Path) -> int | None:
    """The exit status a run's wrapper recorded, as ``Popen.returncode`` says
    it (``-N`` for a run killed by signal N, recorded as 128 + N); None if
    it recorded none."""
    code = read_exit_code(run_dir)
    if code is None:
        return None
    if 128 < code < 128 + signal.NSIG:
        return -(code - 128)
    return code


def unrecorded_launch(run_dir: Path) -> dict[str, Any] | None:
    """The facts of :data:`LAUNCH_FILE` if the attempt it names was never
    recorded as started (``hpsearch_job.json`` missing or of another launch)."""
    launch = _read_json(run_dir / LAUNCH_FILE)
    if not isinstance(launch, dict) or not isinstance(launch.get("launch"), str) \
            or not isinstance(launch.get("marker"), str):
        return None
    job = _read_json(run_dir / RUN_JOB_FILE)
    extra = job.get("extra") if isinstance(job, dict) else None
    if isinstance(extra, dict) and extra.get("launch") == launch["launch"]:
        return None
    return launch


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


def find_wrapper(marker: str) -> psutil.Process | None:
    """The live wrapper of the run whose environment carries ``marker``: the
    leader of a session of its own (as :meth:`LocalExecutor._start` makes it)
    running :data:`RUNWRAP`; one pass over ``/proc``."""
    wanted = f"{RUN_MARKER_ENV}={marker}".encode()
    for info in proctree.scan().values():
        if info.pid != info.sid or info.zombie or not proctree.has_marker(info.pid, wanted):
            continue
        try:
            process = psutil.Process(info.pid)
            if RUNWRAP in process.cmdline():
                return process
        except psutil.Error:
            continue
    return None


def _marked_processes(marker: str) -> list[psutil.Process]:
    """Live processes whose environment carries the run marker ``marker``."""
    wanted = f"{RUN_MARKER_ENV}={marker}".encode()
    found = []
    for info in proctree.scan().values():
        if info.zombie or not proctree.has_marker(info.pid, wanted):
            continue
        try:
            found.append(psutil.Process(info.pid))
        except psutil.Error:
            pass
    return found


def _stop_here_in_tests(point: str) -> None:
    """SIGSTOP this process once, at ``point``, if :data:`TEST_STOP_ENV` names it."""
    global _TEST_STOPPED
    if not _TEST_STOPPED and os.environ.get(TEST_STOP_ENV) == point:
        _TEST_STOPPED = True
        os.kill(os.getpid(), signal.SIGSTOP)


_TEST_STOPPED = False


def _live_wrapper(handle: JobHandle) -> tuple[psutil.Process, int | None] | None:
    """The wrapper of a detached run if it still runs: the recorded pid, with
    the recorded start time and the run's marker in its environment (a
    reused pid has neither). Its pidfd, opened first so the check holds for
    the process it refers to, comes with it (None where Linux has none)."""
    try:
        pid = int(handle.job_id)
        recorded = float(handle.extra["create_time"])
        marker = f"{RUN_MARKER_ENV}={handle.extra['marker']}".encode()
    except (KeyError, TypeError, ValueError):
        return None
    pid_fd = None
    try:
        pid_fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pass
    try:
        process = psutil.Process(pid)
        alive = process.status() != psutil.STATUS_ZOMBIE
        same = alive and abs(process.create_time() - recorded) <= CREATE_TIME_TOLERANCE
    except psutil.Error:
        same = False
    if not same or not proctree.has_marker(pid, marker):
        if pid_fd is not None:
            os.close(pid_fd)
        return None
    return process, pid_fd


def _wait_foreign(process: psutil.Process, pid_fd: int | None) -> None:
    """Until a process that is not our child has exited."""
    if pid_fd is not None:
        try:
            select.select([pid_fd], [], [])  # readable once the process has exited
        finally:
            os.close(pid_fd)
        return
    while True:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(_FOREIGN_POLL)


def _orphan(handle: JobHandle) -> tuple[list[psutil.Process], str]:
    """The processes of a previous driver's run that are still alive, and
    what happened to the run.

    The recorded start time tells the run apart from an unrelated process that
    reuses its pid. If the run's leader is gone, members of its session that
    carry the run's key are still found.
    """
    try:
        pid = int(handle.job_id)
        recorded = float(handle.extra["create_time"])
    except (KeyError, TypeError, ValueError):
        return [], f"previous driver died; cannot identify pid {handle.job_id!r}, left alone"
    try:
        leader = psutil.Process(pid)
        same = abs(leader.create_time() - recorded) <= CREATE_TIME_TOLERANCE
    except psutil.NoSuchProcess:
        leader, same = None, False
    if leader is not None and not same:
        return [], f"previous driver died; pid {pid} now belongs to another process, left alone"
    procs = {p.pid: p for p in _run_processes(pid, handle.key)}
    if leader is not None:
        procs.update((p.pid, p) for p in proctree.collect_tree(leader))
    if not procs:
        return [], "previous driver died; run no longer alive"
    return list(procs.values()), "orphaned run of a previous driver killed"


def _check_at_least(flag: str, value: float, minimum: float) -> None:
    if value < minimum:
        raise UsageError(f"{flag} must be at least {minimum}, got {value}")


def _check_positive(flag: str, value: float) -> None:
    if not value > 0:
        raise UsageError(f"{flag} must be greater than 0, got {value}")
