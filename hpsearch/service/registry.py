"""The per-user registry of searches on this machine.

Every driver, a service's or a foreground one, registers its search here, so
that ``hpsearch list`` and ``hpsearch status`` see all of them from any
terminal, also while the service is down. The registry only points at search
folders and says who drives them; what a search holds is read from its own
folder. It is a small SQLite file in the owner-only state folder, written in
short transactions by several processes at once (WAL on local disk).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import psutil

from hpsearch.errors import UsageError
from hpsearch.proctree import process_alive
from hpsearch.service.paths import StatePaths, state_paths

SERVICE = "service"
FOREGROUND = "foreground"
ACTIVE_STATES = ("queued", "running", "paused")
"""States of a search that is not over; the rest are ``cancelled``, ``finished``, ``failed``, ``stopped``."""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS searches (
    id TEXT PRIMARY KEY,
    folder TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 1,
    pid INTEGER,
    pid_started REAL,
    host TEXT NOT NULL,
    submitted REAL NOT NULL,
    updated REAL NOT NULL,
    ended REAL,
    exit_code INTEGER,
    argv TEXT NOT NULL DEFAULT '[]'
    )""",
    "CREATE TABLE IF NOT EXISTS service (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


@dataclass(frozen=True)
class SearchEntry:
    """One registered search: where its folder is, who drives it, in what state."""

    id: str
    folder: str
    kind: str
    state: str
    priority: int
    pid: int | None
    pid_started: float | None
    host: str
    submitted: float
    updated: float
    ended: float | None
    exit_code: int | None
    argv: str

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def driver_alive(self) -> bool:
        """Its driver process still runs (same pid and start time, so a reused pid does not count)."""
        return process_alive(self.pid, self.pid_started)


_COLUMNS = [f.name for f in fields(SearchEntry)]


def own_process() -> tuple[int, float]:
    """This process's pid and start time, as :func:`process_alive` checks them."""
    pid = os.getpid()
    return pid, psutil.Process(pid).create_time()


