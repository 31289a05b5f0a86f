"""What ``hpsearch status``, ``hpsearch list`` and the web page show, as plain dicts.

Everything is read, nothing is written: the registry says which searches exist
and who drives them, each search folder says what it holds (its store opened
read-only, one short read transaction per search, a few indexed queries and
no per-run file reads, so a search of 20,000 runs is read in tens of
milliseconds), and the service, if it answers on its socket, adds the live
part (uptime, GPU readings). A reader must never break a running search
(a status page once crashed optuna's studies with "database is locked"), so
every failure to read becomes an ``error`` field, never an exception, and a
cluster search's jobs are shown from its store, never by asking the scheduler.

The dicts follow the versioned schema in docs/service.md ("status --json
schema"); :data:`SCHEMA_VERSION` changes when a field changes meaning or goes.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from hpsearch.errors import HpsearchError, UsageError
from hpsearch.runs import RunStatus
from hpsearch.report import ranking_value
from hpsearch.searchdir import holds_search, saved_settings
from hpsearch.service.paths import StatePaths, state_paths
from hpsearch.service.registry import Registry, SearchEntry, process_alive
from hpsearch.store import STORE_FILE, RunRecord, RunStore

SCHEMA_VERSION = 1
FAILURES_SHOWN = 5
OVER_STATES = ("finished", "failed", "cancelled")
"""Registry states of searches that are over: ``list`` and ``status`` show them only when asked (``--all``)."""
SERVICE_TIMEOUT = 2.0
"""Seconds to wait for the service's answer before calling it down."""
_FAILED = (RunStatus.FAILED, RunStatus.TIMED_OUT)
_ENDED = (RunStatus.DONE, *_FAILED)
"""Statuses whose runs ran to an end: their durations give the mean."""


@dataclass(frozen=True)
class SearchRef:
    """A search to show: its folder, and its registry entry if it has one."""

    folder: Path
    entry: SearchEntry | None


# --------------------------------------------------------------------------- the registry


def open_registry(paths: StatePaths | None = None) -> Registry | None:
    """The registry, or None if it cannot be opened (``status DIR`` then still works)."""
    try:
        return Registry.open(paths)
    except (OSError, sqlite3.Error, HpsearchError):
        return None


def resolve_search(text: str, registry: Registry | None) -> SearchRef:
    """The search named by an id, a unique id prefix, or a folder (registered or not).

    Raises:
        UsageError: Nothing matches, or the prefix matches several searches.
    """
    entry = registry.resolve(text) if registry is not None else None
    if entry is not None:
        return SearchRef(Path(entry.folder), entry)
    folder = Path(text).expanduser()
    if folder.is_dir():
        if holds_search(folder):
            return SearchRef(folder.resolve(), None)
        raise UsageError(f"{text}: no hpsearch search folder (no {STORE_FILE}, search.json or run folder there)")
    raise UsageError(f"no search {text!r}: not a registered search id or prefix, and not a folder "
                     "(see hpsearch list --all)")


def registered(registry: Registry | None, include_over: bool) -> list[SearchEntry]:
    """The registered searches, oldest first; without ``include_over`` those not over."""
    if registry is None:
        return []
    try:
        entries = registry.entries()
    except sqlite3.Error:
        return []
    return [entry for entry in entries if include_over or entry.state not in OVER_STATES]


# --------------------------------------------------------------------------- one search


