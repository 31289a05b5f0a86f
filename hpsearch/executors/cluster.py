"""What the Slurm and LSF executors share: following jobs and their life cycle.

Both follow their jobs the same way: the run folders tell when a run ended
(``exit_code.txt``, a ``stat`` per running job and second), and one batched
status query for every unfinished job of the search tells the rest, spaced
out by a :class:`StatusWatcher` (soon after a submission, then up to
``--cluster_poll_max`` apart; longer while the scheduler does not answer, and
``SchedulerQueryError`` only after it has failed for a long time). Details
(exit codes of jobs that ended without recording them) are asked once per
job, for jobs that left the queue. :class:`ClusterExecutor` holds that
common life cycle; the subclasses only speak their scheduler's language.

States a job can end in, and what the search makes of them:

* ``EXITED`` (Slurm COMPLETED/FAILED, LSF DONE/EXIT): the script ended; the
  recorded (or reported) exit code decides.
* ``KILLED`` (CANCELLED, OUT_OF_MEMORY, LSF TERM_OWNER, ...): the scheduler
  stopped the job; the run failed and is not run again by itself.
* ``TIMED_OUT`` (TIMEOUT, DEADLINE, LSF TERM_RUNLIMIT): the run timed out.
* ``INTERRUPTED`` (NODE_FAIL, PREEMPTED, BOOT_FAIL, LSF preemption): not the
  run's fault; it is run again.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import json
import logging
import re
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from hpsearch.atomic import write_text_atomic
from hpsearch.errors import SchedulerQueryError, SubmissionError
from hpsearch.executors.base import UNLIMITED_CAPACITY, Executor, Wakeup
from hpsearch.executors.jobscript import (
    ARRAY_LOG_DIR,
    JOB_SCRIPT,
    SUBMIT_SCRIPT,
    ClusterOptions,
    clear_exit_code,
    job_name,
    pack_name,
    q,
    submit_script,
)
from hpsearch.runs import CUT_OFF_FILE, EXIT_CODE_FILE, JobHandle, LaunchSpec, Outcome, read_cut_off, read_exit_code

logger = logging.getLogger(__name__)

# Without an answer from the scheduler for this long, the search stops.
GIVE_UP_AFTER = 30 * 60.0
TOOL_TIMEOUT = 120.0
RUNNING_WORDS = {"RUNNING", "COMPLETING", "RUN", "SIGNALING", "STAGE_OUT"}  # Slurm's and LSF's


# --------------------------------------------------------------------------- job states


class Ending(enum.Enum):
    """How a job left the scheduler (see the module docstring)."""

    EXITED = "exited"
    KILLED = "killed"
    TIMED_OUT = "timed_out"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class JobState:
    """One job's state in the scheduler's words.

    Attributes:
        state: What to keep in the store, e.g. ``RUNNING``, ``CANCELLED by 0``
            or ``TIMEOUT after 1:00:00``.
        ending: None while the job waits or runs.
        exit_code: The scheduler's idea of the exit code, if any.
        signal: The signal that ended the job, if the scheduler says so.
    """

    state: str
    ending: Ending | None = None
    exit_code: int | None = None
    signal: int | None = None


def outcome_for(key: str, run_dir: Path | None, state: JobState | None) -> Outcome | None:
    """Turn a job's state into an :class:`Outcome`, or None if it has not ended.

    ``state`` None means the scheduler no longer knows the job: its recorded
    exit status tells how it ended; without one it was lost and runs again.
    Only a job that exited on its own has a trustworthy scheduler exit code;
    a cancelled or timed-out job keeps only what the script recorded.
    """
    recorded = read_exit_code(run_dir)
    if state is None:
        if recorded is not None:
            return Outcome(key, recorded, backend_state="left the queue")
        return Outcome(key, None, interrupted=True, backend_state="unknown to the scheduler")
    if state.ending is None:
        return None
    exit_code = recorded
    if exit_code is None and state.ending is Ending.EXITED:
        exit_code = state.exit_code
    signal = state.signal if exit_code is None else None
    if state.ending is not Ending.EXITED and recorded is not None and recorded > 128:
        # the script outlived the run the scheduler killed and recorded 128+N; whether it got
        # that far is a race, so the outcome is the signal either way
        exit_code, signal = None, state.signal or recorded - 128
    return Outcome(
        key,
        exit_code,
        signal=signal,
        timed_out=state.ending is Ending.TIMED_OUT,
        interrupted=state.ending is Ending.INTERRUPTED,
        backend_state=state.state,
    )


# --------------------------------------------------------------------------- polling


class StatusWatcher:
    """When to ask the scheduler next, and when to stop asking.

    After a submission the next query comes ``interval`` later; from then on
    the queries space out to about half the time since the last submission
    (as submitit does), up to ``max_interval``: jobs that have waited or run
    for a while rarely change within a minute, and the run folders tell the
    ends of runs without asking (:meth:`soon` asks early when a job is about
    to leave). Each failed query doubles the wait (up to ``max_interval``)
    and logs a warning; a query failure never changes any job's state. Only
    when queries have failed without pause for ``give_up_after`` seconds (and
    at least ``min_failures`` times) does :meth:`failed` raise, so a long
    scheduler outage ends the search instead of freezing it.
    """

    def __init__(
        self,
        interval: float,
        max_interval: float,
        *,
        give_up_after: float = GIVE_UP_AFTER,
        min_failures: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.max_interval = max(interval, max_interval)
        self.give_up_after = give_up_after
        self.min_failures = min_failures
        self.clock = clock
        self.failures = 0
        self.delay = interval
        self._first_failure: float | None = None
        self._changed = clock()
        self._next = clock() + interval

    def due(self) -> bool:
        return self.clock() >= self._next

    def next_in(self) -> float:
        return max(0.0, self._next - self.clock())

    def steady_delay(self) -> float:
        """The wait after a successful query: half the time since the last submission, within bounds."""
        return min(self.max_interval, max(self.interval, (self.clock() - self._changed) / 2))

    def submitted(self) -> None:
        """Jobs were just submitted: ask soon, then back off again from there."""
        self._changed = self.clock()
        self.soon()

    def soon(self) -> None:
        """Ask no later than ``interval`` from now (unless queries are failing)."""
        if not self.failures:
            self._next = min(self._next, self.clock() + self.interval)

    def succeeded(self) -> None:
        if self.failures:
            logger.warning("job states readable again after %d failed queries", self.failures)
        self.failures = 0
        self._first_failure = None
        self.delay = self.interval
        self._next = self.clock() + self.steady_delay()

    def failed(self, problem: str) -> None:
        """Note a failed query; raises :class:`SchedulerQueryError` once it is hopeless."""
        now = self.clock()
        if self._first_failure is None:
            self._first_failure = now
        self.failures += 1
        failing_for = now - self._first_failure
        if self.failures >= self.min_failures and failing_for >= self.give_up_after:
            raise SchedulerQueryError(
                f"job states could not be read for {failing_for / 60:.0f} min ({self.failures} tries); "
                f"last problem: {problem}"
            )
        self.delay = min(self.max_interval, self.delay * 2)
        self._next = now + self.delay
        logger.warning(
            "reading job states failed (%d in a row): %s; retrying in %.0f s", self.failures, problem, self.delay
        )


# --------------------------------------------------------------------------- running scheduler tools


class ToolError(Exception):
    """A scheduler command could not be run, hung, or failed."""


def tail(text: str, lines: int = 5) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())


def run_tool(argv: Sequence[str], *, stdin: Path | None = None, timeout: float = TOOL_TIMEOUT,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a scheduler command from an argument list (no shell); any exit status is returned.

    Raises:
        ToolError: The program is missing or did not finish within ``timeout``.
    """
    try:
        if stdin is None:
            return subprocess.run(list(argv), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=timeout, cwd=cwd)
        with open(stdin, "rb") as handle:
            return subprocess.run(list(argv), stdin=handle, capture_output=True, text=True, timeout=timeout,
                                  cwd=cwd)
    except FileNotFoundError:
        raise ToolError(f"{argv[0]} not found on PATH") from None
    except subprocess.TimeoutExpired:
        raise ToolError(f"{argv[0]} did not answer within {timeout:.0f} s") from None
    except OSError as exc:
        raise ToolError(f"{argv[0]} could not run: {exc}") from None


