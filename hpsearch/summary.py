"""Read a run's summary file: ``keyword number [number ...]`` per line.

hypnettorch matched keywords by prefix (``acc`` also matched ``acc_test``),
demanded the lines in the order of ``_SUMMARY_KEYWORDS`` and dropped signs and
exponents (``1e-05`` became ``1,05``). Here a keyword is the whole first
token of a line, lines may come in any order, and numbers are read with
Python's ``float()``, so ``-3``, ``+.5``, ``1e-05``, ``nan`` and ``inf`` mean
what they say.

The text of every :class:`~hpsearch.errors.SummaryError` raised here is the
reason recorded for the run, so it is short and names the problem.

A run writes whatever it likes into its folder, so every file of a run is read
through :func:`read_run_file`: at most :data:`MAX_RUN_FILE_BYTES`, and only
from a regular file (a FIFO would block the driver, a 1 GB file would take its
memory).
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from hpsearch.errors import SummaryError

Number = int | float

MAX_RUN_FILE_BYTES = 16 * 1024 * 1024
"""The most the driver reads of any file a run wrote (summary, exit code,
run/result JSON); a summary beyond it fails the run."""

_SEPARATORS = re.compile(r"[\s,]+")
_INTEGER = re.compile(r"[+-]?\d+")


class RunFileTooLarge(OSError):
    """A run's file is bigger than the limit it is read with."""

    def __init__(self, path: Path, size: int) -> None:
        super().__init__(f"{Path(path).name} too large ({size / 2**20:.0f} MB)")
        self.size = size


class NotARegularFile(OSError):
    """A run put a FIFO, device or socket where a file was expected."""


def read_run_file(path: Path, limit: int = MAX_RUN_FILE_BYTES) -> str:
    """The text of a file a run wrote, read without trusting it.

    Raises:
        FileNotFoundError (and the other ``OSError`` of ``open``),
        NotARegularFile, RunFileTooLarge: beyond ``limit`` bytes nothing
        more is read (a file still growing is caught by reading one byte more).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(info.st_mode):
            raise NotARegularFile(f"{Path(path).name} is not a regular file")
        if info.st_size > limit:
            raise RunFileTooLarge(path, info.st_size)
        data = handle.read(limit + 1)
        if len(data) > limit:
            raise RunFileTooLarge(path, max(len(data), os.fstat(fd).st_size))
    return data.decode("utf-8", errors="replace")


class IncompleteSummary(SummaryError):
    """The summary lacks a keyword; ``partial`` holds the keywords that were there,
    so the results table can still show them."""

    def __init__(self, message: str, partial: dict[str, Number | list[Number]]) -> None:
        super().__init__(message)
        self.partial = partial


def parse_numbers(text: str) -> Number | list[Number] | None:
    """``'0.5'`` -> 0.5, ``'[1, 2e-3]'`` -> [1, 0.002]; None if it is not numbers.

    Numbers are separated by whitespace and/or commas, optionally inside one
    pair of brackets. A token written as an integer stays an ``int``; several
    numbers become a list, one number stays a scalar.
    """
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    tokens = [token for token in _SEPARATORS.split(text) if token]
    if not tokens:
        return None
    numbers: list[Number] = []
    for token in tokens:
        try:
            numbers.append(int(token) if _INTEGER.fullmatch(token) else float(token))
        except ValueError:
            return None
    return numbers[0] if len(numbers) == 1 else numbers


def parse_summary(path: Path, keywords: Sequence[str]) -> dict[str, Number | list[Number]]:
    """Parse the summary file at ``path``; every keyword of ``keywords`` must be there.

    Lines may come in any order; blank lines and lines starting with ``#`` are
    skipped. Lines of other keywords are kept when they hold numbers and
    skipped otherwise, because scripts written for hypnettorch may add lines
    it never read. If a keyword appears twice, the last line wins (a script
    that appends as it goes).

    Raises:
        SummaryError: ``no summary file <name>``, ``summary file too large
            (N MB)``, ``summary line K malformed: '<line>'`` or ``summary
            lacks keyword '<keyword>'`` (an :class:`IncompleteSummary` carrying
            the keywords that were there).
    """
    path = Path(path)
    try:
        text = read_run_file(path)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise SummaryError(f"no summary file {path.name}") from None
    except RunFileTooLarge as exc:
        raise SummaryError(f"summary file too large ({exc.size / 2**20:.0f} MB)") from None
    except NotARegularFile:
        raise SummaryError(f"summary file {path.name} is not a regular file") from None
    except OSError as exc:
        raise SummaryError(f"summary file {path.name} unreadable: {exc.strerror or exc}") from None
    wanted = set(keywords)
    summary: dict[str, Number | list[Number]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, rest = _split_keyword(stripped)
        value = parse_numbers(rest)
        if value is not None:
            summary[keyword] = value
        elif keyword in wanted:
            raise SummaryError(f"summary line {number} malformed: {_clip(stripped)!r}")
    for keyword in keywords:
        if keyword not in summary:
            raise IncompleteSummary(f"summary lacks keyword {keyword!r}", summary)
    return summary


def _split_keyword(line: str) -> tuple[str, str]:
    parts = line.split(None, 1)
    return parts[0], parts[1] if len(parts) > 1 else ""


def _clip(line: str, limit: int = 80) -> str:
    """Keep reasons short enough for one CSV cell and one log line."""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def finished_flag(summary: Mapping[str, Any]) -> bool:
    """True iff the summary says ``finished 1`` (for a list: its last element)."""
    value = summary.get("finished")
    if isinstance(value, (list, tuple)):
        value = value[-1] if value else None
    if isinstance(value, str):
        value = parse_numbers(value)
    try:
        return value == 1
    except Exception:  # a custom parser may return anything
        return False


def load_custom_summary(handle: Callable[..., Any], run_dir: Path, cmd_ident: int) -> dict[str, Any]:
    """Call a grid module's ``_SUMMARY_PARSER_HANDLE(out_dir, cmd_ident)`` and normalise its answer.

    hypnettorch's handles return ``{key: [value]}`` with values that are often
    strings (``'0.5'``, ``'"0.1,0.2"'``). Each entry becomes a number, a list
    of numbers, or the string itself if it holds no numbers.

    Raises:
        SummaryError: ``custom summary parser failed: <ExcType>: <msg>`` if the
            handle raised, or a message saying what it returned instead of a dict.
    """
    try:
        raw = handle(str(run_dir), cmd_ident)
    except BaseException as exc:  # user code may raise anything, even SystemExit
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise SummaryError(f"custom summary parser failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(raw, Mapping):
        raise SummaryError(f"custom summary parser failed: it returned {type(raw).__name__}, not a dict")
    return {str(key): _normalise(value) for key, value in raw.items()}


def _normalise(value: Any) -> Any:
    """One custom-parser entry -> number, list of numbers or string."""
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        if len(value) == 1:
            return _normalise(value[0])
        return [_normalise(item) for item in value]
    if isinstance(value, str):
        parsed = parse_numbers(value.strip().strip("\"'"))
        return value if parsed is None else parsed
    if isinstance(value, bool):
        return int(value)
    return value