def search_snapshot(ref: SearchRef, *, now: float | None = None) -> dict[str, Any]:
    """One search as the schema's search object, its running runs and last failures included."""
    now = time.time() if now is None else now
    folder, entry = ref.folder, ref.entry
    snap: dict[str, Any] = {
        "id": entry.id if entry else None,
        "folder": str(folder),
        "registered": entry is not None,
        "kind": entry.kind if entry else None,
        "state": entry.state if entry else None,
        "priority": entry.priority if entry else None,
        "host": entry.host if entry else None,
        "driver": None,
        "submitted": entry.submitted if entry else None,
        "updated": entry.updated if entry else None,
        "ended": entry.ended if entry else None,
        "exit_code": entry.exit_code if entry else None,
        "grid_module": None,
        "performance_key": None,
        "ascending": False,
        "counts": {status.value: 0 for status in RunStatus} | {"total": 0},
        "queue_length": 0,
        "best": None,
        "mean_duration_s": None,
        "eta_s": None,
        "running": [],
        "failures": [],
        "slots_held": None,
        "error": None,
    }
    settings = _settings(folder, snap)
    snap["driver"] = _driver(entry, settings)
    if folder.is_dir() and (folder / STORE_FILE).is_file():
        try:
            _read_store(folder, snap, now)
        except OSError as exc:  # moved aside or deleted as we looked
            snap["error"] = f"run store {folder / STORE_FILE}: {exc.strerror or exc}"
    elif not folder.is_dir():
        snap["error"] = f"search folder {folder} does not exist"
    if snap["state"] is None:
        snap["state"] = _derived_state(snap)
    return snap


def _settings(folder: Path, snap: dict[str, Any]) -> dict[str, Any]:
    try:
        settings = saved_settings(folder) or {}
    except (UsageError, OSError) as exc:
        snap["error"] = str(exc)
        return {}
    snap["grid_module"] = settings.get("grid_module")
    key = settings.get("performance_key")
    snap["performance_key"] = key if isinstance(key, str) and key else None
    snap["ascending"] = bool(settings.get("performance_sort_asc", False))
    return settings


def _driver(entry: SearchEntry | None, settings: dict[str, Any]) -> dict[str, Any]:
    """Who drives the search and whether it still runs (None: it runs on another host, unknowable here)."""
    here = socket.gethostname()
    if entry is not None:
        alive = entry.driver_alive() if entry.host == here else None
        return {"pid": entry.pid, "alive": alive}
    sessions = settings.get("sessions")
    last = sessions[-1] if isinstance(sessions, list) and sessions and isinstance(sessions[-1], dict) else {}
    pid, started, host = last.get("pid"), last.get("started"), last.get("host")
    if not isinstance(pid, int):
        return {"pid": None, "alive": False}
    if host not in (None, here):
        return {"pid": pid, "alive": None}
    return {"pid": pid, "alive": _session_alive(pid, started)}


def _session_alive(pid: int, saved_at: Any) -> bool:
    """The driver that saved its session at ``saved_at`` still runs: a reused pid
    belongs to a process created after that driver saved its settings."""
    if not process_alive(pid, None):
        return False
    if not isinstance(saved_at, (int, float)):
        return True
    try:
        return psutil.Process(pid).create_time() <= saved_at + 1.0
    except psutil.Error:
        return False


def _read_store(folder: Path, snap: dict[str, Any], now: float) -> None:
    if (folder / STORE_FILE).stat().st_size == 0:
        return  # a driver is creating it this instant
    try:
        store = RunStore.open(folder, readonly=True)
    except HpsearchError as exc:
        snap["error"] = str(exc)
        return
    try:
        with store.reading():
            if store.schema_version() == 0:
                return  # created, its tables not yet
            tallies = store.tally()
            best = (store.best_done(snap["performance_key"], snap["ascending"], ranking_value)
                    if snap["performance_key"] else None)
            running = store.records([RunStatus.RUNNING])
            failures = store.last_ended(_FAILED, FAILURES_SHOWN)
    except HpsearchError as exc:
        snap["error"] = str(exc)
        return
    finally:
        store.close()
    counts = {status.value: tallies[status].count for status in RunStatus}
    counts["total"] = sum(counts.values())
    snap["counts"] = counts
    snap["queue_length"] = counts[RunStatus.QUEUED.value] + counts[RunStatus.INTERRUPTED.value]
    if best is not None:
        value, record = best
        snap["best"] = {"value": value, **_run_ref(record)}
    timed = sum(tallies[status].timed for status in _ENDED)
    if timed:
        snap["mean_duration_s"] = sum(tallies[status].seconds for status in _ENDED) / timed
    if snap["driver"]["alive"] is not False:  # a search nobody drives makes no progress
        snap["eta_s"] = eta(snap["mean_duration_s"], snap["queue_length"],
                            [now - (r.started or now) for r in running])
    snap["running"] = [_running_run(folder, record, now) for record in running]
    snap["failures"] = [_failure(folder, record) for record in failures]


