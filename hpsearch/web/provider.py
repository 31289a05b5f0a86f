"""What the web page reads: a small provider interface and a thin adapter over the registry.

The pages need three things, as plain JSON-able dicts:

- ``searches()`` -> list of search dicts: ``id, folder, kind, state, priority,
  submitted, updated, counts {status: n}, total, performance_key, best``
  (``best`` is ``{"value", "run"}`` or None);
- ``search(id)`` -> one search dict with, in addition, ``grid_keys``,
  ``performance_sort_asc``, ``summary_filename`` and ``runs`` (each ``index, key,
  run_dir, status, where, started, ended, reason, exit_code, config, summary,
  value``), or None if there is no such search;
- ``pool()`` -> ``{"service": {...}, "gpus": [{"id", "name", "memory_used",
  "memory_total", "load", "runs": ["<search>/<run_dir>", ...]}]}``.

:class:`RegistryProvider` reads them from the registry and each search's store,
opened read-only for one short transaction per call, so a page never breaks a
running search. The service can hand :func:`hpsearch.web.app.create_app` any
other object with these three methods (e.g. over ``hpsearch.service.snapshot``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from hpsearch.errors import StoreError
from hpsearch.report import ranking_value
from hpsearch.searchdir import saved_settings
from hpsearch.service.paths import StatePaths
from hpsearch.service.registry import Registry, SearchEntry
from hpsearch.store import RunRecord, RunStore


class Provider(Protocol):
    def searches(self) -> list[dict[str, Any]]: ...

    def search(self, search_id: str) -> dict[str, Any] | None: ...

    def pool(self) -> dict[str, Any]: ...


class RegistryProvider:
    """The provider interface over the registry and the read-only run stores."""

    def __init__(self, paths: StatePaths) -> None:
        self.paths = paths

    def searches(self) -> list[dict[str, Any]]:
        with Registry.open(self.paths) as registry:
            entries = registry.entries()
        return [_without_runs(self._describe(entry)) for entry in entries]

    def search(self, search_id: str) -> dict[str, Any] | None:
        with Registry.open(self.paths) as registry:
            entry = registry.get(search_id)
        return self._describe(entry) if entry else None

    def pool(self) -> dict[str, Any]:
        with Registry.open(self.paths) as registry:
            service = registry.service_info()
            entries = registry.entries(include_over=False)
        gpus: dict[str, dict[str, Any]] = {}
        for entry in entries:
            for run in self._describe(entry)["runs"]:
                where = run.get("where") or ""
                if run["status"] == "running" and where.startswith("gpu"):
                    gpu = where.split(maxsplit=1)[-1]
                    gpus.setdefault(gpu, {"id": gpu, "name": None, "memory_used": None, "memory_total": None,
                                          "load": None, "runs": []})["runs"].append(f"{entry.id}/{run['run_dir']}")
        return {"service": service, "gpus": [gpus[key] for key in sorted(gpus)]}

    def _describe(self, entry: SearchEntry) -> dict[str, Any]:
        folder = Path(entry.folder)
        try:
            settings = saved_settings(folder) or {}
        except Exception:  # noqa: BLE001 - a damaged settings file must not break the page
            settings = {}
        key = settings.get("performance_key")
        ascending = bool(settings.get("performance_sort_asc", False))
        try:
            with RunStore.open(folder, readonly=True) as store:
                records = store.records()
        except (StoreError, OSError):
            records = []
        runs = [_run(record, key) for record in records]
        counts: dict[str, int] = {}
        for run in runs:
            counts[run["status"]] = counts.get(run["status"], 0) + 1
        return {
            "id": entry.id, "folder": entry.folder, "kind": entry.kind, "state": entry.state,
            "priority": entry.priority, "submitted": entry.submitted, "updated": entry.updated,
            "counts": counts, "total": len(runs), "performance_key": key, "performance_sort_asc": ascending,
            "best": best_run(runs, ascending), "grid_keys": list(settings.get("grid_keys", [])),
            "summary_filename": settings.get("summary_filename"), "runs": runs,
        }


def _run(record: RunRecord, performance_key: str | None) -> dict[str, Any]:
    summary = record.summary or {}
    return {
        "index": record.index, "key": record.key, "run_dir": record.run_dir, "status": record.status.value,
        "where": record.where, "started": record.started, "ended": record.ended, "reason": record.reason,
        "exit_code": record.exit_code, "config": record.config, "summary": summary,
        "value": ranking_value(summary.get(performance_key)) if performance_key else None,
    }


def best_run(runs: list[dict[str, Any]], ascending: bool) -> dict[str, Any] | None:
    """The done run with the best value: ``{"value", "run"}``, or None before the first one."""
    scored = [run for run in runs if run["status"] == "done" and run.get("value") is not None]
    if not scored:
        return None
    best = (min if ascending else max)(scored, key=lambda run: run["value"])
    return {"value": best["value"], "run": best["run_dir"]}


def _without_runs(search: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in search.items() if name != "runs"}
