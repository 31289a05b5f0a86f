"""Decide whether an ended run succeeded.

An executor only knows how a process or job ended; whether the *run* is done
also needs its summary file. A run is done when it exited 0 and its summary
says ``finished 1``; everything else is a failure with a reason a user can act
on. The same rule serves every executor, so it lives here, not in them.
"""

from __future__ import annotations

import signal as signal_module
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from hpsearch.errors import SummaryError
from hpsearch.runs import Outcome, RunStatus
from hpsearch.summary import finished_flag, load_custom_summary, parse_summary


@dataclass(frozen=True)
class Verdict:
    status: RunStatus
    reason: str | None
    summary: dict[str, Any] | None


@dataclass(frozen=True)
class SummaryReader:
    """How to read a run folder's summary: the built-in parser or the module's handle."""

    filename: str
    keywords: Sequence[str]
    custom: Callable | None = None

    def read(self, run_dir: Path, index: int) -> dict[str, Any]:
        if self.custom is not None:
            return load_custom_summary(self.custom, run_dir, index)
        return parse_summary(run_dir / self.filename, self.keywords)


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
    if outcome.timed_out:
        return Verdict(RunStatus.TIMED_OUT, _with_state("timed out", outcome), summary)
    if outcome.exit_code is None and outcome.signal is not None:
        reason = f"killed by signal {outcome.signal} ({signal_name(outcome.signal)})"
        return Verdict(RunStatus.FAILED, _with_state(reason, outcome), summary)
    if outcome.exit_code is None:
        return Verdict(RunStatus.FAILED, _with_state("exit status unknown", outcome), summary)
    if outcome.exit_code != 0:
        return Verdict(RunStatus.FAILED, _with_state(f"exit code {outcome.exit_code}", outcome), summary)
    if summary_problem is not None:
        return Verdict(RunStatus.FAILED, summary_problem, summary)
    if not finished_flag(summary or {}):
        return Verdict(RunStatus.FAILED, f"not finished (finished {(summary or {}).get('finished')})", summary)
    return Verdict(RunStatus.DONE, None, summary)


def _try_summary(run_dir: Path, index: int, reader: SummaryReader) -> tuple[dict | None, str | None]:
    try:
        return reader.read(run_dir, index), None
    except SummaryError as exc:
        return None, str(exc)


def _with_state(reason: str, outcome: Outcome) -> str:
    """Append the scheduler's own words (e.g. ``TIMEOUT after 1:00:00``) when they add something."""
    state = outcome.backend_state.strip()
    return f"{reason} ({state})" if state and state.lower() not in reason.lower() else reason
