"""Decide whether an ended run succeeded.

An executor only knows how a process or job ended; whether the *run* is done
also needs its summary file. A run is done when it exited 0 and its summary
says ``finished 1`` (with a grid module's ``_METRICS``: when every configured
metric was found; see :mod:`hpsearch.metrics`), also when its time limit struck while it was exiting, or
while processes it left behind were stopped); everything else is a failure
with a reason a user can act on: it names the run's ``stderr.txt`` and quotes
its last non-empty line. The same rule serves every executor, so it lives
here, not in them.
"""

from __future__ import annotations

import signal as signal_module
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from hpsearch.errors import SummaryError
from hpsearch.metrics import MetricsSource
from hpsearch.runs import STDERR_FILE, Outcome, RunStatus, last_lines
from hpsearch.summary import IncompleteSummary, finished_flag, load_custom_summary, parse_summary

QUOTE_LIMIT = 200
"""Characters of a stderr line quoted in a reason (one CSV cell, one log line)."""


@dataclass(frozen=True)
class Verdict:
    status: RunStatus
    reason: str | None
    summary: dict[str, Any] | None


@dataclass(frozen=True)
class SummaryReader:
    """How to read a run folder's summary: the built-in parser, the module's handle, or ``_METRICS``."""

    filename: str
    keywords: Sequence[str]
    custom: Callable | None = None
    metrics: MetricsSource | None = None

    def read(self, run_dir: Path, index: int) -> dict[str, Any]:
        if self.metrics is not None:
            return self.metrics.read(run_dir)
        if self.custom is not None:
            return load_custom_summary(self.custom, run_dir, index)
        return parse_summary(run_dir / self.filename, self.keywords)

    def finished(self, summary: dict[str, Any] | None) -> bool:
        """Whether a summary that was read says the run completed: ``finished 1``, or, for
        ``_METRICS``, having been read at all (every metric was found)."""
        if self.metrics is not None:
            return summary is not None
        return finished_flag(summary or {})


def signal_name(number: int) -> str:
    try:
        return signal_module.Signals(number).name
    except ValueError:
        return f"signal {number}"


def judge(outcome: Outcome, run_dir: Path, index: int, reader: SummaryReader) -> Verdict:
    """Combine the executor's outcome with the summary file into a verdict."""
    if outcome.interrupted:
        return Verdict(RunStatus.INTERRUPTED, _with_state("interrupted", outcome), None)
    summary, summary_problem = _try_summary(run_dir, index, reader)
    status, reason = _failure(outcome, summary, summary_problem, reader)
    if outcome.cut_off and status is not RunStatus.DONE:  # not the configuration's fault
        return Verdict(RunStatus.INTERRUPTED, f"cut off: {outcome.cut_off}", summary)
    if status is RunStatus.DONE:
        return Verdict(status, None, summary)
    return Verdict(status, _with_stderr(reason, run_dir), summary)


def _failure(outcome: Outcome, summary: dict | None, summary_problem: str | None,
             reader: SummaryReader) -> tuple[RunStatus, str]:
    """The status and the reason before the stderr quote (DONE and "" for a success)."""
    if outcome.exit_code == 0 and summary_problem is None and reader.finished(summary):
        # Finished, even if the time limit struck as it exited or while a process it left was stopped.
        return RunStatus.DONE, ""
    if outcome.timed_out:
        return RunStatus.TIMED_OUT, _with_state("timed out", outcome)
    if outcome.exit_code is None and outcome.signal is not None:
        reason = f"killed by signal {outcome.signal} ({signal_name(outcome.signal)})"
        return RunStatus.FAILED, _with_state(reason, outcome)
    if outcome.exit_code is None:
        return RunStatus.FAILED, _with_state("exit status unknown", outcome)
    if outcome.exit_code != 0:
        return RunStatus.FAILED, _with_state(f"exit code {outcome.exit_code}", outcome)
    if summary_problem is not None:
        return RunStatus.FAILED, summary_problem
    if not reader.finished(summary):
        return RunStatus.FAILED, f"not finished (finished {(summary or {}).get('finished')})"
    return RunStatus.DONE, ""


def _try_summary(run_dir: Path, index: int, reader: SummaryReader) -> tuple[dict | None, str | None]:
    """The summary and None, or what could be read of it and the problem."""
    try:
        return reader.read(run_dir, index), None
    except IncompleteSummary as exc:
        return exc.partial, str(exc)
    except SummaryError as exc:
        return None, str(exc)


def _with_state(reason: str, outcome: Outcome) -> str:
    """Append the scheduler's own words (e.g. ``TIMEOUT after 1:00:00``) when they add
    something; a state that only repeats the reason (``pid 12 exit code 1``) is left out."""
    state = outcome.backend_state.strip()
    if not state or state.lower() in reason.lower() or state.lower().endswith(reason.lower()):
        return reason
    return f"{reason} ({state})"


def _with_stderr(reason: str, run_dir: Path) -> str:
    """Name the run's ``stderr.txt`` and quote its last non-empty line, where the
    user will look first (a typo in the training script shows up right here)."""
    lines = last_lines(run_dir / STDERR_FILE, 1)
    if lines is None:
        return reason
    where = f"{run_dir.name}/{STDERR_FILE}"
    if not lines:
        return f"{reason}; {where} is empty"
    line = lines[0] if len(lines[0]) <= QUOTE_LIMIT else lines[0][: QUOTE_LIMIT - 3] + "..."
    return f"{reason}; {where}: {line!r}"
