"""The run store: one SQLite database per search folder, and the driver lock.

Every configuration of a search is a row: its key, folder, status, attempts,
where it runs and how it ended. Each mutating call is one transaction with
``synchronous=FULL``, so a ``kill -9`` (or a power cut) at any instant leaves
the previous state or the next one, never a mix. The journal is WAL on a local
disk and a rollback journal on a network file system, where WAL's shared
memory does not work (:mod:`hpsearch.filesystem`). A database that SQLite
cannot read is reported as :class:`CorruptStoreError`; the driver then moves
it aside and rebuilds the store from the run folders (:mod:`hpsearch.rebuild`).

Only one driver may work on a search folder; :class:`SearchLock` makes sure
of that with an ``flock`` that the kernel drops when its holder dies.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from hpsearch.errors import StoreError
from hpsearch.runs import JobHandle, RunStatus
from hpsearch.filesystem import filesystem_type, journal_mode_for

STORE_FILE = "hpsearch.db"
LOCK_FILE = ".hpsearch.lock"
SCHEMA_VERSION = 1

_TABLES_V1 = (
    """CREATE TABLE runs (
    idx INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    config TEXT NOT NULL,
    run_dir TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    backend TEXT,
    job_id TEXT,
    location TEXT,
    extra TEXT NOT NULL DEFAULT '{}',
    started REAL,
    ended REAL,
    exit_code INTEGER,
    signal INTEGER,
    reason TEXT,
    summary TEXT,
    backend_state TEXT
    )""",
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
)
# Index entries end with the rowid (= idx), so runs_by_status is ordered by index too.
_INDEXES = {
    "runs_key": "CREATE UNIQUE INDEX runs_key ON runs (key)",
    "runs_by_status": "CREATE INDEX runs_by_status ON runs (status)",
}
# Adding more rows than this (and than are stored) rebuilds the indexes
# afterwards instead of updating them row by row: several times faster.
_BULK_ROWS = 20_000


def _create_v1(db: sqlite3.Connection) -> None:
    # One statement at a time: executescript() would commit the open transaction.
    for statement in (*_TABLES_V1, *_INDEXES.values()):
        db.execute(statement)


# MIGRATIONS[v] upgrades a database of schema version v to v + 1; version 0 is
# an empty file. A later schema adds its step here and bumps SCHEMA_VERSION.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    0: _create_v1,
}

# Configurations are JSON-like by construction (hpsearch.space checks), so the
# encoder may skip its cycle check; that saves a fifth of a million-run insert.
_config_json = json.JSONEncoder(check_circular=False).encode

# The columns of ``runs`` and the RunRecord field each one fills, in one list:
# SELECTs, the row mapping and the schema check are all derived from it.
_RECORD_COLUMNS: tuple[tuple[str, str], ...] = (
    ("key", "key"), ("idx", "index"), ("config", "config"), ("run_dir", "run_dir"), ("status", "status"),
    ("attempts", "attempts"), ("backend", "backend"), ("job_id", "job_id"), ("location", "where"),
    ("extra", "extra"), ("started", "started"), ("ended", "ended"), ("exit_code", "exit_code"),
    ("signal", "signal"), ("reason", "reason"), ("summary", "summary"), ("backend_state", "backend_state"),
)
_COLUMNS = ", ".join(column for column, _ in _RECORD_COLUMNS)
_FIELDS = tuple(name for _, name in _RECORD_COLUMNS)
_FIELDS_BY_COLUMN = dict(_RECORD_COLUMNS)
_INSERT_ALL = f"INSERT INTO runs ({_COLUMNS}) VALUES ({', '.join('?' * len(_RECORD_COLUMNS))})"


def _json_or_none(text: str | None) -> Any:
    return None if text is None else json.loads(text)


# Fields stored as text in another form than they have in a RunRecord: (decode, encode).
_CODECS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "config": (json.loads, _config_json),
    "status": (RunStatus, lambda status: RunStatus(status).value),
    "extra": (lambda text: json.loads(text or "{}"), lambda extra: json.dumps(extra or {})),
    "summary": (_json_or_none, lambda summary: None if summary is None else json.dumps(summary)),
}

# SQLite result codes (primary) that mean the file is no (intact) database.
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26


class CorruptStoreError(StoreError):
    """The database file is damaged or no SQLite database (not: busy, or newer)."""


class SearchLock:
    """Exclusive lock on a search folder, held for the driver's lifetime.

    It is an ``flock`` on ``<search_dir>/.hpsearch.lock`` taken without
    waiting; the kernel releases it when the holder exits in any way
    (``kill -9`` included), so a stale lock cannot exist. The holder writes
    its pid and host into the file for the message the next driver sees.
    Usable as a context manager.

    On NFS (Linux 2.6.12 and later) ``flock`` is sent to the server as a
    whole-file POSIX lock, so it holds across hosts; mounted with ``nolock``
    or ``local_lock=flock|all`` it is local to one host. A lock whose holder's
    host crashed stays until the server's lease ends (NFSv4: about 90 s).
    Lustre offers it across nodes with ``-o flock``, locally with
    ``-o localflock`` and not at all otherwise (then the driver stops with
    a message saying so, ENOSYS); GPFS holds it across nodes; CIFS sends it
    to the server as an SMB lock from Linux 5.5 on.
    """

    def __init__(self, search_dir: Path) -> None:
        self.search_dir = Path(search_dir)
        self.path = self.search_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock.

        Raises:
            StoreError: Another process holds it, or the lock file cannot be used.
        """
        if self._fd is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot create the lock file {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise StoreError(
                f"another hpsearch driver ({holder}) is running on {self.search_dir}; "
                "wait for it to end or stop it before starting another"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise StoreError(f"cannot lock {self.path}: {exc.strerror or exc}{_lock_hint(self.search_dir, exc)}"
                             ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {os.uname().nodename}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Give the lock up; the file stays (removing it would race with a new holder)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the last descriptor drops the flock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "SearchLock":
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def lock_holder(search_dir: Path) -> str | None:
    """``pid 123 on host`` if a driver holds the lock of ``search_dir``, else None.

    Only looks: the lock is not taken and the file is not created, so readers
    such as the postprocessor can warn that a driver is still writing.
    """
    try:
        fd = os.open(Path(search_dir) / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_holder(fd)
    except OSError:
        return None
    finally:
        os.close(fd)
    return None


def _lock_hint(search_dir: Path, exc: OSError) -> str:
    """What to do when the file system offers no flock at all."""
    if exc.errno not in (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP):
        return ""
    fstype = filesystem_type(search_dir) or "unknown"
    return (f" (the {fstype} file system of the search folder offers no locks: mount it with locking, "
            "e.g. Lustre with -o flock, NFS without nolock, or put --out_dir on another disk)")


def _read_holder(fd: int) -> str:
    """``pid 123 on host`` from the lock file, as far as it can be read."""
    try:
        words = os.pread(fd, 256, 0).decode(errors="replace").split()
    except OSError:
        words = []
    if len(words) >= 2:
        return f"pid {words[0]} on {words[1]}"
    return "pid unknown"


@dataclass(frozen=True)
class StatusTally:
    """The runs in one status: how many, how many have a start and an end, and their summed duration (s)."""

    count: int
    timed: int
    seconds: float


@dataclass
class RunRecord:
    """One configuration as the store knows it.

    ``run_dir`` is the run folder's name, relative to the search folder, so a
    search folder can be moved. ``where`` is the human-readable placement
    (``gpu 2``), ``extra`` the executor's adoption facts (``JobHandle.extra``).
    """

    key: str
    index: int
    config: dict
    run_dir: str
    status: RunStatus
    attempts: int = 0
    backend: str | None = None
    job_id: str | None = None
    where: str | None = None
    extra: dict = field(default_factory=dict)
    started: float | None = None
    ended: float | None = None
    exit_code: int | None = None
    signal: int | None = None
    reason: str | None = None
    summary: dict | None = None
    backend_state: str | None = None

    @classmethod
    def from_row(cls, row: tuple) -> "RunRecord":
        values = dict(zip(_FIELDS, row))
        for name, (decode, _) in _CODECS.items():
            values[name] = decode(values[name])
        return cls(**values)

    def to_row(self) -> tuple:
        """The values of the record in the order of ``_COLUMNS``."""
        return tuple(_CODECS[name][1](getattr(self, name)) if name in _CODECS else getattr(self, name)
                     for name in _FIELDS)


class RunStore:
    """The run store of one search folder (``<search_dir>/hpsearch.db``).

    Every mutating method is one transaction. One connection is kept open for
    the store's lifetime; it belongs to the thread that opened the store.
    Errors of SQLite become :class:`~hpsearch.errors.StoreError` naming the
    database file.
    """

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection

    # ---- opening

    @classmethod
    def open(cls, search_dir: Path, *, journal_mode: str | None = None, check: bool = False,
             readonly: bool = False) -> "RunStore":
        """Open the store of ``search_dir``, creating or upgrading the database as needed.

        ``journal_mode`` defaults to what the folder's file system allows
        (:func:`hpsearch.filesystem.journal_mode_for`). ``check`` runs SQLite's
        ``quick_check`` (a tenth of a second per 300,000 runs), for the driver,
        which is about to trust the store. ``readonly`` opens an existing
        database for reading only, creating nothing (for the postprocessor,
        also on a read-only folder).

        Raises:
            CorruptStoreError: The file is damaged, truncated, empty, or no SQLite database.
            StoreError: The folder is missing, the database is busy or unreadable,
                or it was written by a newer hpsearch.
        """
        path = Path(search_dir) / STORE_FILE
        if not Path(search_dir).is_dir():
            raise StoreError(f"run store {path}: the search folder does not exist")
        if path.is_file() and path.stat().st_size == 0:
            raise CorruptStoreError(f"run store {path}: the file is empty")
        try:
            if readonly:
                connection = _connect_readonly(path)
            else:
                connection = sqlite3.connect(path, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise _store_error(path, exc, "cannot open: ") from None
        store = cls(path, connection)
        try:
            with store._errors():
                if not readonly:
                    mode = journal_mode or journal_mode_for(Path(search_dir))
                    connection.execute(f"PRAGMA journal_mode={mode}")
                    connection.execute("PRAGMA synchronous=FULL")
                    store._migrate()
                if check:
                    store._check()
        except StoreError:
            connection.close()
            raise
        return store

    def _check(self) -> None:
        """Raise CorruptStoreError unless SQLite finds the file intact and the schema is ours."""
        problems = [row[0] for row in self._db.execute("PRAGMA quick_check").fetchall()]
        if problems != ["ok"]:
            raise CorruptStoreError(f"run store {self.path}: damaged ({'; '.join(problems[:3])})")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(runs)")}
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if columns != set(_FIELDS_BY_COLUMN) or "meta" not in tables:
            raise CorruptStoreError(f"run store {self.path}: not the tables of an hpsearch run store")

    @property
    def journal_mode(self) -> str:
        """The journal mode in use (``wal``, ``delete``, ...)."""
        return self._query("PRAGMA journal_mode")[0][0]

    def _migrate(self) -> None:
        with self._transaction() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"run store {self.path}: schema version {version} is newer than this hpsearch "
                    f"understands ({SCHEMA_VERSION}); upgrade hpsearch"
                )
            for step in range(version, SCHEMA_VERSION):
                MIGRATIONS[step](db)
            if version != SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- plumbing

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise _store_error(self.path, exc) from None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it is committed, or none of it."""
        with self._errors():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._errors():
            return self._db.execute(sql, params).fetchall()

    def _update(self, key: str, sql: str, params: tuple) -> None:
        """Run one ``UPDATE runs ... WHERE key = ?`` that must hit exactly one row."""
        with self._transaction() as db:
            if db.execute(sql, (*params, key)).rowcount != 1:
                raise StoreError(f"run store {self.path}: no configuration with key {key!r}")

    # ---- settings of the search

    def get_meta(self, name: str, default: Any = None) -> Any:
        rows = self._query("SELECT value FROM meta WHERE name = ?", (name,))
        return json.loads(rows[0][0]) if rows else default

    def set_meta(self, name: str, value: Any) -> None:
        text = json.dumps(value)
        with self._transaction() as db:
            db.execute("INSERT INTO meta (name, value) VALUES (?, ?) "
                       "ON CONFLICT (name) DO UPDATE SET value = excluded.value", (name, text))

    # ---- configurations

    def add_configs(self, items: Iterable[tuple[str, dict]], name_for_index: Callable[[int], str]) -> int:
        """Store the configurations not stored yet (by key) as queued.

        New configurations get the next free indexes (0-based) in iteration
        order, from the meta value ``next_index`` on if it is set (a rebuilt
        store skips the numbers of folders it could not read), and the run
        folder ``name_for_index(index)``; stored ones are
        left untouched, so indexes and folders never change on resume.
        Returns how many were added.
        """
        with self._transaction() as db:
            known = {key for (key,) in db.execute("SELECT key FROM runs")}
            next_index = db.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM runs").fetchone()[0]
            floor = db.execute("SELECT value FROM meta WHERE name = 'next_index'").fetchone()
            next_index = max(next_index, int(json.loads(floor[0])) if floor else 0)
            stored = len(known)
            rows = []
            for key, config in items:
                if key in known:
                    continue
                known.add(key)
                rows.append((key, next_index, _config_json(config), name_for_index(next_index),
                             RunStatus.QUEUED.value))
                next_index += 1
            bulk = len(rows) > max(_BULK_ROWS, stored)
            if bulk:
                for name in _INDEXES:
                    db.execute(f"DROP INDEX {name}")
            db.executemany("INSERT INTO runs (key, idx, config, run_dir, status) VALUES (?, ?, ?, ?, ?)", rows)
            if bulk:
                for statement in _INDEXES.values():
                    db.execute(statement)
        return len(rows)

    def restore(self, records: Iterable[RunRecord], meta: dict[str, Any] | None = None) -> int:
        """Store complete records as they are, and ``meta`` values, in one
        transaction (rebuilding a lost store); returns how many records.

        Raises:
            StoreError: A key or an index is stored already.
        """
        rows = [record.to_row() for record in records]
        with self._transaction() as db:
            db.executemany(_INSERT_ALL, rows)
            db.executemany("INSERT INTO meta (name, value) VALUES (?, ?) "
                           "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                           [(name, json.dumps(value)) for name, value in (meta or {}).items()])
        return len(rows)

    def get(self, key: str) -> RunRecord | None:
        rows = self._query(f"SELECT {_COLUMNS} FROM runs WHERE key = ?", (key,))
        return RunRecord.from_row(rows[0]) if rows else None

    def records(self, statuses: Iterable[RunStatus] | None = None) -> list[RunRecord]:
        """Records ordered by index, all of them or those in ``statuses``."""
        if statuses is None:
            rows = self._query(f"SELECT {_COLUMNS} FROM runs ORDER BY idx")
        else:
            values = tuple(RunStatus(status).value for status in statuses)
            if not values:
                return []
            marks = ", ".join("?" * len(values))
            rows = self._query(f"SELECT {_COLUMNS} FROM runs WHERE status IN ({marks}) ORDER BY idx", values)
        return [RunRecord.from_row(row) for row in rows]

    def queued(self, limit: int) -> list[RunRecord]:
        """The first ``limit`` queued records by index."""
        rows = self._query(f"SELECT {_COLUMNS} FROM runs WHERE status = ? ORDER BY idx LIMIT ?",
                           (RunStatus.QUEUED.value, max(0, limit)))
        return [RunRecord.from_row(row) for row in rows]

    def done_summaries(self) -> list[tuple[str, dict | None]]:
        """(run folder, summary) of every done run: less to decode than whole records."""
        rows = self._query("SELECT run_dir, summary FROM runs WHERE status = ? ORDER BY idx", (RunStatus.DONE.value,))
        return [(run_dir, _json_or_none(summary)) for run_dir, summary in rows]

    def result_rows(self) -> list[tuple]:
        """Every run as (index, key, config JSON, run folder, status, attempts, where, started, ended,
        reason, summary JSON), by index: undecoded, for :func:`hpsearch.results.load_results`."""
        return self._query("SELECT idx, key, config, run_dir, status, attempts, location, started, ended, "
                           "reason, summary FROM runs ORDER BY idx")

    # ---- read-only queries for status views (few rows decoded, whatever the size of the search)

    @contextmanager
    def reading(self) -> Iterator["RunStore"]:
        """One short read transaction, so that the queries inside see one state of the search.

        It never writes and, in WAL mode, never blocks the driver; on a rollback
        journal the driver's commit waits (within its busy timeout) until it ends.
        """
        with self._errors():
            self._db.execute("BEGIN")
        try:
            yield self
        finally:
            if self._db.in_transaction:
                with self._errors():
                    self._db.execute("COMMIT")

    def schema_version(self) -> int:
        """The database's schema version; 0 while a new store is still being created."""
        return int(self._query("PRAGMA user_version")[0][0])

    def tally(self) -> dict[RunStatus, StatusTally]:
        """Per status (every status, zeros included): how many runs, and how long the
        latest attempts that have a start and an end took, in one query."""
        tallies = {status: StatusTally(0, 0, 0.0) for status in RunStatus}
        for status, count, timed, seconds in self._query(
                "SELECT status, COUNT(*), COUNT(ended - started), TOTAL(MAX(ended - started, 0)) "
                "FROM runs GROUP BY status"):
            tallies[RunStatus(status)] = StatusTally(count, timed, seconds)
        return tallies

    def at_index(self, index: int) -> RunRecord | None:
        rows = self._query(f"SELECT {_COLUMNS} FROM runs WHERE idx = ?", (index,))
        return RunRecord.from_row(rows[0]) if rows else None

    def by_run_dir(self, run_dir: str) -> RunRecord | None:
        rows = self._query(f"SELECT {_COLUMNS} FROM runs WHERE run_dir = ? LIMIT 1", (run_dir,))
        return RunRecord.from_row(rows[0]) if rows else None

    def with_key_prefix(self, prefix: str, limit: int) -> list[RunRecord]:
        """Up to ``limit`` records whose key starts with ``prefix`` (a range on the key index)."""
        if not prefix:
            return []
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        rows = self._query(f"SELECT {_COLUMNS} FROM runs WHERE key >= ? AND key < ? ORDER BY key LIMIT ?",
                           (prefix, upper, limit))
        return [RunRecord.from_row(row) for row in rows]

    def last_ended(self, statuses: Iterable[RunStatus], limit: int) -> list[RunRecord]:
        """The ``limit`` records in ``statuses`` that ended last, latest first."""
        values = tuple(RunStatus(status).value for status in statuses)
        marks = ", ".join("?" * len(values))
        rows = self._query(f"SELECT {_COLUMNS} FROM runs WHERE status IN ({marks}) "
                           "ORDER BY ended DESC, idx DESC LIMIT ?", (*values, max(0, limit)))
        return [RunRecord.from_row(row) for row in rows]

    def best_done(self, name: str, ascending: bool,
                  rank: Callable[[Any], float | None]) -> tuple[float, RunRecord] | None:
        """The done run with the best summary value ``name`` (first by index on a tie), and that value.

        SQLite ranks the summaries that are strict JSON (a number, or a list's
        last element, as ``rank`` would); the few that are not (a NaN or an
        infinity somewhere) are decoded here and ranked by ``rank``.
        """
        path = f'$."{name}"'
        order = "ASC" if ascending else "DESC"
        found: list[tuple[float, int]] = []
        if '"' not in name and "\\" not in name:
            rows = self._query(
                "SELECT v, idx FROM (SELECT idx, CASE json_type(summary, ?1) "
                "WHEN 'integer' THEN json_extract(summary, ?1) WHEN 'real' THEN json_extract(summary, ?1) "
                "WHEN 'array' THEN CASE WHEN json_type(summary, ?1 || '[#-1]') IN ('integer', 'real') "
                "THEN json_extract(summary, ?1 || '[#-1]') END END AS v "
                "FROM runs WHERE status = ?2 AND json_valid(summary)) "
                f"WHERE v IS NOT NULL ORDER BY v {order}, idx LIMIT 1", (path, RunStatus.DONE.value))
            found += [(float(value), index) for value, index in rows]
            odd = self._query("SELECT idx, summary FROM runs WHERE status = ? AND summary IS NOT NULL "
                              "AND NOT json_valid(summary)", (RunStatus.DONE.value,))
        else:
            odd = self._query("SELECT idx, summary FROM runs WHERE status = ? AND summary IS NOT NULL",
                              (RunStatus.DONE.value,))
        for index, text in odd:
            summary = _json_or_none(text)
            value = rank(summary.get(name)) if isinstance(summary, dict) else None
            if value is not None:
                found.append((value, index))
        if not found:
            return None
        value, index = min(found, key=lambda item: (item[0] if ascending else -item[0], item[1]))
        record = self.at_index(index)
        return None if record is None else (value, record)

    def counts(self) -> dict[RunStatus, int]:
        """How many records are in each status (every status present, zeros included)."""
        counts = dict.fromkeys(RunStatus, 0)
        for status, number in self._query("SELECT status, COUNT(*) FROM runs GROUP BY status"):
            counts[RunStatus(status)] = number
        return counts

    # ---- life cycle of a run

    def mark_running(self, key: str, handle: JobHandle, started: float) -> None:
        """A new attempt started: count it, remember where, forget the previous outcome."""
        self._update(
            key,
            "UPDATE runs SET status = ?, attempts = attempts + 1, backend = ?, job_id = ?, location = ?, "
            "extra = ?, started = ?, ended = NULL, exit_code = NULL, signal = NULL, reason = NULL, "
            "summary = NULL, backend_state = NULL WHERE key = ?",
            (RunStatus.RUNNING.value, handle.backend, handle.job_id, handle.where or None,
             json.dumps(handle.extra or {}), started),
        )

    def mark_final(
        self,
        key: str,
        status: RunStatus,
        *,
        reason: str | None,
        exit_code: int | None,
        signal: int | None,
        summary: dict | None,
        ended: float,
        backend_state: str | None,
    ) -> None:
        """Record how a run ended (done, failed, timed out, or interrupted)."""
        status = RunStatus(status)
        if status in (RunStatus.QUEUED, RunStatus.RUNNING):
            raise ValueError(f"mark_final needs an end status, got {status.value}")
        self._update(
            key,
            "UPDATE runs SET status = ?, reason = ?, exit_code = ?, signal = ?, summary = ?, ended = ?, "
            "backend_state = ? WHERE key = ?",
            (status.value, reason, exit_code, signal, None if summary is None else json.dumps(summary), ended,
             backend_state),
        )

    def requeue(self, key: str, reason: str | None = None) -> None:
        """Put a run back in the queue (a retry, or a run cut short); its attempts are kept."""
        self._update(
            key,
            "UPDATE runs SET status = ?, reason = ?, backend = NULL, job_id = NULL, location = NULL, "
            "extra = '{}', started = NULL, ended = NULL, exit_code = NULL, signal = NULL, summary = NULL, "
            "backend_state = NULL WHERE key = ?",
            (RunStatus.QUEUED.value, reason),
        )

    def running_handles(self) -> list[JobHandle]:
        """Handles of the runs marked running, for a resumed driver to adopt."""
        return [
            JobHandle(record.key, record.backend or "", record.job_id or "", record.where or "", record.extra)
            for record in self.records([RunStatus.RUNNING])
        ]


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection; ``immutable`` where the folder allows no -shm file."""
    if not path.is_file():
        raise sqlite3.OperationalError("no such file")
    uri = path.resolve().as_uri()
    connection = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30, isolation_level=None)
    try:
        connection.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return connection
    except sqlite3.OperationalError:
        connection.close()
        if os.access(path.parent, os.W_OK):
            raise
    # Nobody can write in a read-only folder, so reading it as immutable is safe.
    return sqlite3.connect(f"{uri}?immutable=1", uri=True, timeout=30, isolation_level=None)


def _store_error(path: Path, exc: sqlite3.Error, prefix: str = "") -> StoreError:
    """StoreError naming the file; CorruptStoreError when SQLite says the file is damaged."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is None:
        corrupt = str(exc) in ("file is not a database", "database disk image is malformed")
    else:
        corrupt = code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    return (CorruptStoreError if corrupt else StoreError)(f"run store {path}: {prefix}{exc}")


def set_aside_damaged(search_dir: Path, stamp: str) -> Path:
    """Move ``hpsearch.db`` (and its -wal and -shm) to ``hpsearch.db.corrupt-<stamp>``; returns the new path.

    The copy stays for a post-mortem; the driver holds the search lock, so no
    other driver has the file open.
    """
    base = Path(search_dir) / STORE_FILE
    target = base.with_name(f"{STORE_FILE}.corrupt-{stamp}")
    number = 1
    while target.exists():
        number += 1
        target = base.with_name(f"{STORE_FILE}.corrupt-{stamp}-{number}")
    for suffix in ("", "-wal", "-shm", "-journal"):
        source = base.with_name(base.name + suffix)
        if source.exists():
            source.replace(target.with_name(target.name + suffix))
    return target
