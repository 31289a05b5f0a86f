"""Command lines of ``hpsearch status``, ``list``, ``find`` and ``logs``.

They only read (the registry, the search folders, the service's ``status``
answer; see :mod:`hpsearch.service.snapshot`), so they work from any terminal,
with the service up or down, on foreground searches and on finished ones. Bad
input is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from hpsearch.commandline import CommandParser, guarded
from hpsearch.errors import HpsearchError, UsageError
from hpsearch.runs import STDERR_FILE, STDOUT_FILE, RunStatus
from hpsearch.progress import format_duration
from hpsearch.runfolders import SET_ASIDE_FOLDER, parse_run_name, read_json
from hpsearch.searchdir import RUN_INFO_FILE, RUN_RESULT_FILE, holds_search
from hpsearch.service import snapshot
from hpsearch.service.paths import state_paths
from hpsearch.service.registry import Registry
from hpsearch.service.snapshot import SearchRef
from hpsearch.store import STORE_FILE, RunRecord, RunStore

WATCH_INTERVAL = 1.0
FOLLOW_INTERVAL = 0.25
_KEY_PREFIX = re.compile(r"^[0-9a-f]+$")
_CLEAR = "\x1b[H\x1b[2J"




def _parser(name: str, description: str) -> CommandParser:
    return CommandParser(prog=f"hpsearch {name}", description=description, allow_abbrev=False)


def _emit(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def _watch(frame: Callable[[], str], as_json: bool) -> int:
    """Redraw ``frame()`` about every second until Ctrl-C (JSON: one document per line)."""
    clear = sys.stdout.isatty() and not as_json
    try:
        while True:
            text = frame()
            _emit((_CLEAR if clear else "") + text)
            if not clear and not as_json:
                _emit("")
            time.sleep(WATCH_INTERVAL)
    except KeyboardInterrupt:
        return 0


def _json_text(document: dict[str, Any], compact: bool) -> str:
    return json.dumps(document, separators=(",", ":")) if compact else json.dumps(document, indent=1)


# --------------------------------------------------------------------------- status


def status_main(argv: Sequence[str]) -> int:
    parser = _parser("status", "The service and its searches, or one search in detail (counts, ETA, best "
                               "value, running runs, last failures). Reads only; works with the service down.")
    parser.add_argument("search", nargs="?", metavar="SEARCH",
                        help="A search id, a unique prefix of one, or a search folder (any, registered or not).")
    parser.add_argument("--json", action="store_true", help="Print one JSON document instead (its schema: docs/service.md).")
    parser.add_argument("--watch", action="store_true", help="Redraw every second until Ctrl-C.")
    parser.add_argument("--all", action="store_true", help="Without SEARCH: also the searches that are over.")
    args = parser.parse_args(argv)

    def body() -> int:
        registry = snapshot.open_registry() if args.search is None else _registry_quietly()
        try:
            frame = _status_frame(args, registry)
            if args.watch:
                return _watch(frame, args.json)
            _emit(frame())
            return 0
        finally:
            if registry is not None:
                registry.close()

    return guarded("hpsearch status", body)


def _status_frame(args: argparse.Namespace, registry: Registry | None) -> Callable[[], str]:
    """What one look shows: the overview, or the search named (looked up once, its entry on every look)."""
    if args.search is None:
        def document() -> dict[str, Any]:
            return snapshot.overview(registry, include_over=args.all)

        def render(doc: dict[str, Any]) -> str:
            return render_overview(doc)
    else:
        ref = snapshot.resolve_search(args.search, registry)

        def document() -> dict[str, Any]:
            return snapshot.search_document(_refreshed(ref, registry))

        def render(doc: dict[str, Any]) -> str:
            return render_search(doc["search"])

    if args.json:
        return lambda: _json_text(document(), compact=args.watch)
    return lambda: render(document())


def _registry_quietly() -> Registry | None:
    """The registry if there is one; ``status DIR`` must not need (or create) a state folder."""
    try:
        paths = state_paths(create=False)
    except HpsearchError:
        return None
    return snapshot.open_registry(paths) if paths.registry.is_file() else None


def _refreshed(ref: SearchRef, registry: Registry | None) -> SearchRef:
    """The search with its registry entry as it is now (``--watch`` sees state changes)."""
    if ref.entry is None or registry is None:
        return ref
    try:
        return SearchRef(ref.folder, registry.get(ref.entry.id) or ref.entry)
    except sqlite3.Error:  # a registry busy for longer than its timeout: show the last entry
        return ref


def _when(stamp: float | None) -> str:
    return "never" if stamp is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def _value(value: float) -> str:
    return f"{value:g}"


def counts_text(counts: dict[str, int]) -> str:
    failed = counts["failed"] + counts["timed_out"]
    queued = counts["queued"] + counts["interrupted"]
    return f"{counts['done']} done, {counts['running']} running, {failed} failed, {queued} queued"


def state_text(search: dict[str, Any]) -> str:
    """The state, with a warning when the registry says active but no driver runs."""
    state = search["state"]
    alive = search["driver"]["alive"]
    if state in ("running", "paused") and alive is False and search["kind"] == "foreground":
        return f"{state} (driver gone: hpsearch --resume {search['folder']})"
    if state in ("running", "paused") and alive is False and search["kind"] == "service":
        return f"{state} (no driver: waiting for the service)"
    return state


def best_text(search: dict[str, Any]) -> str:
    best = search["best"]
    if best is None:
        return ""
    return f"best {search['performance_key']}={_value(best['value'])} ({best['run']})"


def render_search(search: dict[str, Any]) -> str:
    ident = search["id"] or "(not registered)"
    driver = search["driver"]
    lines = [f"search {ident}  {search['folder']}"]
    who = search["kind"] or "foreground"
    pid = f", driver pid {driver['pid']}" if driver["pid"] and driver["alive"] is not False else ""
    lines.append(f"state: {state_text(search)} ({who}{pid})")
    if search["error"]:
        lines.append(f"error: {search['error']}")
    counts = search["counts"]
    lines.append(f"runs: {counts_text(counts)} ({counts['total']} in all)")
    timing = []
    if search["eta_s"] is not None:
        timing.append(f"ETA {format_duration(search['eta_s'])}")
    if search["mean_duration_s"] is not None:
        timing.append(f"mean run {format_duration(search['mean_duration_s'])}")
    if timing:
        lines.append(", ".join(timing))
    if search["best"] is not None:
        lines.append(f"{best_text(search)}, key {search['best']['key']}")
    if search["running"]:
        lines.append("running:")
        for run in search["running"]:
            place = run["where"] or "?"
            ident = f"pid {run['pid']}" if run["pid"] is not None else f"job {run['job_id'] or '?'}"
            elapsed = "" if run["elapsed_s"] is None else format_duration(run["elapsed_s"])
            lines.append(f"  {run['run']}  {place}  {ident}  {elapsed}")
    if search["failures"]:
        lines.append(f"last failures (of {counts['failed'] + counts['timed_out']}):")
        for run in search["failures"]:
            lines.append(f"  {run['run']}  {run['status']}: {run['reason'] or 'no reason recorded'}")
    return "\n".join(lines)


def render_overview(doc: dict[str, Any]) -> str:
    service = doc["service"]
    if service["running"]:
        uptime = "" if service["uptime_s"] is None else f", up {format_duration(service['uptime_s'])}"
        pid = f"pid {service['pid']}" if service["pid"] else "pid ?"
        lines = [f"service running ({pid}{uptime}), {service['queue_length']} runs queued"]
    else:
        lines = [f"service not running, last seen {_when(service['last_seen'])}"]
    for gpu in doc["pool"]["gpus"]:
        reading = []
        if gpu["memory_used_mb"] is not None and gpu["memory_total_mb"] is not None:
            reading.append(f"{gpu['memory_used_mb']:.0f}/{gpu['memory_total_mb']:.0f} MB")
        if gpu["load"] is not None:
            reading.append(f"load {gpu['load'] * 100:.0f}%")
        holders = ", ".join(f"{run['run']} ({run['search'] or run['folder']})" for run in gpu["runs"])
        holders = holders or (f"granted to {', '.join(gpu['held_by'])}" if gpu["held_by"] else "free")
        lines.append(f"GPU {gpu['id']}  {'  '.join(reading) or 'no reading'}  {holders}")
    if not doc["searches"]:
        lines.append("no active searches (hpsearch list --all shows the others)")
    for search in doc["searches"]:
        lines.append(_search_line(search))
    return "\n".join(lines)


def _search_line(search: dict[str, Any]) -> str:
    parts = [search["id"] or "-", state_text(search), counts_text(search["counts"])]
    if search["eta_s"] is not None:
        parts.append(f"ETA {format_duration(search['eta_s'])}")
    if search["best"] is not None:
        parts.append(best_text(search))
    if search["error"]:
        parts.append(f"error: {search['error']}")
    parts.append(search["folder"])
    return "  ".join(parts)


# --------------------------------------------------------------------------- list


def list_main(argv: Sequence[str]) -> int:
    parser = _parser("list", "Every search of this user on this machine (service and foreground) with "
                             "folder, state, counts and best value; those that are over only with --all.")
    parser.add_argument("--all", action="store_true", help="Also the searches that are over "
                                                            "(finished, failed, cancelled).")
    parser.add_argument("--json", action="store_true", help="Print one JSON document instead (its schema: docs/service.md).")
    args = parser.parse_args(argv)

    def body() -> int:
        registry = snapshot.open_registry()
        try:
            doc = snapshot.listing(registry, include_over=args.all)
        finally:
            if registry is not None:
                registry.close()
        if args.json:
            _emit(_json_text(doc, compact=False))
        elif not doc["searches"]:
            _emit("no searches" + ("" if args.all else " that are not over (hpsearch list --all shows them)"))
        else:
            _emit("\n".join(_search_line(search) for search in doc["searches"]))
        return 0

    return guarded("hpsearch list", body)


# --------------------------------------------------------------------------- find and logs


@dataclass(frozen=True)
class RunRef:
    """One run: its search and its record in the search's store."""

    search: SearchRef
    record: RunRecord

    @property
    def folder(self) -> Path:
        """The run folder, also where the postprocessor's ``--set_aside`` moved it."""
        folder = self.search.folder / self.record.run_dir
        aside = self.search.folder / SET_ASIDE_FOLDER / self.record.run_dir
        return aside if not folder.is_dir() and aside.is_dir() else folder

    @property
    def label(self) -> str:
        return f"{self.search.entry.id if self.search.entry else self.search.folder}:{self.record.index + 1}"


