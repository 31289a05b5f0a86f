"""The runs of one search in columns, as every reader of a search folder hands them over.

The store, the run folders, a ``search_results.csv`` and a folder written by
hypnettorch each fill a :class:`RunTable`; :meth:`RunTable.frame` turns it
into the one frame :func:`hpsearch.results.load_results` returns, so every
kind of folder gives the same columns with the same types.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    import pandas

OWN_COLUMNS = ("status", "reason", "attempt", "run_dir", "config_key", "gpu", "start", "end")
SUMMARY_PREFIX = "summary_"
OWN_PREFIX = "hpsearch_"
ATTRS_KEY = "hpsearch"
"""``frame.attrs[ATTRS_KEY]`` says which columns are grid keys, summary keys and the performance key."""


@dataclass
class RunTable:
    """One entry per run in every list, in run order."""

    search: str
    source: str
    grid_keys: list[str]
    summary_keys: list[str]
    performance_key: str | None = None
    ascending: bool = False
    seed_keys: list[str] | None = None
    configs: list[dict] = field(default_factory=list)
    summaries: list[dict | None] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    reason: list[str | None] = field(default_factory=list)
    attempt: list[int] = field(default_factory=list)
    run_dir: list[str] = field(default_factory=list)
    config_key: list[str] = field(default_factory=list)
    gpu: list[str | None] = field(default_factory=list)
    start: list[float | None] = field(default_factory=list)
    end: list[float | None] = field(default_factory=list)

    def add(self, config: dict, summary: dict | None, status: str, reason: str | None, attempt: int,
            run_dir: str, config_key: str, gpu: str | None, start: float | None, end: float | None) -> None:
        self.configs.append(config)
        self.summaries.append(summary)
        self.status.append(status)
        self.reason.append(reason)
        self.attempt.append(attempt)
        self.run_dir.append(run_dir)
        self.config_key.append(config_key)
        self.gpu.append(gpu)
        self.start.append(start)
        self.end.append(end)

    def frame(self) -> "pandas.DataFrame":
        """The runs as a frame: grid keys, summary keys, then :data:`OWN_COLUMNS` (see docs/results.md)."""
        import pandas

        grid = _with_extra(self.grid_keys, self.configs)
        summary = _with_extra(self.summary_keys, self.summaries)
        grid_names, summary_names, own_names = column_names(grid, summary)
        data: dict[str, Any] = {}
        for key, name in zip(grid, grid_names):
            data[name] = typed_column([config.get(key) for config in self.configs])
        for key, name in zip(summary, summary_names):
            data[name] = typed_column([(values or {}).get(key) for values in self.summaries])
        own = {
            "status": pandas.Series(self.status, dtype=object),
            "reason": pandas.Series(self.reason, dtype=object),
            "attempt": pandas.Series(self.attempt, dtype="int64"),
            "run_dir": pandas.Series(self.run_dir, dtype=object),
            "config_key": pandas.Series(self.config_key, dtype=object),
            "gpu": pandas.Series(self.gpu, dtype=object),
            "start": _times(self.start),
            "end": _times(self.end),
        }
        for column, name in zip(OWN_COLUMNS, own_names):
            data[name] = own[column]
        frame = pandas.DataFrame(data, index=pandas.RangeIndex(len(self.status)))
        names = dict(zip(summary, summary_names))
        frame.attrs[ATTRS_KEY] = {
            "search": self.search,
            "source": self.source,
            "grid_keys": grid_names,
            "summary_keys": summary_names,
            "performance_key": names.get(self.performance_key) if self.performance_key else None,
            "ascending": bool(self.ascending),
            "seed_keys": list(self.seed_keys) if self.seed_keys is not None else None,
            "columns": dict(zip(OWN_COLUMNS, own_names)),
            "summary_names": {name: str(key) for key, name in zip(summary, summary_names)},
        }
        return frame


def _with_extra(declared: Sequence[str], rows: Sequence[dict | None]) -> list[str]:
    """The declared keys, then the other keys the rows hold, sorted."""
    known = set(declared)
    extra = {key for row in rows if row for key in row if key not in known}
    return [*declared, *sorted(extra)]


def column_names(grid: Sequence[str], summary: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """No name twice: a summary key that clashes gets ``summary_``, one of our columns ``hpsearch_`` (as in the CSV)."""
    grid_names = [str(key) for key in grid]
    taken = set(grid_names) | set(OWN_COLUMNS)
    summary_names = []
    for key in summary:
        name = str(key)
        while name in taken:
            name = SUMMARY_PREFIX + name
        taken.add(name)
        summary_names.append(name)
    data_names = set(grid_names) | set(summary_names)
    own_names = []
    for column in OWN_COLUMNS:
        name = column
        while name in data_names:
            name = OWN_PREFIX + name
        own_names.append(name)
    return grid_names, summary_names, own_names


def typed_column(values: list[Any]) -> "pandas.Series":
    """A column as pandas types it: ints int64 (float64 with gaps), bools bool (object with gaps),
    texts and mixtures object, lists object holding the lists."""
    import pandas

    types = set(map(type, values))
    if types & {list, tuple, dict}:
        return pandas.Series([list(v) if isinstance(v, tuple) else v for v in values], dtype=object)
    return pandas.Series(values)


def _times(seconds: list[float | None]) -> "pandas.Series":
    import pandas

    numbers = pandas.Series([math.nan if s is None else s for s in seconds], dtype="float64")
    return pandas.to_datetime(numbers, unit="s", utc=True).astype("datetime64[ns, UTC]")


def gpu_of(where: str | None) -> str | None:
    """``gpu 2`` (the store's placement of a local run) -> ``2``; None for CPU runs and cluster jobs."""
    if isinstance(where, str) and where.startswith("gpu "):
        return where[4:].strip()
    return None
