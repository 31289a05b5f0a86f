"""Discover a training script's flags: exactly from its parser when it runs here, else from its source.

:func:`discover` is what ``hpsearch init`` uses; :func:`static_discovery`
(nothing of the script runs, cached per file version) is what a search
checks its grid keys against.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

from hpsearch.discovery.exact import TIMEOUT, capture_flags
from hpsearch.discovery.flags import Discovery, Flag, ScriptError
from hpsearch.discovery.hpman_params import add_hpman
from hpsearch.discovery.static import read_flags

__all__ = ["Discovery", "Flag", "ScriptError", "discover", "static_discovery"]


def _static(script: Path) -> Discovery:
    discovery = read_flags(script)
    add_hpman(discovery, script)
    return discovery


def discover(script: str | Path, *, exact: bool = True, python: str = sys.executable,
             cwd: str | Path | None = None, timeout: float = TIMEOUT) -> Discovery:
    """The script's flags; exact when its parser can be captured, else static with a note saying why.

    Raises:
        ScriptError: The script is missing or is not valid Python.
    """
    script = Path(script)
    static = _static(script)
    if not exact:
        return static
    captured, why = capture_flags(script, python, cwd=cwd, timeout=timeout)
    if captured is None:
        static.notes.insert(0, f"flags read from the source, not from the running parser: {why}")
        return static
    captured.hpman, captured.hpargparse = static.hpman, static.hpargparse
    origins = {tuple(flag.options): flag.origin for flag in static.flags if flag.origin != "argparse"}
    for flag in captured.flags:  # which flags hpargparse made, as only the source tells
        flag.origin = origins.get(tuple(flag.options), flag.origin)
    captured.flags += [flag for flag in static.flags if flag.action == "hpman"]  # hpman without hpargparse
    captured.notes += [note for note in static.notes if "hpman" in note]
    return captured


def static_discovery(script: str | Path) -> Discovery | None:
    """The script's flags read from its source (None if it cannot be read), once per version of the file."""
    path = Path(script).resolve()
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return _cached(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _cached(path: str, _mtime_ns: int, _size: int) -> Discovery | None:
    try:
        return _static(Path(path))
    except ScriptError:
        return None