def _searchable(registry: Registry | None) -> list[SearchRef]:
    """Where a key or a folder name is looked up: the registered searches, and the current folder's."""
    refs = [SearchRef(Path(entry.folder), entry) for entry in snapshot.registered(registry, include_over=True)]
    here = Path.cwd()
    if holds_search(here) and all(ref.folder != here.resolve() for ref in refs):
        refs.append(SearchRef(here.resolve(), None))
    return refs


def _lookup(ref: SearchRef, query: Callable[[RunStore], list[RunRecord]]) -> list[RunRef]:
    if not (ref.folder / STORE_FILE).is_file():
        return []
    try:
        with RunStore.open(ref.folder, readonly=True) as store:
            return [RunRef(ref, record) for record in query(store)]
    except HpsearchError:
        return []


def locate_run(text: str, registry: Registry | None) -> RunRef:
    """The run named by a key (or a unique prefix), ``SEARCH:NUMBER``, a run folder's name or path.

    Raises:
        UsageError: Nothing matches, or several runs do.
    """
    if not text:
        raise UsageError("RUN is empty")
    path = Path(text).expanduser()
    if (path / RUN_INFO_FILE).is_file():
        return _run_at(path)
    if ":" in text:
        return _run_by_number(text, registry)
    if parse_run_name(text):
        found = [run for ref in _searchable(registry)
                 for run in _lookup(ref, lambda store: [r for r in [store.by_run_dir(text)] if r])]
        what = f"no run folder named {text} in the registered searches"
    elif _KEY_PREFIX.match(text.lower()):
        prefix = text.lower()
        found = [run for ref in _searchable(registry) for run in _lookup(ref, lambda s: s.with_key_prefix(prefix, 2))]
        what = f"no run with a configuration key starting with {text!r} in the registered searches"
    else:
        raise UsageError(f"run {text!r}: expected a configuration key (or its prefix), SEARCH:NUMBER, or a run "
                         "folder's name (sim_<stamp>_<number>)")
    if not found:
        raise UsageError(f"{what} (hpsearch list --all shows them)")
    if len(found) > 1:
        named = ", ".join(f"{run.label} ({run.record.key})" for run in found[:5])
        raise UsageError(f"run {text!r} is ambiguous: {named}{', ...' if len(found) > 5 else ''}; "
                         "name one as SEARCH:NUMBER or give more of the key")
    return found[0]


