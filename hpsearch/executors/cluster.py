"""What the Slurm and LSF executors share: following jobs and their life cycle.

Both follow their jobs the same way: one batched status query per poll
for every unfinished job, spaced out by a :class:`StatusWatcher` that backs off
while the scheduler does not answer and gives up (``SchedulerQueryError``)
only after it has failed for a long time. :class:`ClusterExecutor` holds that
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
import enum
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
    q,
    submit_script,
)
from hpsearch.runs import EXIT_CODE_FILE, JobHandle, LaunchSpec, Outcome, read_exit_code

logger = logging.getLogger(__name__)

# Without an answer from the scheduler for this long, the search stops.
GIVE_UP_AFTER = 30 * 60.0
TOOL_TIMEOUT = 120.0


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

    A successful query schedules the next one ``interval`` later. Each failed
    one doubles the wait (up to ``max_interval``) and logs a warning; a query
    failure never changes any job's state. Only when queries have failed
    without pause for ``give_up_after`` seconds (and at least ``min_failures``
    times) does :meth:`failed` raise, so a long scheduler outage ends the
    search instead of freezing it.
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
        self._next = clock() + interval

    def due(self) -> bool:
        return self.clock() >= self._next

    def next_in(self) -> float:
        return max(0.0, self._next - self.clock())

    def succeeded(self) -> None:
        if self.failures:
            logger.warning("job states readable again after %d failed queries", self.failures)
        self.failures = 0
        self._first_failure = None
        self.delay = self.interval
        self._next = self.clock() + self.interval

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
class TrackedJob:
    key: str
    job_id: str
    run_dir: Path | None  # None for an adopted handle that did not keep its run folder


class ClusterExecutor(Executor):
    """Submits runs as scheduler jobs (one per run, or arrays) and follows them.

    Per-job mode keeps at most ``num_jobs`` of this search's jobs in the
    queue. Array mode hands everything to the scheduler at once, in arrays of
    at most the scheduler's maximum size whose ``%num_jobs`` caps how many run
    at once; a new array waits (a scheduler dependency) for this search's
    arrays still in the queue, so the cap holds across arrays too.

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
        max_poll_interval: float = 30.0,
        give_up_after: float = GIVE_UP_AFTER,
    ) -> None:
        super().__init__(wakeup)
        self.options = options
        self.search_dir = Path(search_dir)
        self._watcher = StatusWatcher(poll_interval, max_poll_interval, give_up_after=give_up_after)
        self._jobs: dict[str, TrackedJob] = {}
        self._generated: list[tuple[str, str]] = []  # (job name, submission line) for submit.sh
        self._max_array: int | None = None
        self._stopped = False

    # ---- what subclasses provide

    @abc.abstractmethod
    def job_script(self, spec: LaunchSpec) -> str:
        """The text of one run's job script."""

    @abc.abstractmethod
    def array_script(self, specs: Sequence[LaunchSpec], name: str) -> str:
        """The text of an array script whose task ``first_index + i`` runs ``specs[i]``."""

    @abc.abstractmethod
    def submission(self, script: Path, *, name: str, array_size: int, depends_on: Sequence[str]) -> Submission:
        """How to submit ``script``; ``array_size`` 0 means a single job."""

    @abc.abstractmethod
    def parse_job_id(self, stdout: str) -> str | None:
        """The job id in the submission command's answer."""

    @abc.abstractmethod
    def query(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        """States of the given jobs; jobs the scheduler no longer knows are left out.

        Raises:
            ToolError: The scheduler could not be asked; nothing can be concluded.
        """

    @abc.abstractmethod
    def read_max_array_size(self) -> int:
        """The largest array the scheduler accepts."""

    # ---- Executor interface

    def capacity(self) -> int:
        if self.options.generate_only or self.options.array:  # arrays carry their own %num_jobs cap
            return UNLIMITED_CAPACITY
        return max(0, self.options.num_jobs - len(self._jobs))

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

    def attempt_files(self) -> tuple[str, ...]:
        return (EXIT_CODE_FILE,)

    def generated(self, count: int) -> str:
        return (f"wrote job scripts for {count} runs and {self.search_dir / SUBMIT_SCRIPT} (it keeps at most "
                f"--num_jobs of them in the queue); nothing was submitted")

    def in_flight(self) -> int:
        return len(self._jobs)

    def next_event_in(self) -> float | None:
        if not self._jobs or self._stopped:
            return None
        return self._watcher.next_in()

    def describe(self) -> str:
        if self.options.generate_only:
            return f"{self.name}: write job scripts and {SUBMIT_SCRIPT} only"
        if self.options.array:
            return f"{self.name} job arrays, at most {self.options.num_jobs} runs at once"
        return f"{self.name} jobs, at most {self.options.num_jobs} in the queue"

    def submit(self, spec: LaunchSpec) -> JobHandle:
        result = self.submit_many([spec])[0]
        if isinstance(result, SubmissionError):
            raise result
        return result

    def submit_many(self, specs: Sequence[LaunchSpec]) -> list[JobHandle | SubmissionError]:  # type: ignore[override]
        """Submit runs; a refused submission is returned in place of its handles.

        Per-job mode submits one job per run; array mode one array per chunk
        of at most the scheduler's maximum array size.
        """
        results: list[JobHandle | SubmissionError] = []
        if self.options.array and specs:
            for chunk in chunks(specs, self.max_array_size()):
                try:
                    results += self._submit_array(chunk)
                except SubmissionError as exc:
                    results += [exc] * len(chunk)
        else:
            for spec in specs:
                try:
                    results.append(self._submit_single(spec))
                except SubmissionError as exc:
                    results.append(exc)
        self._write_submit_script()
        return results

    def poll(self) -> list[Outcome]:
        if not self._jobs or self._stopped or not self._watcher.due():
            return []
        return self._refresh()

    def adopt(self, handles: Sequence[JobHandle]) -> list[Outcome]:
        """Follow the jobs of an earlier driver by their ids; never submit them again.

        A handle without job id (a ``--generate_only`` script) cannot be
        followed: its recorded exit status is its outcome, and without one it
        is reported interrupted. The run folder comes from ``handle.extra``.
        """
        outcomes = []
        for handle in handles:
            run_dir = Path(handle.extra["run_dir"]) if (handle.extra or {}).get("run_dir") else None
            if not handle.job_id:
                recorded = read_exit_code(run_dir)
                if recorded is not None:
                    outcomes.append(Outcome(handle.key, recorded, backend_state="submitted by hand"))
                else:
                    outcomes.append(Outcome(handle.key, None, interrupted=True, backend_state="no job to follow"))
                continue
            self._jobs[handle.job_id] = TrackedJob(handle.key, handle.job_id, run_dir)
        if self._jobs:
            outcomes += self._refresh()
        return outcomes

    def shutdown(self, cancel: bool) -> list[Outcome]:
        """Stop following jobs; with ``cancel`` cancel them and report them interrupted.

        Without ``cancel`` the jobs keep running and still count as in
        flight, so the driver can say how many a resume will adopt.
        """
        self._stopped = True
        if not cancel or not self._jobs:
            return []
        targets = self.query_ids(self._jobs)
        # read before cancelling: a job script writes the code of the run the cancel kills, too
        ended = {job_id: read_exit_code(job.run_dir) for job_id, job in self._jobs.items()}
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
            recorded = ended[job.job_id]
            if recorded is not None:
                outcomes.append(Outcome(job.key, recorded, backend_state="ended before it was cancelled"))
            else:
                outcomes.append(Outcome(job.key, None, interrupted=True, backend_state="cancelled by hpsearch"))
        self._jobs.clear()
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

    def _refresh(self) -> list[Outcome]:
        jobs = list(self._jobs.values())
        try:
            states = self.query([job.job_id for job in jobs])
        except ToolError as exc:
            self._watcher.failed(str(exc))
            return []
        self._watcher.succeeded()
        outcomes = []
        for job in jobs:
            outcome = outcome_for(job.key, job.run_dir, states.get(job.job_id))
            if outcome is not None:
                del self._jobs[job.job_id]
                outcomes.append(outcome)
        return outcomes

    def _submit_single(self, spec: LaunchSpec) -> JobHandle:
        clear_exit_code(spec.run_dir)
        script = spec.run_dir / JOB_SCRIPT
        _write_script(script, self.job_script(spec))
        submission = self.submission(script, name=job_name(spec.name), array_size=0, depends_on=())
        if self.options.generate_only:
            self._generated.append((job_name(spec.name), submission.shell_line()))
            return self._handle(spec, "", "not submitted (--generate_only)")
        job_id = self._run_submission(submission)
        self._jobs[job_id] = TrackedJob(spec.key, job_id, spec.run_dir)
        return self._handle(spec, job_id, f"job {job_id}")

    def _submit_array(self, specs: Sequence[LaunchSpec]) -> list[JobHandle]:
        for spec in specs:
            clear_exit_code(spec.run_dir)
        script = self._next_array_script()
        name = job_name(f"{self.search_dir.name}_{script.stem}")
        (self.search_dir / ARRAY_LOG_DIR).mkdir(parents=True, exist_ok=True)
        _write_script(script, self.array_script(specs, name))
        if self.options.generate_only:
            submission = self.submission(script, name=name, array_size=len(specs), depends_on=())
            self._generated.append((name, submission.shell_line()))
            return [self._handle(spec, "", "not submitted (--generate_only)") for spec in specs]
        waiting_for = sorted({self.array_id(job_id) for job_id in self._jobs} - {None}, key=id_order)
        submission = self.submission(script, name=name, array_size=len(specs), depends_on=waiting_for)
        array_id = self._run_submission(submission)
        handles = []
        for index, spec in enumerate(specs, self.first_index):
            task = self.task_id(array_id, index)
            self._jobs[task] = TrackedJob(spec.key, task, spec.run_dir)
            handles.append(self._handle(spec, task, f"array {array_id} task {index}"))
        return handles

    def _handle(self, spec: LaunchSpec, job_id: str, where: str) -> JobHandle:
        return JobHandle(spec.key, self.name, job_id, where, {"run_dir": str(spec.run_dir)})

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
