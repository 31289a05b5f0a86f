"""What the web page reads: a small provider interface and a thin adapter over the registry.

The dicts use the field names of the ``status --json`` schema (docs/service.md,
``hpsearch/service/snapshot.py``), so a provider over those snapshots is a few
lines; the page needs, in addition, every run of a search (:func:`search_runs`):

- ``searches()`` -> list of search dicts: ``id, folder, kind, state, priority,
  submitted, updated, performance_key, ascending, counts {status: n, "total": n},
  queue_length, best`` (``best`` is ``{"value", "number", "key", "run"}`` or None);
- ``search(id)`` -> one search dict with, in addition, what :func:`search_runs`
  gives: ``grid_keys``, ``summary_filename`` and ``runs`` (each ``number, key,
  run, status, where, started, ended, reason, exit_code, config, summary,
  value``); None if there is no such search;
- ``pool()`` -> the schema's ``pool`` object with ``"service"`` (the schema's
  ``service`` object) added: ``{"service": {"running", "pid", "started", ...},
  "source", "cpu_slots", "gpus": [{"id", "name", "memory_used_mb",
  "memory_total_mb", "load", "runs": [{"search", "run", ...}]}], ...}``.

:class:`RegistryProvider` reads them from the registry and each search's store,
opened read-only for one short transaction per call, so a page never breaks a
running search. Any object with these three methods will do.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from hpsearch.errors import StoreError
from hpsearch.report import ranking_value
from hpsearch.runs import RunStatus
from hpsearch.searchdir import SETTINGS_FILE, saved_settings
from hpsearch.service.paths import StatePaths
from hpsearch.service.registry import Registry, SearchEntry
from hpsearch.service.snapshot import service_snapshot
from hpsearch.store import STORE_FILE, RunRecord, RunStore

STATUSES = ("queued", "running", "done", "failed", "timed_out", "interrupted")


class Provider(Protocol):
    def searches(self) -> list[dict[str, Any]]: ...

    def search(self, search_id: str) -> dict[str, Any] | None: ...

    def pool(self) -> dict[str, Any]: ...


class RegistryProvider:
    """The provider interface over the registry and the read-only run stores."""

    def __init__(self, paths: StatePaths) -> None:
        self.paths = paths
        self._cache: dict[str, tuple[tuple, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def searches(self) -> list[dict[str, Any]]:
        with Registry.open(self.paths) as registry:
            entries = registry.entries()
        return [_without_runs(self._describe(entry)) for entry in entries]

    def search(self, search_id: str) -> dict[str, Any] | None:
        with Registry.open(self.paths) as registry:
            entry = registry.get(search_id)
        return self._describe(entry) if entry else None

    def pool(self) -> dict[str, Any]:
        """The service and its GPUs with their readings (``snapshot.service_snapshot``), and the runs on them."""
        with Registry.open(self.paths) as registry:
            service, pool, _ = service_snapshot(registry, self.paths, time.time())
            entries = registry.entries(include_over=False)
        gpus = {gpu["id"]: gpu for gpu in pool["gpus"]}
        for entry in entries:
            for run in _running_runs(Path(entry.folder)):
                where = run.get("where") or ""
                if not where.startswith("gpu "):
                    continue
                for gpu_id in (part.strip() for part in where[4:].split(",")):
                    gpu = gpus.setdefault(gpu_id, {"id": gpu_id, "name": None, "memory_used_mb": None,
                                                   "memory_total_mb": None, "load": None, "runs": []})
                    gpu["runs"].append({"search": entry.id, "folder": entry.folder, "number": run["number"],
                                        "key": run["key"], "run": run["run"]})
        return {**pool, "service": service, "gpus": [gpus[key] for key in sorted(gpus, key=_gpu_order)]}

    def _describe(self, entry: SearchEntry) -> dict[str, Any]:
        """The search's dict, read again only when its registry entry or its store changed.

        A page polls every 2 s; re-reading 20,000 runs each time would cost the
        machine a core. Every commit to the store changes the database file or
        its WAL, so their sizes and times tell when to read again. The same
        dict object comes back while nothing changed (the app caches on it).
        """
        signature = (entry.updated, entry.state, entry.priority, _file_stamps(Path(entry.folder)))
        with self._lock:
            cached = self._cache.get(entry.id)
        if cached and cached[0] == signature:
            return cached[1]
        described = self._read(entry)
        with self._lock:
            self._cache[entry.id] = (signature, described)
        return described

    def _read(self, entry: SearchEntry) -> dict[str, Any]:
        extras = search_runs(Path(entry.folder))
        runs = extras["runs"]
        counts = {status: 0 for status in STATUSES}
        for run in runs:
            counts[run["status"]] = counts.get(run["status"], 0) + 1
        counts["total"] = len(runs)
        return {
            "id": entry.id, "folder": entry.folder, "kind": entry.kind, "state": entry.state,
            "priority": entry.priority, "submitted": entry.submitted, "updated": entry.updated,
            "performance_key": extras["performance_key"], "ascending": extras["ascending"], "counts": counts,
            "queue_length": counts["queued"] + counts["interrupted"], "best": best_run(runs, extras["ascending"]),
            **extras,
        }


def search_runs(folder: Path) -> dict[str, Any]:
    """Every run of the search in ``folder`` (read-only store) and the settings the page needs to show them."""
    try:
        settings = saved_settings(folder) or {}
    except Exception:  # noqa: BLE001 - a damaged settings file must not break the page
        settings = {}
    key = settings.get("performance_key")
    try:
        with RunStore.open(folder, readonly=True) as store:
            records = store.records()
    except (StoreError, OSError):
        records = []
    return {"performance_key": key, "ascending": bool(settings.get("performance_sort_asc", False)),
            "grid_keys": list(settings.get("grid_keys", [])), "summary_filename": settings.get("summary_filename"),
            "runs": [_run(record, key) for record in records]}


def _running_runs(folder: Path) -> list[dict[str, Any]]:
    try:
        with RunStore.open(folder, readonly=True) as store:
            return [_run(record, None) for record in store.records([RunStatus.RUNNING])]
    except (StoreError, OSError):
        return []


def _file_stamps(folder: Path) -> tuple:
    """Size and modification time of the search's settings, store and WAL (None for a missing file)."""
    stamps = []
    for name in (SETTINGS_FILE, STORE_FILE, STORE_FILE + "-wal"):
        try:
            info = os.stat(folder / name)
            stamps.append((info.st_size, info.st_mtime_ns))
        except OSError:
            stamps.append(None)
    return tuple(stamps)


def _run(record: RunRecord, performance_key: str | None) -> dict[str, Any]:
    summary = record.summary or {}
    return {
        "number": record.index + 1, "key": record.key, "run": record.run_dir, "status": record.status.value,
        "where": record.where, "started": record.started, "ended": record.ended, "reason": record.reason,
        "exit_code": record.exit_code, "config": record.config, "summary": summary,
        "value": ranking_value(summary.get(performance_key)) if performance_key else None,
    }


def best_run(runs: list[dict[str, Any]], ascending: bool) -> dict[str, Any] | None:
    """The done run with the best value (first by number on a tie), or None before the first one."""
    scored = [run for run in runs if run["status"] == "done" and run.get("value") is not None]
    if not scored:
        return None
    best = min(scored, key=lambda run: (run["value"] if ascending else -run["value"], run["number"]))
    return {"value": best["value"], "number": best["number"], "key": best["key"], "run": best["run"]}


def _gpu_order(gpu_id: str) -> tuple:
    return (0, int(gpu_id), "") if gpu_id.isdigit() else (1, 0, gpu_id)


def _without_runs(search: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in search.items() if name != "runs"}