def failure(result: subprocess.CompletedProcess[str]) -> str:
    """``sbatch exited with 1: <stderr tail>`` for messages."""
    return f"{result.args[0]} exited with {result.returncode}: {tail(result.stderr or result.stdout) or 'no output'}"


# --------------------------------------------------------------------------- the executor


@dataclass(frozen=True)
class Submission:
    """How to submit one script: the argv, and whether the script goes on stdin."""

    argv: list[str]
    script: Path
    script_on_stdin: bool = False

    def shell_line(self) -> str:
        line = shlex.join(self.argv)
        return f"{line} < {q(self.script)}" if self.script_on_stdin else line


@dataclass(frozen=True)
class TrackedRun:
    key: str
    run_dir: Path | None  # None for an adopted handle that did not keep its run folder
    slot: int = 0  # its place in its job: 0 runs first


@dataclass
class TrackedJob:
    """One scheduler job (or array task) and its runs not reported yet, in the order it runs them."""

    job_id: str
    runs: list[TrackedRun]
    running: bool = False  # the scheduler said so, or a run folder showed it


INTENT_DIR = "submissions"
"""Folder of the search where each submission is recorded before the scheduler is asked
(``<job name>.json``: its runs and attempts, then its job id), so that a driver killed
between the two is followed up, not repeated (:meth:`ClusterExecutor.reclaim`)."""

