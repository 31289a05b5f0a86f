"""The search folder: where it is, and the files in it besides the store.

The run folders are the ground truth the postprocessor rebuilds the report
from, so everything about a run that matters (its configuration, its argv,
how it ended) is written into its folder, atomically.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Sequence

from hpsearch.atomic import write_json_atomic, write_text_atomic
from hpsearch.command import shell_line
from hpsearch.errors import UsageError
from hpsearch.store import STORE_FILE

SETTINGS_FILE = "search.json"
COMMANDS_FILE = "commands.sh"
RESULTS_FILE = "search_results.csv"
RUN_INFO_FILE = "hpsearch_run.json"
RUN_RESULT_FILE = "hpsearch_result.json"
RUN_JOB_FILE = "hpsearch_job.json"


@dataclass(frozen=True)
class SearchFolder:
    path: Path
    resuming: bool

    @property
    def results_path(self) -> Path:
        return self.path / RESULTS_FILE


def resolve_search_folder(
    out_dir: str, *, force_out_dir: bool, dont_force_new_dir: bool, resume: str, now: datetime
) -> SearchFolder:
    """Apply hypnettorch's folder flags, plus ``--resume DIR``.

    Without ``--force_out_dir`` each search gets a new ``search_<time>``
    folder below ``--out_dir``. With it, ``--out_dir`` is used as is; an
    existing folder is only accepted with ``--dont_force_new_dir``, and if it
    holds a store the search resumes there.
    """
    if resume:
        path = Path(resume).resolve()
        if not holds_search(path):
            raise UsageError(f"--resume {resume}: no hpsearch search folder there "
                             f"(no {STORE_FILE}, {SETTINGS_FILE} or run folder)")
        return SearchFolder(path, resuming=True)
    base = Path(out_dir).resolve()
    if not force_out_dir:
        path = base / f"search_{now:%Y-%m-%d_%H-%M-%S}"
        suffix = 1
        while path.exists():
            suffix += 1
            path = base / f"search_{now:%Y-%m-%d_%H-%M-%S}_{suffix}"
        return SearchFolder(path, resuming=False)
    if base.exists() and not dont_force_new_dir:
        raise UsageError(
            f"--out_dir {out_dir} exists; add --dont_force_new_dir to resume the search in it "
            f"(or use --resume {out_dir})"
        )
    if base.exists() and not base.is_dir():
        raise UsageError(f"--out_dir {out_dir} is not a folder")
    return SearchFolder(base, resuming=holds_search(base))


def holds_search(path: Path) -> bool:
    """A search was started in ``path``: its store, its settings or a run folder is there.

    The store alone is not the test: a lost store is rebuilt from the run
    folders, so a search whose store is gone still resumes.
    """
    if (path / STORE_FILE).is_file() or (path / SETTINGS_FILE).is_file():
        return True
    return path.is_dir() and any((run / RUN_INFO_FILE).is_file() for run in path.glob("sim_*"))


def saved_settings(folder: Path) -> dict[str, Any] | None:
    """What :func:`save_settings` kept; None if the folder has no settings file.

    Raises:
        UsageError: The file is there but unreadable or not a JSON object.
    """
    path = folder / SETTINGS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def save_settings(folder: Path, settings: dict[str, Any], module_file: Path) -> None:
    """Keep a copy of the grid module and the plain settings for the postprocessor and ``--resume``.

    What an earlier session saved stays: ``driver_argv`` is the first
    session's argv and ``options`` the options the search was started with
    (except a larger ``num_searches``, which extended it); ``sessions`` gains
    this session's ``{argv, started, host, pid}``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    old = saved_settings(folder) or {}
    argv = list(settings.get("driver_argv") or [])
    sessions = old.get("sessions") if isinstance(old.get("sessions"), list) else []
    if not sessions and "driver_argv" in old:  # written by an hpsearch that kept no history
        sessions = [{"argv": old["driver_argv"]}]
    merged = {
        **old,  # what this session does not set stays (e.g. the record of a verification's origin)
        **settings,
        "driver_argv": old.get("driver_argv", argv),
        "options": _merged_options(old.get("options"), settings.get("options")),
        "sessions": [*sessions, {"argv": argv, "started": time.time(), "host": socket.gethostname(),
                                 "pid": os.getpid()}],
    }
    write_json_atomic(folder / SETTINGS_FILE, merged)
    target = folder / module_file.name
    if module_file.is_file() and module_file.resolve() != target.resolve():
        temp = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(module_file, temp)
        temp.replace(target)


