"""An in-process executor for testing the driver's rules without any process.

A run "runs" for a number of :meth:`FakeExecutor.poll` calls and then ends
the way its :class:`Script` says, writing its stderr and summary into the
run folder first, as a training script would. ``behave(spec, attempt)``
chooses each run's script, so a test can say "this configuration crashes on
its first attempt". Everything the driver asked is kept in ``events``.
"""

from __future__ import annotations

import signal as signal_module
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from hpsearch.errors import SubmissionError
from hpsearch.executors.base import Executor, Wakeup
from hpsearch.runs import JobHandle, LaunchSpec, Outcome

SUMMARY = "performance_overview.txt"


@dataclass(frozen=True)
class Script:
    """How one fake run ends.

    Attributes:
        exit_code: Its exit status (None with ``signal``: killed).
        signal: The signal that killed it.
        summary: Text of its summary file; None writes none.
        stderr: Text appended to its ``stderr.txt``.
        polls: Polls until it ends; None runs until cancelled.
        refuse: Refuse the submission with this message.
        raise_signal: Signal the driver (``signal.raise_signal``) when submitted.
    """

    exit_code: int | None = 0
    signal: int | None = None
    summary: str | None = "acc 0.5\nfinished 1\n"
    stderr: str = ""
    polls: int | None = 1
    refuse: str = ""
    raise_signal: int | None = None


OK = Script()
CRASH = Script(exit_code=1, summary=None, stderr="Traceback (most recent call last):\nNameError: name 'lr' is not defined\n")
HANG = Script(polls=None)


def mode_of(spec: LaunchSpec) -> str:
    """The ``--mode=`` value of a run's argv ('ok' without one)."""
    return next((arg.split("=", 1)[1] for arg in spec.argv if arg.startswith("--mode=")), "ok")


def by_mode(scripts: dict[str, Script]) -> Callable[[LaunchSpec, int], Script]:
    """``behave`` that picks the script by the run's ``--mode`` value."""
    return lambda spec, attempt: scripts.get(mode_of(spec), OK)


class FakeExecutor(Executor):
    """Runs that exist only in memory (see the module docstring).

    Args:
        wakeup: The driver's wakeup (set when a run is submitted, so the loop polls again).
        behave: ``(spec, attempt) -> Script``; attempt counts from 1 per key.
        slots: Runs in flight at once.
        outlive: Whether runs outlive the driver (like cluster jobs).
    """

    name = "fake"

    def __init__(self, wakeup: Wakeup, behave: Callable[[LaunchSpec, int], Script] = lambda spec, attempt: OK,
                 *, slots: int = 2, outlive: bool = False) -> None:
        super().__init__(wakeup)
        self.behave = behave
        self.slots = slots
        self.outlive = outlive
        self.events: list[tuple] = []
        self.attempts: dict[str, int] = {}
        self.most_in_flight = 0
        self._running: dict[str, list] = {}  # key -> [spec or None, script, polls left]
        self._ids = 0

    # ---- what the tests read

    def submitted(self) -> list[str]:
        """Run folder names in the order they were submitted (a name per attempt)."""
        return [event[1] for event in self.events if event[0] == "submit"]

    # ---- Executor

    def capacity(self) -> int:
        return max(0, self.slots - len(self._running))

    def submit(self, spec: LaunchSpec) -> JobHandle:
        if len(self._running) >= self.slots:
            raise AssertionError("the driver submitted beyond capacity()")
        attempt = self.attempts.get(spec.key, 0) + 1
        self.attempts[spec.key] = attempt
        script = self.behave(spec, attempt)
        self.events.append(("submit", spec.name))
        if script.refuse:
            raise SubmissionError(f"{spec.name}: {script.refuse}")
        if script.stderr:
            with open(spec.stderr_path, "a") as handle:
                handle.write(script.stderr)
        self._ids += 1
        self._running[spec.key] = [spec, script, script.polls]
        self.most_in_flight = max(self.most_in_flight, len(self._running))
        self.wakeup.set()
        if script.raise_signal is not None:
            signal_module.raise_signal(script.raise_signal)
        return JobHandle(spec.key, self.name, f"fake-{self._ids}", "memory", {"run_dir": str(spec.run_dir)})

    def poll(self) -> list[Outcome]:
        ended = []
        for key, entry in list(self._running.items()):
            if entry[2] is None:
                continue
            entry[2] -= 1
            if entry[2] <= 0:
                del self._running[key]
                ended.append(self._end(key, entry[0], entry[1]))
        return ended

    def _end(self, key: str, spec: LaunchSpec | None, script: Script) -> Outcome:
        if spec is not None and script.summary is not None:
            (spec.run_dir / SUMMARY).write_text(script.summary)
        self.events.append(("end", spec.name if spec else key))
        return Outcome(key, script.exit_code, signal=script.signal)

    def in_flight(self) -> int:
        return len(self._running)

    def next_event_in(self) -> float | None:
        return 0.0 if any(entry[2] is not None for entry in self._running.values()) else None

    def adopt(self, handles: Sequence[JobHandle]) -> list[Outcome]:
        for handle in handles:
            self.events.append(("adopt", handle.key))
            run_dir = Path(handle.extra["run_dir"]) if handle.extra.get("run_dir") else None
            spec = None if run_dir is None else LaunchSpec(handle.key, run_dir.name, (), run_dir, run_dir)
            self._running[handle.key] = [spec, OK, 1]
        return []

    def shutdown(self, cancel: bool) -> list[Outcome]:
        self.events.append(("shutdown", cancel))
        if self.outlive and not cancel:
            return []
        outcomes = [Outcome(key, None, interrupted=True, backend_state="stopped") for key in self._running]
        self._running.clear()
        return outcomes

    def kill_now(self) -> None:
        self.events.append(("kill_now",))

    @property
    def runs_outlive_driver(self) -> bool:
        return self.outlive
