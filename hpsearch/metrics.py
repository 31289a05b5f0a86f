"""Read a run's metrics from where its script puts them, when that is not a summary file.

Most training scripts never write hypnettorch's summary file; they write a
JSON file, print a JSON object, or print lines such as ``val_acc=0.91``. A grid
module's ``_METRICS`` says which (see :func:`metrics_source`); the result has
the shape of a parsed summary (key -> value), so the verdict, the store, the
CSV and the progress line treat it as one. A run with such a source is done
when it exited 0 and every configured metric was found.

Everything a run wrote is read with bounded memory and time: a JSON file
through :func:`~hpsearch.summary.read_run_file`, the last line of a ``.jsonl``
and the last JSON object or match on stdout by scanning from the end, and
"all matches" by streaming the file line by line with a cap on what is kept.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Iterator, Mapping

from hpsearch.errors import SummaryError, UsageError
from hpsearch.summary import IncompleteSummary, RunFileTooLarge, parse_numbers, read_run_file

STDOUT_FILE = "stdout.txt"  # as hpsearch.runs.STDOUT_FILE, which imports this layer

SOURCES = ("summary", "json_file", "stdout_json", "stdout_regex")
"""The values of ``_METRICS["source"]``; ``summary`` is hypnettorch's summary file (the default)."""

TAKES = ("last", "all")
MAX_SCAN_BYTES = 64 * 1024 * 1024
"""How much of the end of a file is searched for the last JSON object or regex match (and
streamed for ``all``): the driver reads it when the run ends, so its cost must stay small."""
MAX_LINE_BYTES = 1024 * 1024
"""A longer line is skipped: no metric line is that long, and it would cost memory."""
MAX_ALL_VALUES = 100_000
"""The most values kept for a key taken with ``all`` (the last ones)."""
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class MetricsSource:
    """Where a run's metrics come from, validated.

    Attributes:
        source: One of :data:`SOURCES` other than ``summary``.
        keys: The metrics that must be found, in column order.
        file: For ``json_file``: the path inside the run folder (``.jsonl``:
            its last non-empty line); for the stdout sources ``stdout.txt``.
        patterns: For ``stdout_regex``: compiled patterns with named groups.
        take: For ``stdout_regex``: key -> ``last`` or ``all``.
    """

    source: str
    keys: tuple[str, ...]
    file: str = STDOUT_FILE
    patterns: tuple[re.Pattern, ...] = ()
    take: Mapping[str, str] = field(default_factory=dict)

    def settings(self) -> dict[str, Any]:
        """Plain data for ``search.json``; :func:`metrics_source` reads it back."""
        data: dict[str, Any] = {"source": self.source}
        if self.source == "json_file":
            data["file"] = self.file
        if self.source == "stdout_regex":
            data["patterns"] = [pattern.pattern for pattern in self.patterns]
            data["take"] = dict(self.take)
        else:
            data["keys"] = list(self.keys)
        return data

    def read(self, run_dir: Path) -> dict[str, Any]:
        """The metrics of the run in ``run_dir``.

        Raises:
            SummaryError: the file is missing or unreadable, or (an
                :class:`~hpsearch.summary.IncompleteSummary` carrying what was
                found) ``metrics not found: <keys>``.
        """
        path = Path(run_dir) / self.file
        if self.source == "stdout_regex":
            found = _regex_metrics(path, self.patterns, self.take)
        elif self.source == "stdout_json":
            found = _last_json_object(path, STDOUT_FILE)
        elif self.file.endswith(".jsonl"):
            found = _last_json_object(path, f"metrics file {self.file}")
        else:
            found = _json_file(path, self.file)
        found = {str(key): value for key, value in found.items()}
        missing = [key for key in self.keys if key not in found]
        if missing:
            raise IncompleteSummary(f"metrics not found: {', '.join(missing)} ({self._looked(found, missing)})", found)
        return found

    def _looked(self, found: Mapping[str, Any], missing: list[str]) -> str:
        """Where the missing metrics were looked for, for the run's reason."""
        if self.source == "stdout_regex":
            return f"no line of {self.file} matched {'it' if len(missing) == 1 else 'them'}"
        if found:
            return f"the last JSON object in {self.file} lacks {'it' if len(missing) == 1 else 'them'}"
        return f"no JSON object in {self.file}"


# --------------------------------------------------------------------------- the grid-module attribute


def saved_metrics_source(settings_file: Path, saved: Any) -> MetricsSource | None:
    """The ``metrics`` entry of a search's ``search.json`` -> its source, so runs are judged as the driver did.

    Raises:
        UsageError: the entry is not a source (naming the file).
    """
    try:
        return metrics_source(saved)
    except ValueError as exc:
        raise UsageError(f"{settings_file}: 'metrics' {exc}") from None