def _merged_options(old: Any, new: Any) -> dict[str, Any]:
    if not isinstance(old, dict) or not old:
        return dict(new or {})
    merged = dict(old)
    if isinstance(new, dict) and isinstance(old.get("num_searches"), int) and isinstance(new.get("num_searches"), int):
        before, after = old["num_searches"], new["num_searches"]
        if before > 0 and (after == -1 or after > before):
            merged["num_searches"] = after
    return merged


def resume_hint(folder: Path) -> str:
    """The one command that continues the search in ``folder`` as it was started."""
    return f"hpsearch --resume {shlex.quote(str(folder))}"


def write_commands(folder: Path, argvs: Iterable[Sequence[str]], cwd: Path) -> None:
    """``commands.sh``: one command line per configuration, runnable by hand."""
    lines = ["#!/bin/sh", "# Command lines of this search, one per configuration.", f"cd {shell_line([str(cwd)])}"]
    lines.extend(shell_line(argv) for argv in argvs)
    write_text_atomic(folder / COMMANDS_FILE, "\n".join(lines) + "\n")


MIN_RUN_NUMBER_WIDTH = 4
"""Run numbers have at least this many digits, so a search extended later
(up to 9999 runs) keeps one width and ``ls`` shows its runs in order."""


def run_name(stamp: str, index: int, width: int) -> str:
    """hypnettorch's run folder name: ``sim_<search start>_<index+1, zero-padded>``."""
    return f"sim_{stamp}_{index + 1:0{width}d}"


def run_number_width(planned: int, stored: int | None) -> int:
    """The width of run numbers: the one the search started with, if it has one.

    A new search takes enough digits for its configurations, at least
    :data:`MIN_RUN_NUMBER_WIDTH` (hypnettorch took just enough: ``zfill`` of
    the count's length). A search keeps its width for good, also one started
    by an older version with a narrower width, so its folder names never
    change width in the middle of a run of numbers below ``10**width``.
    """
    if stored:
        return stored
    return max(MIN_RUN_NUMBER_WIDTH, len(str(planned)))


def prepare_run_folder(run_dir: Path, info: dict[str, Any]) -> None:
    """Create the run folder and record the configuration before the run starts,
    so a run that dies at once still leaves its stderr and its identity."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RUN_JOB_FILE).unlink(missing_ok=True)  # it names an earlier attempt's job
    write_json_atomic(run_dir / RUN_INFO_FILE, info, durable=False)


def record_job(run_dir: Path, job: dict[str, Any]) -> None:
    """Where the run's current attempt was started (pid or job id), so that a
    store rebuilt from the run folders can adopt it instead of starting it twice."""
    write_json_atomic(run_dir / RUN_JOB_FILE, job, durable=False)


def record_result(run_dir: Path, result: dict[str, Any]) -> None:
    """The run's final result, durably: a lost store is rebuilt from it."""
    if run_dir.is_dir():
        write_json_atomic(run_dir / RUN_RESULT_FILE, result)


def archive_previous_attempt(run_dir: Path, attempt: int, names: Sequence[str]) -> None:
    """Move what an earlier attempt left (summary, exit code, result) aside,
    so the new attempt cannot be judged by its predecessor's files."""
    stale = [run_dir / name for name in names if (run_dir / name).exists()]
    if not stale:
        return
    target = run_dir / "previous_attempts" / str(attempt)
    target.mkdir(parents=True, exist_ok=True)
    for path in stale:
        path.replace(target / path.name)
