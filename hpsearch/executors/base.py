"""The small interface every executor implements, and the types it speaks.

The search driver only talks to :class:`Executor`; it never knows whether runs
are subprocesses on local GPUs, Slurm jobs or LSF jobs. An executor starts
runs, reports the ones that ended, and can re-attach to runs a previous driver
left behind (resume). Judging whether a run *succeeded* (exit code plus summary
file) is the driver's job, not the executor's.
"""

from __future__ import annotations

import abc
import os
import select
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Sequence

from hpsearch.errors import SubmissionError

EXIT_CODE_FILE = "exit_code.txt"
"""Where a cluster job script records its run's exit status, in the run folder."""

RUN_KEY_ENV = "HPSEARCH_RUN_KEY"
"""Environment variable holding the run's configuration key, in every run's
processes: it lets executors recognise a run's processes (and a fake
``nvidia-smi`` attribute memory to runs)."""


class RunStatus(str, Enum):
    """Life cycle of one configuration in the run store."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    INTERRUPTED = "interrupted"

    @property
    def is_final(self) -> bool:
        return self in (RunStatus.DONE, RunStatus.FAILED, RunStatus.TIMED_OUT)


@dataclass(frozen=True)
class LaunchSpec:
    """Everything needed to start one run; built by the driver.

    Attributes:
        key: The configuration's stable content key (also the store's id).
        name: Run folder name, e.g. ``sim_20260101120000_0007``; usable as a
            job name.
        argv: The complete argument list, ``[python, script, --k=v, ...]``.
            Executors must pass it on without a shell (or ``shlex.quote`` each
            element in generated job scripts).
        cwd: Working directory of the run (``--run_cwd``).
        run_dir: The run folder; exists before :meth:`Executor.submit`.
        env: Extra environment variables for the run.
        timeout: Wall-clock limit in seconds, or None.
    """

    key: str
    name: str
    argv: tuple[str, ...]
    cwd: Path
    run_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None

    @property
    def stdout_path(self) -> Path:
        return self.run_dir / "stdout.txt"

    @property
    def stderr_path(self) -> Path:
        return self.run_dir / "stderr.txt"

    @property
    def exit_code_path(self) -> Path:
        return self.run_dir / EXIT_CODE_FILE

    @property
    def run_env(self) -> dict[str, str]:
        """The variables every executor adds to the run's environment."""
        return {RUN_KEY_ENV: self.key, **self.env}


@dataclass(frozen=True)
class JobHandle:
    """Where a started run lives; stored so that a later driver can adopt it.

    Attributes:
        key: Configuration key.
        backend: Executor name (``local``, ``slurm``, ``lsf``).
        job_id: Backend id: a pid, a Slurm id (``123`` or ``123_4``), an LSF id
            (``123`` or ``123[4]``).
        where: Human-readable placement, e.g. ``gpu 2`` or ``cpu``.
        extra: Backend-specific facts needed to adopt the run later (for the
            local executor the process start time, to tell a reused pid apart).
    """

    key: str
    backend: str
    job_id: str
    where: str = ""
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """How a run ended, as far as the executor can tell.

    Attributes:
        key: Configuration key.
        exit_code: The run's exit status, None if unknown (e.g. killed by a
            signal, or the scheduler forgot the job).
        signal: Signal number that killed the run, if any.
        timed_out: The run hit its time limit.
        interrupted: The run was stopped because the driver is shutting down
            (or was cancelled); it should be re-run on resume.
        backend_state: Free-form final state to keep in the store, e.g.
            ``COMPLETED`` or ``TIMEOUT after 1:00:00``.
        leftovers_killed: Processes of the run other than its main one that
            the executor had to stop (left behind, or stopped with it).
    """

    key: str
    exit_code: int | None
    signal: int | None = None
    timed_out: bool = False
    interrupted: bool = False
    backend_state: str = ""
    leftovers_killed: int = 0