def metrics_source(value: Any) -> MetricsSource | None:
    """``_METRICS`` (or its ``search.json`` copy) -> a source; None means the summary file.

    Accepted::

        None or {"source": "summary"}
        {"source": "json_file", "file": "metrics.json", "keys": ["val_acc", ...]}   # or a .jsonl
        {"source": "stdout_json", "keys": ["val_acc", ...]}
        {"source": "stdout_regex", "patterns": [r"val_acc=(?P<val_acc>\\S+)", ...],
         "take": "last" | "all" | {"val_acc": "last", "loss": "all"}}

    Raises:
        ValueError: with the problem, worded to follow ``attribute _METRICS``.
    """
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"must be a dict such as {{'source': 'stdout_json', 'keys': ['val_acc']}}, "
                         f"got {type(value).__name__}")
    source = value.get("source")
    if source not in SOURCES:
        raise ValueError(f"'source' must be one of {', '.join(map(repr, SOURCES))}, got {source!r}")
    allowed = {"summary": {"source"}, "json_file": {"source", "file", "keys"}, "stdout_json": {"source", "keys"},
               "stdout_regex": {"source", "patterns", "take"}}[source]
    unknown = sorted(map(str, set(value) - allowed))
    if unknown:
        raise ValueError(f"unknown entry {unknown[0]!r} for source {source!r} (it takes {', '.join(sorted(allowed))})")
    if source == "summary":
        return None
    if source == "stdout_regex":
        patterns, keys = _patterns(value.get("patterns"))
        return MetricsSource(source, keys, patterns=patterns, take=_take(value.get("take", "last"), keys))
    keys = _keys(value.get("keys"))
    if source == "stdout_json":
        return MetricsSource(source, keys)
    return MetricsSource(source, keys, file=_relative_file(value.get("file")))


def _keys(keys: Any) -> tuple[str, ...]:
    if not isinstance(keys, (list, tuple)) or not keys or not all(isinstance(k, str) and k for k in keys):
        raise ValueError(f"'keys' must be a non-empty list of metric names, got {keys!r}")
    if len(set(keys)) != len(keys):
        raise ValueError(f"'keys' names a metric twice: {list(keys)}")
    return tuple(keys)


def _relative_file(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"'file' must name the file in the run folder, e.g. 'metrics.json', got {name!r}")
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\0" in name:
        raise ValueError(f"'file' must be a path inside the run folder (no leading '/', no '..'), got {name!r}")
    if path.suffix not in (".json", ".jsonl"):
        raise ValueError(f"'file' must end in .json or .jsonl (its last line is read), got {name!r}")
    return str(path)


def _patterns(patterns: Any) -> tuple[tuple[re.Pattern, ...], tuple[str, ...]]:
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, (list, tuple)) or not patterns or not all(isinstance(p, str) for p in patterns):
        raise ValueError(f"'patterns' must be a regular expression or a list of them, got {patterns!r}")
    compiled, keys = [], []
    for text in patterns:
        try:
            pattern = re.compile(text)
        except re.error as exc:
            raise ValueError(f"pattern {text!r} is not a valid regular expression: {exc}") from None
        if not pattern.groupindex:
            raise ValueError(f"pattern {text!r} has no named group; write (?P<val_acc>\\S+) for a metric val_acc")
        compiled.append(pattern)
        keys += [name for name in pattern.groupindex if name not in keys]
    return tuple(compiled), tuple(keys)


def _take(take: Any, keys: tuple[str, ...]) -> dict[str, str]:
    if isinstance(take, str):
        take = dict.fromkeys(keys, take)
    if not isinstance(take, Mapping):
        raise ValueError(f"'take' must be 'last', 'all' or a dict metric -> 'last'/'all', got {take!r}")
    for key, how in take.items():
        if key not in keys:
            raise ValueError(f"'take' names {key!r}, which no pattern's named group defines ({', '.join(keys)})")
        if how not in TAKES:
            raise ValueError(f"'take' of {key!r} must be 'last' or 'all', got {how!r}")
    return {key: take.get(key, "last") for key in keys}


# --------------------------------------------------------------------------- reading


