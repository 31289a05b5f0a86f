"""``--performance_criteria``: find the done runs a grid module's criterion rejects,
and optionally move their folders aside (never delete them).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

from hpsearch.criteria import passes, require_handle
from hpsearch.errors import UsageError
from hpsearch.runs import RunStatus
from hpsearch.report import ReportRow
from hpsearch.runfolders import SET_ASIDE_FOLDER


def failing_runs(rows: Sequence[ReportRow], handle: Callable | None, criteria: Any, where: str) -> list[ReportRow]:
    """The done runs for which ``handle(summary_dict, criteria)`` is false.

    Raises:
        GridModuleError: The grid module has no handle, or the handle raised.
    """
    handle = require_handle(handle, where)
    return [row for row in rows if row.status == RunStatus.DONE.value and row.summary is not None
            and not passes(handle, row.summary, criteria, where, row.run_dir)]


def set_aside(rows: Sequence[ReportRow], out_dir: Path) -> list[ReportRow]:
    """Move the rows' run folders into ``<out_dir>/failed_criteria/``; update the rows.

    Folders already there stay. Nothing is overwritten: if a name is taken
    there, nothing is moved at all.

    Raises:
        UsageError: A folder of that name is already set aside.
    """
    target_dir = out_dir / SET_ASIDE_FOLDER
    to_move = [row for row in rows if Path(row.run_dir).parent != target_dir and Path(row.run_dir).is_dir()]
    for row in to_move:
        if (target_dir / Path(row.run_dir).name).exists():
            raise UsageError(f"cannot set {row.run_dir} aside: {target_dir / Path(row.run_dir).name} exists already")
    for row in to_move:
        target_dir.mkdir(exist_ok=True)
        target = target_dir / Path(row.run_dir).name
        shutil.move(row.run_dir, target)
        row.run_dir = str(target)
    return to_move
