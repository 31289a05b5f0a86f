"""Atomic file writes: a reader sees the old file or the new one, never half.

The search folder is read while it is written (the postprocessor, a user's
spreadsheet, a resumed driver after ``kill -9``), so every file we produce is
written to a temporary file in the same folder, flushed to disk and renamed
over the target; a rename within one file system is atomic.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any


def write_bytes_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` by ``data`` atomically, and durably unless told not to.

    The temporary file starts with a dot and ends in ``.tmp`` so that scans of
    the folder skip it; it is removed if anything fails before the rename. Its
    name holds the writer's pid, so that what a killed writer left can be
    found (:func:`remove_temps`).
    Without ``durable`` the write still survives the writer's crash, but not
    necessarily a power cut; it spares the two ``fsync`` calls (about a
    millisecond) for files written once per run, whose durable copy is the
    run store.
    """
    path = Path(path)
    fd, temp_name = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        try:
            os.unlink(temp_name)
        except FileNotFoundError:
            pass
        raise
    if durable:
        _fsync_folder(path.parent)


def write_text_atomic(path: Path, text: str, encoding: str = "utf-8", *, durable: bool = True) -> None:
    """Replace ``path`` by ``text`` atomically (see :func:`write_bytes_atomic`)."""
    write_bytes_atomic(path, text.encode(encoding), durable=durable)


def write_json_atomic(path: Path, obj: Any, *, durable: bool = True) -> None:
    """Replace ``path`` by ``obj`` as indented JSON, atomically.

    NaN and infinities are written as Python's ``json`` module does
    (``NaN``, ``Infinity``), because summaries may hold them.
    """
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n", durable=durable)


def _create_temp(path: Path) -> tuple[int, str]:
    """A new, exclusive temporary file next to ``path``.

    Unlike ``tempfile.mkstemp`` (mode 0600) the file gets the usual mode
    (0666 minus the umask), so results stay readable by a user's group.
    """
    while True:
        name = str(path.parent / f"{_temp_prefix(path, os.getpid())}{secrets.token_hex(6)}.tmp")
        try:
            return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), name
        except FileExistsError:
            continue


def _temp_prefix(path: Path, pid: int) -> str:
    return f".{path.name}.{pid}."


def remove_temps(path: Path, pid: int) -> None:
    """Remove what a writer process ``pid``, killed in the middle of a write to ``path``, left behind."""
    prefix = _temp_prefix(path, pid)
    try:
        entries = os.listdir(path.parent)
    except OSError:
        return
    for entry in entries:
        if entry.startswith(prefix) and entry.endswith(".tmp"):
            try:
                os.unlink(path.parent / entry)
            except OSError:
                pass


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; not every file system allows this."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