def _run_at(path: Path) -> RunRef:
    """A run folder given as a path: its search is the folder above (or above ``failed_criteria``)."""
    path = path.resolve()
    search = path.parent.parent if path.parent.name == SET_ASIDE_FOLDER else path.parent
    info = read_json(path / RUN_INFO_FILE) or {}
    ref = SearchRef(search, None)
    found = _lookup(ref, lambda store: [r for r in [store.get(str(info.get("key", "")))] if r])
    if not found:
        raise UsageError(f"{path}: its search's store ({search / STORE_FILE}) does not know this run")
    return RunRef(found[0].search, found[0].record)


def _run_by_number(text: str, registry: Registry | None) -> RunRef:
    search_text, _, number_text = text.rpartition(":")
    if not number_text.isdigit() or int(number_text) < 1:
        raise UsageError(f"run {text!r}: the number after ':' must be a run number (1 for the first run), "
                         f"got {number_text!r}")
    ref = snapshot.resolve_search(search_text, registry)
    number = int(number_text)
    found = _lookup(ref, lambda store: [r for r in [store.at_index(number - 1)] if r])
    if not found:
        raise UsageError(f"search {search_text} has no run {number}")
    return found[0]


def _locate(text: str) -> RunRef:
    """:func:`locate_run` with this user's registry (if it can be read), closed afterwards."""
    registry = _registry_quietly()
    try:
        return locate_run(text, registry)
    finally:
        if registry is not None:
            registry.close()