def _json_file(path: Path, name: str) -> dict[str, Any]:
    try:
        text = read_run_file(path)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise SummaryError(f"no metrics file {name}") from None
    except RunFileTooLarge as exc:
        raise SummaryError(f"metrics file {name} too large ({exc.size / 2**20:.0f} MB)") from None
    except OSError as exc:
        raise SummaryError(f"metrics file {name} unreadable: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SummaryError(f"metrics file {name} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SummaryError(f"metrics file {name} holds a {type(data).__name__}, not a JSON object")
    return data


def _last_json_object(path: Path, what: str) -> dict[str, Any]:
    """The last line of ``path`` that is a JSON object (``{...}``), scanning from the end."""
    for line in _lines_from_end(path, what):
        stripped = line.strip()
        if not (stripped.startswith("{") and stripped.endswith("}")):
            continue
        try:
            data = json.loads(stripped)
        except ValueError:
            continue
        if isinstance(data, dict):
            return data
    return {}


def _regex_metrics(path: Path, patterns: tuple[re.Pattern, ...], take: Mapping[str, str]) -> dict[str, Any]:
    """Each key's last match, or all its matches in order; ``all`` keys need the whole file."""
    if any(how == "all" for how in take.values()):
        return _regex_forward(path, patterns, take)
    found: dict[str, Any] = {}
    for line in _lines_from_end(path, STDOUT_FILE):
        for pattern in reversed(patterns):
            for match in reversed(list(pattern.finditer(line))):
                for key, text in match.groupdict().items():
                    if text is not None and key not in found:
                        found[key] = _value(text)
        if len(found) == len(take):
            break
    return {key: found[key] for key in take if key in found}


def _regex_forward(path: Path, patterns: tuple[re.Pattern, ...], take: Mapping[str, str]) -> dict[str, Any]:
    last: dict[str, Any] = {}
    every: dict[str, deque] = {key: deque(maxlen=MAX_ALL_VALUES) for key, how in take.items() if how == "all"}
    for line in _lines_forward(path, STDOUT_FILE):
        for pattern in patterns:
            for match in pattern.finditer(line):
                for key, text in match.groupdict().items():
                    if text is None:
                        continue
                    if key in every:
                        every[key].append(_value(text))
                    else:
                        last[key] = _value(text)
    found = {**last, **{key: list(values) for key, values in every.items() if values}}
    return {key: found[key] for key in take if key in found}


def _value(text: str) -> Any:
    """A captured text: a number (or list of numbers) if it is one, else the text."""
    number = parse_numbers(text)
    return text if number is None else number


def _open_regular(path: Path, what: str) -> BinaryIO:
    """``path`` opened for reading, only if it is a regular file (a FIFO would block the driver)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise SummaryError(f"no {what}") from None
    except OSError as exc:
        raise SummaryError(f"{what} unreadable: {exc.strerror or exc}") from None
    handle = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        handle.close()
        raise SummaryError(f"{what} is not a regular file")
    return handle


def _lines_from_end(path: Path, what: str) -> Iterator[str]:
    """The non-empty lines of ``path``, last first, from its last :data:`MAX_SCAN_BYTES`; over-long lines skipped."""
    limit = MAX_SCAN_BYTES
    with _open_regular(path, what) as handle:
        position = handle.seek(0, os.SEEK_END)
        stop = max(0, position - limit)
        carry = b""  # the end of a line whose start lies before ``position``
        skipping = False  # inside a line longer than MAX_LINE_BYTES
        while position > stop:
            size = min(_CHUNK, position - stop)
            position -= size
            handle.seek(position)
            parts = handle.read(size).split(b"\n")
            if skipping:
                if len(parts) == 1:
                    continue
                parts.pop()  # the start of the long line
                skipping = False
            else:
                parts[-1] += carry
            carry = parts[0]
            for line in reversed(parts[1:]):
                if line and len(line) <= MAX_LINE_BYTES:
                    yield line.decode("utf-8", errors="replace")
            if len(carry) > MAX_LINE_BYTES:
                carry, skipping = b"", True
        if carry and stop == 0 and not skipping:
            yield carry.decode("utf-8", errors="replace")


def _lines_forward(path: Path, what: str) -> Iterator[str]:
    """The lines (without their line break) of the last :data:`MAX_SCAN_BYTES` of ``path`` in order,
    each read with a length cap (memory stays bounded); a line cut by that window is left out."""
    with _open_regular(path, what) as handle:
        start = max(0, handle.seek(0, os.SEEK_END) - MAX_SCAN_BYTES)
        handle.seek(max(0, start - 1))
        skipping = start > 0 and handle.read(1) != b"\n"  # the window begins inside a line
        while True:
            line = handle.readline(MAX_LINE_BYTES + 1)
            if not line:
                return
            complete = line.endswith(b"\n")
            if skipping:
                skipping = not complete
            elif not complete and len(line) > MAX_LINE_BYTES:
                skipping = True
            else:
                yield line.rstrip(b"\n").decode("utf-8", errors="replace")
