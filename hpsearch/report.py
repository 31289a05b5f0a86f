"""The results table, ``search_results.csv``: one row per configuration.

The driver keeps the rows in memory and rewrites the whole file (atomically)
now and then, instead of re-reading and appending to it after every run as
hypnettorch did. Failed runs keep their row, with status and reason.

Columns, in this order: the grid keys, the summary keywords (then any other
summary keys, sorted), ``status``, ``reason``, the run folder under the name
of ``_OUT_ARG``, and ``config_key``. Rows are sorted by the performance key;
runs that are not done, or lack a value, come last.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

from hpsearch.atomic import write_text_atomic
from hpsearch.command import received_config

if TYPE_CHECKING:
    import pandas

    from hpsearch.store import RunRecord

SEPARATOR = ";"
FIXED_COLUMNS = ("status", "reason")
KEY_COLUMN = "config_key"


@dataclass(slots=True)
class ReportRow:
    """One row of the table.

    Attributes:
        key: Configuration key; rows are replaced by key. A run known only
            from ``commands.sh`` has no key (empty) and is identified by its
            folder instead.
        config: The configuration (grid key -> value).
        status: ``done``, ``failed``, ``timed_out``, ``interrupted``, or a
            postprocessor status such as ``unfinished`` or ``missing``.
        reason: Why the run is not done, if it is not.
        run_dir: Path of the run folder, as the user should see it.
        summary: Parsed summary, if any.
    """

    key: str
    config: dict
    status: str
    reason: str | None
    run_dir: str
    summary: dict | None

    @property
    def identity(self) -> str:
        return self.key or f"folder:{self.run_dir}"


class _Packed(NamedTuple):
    """A row as the table needs it, without per-row dicts: a 20,000-run
    search keeps every row in memory, so each row is a few small tuples."""

    rank: float | None
    config: tuple
    extra_config: dict | None
    summary: tuple
    extra_summary: dict | None
    status: str
    reason: str | None
    run_dir: str
    key: str


class ResultsReport:
    """The table of one search, kept in memory, written as a whole."""

    def __init__(
        self,
        path: Path,
        *,
        grid_keys: Sequence[str],
        summary_keys: Sequence[str],
        out_arg: str,
        performance_key: str | None,
        sort_ascending: bool,
    ) -> None:
        self.path = Path(path)
        self.grid_keys = list(grid_keys)
        self.summary_keys = list(summary_keys)
        self.out_arg = out_arg
        self.performance_key = performance_key
        self.sort_ascending = sort_ascending
        self._rows: dict[str, _Packed] = {}

    def set_row(self, row: ReportRow) -> None:
        """Add a row, or replace the row of the same configuration."""
        self._rows[row.identity] = self._pack(row)

    def __len__(self) -> int:
        return len(self._rows)

    def write(self) -> None:
        """Write the whole table to :attr:`path` (temporary file + rename)."""
        write_text_atomic(self.path, self._frame().to_csv(sep=SEPARATOR, index=False))

    def dataframe(self) -> "pandas.DataFrame":
        """The table as written, with column types inferred (numbers as numbers)."""
        return self._frame().infer_objects()

    # ---- building the table

    def _pack(self, row: ReportRow) -> _Packed:
        summary = row.summary or {}
        return _Packed(
            rank=self._rank(row),
            config=tuple(row.config.get(key) for key in self.grid_keys),
            extra_config={k: v for k, v in row.config.items() if k not in self.grid_keys} or None,
            summary=tuple(_cell(summary.get(key)) for key in self.summary_keys),
            extra_summary={k: _cell(v) for k, v in summary.items() if k not in self.summary_keys} or None,
            status=sys.intern(row.status),  # a handful of words, one copy each however many rows
            reason=row.reason,
            run_dir=row.run_dir,
            key=row.key,
        )

    def _frame(self) -> "pandas.DataFrame":
        """The table with object columns: ints stay ints, ``1e-05`` stays a float."""
        import pandas

        rows = sorted(self._rows.values(), key=_sort_key)
        extra_config = sorted({key for row in rows for key in (row.extra_config or ())})
        extra_summary = sorted({key for row in rows for key in (row.extra_summary or ())})
        config_columns = [*self.grid_keys, *extra_config]
        summary_columns = [*self.summary_keys, *extra_summary]
        names = [*config_columns, *_labels(summary_columns, set(config_columns)), *FIXED_COLUMNS, self.out_arg,
                 KEY_COLUMN]
        table = [
            [*row.config, *((row.extra_config or {}).get(key) for key in extra_config),
             *row.summary, *((row.extra_summary or {}).get(key) for key in extra_summary),
             row.status, row.reason, row.run_dir, row.key or None]
            for row in rows
        ]
        return pandas.DataFrame(table, columns=names, dtype=object)

    def _rank(self, row: ReportRow) -> float | None:
        """The value a done row is sorted by (negated for descending order)."""
        if row.status != "done" or self.performance_key is None:
            return None
        value = ranking_value((row.summary or {}).get(self.performance_key))
        if value is None:
            return None
        return value if self.sort_ascending else -value


def _sort_key(row: _Packed) -> tuple:
    """Done rows with a value by value, then done rows without, then the rest; ties by folder."""
    if row.rank is not None:
        return (0, row.rank, row.run_dir)
    return (1 if row.status == "done" else 2, 0.0, row.run_dir)


def _labels(summary_columns: list[str], taken: set[str]) -> list[str]:
    """Summary column names; one that clashes with a grid or fixed column gets a ``summary_`` prefix."""
    taken = taken | set(FIXED_COLUMNS) | {KEY_COLUMN}
    return [f"summary_{key}" if key in taken else key for key in summary_columns]


def ranking_value(value: Any) -> float | None:
    """The number a summary entry is ranked by: itself, or a list's last element."""
    if isinstance(value, (list, tuple)):
        value = value[-1] if value else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _cell(value: Any) -> Any:
    """A summary cell: numbers as they are, a list as ``0.1,0.2,0.3``, other values unchanged."""
    if isinstance(value, (list, tuple)) and all(_is_number(item) for item in value):
        return ",".join(_number_text(item) for item in value)
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number_text(value: int | float) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def row_from_record(record: "RunRecord", search_dir: Path, strip_quotes: bool = True) -> ReportRow:
    """The table row of a stored run (values as the run received them); the folder as a full path."""
    return ReportRow(
        key=record.key,
        config=received_config(record.config, strip_quotes),
        status=record.status.value,
        reason=record.reason,
        run_dir=os.path.join(search_dir, record.run_dir),  # not pathlib: it interns every folder name
        summary=record.summary,
    )