class Registry:
    """Short-transaction access to the registry file; safe to use from several processes."""

    def __init__(self, connection: sqlite3.Connection, paths: StatePaths) -> None:
        self._db = connection
        self.paths = paths

    @classmethod
    def open(cls, paths: StatePaths | None = None) -> "Registry":
        paths = paths or state_paths()
        connection = sqlite3.connect(paths.registry, timeout=30, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA busy_timeout=30000")
        connection.execute("PRAGMA journal_mode=WAL")
        for statement in _SCHEMA:
            connection.execute(statement)
        os.chmod(paths.registry, 0o600)
        return cls(connection, paths)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()

    # ---- searches

    def register(self, folder: Path, *, kind: str, state: str, pid: int | None = None,
                 pid_started: float | None = None, priority: int = 1, argv: str = "[]") -> SearchEntry:
        """Add the search in ``folder``, or take over its entry (same folder, same id) if it has one."""
        folder_text = str(Path(folder).resolve())
        now = time.time()
        existing = self.by_folder(folder_text)
        if existing is not None:
            self.update(existing.id, kind=kind, state=state, pid=pid, pid_started=pid_started, ended=None,
                        exit_code=None)
            return self.get(existing.id)  # type: ignore[return-value]
        while True:
            search_id = secrets.token_hex(4)
            try:
                self._db.execute(
                    "INSERT INTO searches (id, folder, kind, state, priority, pid, pid_started, host, submitted, "
                    "updated, argv) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (search_id, folder_text, kind, state, priority, pid, pid_started, socket.gethostname(), now,
                     now, argv),
                )
                return self.get(search_id)  # type: ignore[return-value]
            except sqlite3.IntegrityError:
                if self.by_folder(folder_text) is not None:  # another process registered it just now
                    return self.by_folder(folder_text)  # type: ignore[return-value]

    def update(self, search_id: str, **values: Any) -> None:
        """Set some fields of one entry (``updated`` is set too)."""
        unknown = set(values) - set(_COLUMNS)
        if unknown:
            raise ValueError(f"unknown registry fields {sorted(unknown)}")
        values["updated"] = time.time()
        assignments = ", ".join(f"{name} = ?" for name in values)
        self._db.execute(f"UPDATE searches SET {assignments} WHERE id = ?", (*values.values(), search_id))

    def get(self, search_id: str) -> SearchEntry | None:
        return self._one("SELECT * FROM searches WHERE id = ?", (search_id,))

    def by_folder(self, folder: Path | str) -> SearchEntry | None:
        return self._one("SELECT * FROM searches WHERE folder = ?", (str(Path(folder).resolve()),))

    def entries(self, include_over: bool = True) -> list[SearchEntry]:
        """Every search, oldest first; without ``include_over`` only the active ones."""
        rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM searches ORDER BY submitted, id").fetchall()
        found = [SearchEntry(*row) for row in rows]
        return found if include_over else [entry for entry in found if entry.active]

    def resolve(self, text: str) -> SearchEntry | None:
        """The search named by an id, a unique id prefix, or its folder; None if none matches.

        Raises:
            UsageError: The prefix matches more than one search.
        """
        if os.sep in text or Path(text).is_dir():
            return self.by_folder(text)
        matches = [entry for entry in self.entries() if entry.id.startswith(text)]
        if len(matches) > 1:
            raise UsageError(f"search {text!r} is ambiguous: {', '.join(entry.id for entry in matches)}")
        return matches[0] if matches else None

    def _one(self, query: str, parameters: tuple) -> SearchEntry | None:
        row = self._db.execute(query.replace("*", ", ".join(_COLUMNS), 1), parameters).fetchone()
        return SearchEntry(*row) if row else None

    # ---- the service itself

    def set_service(self, **values: Any) -> None:
        """Record facts about the running service (pid, started, last_seen, url, ...)."""
        for name, value in values.items():
            self._db.execute("INSERT OR REPLACE INTO service (name, value) VALUES (?, ?)", (name, str(value)))

    def service_info(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT name, value FROM service").fetchall())



def end_state(exit_code: int | None) -> str:
    """The registry state of a search whose driver ended with ``exit_code`` (None: it raised)."""
    if exit_code == 0:
        return "finished"
    if exit_code is not None and exit_code > 128:
        return "stopped"
    return "failed"


class ForegroundEntry:
    """A foreground driver's entry in the registry, from its start to its end.

    The registry is a convenience for ``hpsearch list``/``status``: a registry
    that cannot be written (no home, a full disk, a foreign state folder)
    must never fail the search, so the first problem is warned about and
    the entry is given up.

    Use as ``with ForegroundEntry(folder, argv, warn) as entry: ... return entry.ended(code)``.
    """

    def __init__(self, folder: Path, argv: list[str], warn) -> None:
        self.folder = folder
        self.argv = argv
        self.warn = warn
        self.id: str | None = None
        self.exit_code: int | None = None

    def __enter__(self) -> "ForegroundEntry":
        pid, started = own_process()
        self._try(lambda registry: setattr(self, "id", registry.register(
            self.folder, kind=FOREGROUND, state="running", pid=pid, pid_started=started,
            argv=json.dumps(self.argv)).id))
        return self

    def ended(self, exit_code: int) -> int:
        self.exit_code = exit_code
        return exit_code

    def __exit__(self, kind: type | None, _exc: Any, _tb: Any) -> None:
        if self.id is None:
            return
        code = 128 + 2 if kind is KeyboardInterrupt else self.exit_code
        self._try(lambda registry: registry.update(self.id, state=end_state(code), exit_code=code,
                                                   ended=time.time()))

    def _try(self, action) -> None:
        try:
            with Registry.open() as registry:
                action(registry)
        except (sqlite3.Error, OSError, UsageError) as exc:
            self.id = None
            self.warn(f"warning: cannot record this search in the registry of searches ({exc}); "
                      "hpsearch list will not show it")
