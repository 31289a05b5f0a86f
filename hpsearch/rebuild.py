"""Rebuilding a lost or damaged run store from the run folders.

The run folders are the ground truth, so a search whose ``hpsearch.db`` was
deleted or damaged loses nothing: every folder becomes a record again, with
the index, key and configuration of its ``hpsearch_run.json``. A run that
ended keeps its recorded status (nothing done runs again). A run without a
final result whose ``hpsearch_job.json`` names its job is marked running, so
the driver adopts it as after any ``kill -9`` (a cluster job still queued is
followed, not submitted again); one without was cut short before it started
and is marked interrupted, so the driver runs it again in the same folder.
Configurations without a folder are added back by
the driver as usual, after the restored ones, so no configuration ever gets a
second folder.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from hpsearch.errors import SummaryError
from hpsearch.runs import RunStatus
from hpsearch.runfolders import RunFolder, parse_run_name, read_run_folder, run_folders
from hpsearch.store import RunRecord, RunStore
from hpsearch.verdict import SummaryReader

NO_RESULT = "no result in its folder when the run store was rebuilt"
_ENDED = (RunStatus.DONE, RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.INTERRUPTED)


@dataclass(frozen=True)
class Rebuilt:
    """What a rebuild restored, for its one-line report."""

    counts: Counter
    skipped: int

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def describe(self) -> str:
        parts = [f"{n} {status.value}" for status, n in self.counts.most_common()]
        if self.skipped:
            parts.append(f"{self.skipped} folders skipped")
        return f"{self.total} run folders" + (f" ({', '.join(parts)})" if parts else "")


def rebuild_store(store: RunStore, search_dir: Path, reader: SummaryReader, stamp: str | None) -> Rebuilt:
    """Fill an empty store from the run folders of ``search_dir``.

    ``stamp`` is the search's start stamp as ``search.json`` has it; without
    it the stamp is taken from the run folders' names. Folders with an
    unreadable ``hpsearch_run.json``, and second folders of one key (left by
    older versions that re-ran a search whose store was lost), are skipped.
    """
    paths = run_folders(search_dir)
    folders = [run for run in map(read_run_folder, paths) if run is not None]
    chosen = _one_per_key(folders)
    records = _with_unique_indexes(record_of(run, search_dir, reader) for run in chosen)
    naming = _naming(chosen, stamp)
    taken = [int(name[1]) for name in map(parse_run_name, (path.name for path in paths))
             if name is not None and name[0] == naming.get("stamp")]
    naming["next_index"] = max(taken, default=0)  # folder number n is index n - 1: never reuse a folder
    store.restore(records, naming)
    return Rebuilt(Counter(record.status for record in records), len(paths) - len(chosen))


def _naming(chosen: list[RunFolder], stamp: str | None) -> dict[str, object]:
    """The store's ``stamp`` and ``name_width``, so new folders are named like the existing ones."""
    names = [name for name in (parse_run_name(run.path.name) for run in chosen) if name is not None]
    stamps = Counter(name[0] for name in names)
    stamp = stamp or (stamps.most_common(1)[0][0] if stamps else None)
    if stamp is None:
        return {}
    widths = [len(number) for folder_stamp, number in names if folder_stamp == stamp]
    # The narrowest is the width the search started with; wider numbers outgrew it.
    return {"stamp": stamp, **({"name_width": min(widths)} if widths else {})}


def record_of(run: RunFolder, search_dir: Path, reader: SummaryReader) -> RunRecord:
    """The store record a run folder stands for."""
    run_dir = str(run.path.relative_to(search_dir))
    result = run.result
    if result is None and run.job is not None:
        return _started(run, run_dir, run.job)
    if result is None:
        return RunRecord(run.key, run.index, run.config, run_dir, RunStatus.INTERRUPTED,
                         attempts=run.previous_attempts() + 1, reason=NO_RESULT)
    try:
        status = RunStatus(result["status"])
    except ValueError:
        status = RunStatus.INTERRUPTED
    if status not in _ENDED:
        status = RunStatus.INTERRUPTED
    attempt = result.get("attempt")
    return RunRecord(
        run.key, run.index, run.config, run_dir, status,
        attempts=attempt if isinstance(attempt, int) and attempt > 0 else run.previous_attempts() + 1,
        backend=_text(result.get("backend")), job_id=_text(result.get("job_id")),
        started=_number(result.get("started")), ended=_number(result.get("ended")),
        exit_code=_integer(result.get("exit_code")), signal=_integer(result.get("signal")),
        reason=_text(result.get("reason")), summary=_summary(run, reader),
        backend_state=_text(result.get("backend_state")),
    )


def _started(run: RunFolder, run_dir: str, job: dict) -> RunRecord:
    """A run started and not recorded as ended: running, for the driver to adopt
    (a local run's leftovers are stopped, a cluster job is followed or collected)."""
    attempt = job.get("attempt")
    extra = job.get("extra")
    return RunRecord(
        run.key, run.index, run.config, run_dir, RunStatus.RUNNING,
        attempts=attempt if isinstance(attempt, int) and attempt > 0 else run.previous_attempts() + 1,
        backend=job["backend"], job_id=str(job["job_id"]), where=_text(job.get("where")) or None,
        extra=extra if isinstance(extra, dict) else {}, started=_number(job.get("started")),
    )


def _one_per_key(folders: list[RunFolder]) -> list[RunFolder]:
    """One folder per key: the one that is done, else the one that ended, else the first."""
    def rank(run: RunFolder) -> tuple:
        status = (run.result or {}).get("status")
        return (status != RunStatus.DONE.value, run.result is None, run.index, run.path.name)

    best: dict[str, RunFolder] = {}
    for run in folders:
        if run.key not in best or rank(run) < rank(best[run.key]):
            best[run.key] = run
    return sorted(best.values(), key=lambda run: (run.index, run.path.name))


def _with_unique_indexes(records: Iterable[RunRecord]) -> list[RunRecord]:
    """Indexes are unique in the store; a clash (hand-copied folders) moves the later one to the end."""
    records = list(records)
    taken: set[int] = set()
    clashing = []
    for record in records:
        if record.index in taken or record.index < 0:
            clashing.append(record)
        else:
            taken.add(record.index)
    next_index = max(taken, default=-1) + 1
    for record in clashing:
        record.index, next_index = next_index, next_index + 1
    return records


def _summary(run: RunFolder, reader: SummaryReader) -> dict | None:
    try:
        return reader.read(run.path, run.index)
    except SummaryError:
        return None


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