def eta(mean: float | None, queued: int, elapsed: list[float]) -> float | None:
    """Seconds until the queue is through, at the mean duration of ended runs on the
    slots in use now; None without ended runs or with nothing running (paused, stopped)."""
    if mean is None or not elapsed:
        return None
    work = mean * queued + sum(max(0.0, mean - seconds) for seconds in elapsed)
    return work / len(elapsed)


def _run_ref(record: RunRecord) -> dict[str, Any]:
    return {"number": record.index + 1, "key": record.key, "run": record.run_dir}


def _running_run(folder: Path, record: RunRecord, now: float) -> dict[str, Any]:
    where = record.where or ""
    gpu = where[4:].strip() if where.startswith("gpu ") else None
    pid = int(record.job_id) if record.backend == "local" and (record.job_id or "").isdigit() else None
    return {
        **_run_ref(record),
        "folder": str(folder / record.run_dir),
        "backend": record.backend,
        "job_id": record.job_id,
        "pid": pid,
        "gpu": gpu,
        "where": record.where,
        "attempt": record.attempts,
        "started": record.started,
        "elapsed_s": None if record.started is None else max(0.0, now - record.started),
    }


def _failure(folder: Path, record: RunRecord) -> dict[str, Any]:
    return {
        **_run_ref(record),
        "folder": str(folder / record.run_dir),
        "status": record.status.value,
        "reason": record.reason,
        "exit_code": record.exit_code,
        "signal": record.signal,
        "attempt": record.attempts,
        "ended": record.ended,
    }


def _derived_state(snap: dict[str, Any]) -> str:
    """The state of a search no registry entry speaks for, from its driver and its runs."""
    if snap["driver"]["alive"]:
        return "running"
    counts = snap["counts"]
    left = counts["queued"] + counts["running"] + counts["interrupted"]
    if counts["total"] and not left:
        return "finished" if counts["done"] == counts["total"] else "failed"
    return "stopped"


# --------------------------------------------------------------------------- the service


