"""Reading run folders, the ground truth of a search.

Each run folder holds ``hpsearch_run.json`` (key, index, configuration) from
before its start, ``hpsearch_result.json`` once the driver saw it end, the
exit-code file of a cluster job script, and the summary the training script
wrote. The postprocessor rebuilds the results table from them and the driver
rebuilds a lost run store from them; both read them here.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpsearch.searchdir import RUN_INFO_FILE, RUN_JOB_FILE, RUN_RESULT_FILE
from hpsearch.runs import read_exit_code
from hpsearch.summary import read_run_file

PREVIOUS_ATTEMPTS = "previous_attempts"
SET_ASIDE_FOLDER = "failed_criteria"
"""Where the postprocessor's ``--set_aside`` moves runs that fail the criteria."""

_RUN_NAME = re.compile(r"^sim_(\d{14})_(\d+)$")


@dataclass(frozen=True)
class RunFolder:
    """What one run folder says about its run.

    ``result`` is ``hpsearch_result.json`` if it holds a status (the run ended
    and the driver recorded it), ``exit_code`` what a job script left, ``job``
    ``hpsearch_job.json``: where the latest attempt was started (pid or job id).
    """

    path: Path
    key: str
    index: int
    config: dict
    result: dict | None
    exit_code: int | None
    job: dict | None = None

    def previous_attempts(self) -> int:
        """How many earlier attempts the driver archived in this folder."""
        try:
            return sum(1 for entry in os.scandir(self.path / PREVIOUS_ATTEMPTS) if entry.is_dir())
        except OSError:
            return 0


def run_folders(search_dir: Path) -> list[Path]:
    """Folders holding ``hpsearch_run.json``: in the search folder and among those set aside."""
    found = []
    for parent in (search_dir, search_dir / SET_ASIDE_FOLDER):
        if parent.is_dir():
            found.extend(Path(entry.path) for entry in os.scandir(parent)
                         if entry.is_dir() and os.path.isfile(os.path.join(entry.path, RUN_INFO_FILE)))
    return sorted(found, key=lambda path: path.name)


def read_run_folder(folder: Path) -> RunFolder | None:
    """The facts of one run folder; None if its ``hpsearch_run.json`` is unreadable."""
    info = read_json(folder / RUN_INFO_FILE)
    if not isinstance(info, dict) or not isinstance(info.get("key"), str):
        return None
    config = info.get("config") if isinstance(info.get("config"), dict) else {}
    index = info.get("index") if isinstance(info.get("index"), int) else 0
    result = read_json(folder / RUN_RESULT_FILE)
    if not (isinstance(result, dict) and result.get("status")):
        result = None
    job = read_json(folder / RUN_JOB_FILE)
    job = job if isinstance(job, dict) and isinstance(job.get("backend"), str) and job.get("job_id") else None
    return RunFolder(folder, info["key"], index, config, result, read_exit_code(folder), job)


def read_json(path: Path) -> Any:
    """The JSON value in ``path``; None if it is missing or unreadable."""
    try:
        return json.loads(read_run_file(path))
    except (OSError, ValueError):
        return None


def parse_run_name(name: str) -> tuple[str, str] | None:
    """``sim_<stamp>_<number>`` -> (stamp, number as written); None for other names."""
    match = _RUN_NAME.match(name)
    return None if match is None else (match.group(1), match.group(2))