FILE_CHECK_INTERVAL = 1.0
"""Seconds between two looks at the run folders of running jobs at most."""


class ClusterExecutor(Executor):
    """Submits runs as scheduler jobs (one per job or packed, single or as arrays) and follows them.

    Each job runs ``options.pack_size()`` runs one after another. Per-job
    mode keeps at most ``num_jobs`` of this search's jobs in the queue.
    Array mode hands everything to the scheduler at once, in arrays of at
    most the scheduler's maximum size whose ``%num_jobs`` caps how many run
    at once; a new array waits (a scheduler dependency) for this search's
    arrays still in the queue, so the cap holds across arrays too.

    A run ends when its ``exit_code.txt`` appears: the folders of running
    jobs are looked at every second (a ``stat`` each, no scheduler call), so
    runs are reported at once. One query covers every job of the search; it
    comes soon after a submission and then less and less often (see
    :class:`StatusWatcher`), and tells what the run folders cannot: that a
    job started, or that it ended without recording its runs (time limit,
    cancellation, lost node). A job that ended is never asked about again.

    With ``generate_only`` nothing is submitted: job scripts and
    ``<search dir>/submit.sh`` are written and the handles carry an empty job
    id; the driver stops after that and a later ``--resume`` collects the
    results from the ``exit_code.txt`` files the scripts write.
    """

    name = "cluster"
    submit_tool = ""  # sbatch, bsub
    cancel_tool = ""  # scancel, bkill
    task_format = ""  # how an array task's id is written, e.g. "{array}_{index}"
    first_index = 0  # the index of an array's first task
    queue_names_argv: tuple[str, ...] = ()  # lists the names of the user's queued and running jobs
    pending_states: tuple[str, ...] = ()  # a job waiting to start, in the scheduler's words
    held_states: tuple[str, ...] = ()  # a job kept from starting by hold_argv

    def __init__(
        self,
        wakeup: Wakeup,
        options: ClusterOptions,
        search_dir: Path,
        *,
        poll_interval: float = 2.0,
        max_poll_interval: float | None = None,
        give_up_after: float = GIVE_UP_AFTER,
    ) -> None:
        super().__init__(wakeup)
        self.options = options
        self.search_dir = Path(search_dir)
        cap = options.poll_max if max_poll_interval is None else max_poll_interval
        self._watcher = StatusWatcher(poll_interval, cap, give_up_after=give_up_after)
        self._file_check = min(FILE_CHECK_INTERVAL, poll_interval)
        self._next_file_check = 0.0
        self._jobs: dict[str, TrackedJob] = {}
        self._in_flight = 0  # runs submitted or adopted and not reported yet
        self._generated: list[tuple[str, str]] = []  # (job name, submission line) for submit.sh
        self._max_array: int | None = None
        self._stopped = False

    # ---- what subclasses provide

    @abc.abstractmethod
    def job_script(self, pack: Sequence[LaunchSpec]) -> str:
        """The text of one job's script, which runs ``pack`` one after another."""

    @abc.abstractmethod
    def array_script(self, packs: Sequence[Sequence[LaunchSpec]], name: str) -> str:
        """The text of an array script whose task ``first_index + i`` runs ``packs[i]``."""

    @abc.abstractmethod
    def submission(self, script: Path, *, name: str, array_size: int, depends_on: Sequence[str]) -> Submission:
        """How to submit ``script``; ``array_size`` 0 means a single job."""

    @abc.abstractmethod
    def parse_job_id(self, stdout: str) -> str | None:
        """The job id in the submission command's answer."""

    @abc.abstractmethod
    def query(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        """States of the given jobs from one call; jobs it does not show are left out.

        Raises:
            ToolError: The scheduler could not be asked; nothing can be concluded.
        """

    def details(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        """Final states (with exit codes) of jobs that ended or left the queue, where
        :meth:`query` does not tell them; asked once per job. None by default."""
        return {}

    @abc.abstractmethod
    def read_max_array_size(self) -> int:
        """The largest array the scheduler accepts."""

    @abc.abstractmethod
    def jobs_named(self, names: Sequence[str]) -> dict[str, str]:
        """``{job name: job id}`` (an array's own id) of the user's jobs with these names,
        queued, running or recently ended, from one call.

        Raises:
            ToolError: The scheduler could not be asked.
        """

    # ---- Executor interface

    def capacity(self) -> int:
        if self.options.generate_only or self.options.array:  # arrays carry their own %num_jobs cap
            return UNLIMITED_CAPACITY
        return max(0, self.options.num_jobs - len(self._jobs)) * self.options.pack_size()

    @property
    def runs_outlive_driver(self) -> bool:
        return True

    def harvest(self, key: str, run_dir: Path) -> tuple[JobHandle, Outcome] | None:
        """A job script submitted by hand (``submit.sh``) that recorded its exit status."""
        exit_code = read_exit_code(run_dir)
        if exit_code is None:
            return None
        state = "submitted by hand"
        return JobHandle(key, self.name, "", state), Outcome(key, exit_code, backend_state=state)

    def reclaim(self, queued: dict[str, int]) -> list[JobHandle]:
        """Submissions recorded in ``submissions/`` whose runs the store still has as queued
        at the attempt before (the driver was killed between ``sbatch`` and the store):
        their handles, by the recorded job id or else by job name from one query."""
        found = []  # (intent, task index, run)
        for path in sorted((self.search_dir / INTENT_DIR).glob("*.json")):
            try:
                intent = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            for index, pack in enumerate(intent["tasks"], self.first_index):
                found += [(intent, index, run) for run in pack if queued.get(run["key"]) == run["attempt"] - 1]
        if not found:
            return []
        unnamed = sorted({intent["name"] for intent, _, _ in found if not intent.get("job_id")})
        try:
            ids = self.jobs_named(unnamed) if unnamed else {}
        except ToolError as exc:
            raise SchedulerQueryError(f"cannot tell whether the last submissions of the previous driver "
                                      f"reached the scheduler: {exc}") from None
        handles = []
        for intent, index, run in found:
            job_id = intent.get("job_id") or ids.get(intent["name"])
            if not job_id:
                continue  # never submitted: it runs as a queued run
            task = self.task_id(job_id, index) if intent["array"] else job_id
            extra = {"run_dir": run["run_dir"], "slot": run["slot"]}
            handles.append(JobHandle(run["key"], self.name, task, f"job {task}", extra))
        return handles

    def attempt_files(self) -> tuple[str, ...]:
        return (EXIT_CODE_FILE, CUT_OFF_FILE)

    def generated(self, count: int) -> str:
        return (f"wrote job scripts for {count} runs and {self.search_dir / SUBMIT_SCRIPT} (it keeps at most "
                f"--num_jobs of them in the queue); nothing was submitted")

    def in_flight(self) -> int:
        return self._in_flight

    def next_event_in(self) -> float | None:
        if not self._jobs or self._stopped:
            return None
        return min(self._watcher.next_in(), max(0.0, self._next_file_check - time.monotonic()))

    def describe(self) -> str:
        packed = self.options.pack_size()
        per_job = f", {packed} runs per job" if packed > 1 else ""
        if self.options.generate_only:
            return f"{self.name}: write job scripts and {SUBMIT_SCRIPT} only{per_job}"
        if self.options.array:
            return f"{self.name} job arrays, at most {self.options.num_jobs} jobs at once{per_job}"
        return f"{self.name} jobs, at most {self.options.num_jobs} in the queue{per_job}"

    def submit(self, spec: LaunchSpec) -> JobHandle:
        result = self.submit_many([spec])[0]
        if isinstance(result, SubmissionError):
            raise result
        return result

    def submit_many(self, specs: Sequence[LaunchSpec]) -> list[JobHandle | SubmissionError]:  # type: ignore[override]
        """Submit runs, ``pack_size()`` per job; a refused submission is returned in place of its handles.

        Per-job mode submits one job per pack; array mode one array per chunk
        of at most the scheduler's maximum array size of packs.
        """
        results: list[JobHandle | SubmissionError] = []
        packs = list(chunks(specs, self.options.pack_size()))
        if self.options.array and packs:
            for array in chunks(packs, self.max_array_size()):
                try:
                    results += self._submit_array(array)
                except SubmissionError as exc:
                    results += [exc] * sum(len(pack) for pack in array)
        else:
            for pack in packs:
                try:
                    results += self._submit_single(pack)
                except SubmissionError as exc:
                    results += [exc] * len(pack)
        if any(not isinstance(result, SubmissionError) for result in results) and not self.options.generate_only:
            self._watcher.submitted()
            self._next_file_check = 0.0
        self._write_submit_script()
        return results

    def poll(self) -> list[Outcome]:
        if not self._jobs or self._stopped:
            return []
        outcomes = []
        if time.monotonic() >= self._next_file_check:
            outcomes += self._check_run_folders()
        if self._jobs and self._watcher.due():
            outcomes += self._refresh()
        return outcomes

    def adopt(self, handles: Sequence[JobHandle]) -> list[Outcome]:
        """Follow the jobs of an earlier driver by their ids; never submit them again.

        A handle without job id (a ``--generate_only`` script) cannot be
        followed: its recorded exit status is its outcome, and without one it
        is reported interrupted. The run folder comes from ``handle.extra``,
        the run's place in a packed job from ``handle.extra["slot"]``.
        """
        outcomes = []
        for handle in handles:
            extra = handle.extra or {}
            run_dir = Path(extra["run_dir"]) if extra.get("run_dir") else None
            if not handle.job_id:
                recorded = read_exit_code(run_dir)
                if recorded is not None:
                    outcomes.append(Outcome(handle.key, recorded, backend_state="submitted by hand"))
                else:
                    outcomes.append(Outcome(handle.key, None, interrupted=True, backend_state="no job to follow"))
                continue
            job = self._jobs.setdefault(handle.job_id, TrackedJob(handle.job_id, []))
            job.runs.append(TrackedRun(handle.key, run_dir, int(extra.get("slot", 0))))
            self._in_flight += 1
        for job in self._jobs.values():
            job.runs.sort(key=lambda run: run.slot)
        if self._jobs:
            outcomes += self._check_run_folders(every_job=True)
        if self._jobs:
            outcomes += self._refresh()
        return outcomes

    def shutdown(self, cancel: bool) -> list[Outcome]:
        """Stop following jobs; with ``cancel`` cancel them and report their runs interrupted.

        Without ``cancel`` the jobs keep running and still count as in
        flight, so the driver can say how many a resume will adopt.
        """
        self._stopped = True
        if not cancel or not self._jobs:
            return []
        targets = self.query_ids(self._jobs)
        # read before cancelling: a job script writes the code of the run the cancel kills, too
        ended = {run.run_dir: read_exit_code(run.run_dir) for job in self._jobs.values() for run in job.runs}
        argv = [self.cancel_tool, *targets]
        try:
            result = run_tool(argv)
        except ToolError as exc:
            logger.error("cancelling the jobs failed (%s); they keep running: %s", exc, " ".join(targets))
            return []
        if result.returncode != 0:
            logger.warning("%s", failure(result))
        outcomes = []
        for job in self._jobs.values():
            for run in job.runs:
                recorded = ended[run.run_dir]
                if recorded is not None:
                    outcomes.append(Outcome(run.key, recorded, backend_state="ended before it was cancelled"))
                else:
                    outcomes.append(Outcome(run.key, None, interrupted=True, backend_state="cancelled by hpsearch"))
        self._jobs.clear()
        self._in_flight = 0
        return outcomes

    def hold_argv(self, job_ids: Sequence[str], paused: bool) -> list[str]:
        """The command that holds (``paused``) or releases these pending jobs."""
        raise NotImplementedError

    def hold(self, paused: bool) -> str | None:
        """Pause: hold this search's jobs that still wait in the queue, so the
        scheduler starts none of them; running jobs go on. Unpause: release
        the held ones. Asks the scheduler which are pending (an array's tasks
        one by one: holding the array's id would reach its running tasks)."""
        if not self._jobs or self.options.generate_only:
            return None
        wanted = self.pending_states if paused else self.held_states
        try:
            states = self.query(list(self._jobs))
        except ToolError as exc:
            return f"could not ask the scheduler which jobs wait ({exc}); none {'held' if paused else 'released'}"
        ids = sorted((job_id for job_id, state in states.items()
                      if job_id in self._jobs and state.state.split(" ")[0] in wanted), key=id_order)
        if not ids:
            return "no job waits in the queue" if paused else None
        try:
            result = run_tool(self.hold_argv(ids, paused))
        except ToolError as exc:
            return f"{'holding' if paused else 'releasing'} the waiting jobs failed: {exc}"
        done = f"{'held' if paused else 'released'} {len(ids)} waiting job(s)"
        if result.returncode != 0:  # some may have started meanwhile; the others are held
            done = f"{done}; {failure(result)}"
        if paused:
            self.after_hold(ids)
        return done

    def after_hold(self, job_ids: Sequence[str]) -> None:
        """Undo what holding did to jobs that had started in the meantime."""

    # ---- helpers

    def task_id(self, array_id: str, index: int) -> str:
        return self.task_format.format(array=array_id, index=index)

    def array_id(self, job_id: str) -> str | None:
        """The array a task id such as ``123_4`` belongs to, None for a plain job."""
        marker = self.task_format.split("{index}")[0].replace("{array}", "")
        base, found, _ = job_id.partition(marker)
        return base if found else None

    def query_ids(self, job_ids: Iterable[str]) -> list[str]:
        """The ids to name in a query or cancel: an array's id covers all its tasks."""
        return sorted({self.array_id(job_id) or job_id for job_id in job_ids}, key=id_order)

    def max_array_size(self) -> int:
        if self._max_array is None:
            self._max_array = max(1, self.read_max_array_size())
        return self._max_array

    def _check_run_folders(self, every_job: bool = False) -> list[Outcome]:
        """Report the runs whose ``exit_code.txt`` appeared, without asking the scheduler.

        Looks at the next run of each running job, and of as many waiting
        jobs as may start meanwhile (``num_jobs``: arrays start their tasks
        in order), so a look costs a few ``stat`` calls, not one per run.
        """
        self._next_file_check = time.monotonic() + self._file_check
        outcomes: list[Outcome] = []
        waiting_looked_at = 0
        for job in list(self._jobs.values()):
            if not job.runs:
                continue
            if not job.running and not every_job:
                if waiting_looked_at >= self.options.num_jobs:
                    continue
                waiting_looked_at += 1
            while job.runs and read_exit_code(job.runs[0].run_dir) is not None:
                job.running = True
                outcomes.append(self._recorded_outcome(job.runs.pop(0), job, ""))
            if not job.runs:
                self._all_runs_reported(job)
        self._in_flight -= len(outcomes)
        return outcomes

    def _all_runs_reported(self, job: TrackedJob) -> None:
        """Array tasks are left alone from here; a job of per-job mode holds its place in the
        queue until the scheduler shows it gone, which should be soon."""
        if self.options.array:
            del self._jobs[job.job_id]
        else:
            self._watcher.soon()

    def _recorded_outcome(self, run: TrackedRun, job: TrackedJob, state: str) -> Outcome:
        """The outcome of a run that recorded its exit status (and maybe why it was cut off)."""
        cut = read_cut_off(run.run_dir)
        exit_code = read_exit_code(run.run_dir)
        label = state or f"exit code {exit_code}"  # what the run folder says; adds nothing to a reason
        if cut == "time limit" and run.slot == 0:  # the job's first run itself outlasted the job's limit
            return Outcome(run.key, exit_code, timed_out=True, backend_state=f"{label}; warned of the time limit")
        if cut:
            return Outcome(run.key, exit_code, cut_off=cut, backend_state=f"{label}; cut off ({cut})")
        return Outcome(run.key, exit_code, backend_state=label)

    def _refresh(self) -> list[Outcome]:
        jobs = list(self._jobs.values())
        try:
            states = self.query([job.job_id for job in jobs])
            ended = [job.job_id for job in jobs if job.job_id not in states or states[job.job_id].ending is not None]
            unrecorded = [job_id for job_id in ended
                          if any(read_exit_code(run.run_dir) is None for run in self._jobs[job_id].runs)]
            if unrecorded:
                states = {**states, **self._settled(states, self.details(unrecorded))}
        except ToolError as exc:
            self._watcher.failed(str(exc))
            return []
        self._watcher.succeeded()
        outcomes = []
        for job in jobs:
            state = states.get(job.job_id)
            if state is not None and state.ending is None:
                job.running = job.running or state.state.split()[0] in RUNNING_WORDS
                continue
            del self._jobs[job.job_id]
            outcomes += self._job_ended(job, state)
        self._in_flight -= len(outcomes)
        return outcomes

    @staticmethod
    def _settled(states: dict[str, JobState], details: dict[str, JobState]) -> dict[str, JobState]:
        """The details that count: accounting may lag behind the queue, so a job the queue
        showed ended stays ended."""
        return {job_id: state for job_id, state in details.items()
                if job_id not in states or state.ending is not None}

    def _job_ended(self, job: TrackedJob, state: JobState | None) -> list[Outcome]:
        """Outcomes of a job's runs not reported yet, now that it ended (``state``) or
        is unknown to the scheduler (None).

        The first of them was running when the job ended, unless the script
        skipped it; the others never started, and run again unless the job
        was cancelled (then they fail as not started, for ``--rerun_failed``).
        """
        outcomes = []
        label = state.state if state is not None else "left the queue"
        running_one_seen = False
        for run in job.runs:
            cut = read_cut_off(run.run_dir)
            if read_exit_code(run.run_dir) is not None:
                outcomes.append(self._recorded_outcome(run, job, label))
            elif cut.startswith("not started"):
                outcomes.append(Outcome(run.key, None, interrupted=True, backend_state=f"{cut} ({label})"))
            elif not running_one_seen:
                running_one_seen = True
                outcomes.append(self._cut_short(run, state, cut))
            elif state is None or state.ending in (Ending.TIMED_OUT, Ending.INTERRUPTED):
                outcomes.append(Outcome(run.key, None, interrupted=True, backend_state=f"not started ({label})"))
            else:
                outcomes.append(Outcome(run.key, None, backend_state=f"not started ({label})"))
        return outcomes

    @staticmethod
    def _cut_short(run: TrackedRun, state: JobState | None, cut: str) -> Outcome:
        """The run that was running when its job ended without its exit status."""
        outcome = outcome_for(run.key, run.run_dir, state)
        assert outcome is not None  # the job ended
        if outcome.timed_out and run.slot > 0:  # runs before it took the job's time
            return dataclasses.replace(outcome, timed_out=False, cut_off="time limit")
        if cut and not outcome.interrupted and run.slot > 0:
            return dataclasses.replace(outcome, cut_off=cut)
        return outcome

    def _submit_single(self, pack: Sequence[LaunchSpec]) -> list[JobHandle]:
        for spec in pack:
            clear_exit_code(spec.run_dir)
        script = pack[0].run_dir / JOB_SCRIPT
        _write_script(script, self.job_script(pack))
        name = pack_name(pack)
        submission = self.submission(script, name=name, array_size=0, depends_on=())
        if self.options.generate_only:
            self._generated.append((name, submission.shell_line()))
            return [self._handle(spec, "", "not submitted (--generate_only)", slot, len(pack))
                    for slot, spec in enumerate(pack)]
        intent = self._record_intent(name, [pack], array=False)
        job_id = self._run_submission(submission)
        self._confirm_intent(intent, job_id)
        self._track(job_id, pack)
        return [self._handle(spec, job_id, f"job {job_id}", slot, len(pack)) for slot, spec in enumerate(pack)]

    def _submit_array(self, packs: Sequence[Sequence[LaunchSpec]]) -> list[JobHandle]:
        for pack in packs:
            for spec in pack:
                clear_exit_code(spec.run_dir)
        script = self._next_array_script()
        name = job_name(f"{self.search_dir.name}_{script.stem}")
        (self.search_dir / ARRAY_LOG_DIR).mkdir(parents=True, exist_ok=True)
        _write_script(script, self.array_script(packs, name))
        if self.options.generate_only:
            submission = self.submission(script, name=name, array_size=len(packs), depends_on=())
            self._generated.append((name, submission.shell_line()))
            return [self._handle(spec, "", "not submitted (--generate_only)", slot, len(pack))
                    for pack in packs for slot, spec in enumerate(pack)]
        waiting_for = sorted({self.array_id(job_id) for job_id in self._jobs} - {None}, key=id_order)
        submission = self.submission(script, name=name, array_size=len(packs), depends_on=waiting_for)
        intent = self._record_intent(name, packs, array=True)
        array_id = self._run_submission(submission)
        self._confirm_intent(intent, array_id)
        handles = []
        for index, pack in enumerate(packs, self.first_index):
            task = self.task_id(array_id, index)
            self._track(task, pack)
            handles += [self._handle(spec, task, f"array {array_id} task {index}", slot, len(pack))
                        for slot, spec in enumerate(pack)]
        return handles

    def _record_intent(self, name: str, packs: Sequence[Sequence[LaunchSpec]], *, array: bool) -> Path:
        folder = self.search_dir / INTENT_DIR
        folder.mkdir(exist_ok=True)
        path = folder / f"{name}.json"
        tasks = [[{"key": spec.key, "run_dir": str(spec.run_dir), "slot": slot, "attempt": spec.attempt}
                  for slot, spec in enumerate(pack)] for pack in packs]
        write_text_atomic(path, json.dumps({"name": name, "array": array, "job_id": None, "tasks": tasks}))
        return path

    @staticmethod
    def _confirm_intent(path: Path, job_id: str) -> None:
        data = json.loads(path.read_text())
        write_text_atomic(path, json.dumps({**data, "job_id": job_id}))

    def _track(self, job_id: str, pack: Sequence[LaunchSpec]) -> None:
        self._jobs[job_id] = TrackedJob(job_id, [TrackedRun(spec.key, spec.run_dir, slot)
                                                 for slot, spec in enumerate(pack)])
        self._in_flight += len(pack)

    def _handle(self, spec: LaunchSpec, job_id: str, where: str, slot: int, runs: int) -> JobHandle:
        if runs == 1:
            return JobHandle(spec.key, self.name, job_id, where, {"run_dir": str(spec.run_dir)})
        return JobHandle(spec.key, self.name, job_id, f"{where}, run {slot + 1} of {runs}",
                         {"run_dir": str(spec.run_dir), "slot": slot})

    def _run_submission(self, submission: Submission) -> str:
        try:
            result = run_tool(submission.argv, stdin=submission.script if submission.script_on_stdin else None,
                              cwd=submission.script.parent)
        except ToolError as exc:
            raise SubmissionError(f"submitting {submission.script}: {exc}") from None
        if result.returncode != 0:
            raise SubmissionError(f"submitting {submission.script}: {failure(result)}")
        job_id = self.parse_job_id(result.stdout)
        if job_id is None:
            raise SubmissionError(
                f"submitting {submission.script}: no job id in the answer of {self.submit_tool}: "
                f"{tail(result.stdout) or 'no output'}"
            )
        return job_id

    def _next_array_script(self) -> Path:
        taken = {p.name for p in self.search_dir.glob("array_*.sh")}
        number = len(taken) + 1
        while f"array_{number:03d}.sh" in taken:
            number += 1
        return self.search_dir / f"array_{number:03d}.sh"

    def _write_submit_script(self) -> None:
        if not self._generated:
            return
        text = submit_script(self._generated, num_jobs=self.options.num_jobs, array=self.options.array,
                             queue_names_argv=self.queue_names_argv)
        _write_script(self.search_dir / SUBMIT_SCRIPT, text)


def _write_script(path: Path, text: str) -> None:
    write_text_atomic(path, text)
    path.chmod(0o755)


def id_order(job_id: str) -> tuple[int, str]:
    digits = re.match(r"\d+", job_id)
    return (int(digits.group()) if digits else -1, job_id)


def chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
