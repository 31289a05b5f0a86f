"""Run files the page may show: a run's stdout, stderr and summary, nothing else.

A name from the URL is never joined to a path as it is: the run folder must be
one of the search's runs, the file one of three known names, and the resolved
path (after symlinks) must still lie inside that run folder.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from hpsearch.summary import NotARegularFile

LOG_NAMES = {"stdout": "stdout.txt", "stderr": "stderr.txt"}
TAIL_BYTES = 2 * 1024 * 1024
"""A log larger than this is shown from its end (what a researcher looks for is there)."""


def run_file(search: dict[str, Any], run_dir: str, which: str) -> Path | None:
    """The file ``which`` (stdout, stderr, summary) of run ``run_dir`` of ``search``; None if not allowed."""
    if which == "summary":
        name = search.get("summary_filename")
    else:
        name = LOG_NAMES.get(which)
    if not name or run_dir not in {run["run"] for run in search.get("runs", [])}:
        return None
    if Path(run_dir).name != run_dir or run_dir in ("", ".", ".."):
        return None
    folder = (Path(search["folder"]) / run_dir).resolve()
    path = (folder / name).resolve()
    if folder not in path.parents:
        return None
    return path


def read_tail(path: Path, limit: int = TAIL_BYTES) -> tuple[str, int]:
    """The last ``limit`` bytes of a regular file as text, and how many bytes were left out before them.

    Raises:
        OSError: missing, unreadable, or NotARegularFile (a FIFO would block a reader forever).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotARegularFile(f"{path.name} is not a regular file")
        skipped = max(0, info.st_size - limit)
        handle.seek(skipped)
        data = handle.read(limit)
    return data.decode("utf-8", errors="replace"), skipped