def find_main(argv: Sequence[str]) -> int:
    parser = _parser("find", "Print a run's folder.")
    parser.add_argument("run", metavar="RUN", help="A configuration key or a unique prefix of one (looked up in "
                        "every registered search), SEARCH:NUMBER (1 for the first run), or a run folder's name.")
    args = parser.parse_args(argv)

    def body() -> int:
        run = _locate(args.run)
        _emit(str(run.folder))
        if not run.folder.is_dir():
            print(f"hpsearch find: note: {run.folder} does not exist yet (the run is {run.record.status.value})",
                  file=sys.stderr)
        return 0

    return guarded("hpsearch find", body)


def logs_main(argv: Sequence[str]) -> int:
    parser = _parser("logs", "Print a run's output (stdout.txt, or stderr.txt with --stderr).")
    parser.add_argument("run", metavar="RUN", help="As for hpsearch find: a key or its prefix, SEARCH:NUMBER, "
                                                   "or a run folder's name.")
    parser.add_argument("--follow", action="store_true",
                        help="Keep printing what the run writes, like tail -f, until its end is recorded "
                             "(or Ctrl-C).")
    parser.add_argument("--stderr", action="store_true", help="The run's stderr.txt instead of its stdout.txt.")
    args = parser.parse_args(argv)

    def body() -> int:
        run = _locate(args.run)
        path = run.folder / (STDERR_FILE if args.stderr else STDOUT_FILE)
        if args.follow:
            return follow(path, lambda: run_over(run))
        if not path.is_file():
            print(f"hpsearch logs: {path} does not exist (the run is {run.record.status.value})", file=sys.stderr)
            return 1
        with open(path, "rb") as source:
            _copy(source)
        return 0

    return guarded("hpsearch logs", body)


def _copy(source: Any) -> int:
    """Write what is left in ``source`` to stdout; returns how many bytes."""
    total = 0
    while True:
        chunk = source.read(1 << 16)
        if not chunk:
            sys.stdout.buffer.flush()
            return total
        sys.stdout.buffer.write(chunk)
        total += len(chunk)


def follow(path: Path, over: Callable[[], bool]) -> int:
    """``tail -f`` of ``path`` from its start until ``over()`` says the run ended (then the rest), or Ctrl-C.

    A file that shrinks (replaced by a new attempt) is read again from its start.
    """
    offset = 0
    try:
        while True:
            ended = over()  # before reading: what the run wrote before its end is all there
            try:
                with open(path, "rb") as source:
                    if os.fstat(source.fileno()).st_size < offset:
                        offset = 0
                    source.seek(offset)
                    offset += _copy(source)
            except FileNotFoundError:
                pass
            if ended:
                return 0
            time.sleep(FOLLOW_INTERVAL)
    except KeyboardInterrupt:
        return 0


def run_over(run: RunRef) -> bool:
    """The run's end is recorded: its store says it ended (done, failed, timed out, interrupted),
    or, if the store cannot be read, its folder holds the driver's result file."""
    try:
        with RunStore.open(run.search.folder, readonly=True) as store:
            record = store.get(run.record.key)
    except HpsearchError:
        result = read_json(run.folder / RUN_RESULT_FILE)
        return isinstance(result, dict) and bool(result.get("status"))
    return record is not None and record.status not in (RunStatus.QUEUED, RunStatus.RUNNING)