def ask_service(socket_path: Path, request: dict[str, Any], timeout: float = SERVICE_TIMEOUT) -> dict[str, Any] | None:
    """One JSON-lines request to the service; None if nobody answers (sensibly) in time."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(str(socket_path))
            conn.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n") and len(data) < 16 * 1024 * 1024:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
        answer = json.loads(data)
    except (OSError, ValueError):
        return None
    return answer if isinstance(answer, dict) else None


def service_snapshot(registry: Registry | None, paths: StatePaths, now: float
                     ) -> tuple[dict[str, Any], dict[str, Any], dict[str, dict[str, Any]]]:
    """The schema's ``service`` and ``pool`` objects, live if the service answers, else what it last
    recorded; and what the service says of each search, by id (empty when it is down)."""
    try:
        info = registry.service_info() if registry is not None else {}
    except sqlite3.Error:
        info = {}
    answer = ask_service(paths.socket, {"op": "status"})
    live = answer is not None and answer.get("ok") is True
    facts = _dict(answer.get("service")) if live else {}
    pid = _number(facts.get("pid"), int) or _number(info.get("pid"), int)
    started = _number(facts.get("started"), float) or _number(info.get("started"), float)
    last_seen = now if live else (_number(info.get("last_seen"), float) or _number(info.get("stopped"), float)
                                  or started)
    uptime = _number(facts.get("uptime_s", facts.get("uptime")), float) or (now - started if started else None)
    service = {
        "running": live,
        "pid": pid,
        "started": started,
        "uptime_s": uptime if live else None,
        "last_seen": last_seen,
        "socket": str(paths.socket),
        "queue_length": 0,
    }
    pool = _dict(answer.get("pool")) if live else {}
    kind = pool.get("kind") if pool.get("kind") in ("gpu", "cpu") else None
    described = {
        "source": "service" if live else "runs",
        "kind": kind,
        "slots_per_gpu": _number(pool.get("max_per_gpu"), int),
        "gpus": [_gpu(gpu) for gpu in pool.get("gpus") or [] if isinstance(gpu, dict)],
        "cpu_slots": _number(pool.get("cpu_slots", pool.get("num_jobs") if kind == "cpu" else None), int),
        "cpu_held_by": _names(pool.get("cpu_held_by")),
    }
    searches = {str(item["id"]): item for item in (answer.get("searches") if live else None) or []
                if isinstance(item, dict) and item.get("id") is not None}
    return service, described, searches


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _names(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def _number(value: Any, kind: type) -> Any:
    try:
        return None if value is None or isinstance(value, bool) else kind(value)
    except (TypeError, ValueError):
        return None


def _gpu(reading: dict[str, Any]) -> dict[str, Any]:
    """One GPU of the service's pool in the schema's fields (the service's names, or GPUtil's)."""
    def first(*names: str) -> Any:
        return next((reading[name] for name in names if reading.get(name) is not None), None)

    ident = first("id", "index", "gpu")
    return {
        "id": None if ident is None else str(ident),
        "name": first("name"),
        "memory_used_mb": _number(first("memory_used_mb", "memory_used", "memoryUsed"), float),
        "memory_total_mb": _number(first("memory_total_mb", "memory_total", "memoryTotal"), float),
        "load": _number(first("load"), float),
        "held_by": _names(reading.get("held_by")),
        "runs": [],
    }


def _attach_runs(pool: dict[str, Any], searches: list[dict[str, Any]]) -> None:
    """Which runs hold each GPU, from the searches' stores; GPUs only the runs name are added."""
    by_id = {gpu["id"]: gpu for gpu in pool["gpus"]}
    for search in searches:
        for run in search.get("running", []):
            if run["gpu"] is None:
                continue
            for gpu_id in run["gpu"].split(","):
                gpu = by_id.get(gpu_id.strip())
                if gpu is None:
                    gpu = _gpu({"id": gpu_id.strip()})
                    by_id[gpu["id"]] = gpu
                    pool["gpus"].append(gpu)
                gpu["runs"].append({"search": search["id"], "folder": search["folder"], "number": run["number"],
                                    "key": run["key"], "run": run["run"], "pid": run["pid"]})


# --------------------------------------------------------------------------- documents


def overview(registry: Registry | None, *, include_over: bool = False, paths: StatePaths | None = None
             ) -> dict[str, Any]:
    """``status`` without a search: the service, its pool, and every search not over (all with ``include_over``)."""
    now = time.time()
    paths = paths or state_paths(create=False)
    service, pool, told = service_snapshot(registry, paths, now)
    searches = [search_snapshot(SearchRef(Path(entry.folder), entry), now=now)
                for entry in registered(registry, include_over)]
    for search in searches:
        search["slots_held"] = _number(told.get(search["id"] or "", {}).get("slots_held"), int)
    service["queue_length"] = sum(s["queue_length"] for s in searches if s["kind"] == "service")
    _attach_runs(pool, searches)
    return {"schema_version": SCHEMA_VERSION, "kind": "overview", "generated": now, "service": service,
            "pool": pool, "searches": searches}


def search_document(ref: SearchRef) -> dict[str, Any]:
    """``status SEARCH``: one search in detail."""
    now = time.time()
    return {"schema_version": SCHEMA_VERSION, "kind": "search", "generated": now,
            "search": search_snapshot(ref, now=now)}


def listing(registry: Registry | None, *, include_over: bool = False) -> dict[str, Any]:
    """``list``: every registered search not over (all with ``include_over``)."""
    now = time.time()
    searches = [search_snapshot(SearchRef(Path(entry.folder), entry), now=now)
                for entry in registered(registry, include_over)]
    return {"schema_version": SCHEMA_VERSION, "kind": "list", "generated": now, "searches": searches}