class Wakeup:
    """A self-pipe the driver sleeps on; anything may wake it.

    Executor threads call :meth:`set` when a run ends, and signal handlers may
    call it too (writing to a pipe is safe there), so the driver never needs a
    fixed sleep.
    """

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)

    def set(self) -> None:
        try:
            os.write(self._w, b"x")
        except BlockingIOError:  # pipe full: a wake-up is already pending
            pass

    def wait(self, timeout: float | None) -> bool:
        """Sleep until :meth:`set` was called or ``timeout`` seconds passed.

        Returns True if woken by :meth:`set`. Pending wake-ups are consumed.
        """
        if timeout is not None and timeout < 0:
            timeout = 0
        ready, _, _ = select.select([self._r], [], [], timeout)
        if not ready:
            return False
        try:
            while os.read(self._r, 4096):
                pass
        except BlockingIOError:
            pass
        return True

    def close(self) -> None:
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass


class Executor(abc.ABC):
    """Starts runs and reports when they end.

    The driver's loop is::

        executor.adopt(handles_from_previous_driver)
        while work remains:
            for outcome in executor.poll(): ...record it...
            for _ in range(executor.capacity()): executor.submit(next_spec)
            wakeup.wait(executor.next_event_in())
        executor.shutdown(cancel=...)

    Implementations call ``wakeup.set()`` whenever :meth:`poll` has something
    new to report, so the driver sleeps no longer than needed.
    """

    name: str = "base"

    def __init__(self, wakeup: Wakeup) -> None:
        self.wakeup = wakeup

    @abc.abstractmethod
    def capacity(self) -> int:
        """How many runs may be submitted right now.

        May query the hardware or scheduler once (e.g. one GPU poll per
        scheduling round); the following :meth:`submit` calls use that answer.
        """

    @abc.abstractmethod
    def submit(self, spec: LaunchSpec) -> JobHandle:
        """Start one run. Raises :class:`~hpsearch.errors.SubmissionError`."""

    def submit_many(self, specs: Sequence[LaunchSpec]) -> list[JobHandle | SubmissionError]:
        """Start several runs; cluster executors may batch them (job arrays).

        Returns one item per spec: its handle, or the error that kept it from
        starting (the other runs still start). An implementation that submits
        the batch as a whole may instead raise one SubmissionError for all.
        """
        results: list[JobHandle | SubmissionError] = []
        for spec in specs:
            try:
                results.append(self.submit(spec))
            except SubmissionError as exc:
                results.append(exc)
        return results

    @abc.abstractmethod
    def poll(self) -> list[Outcome]:
        """Return the runs that ended since the last call (each exactly once)."""

    @abc.abstractmethod
    def in_flight(self) -> int:
        """Number of submitted runs that have not been reported by :meth:`poll`."""

    @abc.abstractmethod
    def next_event_in(self) -> float | None:
        """Seconds until the executor wants :meth:`poll`/:meth:`capacity` called
        even if nothing woke the driver (a reservation expires, a timeout is
        due, a scheduler query is due); None if only a wake-up matters."""

    @abc.abstractmethod
    def adopt(self, handles: Sequence[JobHandle]) -> list[Outcome]:
        """Take over runs that a previous driver started.

        Runs still alive are tracked as if this executor had submitted them
        and are reported by later :meth:`poll` calls. For runs that can no
        longer be followed, an :class:`Outcome` is returned at once (for
        example ``interrupted=True`` for a local process that outlived its
        driver and was killed, so that it is run again).
        """

    @abc.abstractmethod
    def shutdown(self, cancel: bool) -> list[Outcome]:
        """Stop following runs.

        With ``cancel`` every run still in flight is terminated (its whole
        process tree, or ``scancel``/``bkill``) and reported as interrupted.
        Without it, cluster jobs keep running for a later driver to adopt.
        """

    def describe(self) -> str:
        """One line for the log, e.g. ``4 GPUs x 2 slots``."""
        return self.name

    @property
    def runs_outlive_driver(self) -> bool:
        """Whether runs left in flight keep going after the driver exits (cluster
        jobs do, for a later driver to adopt); when False, stopping the driver
        always stops its runs."""
        return self.name != "local"
