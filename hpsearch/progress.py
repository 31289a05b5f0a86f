"""The live progress line: done / running / failed / queued, ETA, best value."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, TextIO

from hpsearch.runs import RunStatus
from hpsearch.report import ranking_value


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@dataclass
class Progress:
    """Counts runs and prints one status line; rewrites it in place on a terminal.

    On a non-terminal (a log file, CI) it prints a new line at most every
    ``log_interval`` seconds, so logs stay readable.
    """

    performance_key: str | None
    ascending: bool
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    quiet: bool = False
    log_interval: float = 10.0
    counts: dict[RunStatus, int] = field(default_factory=dict)
    best: float | None = None
    best_run: str = ""
    _started: float = field(default_factory=time.monotonic)
    _finished_this_session: int = 0
    _last_print: float = -math.inf
    _last_line: str = ""

    def set_counts(self, counts: dict[RunStatus, int]) -> None:
        self.counts = dict(counts)

    def record_final(self, run_name: str, summary: dict[str, Any] | None, done: bool) -> None:
        self._finished_this_session += 1
        if done:
            self.consider(run_name, summary)

    def seed(self, finished: Iterable[tuple[str, dict[str, Any] | None]]) -> None:
        """Runs done before this session (a resume): they count for "best", not for the ETA."""
        for run_name, summary in finished:
            self.consider(run_name, summary)

    def consider(self, run_name: str, summary: dict[str, Any] | None) -> None:
        """Make a done run the best one if its performance beats the best so far."""
        if not summary or self.performance_key is None:
            return
        value = ranking_value(summary.get(self.performance_key))
        if value is None:
            return
        if self.best is None or (value < self.best if self.ascending else value > self.best):
            self.best, self.best_run = value, run_name

    def line(self) -> str:
        c = self.counts
        failed = c.get(RunStatus.FAILED, 0) + c.get(RunStatus.TIMED_OUT, 0)
        left = c.get(RunStatus.QUEUED, 0) + c.get(RunStatus.RUNNING, 0) + c.get(RunStatus.INTERRUPTED, 0)
        parts = [
            f"{c.get(RunStatus.DONE, 0)} done",
            f"{c.get(RunStatus.RUNNING, 0)} running",
            f"{failed} failed",
            f"{c.get(RunStatus.QUEUED, 0) + c.get(RunStatus.INTERRUPTED, 0)} queued",
        ]
        elapsed = time.monotonic() - self._started
        if self._finished_this_session and left:
            parts.append("ETA " + format_duration(elapsed / self._finished_this_session * left))
        if self.best is not None:
            parts.append(f"best {self.performance_key}={self.best:g} ({self.best_run})")
        return "[hpsearch] " + ", ".join(parts[:4]) + ("" if len(parts) == 4 else " | " + " | ".join(parts[4:]))

    def show(self, force: bool = False) -> None:
        if self.quiet:
            return
        line = self.line()
        now = time.monotonic()
        if self.stream.isatty():
            if line != self._last_line or force:
                self.stream.write("\r\x1b[2K" + line)
                self.stream.flush()
        elif force or (line != self._last_line and now - self._last_print >= self.log_interval):
            self.stream.write(line + "\n")
            self.stream.flush()
            self._last_print = now
        self._last_line = line

    def message(self, text: str) -> None:
        """An event line (a failed run, a warning) that must not be overwritten."""
        if self.quiet and not text.startswith("warning"):
            return
        prefix = "\r\x1b[2K" if self.stream.isatty() else ""
        self.stream.write(f"{prefix}[hpsearch] {text}\n")
        self.stream.flush()
        self._last_line = ""

    def close(self) -> None:
        """End the status line on a terminal (the caller has shown the final counts)."""
        if not self.quiet and self.stream.isatty():
            self.stream.write("\n")
            self.stream.flush()
