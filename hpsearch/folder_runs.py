"""Runs read from the run folders alone, without the store.

The run folders are the ground truth (read by :mod:`hpsearch.runfolders`), so
the postprocessor rebuilds the results table from them and
:func:`hpsearch.results.load_results` reads a search whose store is gone the
same way. Runs the search planned (in ``hpsearch.db`` or ``commands.sh``) but
whose folder is gone are reported as missing.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from hpsearch.command import received_config
from hpsearch.errors import HpsearchError, SummaryError
from hpsearch.runs import Outcome, RunStatus
from hpsearch.report import ReportRow
from hpsearch.runfolders import RunFolder, read_run_folder
from hpsearch.searchdir import COMMANDS_FILE, RUN_INFO_FILE, STORE_FILE
from hpsearch.store import RunRecord, RunStore
from hpsearch.verdict import SummaryReader, judge

UNFINISHED = "unfinished"
MISSING = "missing"


@dataclass
class FolderRun:
    """A run folder's row, and what its folder says about the latest attempt."""

    row: ReportRow
    index: int | None = None
    attempt: int = 0
    where: str | None = None
    started: float | None = None
    ended: float | None = None


def read_run(folder: Path, reader: SummaryReader, strip_quotes: bool = True) -> ReportRow | None:
    """The row of one run folder; None (with a warning) if its ``hpsearch_run.json`` is unreadable."""
    run = read_run_folder(folder)
    if run is None:
        _warn(f"{folder}: {RUN_INFO_FILE} is unreadable; folder skipped")
        return None
    return _row(run, folder, reader, strip_quotes)


def read_folder_run(folder: Path, reader: SummaryReader, strip_quotes: bool = True) -> FolderRun | None:
    """:func:`read_run` with the attempt, placement and times the folder records."""
    run = read_run_folder(folder)
    if run is None:
        _warn(f"{folder}: {RUN_INFO_FILE} is unreadable; folder skipped")
        return None
    result, job = run.result or {}, run.job or {}
    attempt = result.get("attempt", job.get("attempt"))
    if not isinstance(attempt, int) or isinstance(attempt, bool):
        attempt = run.previous_attempts() + 1  # a folder of an older hpsearch
    return FolderRun(
        row=_row(run, folder, reader, strip_quotes),
        index=run.index,
        attempt=attempt,
        where=job.get("where") if isinstance(job.get("where"), str) else None,
        started=_number(result.get("started", job.get("started"))),
        ended=_number(result.get("ended")),
    )


def _row(run: RunFolder, folder: Path, reader: SummaryReader, strip_quotes: bool) -> ReportRow:
    key, config, index = run.key, received_config(run.config, strip_quotes), run.index  # as the run received them
    if run.result is not None:
        summary, _ = _summary(folder, index, reader)
        return ReportRow(key, config, str(run.result["status"]), run.result.get("reason"), str(folder), summary)
    if run.exit_code is not None:
        verdict = judge(Outcome(key, run.exit_code), folder, index, reader)
        return ReportRow(key, config, verdict.status.value, verdict.reason, str(folder), verdict.summary)
    summary, problem = _summary(folder, index, reader)
    complete = problem is None or reader.metrics is None  # a summary saying "finished 1" counts as before
    if summary is not None and complete and reader.finished(summary):
        return ReportRow(key, config, RunStatus.DONE.value, None, str(folder), summary)
    problem = problem or f"not finished (finished {(summary or {}).get('finished')})"
    return ReportRow(key, config, UNFINISHED, f"running or interrupted: {problem}", str(folder), summary)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _summary(folder: Path, index: int, reader: SummaryReader) -> tuple[dict | None, str | None]:
    try:
        return reader.read(folder, index), None
    except SummaryError as exc:
        return getattr(exc, "partial", None), str(exc)


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def missing_runs(out_dir: Path, present: set[str], out_arg: str, strip_quotes: bool = True) -> list[ReportRow]:
    """Runs the search planned whose folder (by name) is not in ``present``.

    The store knows every configuration with its key; without it (deleted, or
    unreadable) ``commands.sh`` still names every run folder.
    """
    records = _stored_records(out_dir)
    if records is None:
        return list(_missing_from_commands(out_dir, present, out_arg))
    rows = []
    for record in records:
        if record.run_dir in present:
            continue
        reason = "not started" if record.status == RunStatus.QUEUED else f"run folder gone (store: {record.status.value})"
        rows.append(ReportRow(record.key, received_config(record.config, strip_quotes), MISSING, reason, str(out_dir / record.run_dir), None))
    return rows


def _stored_records(out_dir: Path) -> list[RunRecord] | None:
    """Every record of the store; None if there is no readable store."""
    if not (out_dir / STORE_FILE).is_file():
        return None
    try:
        with RunStore.open(out_dir, readonly=True) as store:
            return store.records()
    except HpsearchError as exc:
        _warn(f"{exc}; missing runs are taken from {COMMANDS_FILE}")
        return None


def _missing_from_commands(out_dir: Path, present: set[str], out_arg: str) -> Iterator[ReportRow]:
    try:
        lines = (out_dir / COMMANDS_FILE).read_text(encoding="utf-8").splitlines()
    except OSError:
        return
    flag = f"--{out_arg}="
    for line in lines:
        try:
            argv = shlex.split(line, comments=True)
        except ValueError:
            continue
        run_dir = next((arg[len(flag):] for arg in reversed(argv) if arg.startswith(flag)), None)
        if run_dir is None or Path(run_dir).name in present:
            continue
        yield ReportRow("", config_from_argv(argv[2:], flag), MISSING, "not started (listed in commands.sh)",
                        run_dir, None)


def config_from_argv(flags: list[str], out_flag: str) -> dict[str, Any]:
    """hypnettorch's flag rendering read backwards: ``--k=v`` -> ``'v'``, a bare ``--k`` -> True."""
    config: dict[str, Any] = {}
    for flag in flags:
        if not flag.startswith("--") or flag.startswith(out_flag):
            continue
        name, equals, value = flag[2:].partition("=")
        config[name] = value if equals else True
    return config
