"""The small interface every executor implements.

The search driver only talks to :class:`Executor`; it never knows whether runs
are subprocesses on local GPUs, Slurm jobs or LSF jobs. The words it speaks
(:class:`~hpsearch.runs.LaunchSpec`, :class:`~hpsearch.runs.JobHandle`,
:class:`~hpsearch.runs.Outcome`) live in :mod:`hpsearch.runs`. An executor starts
runs, reports the ones that ended, and can re-attach to runs a previous driver
left behind (resume). Judging whether a run *succeeded* (exit code plus summary
file) is the driver's job, not the executor's.
"""

from __future__ import annotations

import abc
import os
import select
from pathlib import Path
from typing import Sequence

from hpsearch.errors import SubmissionError
from hpsearch.runs import JobHandle, LaunchSpec, Outcome

UNLIMITED_CAPACITY = 1_000_000
"""What :meth:`Executor.capacity` answers when it takes every queued run at
once: the scheduler enforces the cap itself (job arrays), or nothing is
submitted at all (``--generate_only``)."""


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
    new to report, so the driver sleeps no longer than needed. Everything else
    the driver needs to know about an executor it asks through this class
    (:attr:`runs_outlive_driver`, :meth:`kill_now`, :meth:`can_adopt`,
    :meth:`harvest`, :meth:`attempt_files`, :meth:`generated`), never by its
    name or type. tests/test_executor_contract.py holds every implementation to
    these promises.
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

    # ---- what the driver may ask besides running runs (defaults fit most executors)

    @property
    def runs_outlive_driver(self) -> bool:
        """Whether runs left in flight keep going after the driver exits (cluster
        jobs do, for a later driver to adopt); when False, stopping the driver
        always stops its runs."""
        return False

    def kill_now(self) -> None:
        """Kill every run in flight at once, without waiting (a second Ctrl-C).

        Called from a signal handler just before the driver exits: it must not
        block or take locks. Runs that outlive the driver are left alone.
        """

    def hold(self, paused: bool) -> str | None:
        """The search was paused (or unpaused) while runs may wait in a
        scheduler's queue: keep them from starting (or let them start again);
        running ones go on. Returns what was done, for the log. Local runs
        wait for slots the driver no longer takes: nothing to do here."""
        return None

    def can_adopt(self, handle: JobHandle) -> bool:
        """Whether ``handle`` (from an earlier driver) is one this executor can follow."""
        return handle.backend == self.name

    def harvest(self, key: str, run_dir: Path) -> tuple[JobHandle, Outcome | None] | None:
        """A queued run that ran without this driver (its job script submitted by
        hand after ``--generate_only``, or started by a driver that died before
        recording it): its handle for the store and its outcome, or None as the
        outcome if it still runs and this executor now follows it. None if it
        did not run, which is all that most executors know."""
        return None

    def reclaim(self, queued: dict[str, int]) -> list[JobHandle]:
        """Runs the store has as queued (``{key: attempts so far}``) that an earlier driver
        did submit but was killed before it could record: their handles, for the store and
        :meth:`adopt`, so that they are never submitted twice. None by default."""
        return []

    def attempt_files(self) -> tuple[str, ...]:
        """Names of the files this executor leaves in a run folder for one attempt;
        the driver sets them aside before the run starts again."""
        return ()

    def generated(self, count: int) -> str:
        """What ``--generate_only`` left behind for ``count`` runs, for the user."""
        return f"prepared {count} runs; nothing was started"
