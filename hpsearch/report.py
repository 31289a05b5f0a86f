"""The results table, ``search_results.csv``: one row per configuration.

The driver keeps the rows in memory and rewrites the whole file (atomically)
now and then, instead of re-reading and appending to it after every run as
hypnettorch did. Failed runs keep their row, with status and reason.

Columns, in this order: the grid keys, the summary keywords (then any other
summary keys, sorted), ``status``, ``reason``, the run folder under the name
of ``_OUT_ARG``, and ``config_key``. Rows are sorted by the performance key;
runs that are not done, or lack a value, come last. Column names are unique: a
summary key that clashes with another column gets a ``summary_`` prefix, one of
our own columns that clashes with a grid key an ``hpsearch_`` prefix.

Any value survives the file. Each cell holds the text of its value: ``str()``
of it (``0.1``, ``1e-05``, ``nan``, ``True``, ``[1, 2]``, a string as it is,
every character kept), nothing for None, and a summary's list of numbers as
``0.1,0.2,0.3`` (as hypnettorch wrote it). Cells holding ``;``, ``"``, ``\n``
or ``\r`` are quoted, quotes doubled; lines end in ``\n``. That is what
"the same value" means, in two readings:

* ``pandas.read_csv(path, sep=";", dtype=str, keep_default_na=False)`` gives
  back every cell's text exactly, and one row per run;
* ``pandas.read_csv(path, sep=";")`` gives one row per run, every value in its
  own cell, read the way pandas reads that text: numbers we wrote come back
  equal (floats exactly), but a column of text that all looks like numbers
  becomes numbers (``"007"`` reads 7, ``"1e5"`` 100000.0), a column of
  ``True``/``False`` becomes booleans, and texts pandas takes for missing
  (``""``, ``nan``, ``NA``, ``None``, ``null``...) read as NaN.

The file is written with the ``csv`` module, not pandas: a table of texts
needs nothing more, the driver can then write it without the third of a
second pandas takes to import, and the driver and its helper (see
:mod:`hpsearch.report_writer`) produce the same bytes. The ``csv`` module
quotes a bare ``\r`` only when it is part of the line terminator, so rows are
made with ``\r\n`` and their terminator cut back to ``\n``.
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

from hpsearch.atomic import write_bytes_atomic
from hpsearch.command import received_config

if TYPE_CHECKING:
    import pandas

    from hpsearch.store import RunRecord

SEPARATOR = ";"
FIXED_COLUMNS = ("status", "reason")
KEY_COLUMN = "config_key"
SUMMARY_PREFIX = "summary_"
OWN_PREFIX = "hpsearch_"


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
    config: tuple[str, ...]
    extra_config: dict[str, str] | None
    summary: tuple[str, ...]
    extra_summary: dict[str, str] | None
    status: str
    reason: str
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
        write_table(self.path, *self._table())

    def text(self) -> str:
        """The file's content, as :meth:`write` would write it."""
        return table_text(*self._table())

    def dataframe(self) -> "pandas.DataFrame":
        """The table as a user reads the file: ``pandas.read_csv(path, sep=";")``."""
        import pandas

        return pandas.read_csv(io.StringIO(self.text()), sep=SEPARATOR)

    # ---- building the table

    def _pack(self, row: ReportRow) -> _Packed:
        summary = row.summary or {}
        return _Packed(
            rank=self._rank(row),
            config=tuple(cell_text(row.config.get(key)) for key in self.grid_keys),
            extra_config={k: cell_text(v) for k, v in row.config.items() if k not in self.grid_keys} or None,
            summary=tuple(summary_text(summary.get(key)) for key in self.summary_keys),
            extra_summary={k: summary_text(v) for k, v in summary.items() if k not in self.summary_keys} or None,
            status=sys.intern(str(row.status)),  # a handful of words, one copy each however many rows
            reason=cell_text(row.reason),
            run_dir=str(row.run_dir),
            key=row.key,
        )

    def _table(self) -> tuple[list[str], list[list[str]]]:
        """Column names and the rows' cell texts, rows in their order."""
        rows = sorted(self._rows.values(), key=_sort_key)
        extra_config = sorted({key for row in rows for key in (row.extra_config or ())})
        extra_summary = sorted({key for row in rows for key in (row.extra_summary or ())})
        config_columns = [*self.grid_keys, *extra_config]
        names = column_names(config_columns, [*self.summary_keys, *extra_summary], self.out_arg)
        table = [
            [*row.config, *((row.extra_config or {}).get(key, "") for key in extra_config),
             *row.summary, *((row.extra_summary or {}).get(key, "") for key in extra_summary),
             row.status, row.reason, row.run_dir, row.key]
            for row in rows
        ]
        return names, table

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


def column_names(config_columns: Sequence[str], summary_columns: Sequence[str], out_arg: str) -> list[str]:
    """The header: grid keys as they are, then summary keys, then our own columns, no name twice.

    pandas would read a repeated name as ``name.1``; so a summary key that
    clashes gets ``summary_`` prefixes, one of our columns ``hpsearch_`` ones.
    """
    names = [str(name) for name in config_columns]
    taken = set(names) | set(FIXED_COLUMNS) | {str(out_arg), KEY_COLUMN}
    for key in summary_columns:
        label = str(key)
        while label in taken or label in names:
            label = SUMMARY_PREFIX + label
        names.append(label)
    for own in (*FIXED_COLUMNS, str(out_arg), KEY_COLUMN):
        while own in names:
            own = OWN_PREFIX + own
        names.append(own)
    return names


def ranking_value(value: Any) -> float | None:
    """The number a summary entry is ranked by: itself, or a list's last element."""
    if isinstance(value, (list, tuple)):
        value = value[-1] if value else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return None if math.isnan(value) else value


def cell_text(value: Any) -> str:
    """What a cell shows of a value: nothing for None, else ``str()`` (``1e-05``, ``True``, ``[1, 'a']``)."""
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def summary_text(value: Any) -> str:
    """A summary cell: a list of numbers as ``0.1,0.2,0.3``, anything else as :func:`cell_text`."""
    if isinstance(value, (list, tuple)) and all(_is_number(item) for item in value):
        return ",".join(_number_text(item) for item in value)
    return cell_text(value)


class _RowSink:
    """Receives the ``csv`` writer's rows (one ``write`` per row) and ends each with ``\n``.

    The writer is told the terminator is ``\r\n`` so that it quotes every cell
    holding a ``\r`` or a ``\n``; the ``\r`` is taken off again here.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, line: str) -> None:
        self.lines.append(line[:-2] + "\n")


def table_text(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """The CSV text of a header and rows of cell texts (see the module docstring)."""
    sink = _RowSink()
    writer = csv.writer(sink, delimiter=SEPARATOR, quotechar='"', doublequote=True,
                        quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return "".join(sink.lines)


def write_table(path: Path, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Replace the CSV file at ``path`` atomically; the one place ``search_results.csv`` is written.

    Text that UTF-8 cannot hold (a lone surrogate from a file name) is
    written as a backslash escape rather than failing the write.
    """
    write_bytes_atomic(Path(path), table_text(columns, rows).encode("utf-8", errors="backslashreplace"))


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
