"""``hpsearch serve``: one user's search service on this machine.

One process per user and machine (an ``flock`` on the state folder's lock
file). It answers on a Unix socket (:mod:`hpsearch.service.protocol`), owns
the slot pool (:mod:`hpsearch.service.broker`) and runs one ordinary driver
per active search, ``python -m hpsearch --resume DIR --service_socket=SOCK``,
so every rule of a foreground search holds unchanged. Drivers die with the
service (``PR_SET_PDEATHSIG``); a service started again restarts a driver for
every search that was active, and ``--resume`` does the rest.

Drivers are started and reaped by the main thread only: the parent-death
signal follows the thread that forked, and the socket's threads come and go.
"""

from __future__ import annotations

import fcntl
import functools
import json
import logging
import os
import queue
import shutil
import signal
import socketserver
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hpsearch.errors import GpuQueryError, HpsearchError, UsageError
from hpsearch.gpu.claims import ClaimBoard
from hpsearch.gpu.planner import SlotLimits
from hpsearch.service import protocol
from hpsearch.service.broker import Broker
from hpsearch.service.paths import StatePaths, state_paths
from hpsearch.service.registry import SERVICE, Registry, SearchEntry, own_process, process_alive

log = logging.getLogger(__name__)

TICK = 0.25  # seconds between two looks at the drivers
LAST_SEEN_EVERY = 5.0  # seconds between two writes of last_seen
STOP_PATIENCE = 60.0  # seconds a stopping driver gets before SIGKILL
_SETPRIV = shutil.which("setpriv") if sys.platform.startswith("linux") else None
RESTART_STATES = ("queued", "running", "paused", "stopped")


@dataclass(frozen=True)
class ServeOptions:
    """The flags of ``hpsearch serve``."""

    visible_gpus: str = ""
    max_num_jobs_per_gpu: int = 1
    num_jobs: int | None = None
    gpu_poll_interval: float = 1.0
    http: str = ""


@dataclass
class _Driver:
    """One search's driver process, as the service sees it."""

    entry_id: str
    folder: str
    proc: subprocess.Popen
    end_state: str | None = None  # what the service asked for: stopped or cancelled
    kill_at: float | None = None  # when to send SIGKILL if it has not exited
    kill: bool = False  # stop its runs without the grace period
    log_handle: Any = None


class AlreadyRunning(UsageError):
    """Another ``serve`` of this user holds the lock."""


def lock_service(paths: StatePaths) -> Any:
    """Take the one-per-user lock, or refuse naming the running service.

    Raises:
        AlreadyRunning: Another service holds it.
    """
    handle = open(paths.lock_file, "a+")
    os.chmod(paths.lock_file, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        pid = _read_pid(paths)
        raise AlreadyRunning(f"an hpsearch service is already running (pid {pid or 'unknown'}, socket "
                             f"{paths.socket}); stop it with: hpsearch serve --stop") from None
    return handle


def _read_pid(paths: StatePaths) -> int | None:
    try:
        return int(paths.pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def make_broker(options: ServeOptions) -> Broker:
    """The pool: the GPUs (``--visible_gpus`` or all found), else ``--num_jobs`` CPU slots.

    Raises:
        GpuQueryError: ``--visible_gpus`` was given and the GPUs cannot be read.
    """
    from hpsearch.options import check_value, parse_gpu_ids

    cpu = Broker(None, num_jobs=options.num_jobs or 1)
    if options.visible_gpus.strip() == "-1":
        return cpu
    check_value("visible_gpus", options.visible_gpus)
    visible = parse_gpu_ids(options.visible_gpus)
    from hpsearch.gpu.monitor import GpuMonitor, import_gputil

    import_gputil()
    monitor = GpuMonitor(visible)
    try:
        first = monitor.poll()
    except GpuQueryError as exc:
        if visible is not None:
            raise GpuQueryError(f"--visible_gpus={options.visible_gpus}: {exc}") from None
        log.warning("no usable GPU (%s); the pool is %d CPU slot(s) (--num_jobs)", exc, options.num_jobs or 1)
        return cpu
    return Broker(monitor, max_per_gpu=options.max_num_jobs_per_gpu, poll_interval=options.gpu_poll_interval,
                  first=first, claims=ClaimBoard.from_environment())


def _limits(value: dict[str, Any]) -> SlotLimits:
    return SlotLimits(int(value["max_per_gpu"]), float(value["allowed_memory"]), float(value["allowed_load"]),
                      float(value["startup_time"]))


@functools.lru_cache(maxsize=4096)
def _folder_key(folder: str) -> str:
    """A search's folder as the broker knows it; cached: drivers name it in every request."""
    return str(Path(folder).resolve())


class Service:
    """The running service: registry, broker, drivers, and the requests that change them."""

    def __init__(self, paths: StatePaths, broker: Broker, options: ServeOptions, quiet: bool = False) -> None:
        self.paths = paths
        self.broker = broker
        self.options = options
        self.quiet = quiet
        self.registry = Registry.open(paths)
        self.registry_lock = threading.Lock()
        self.drivers: dict[str, _Driver] = {}  # by folder key
        self.actions: queue.Queue[Callable[[], None]] = queue.Queue()  # run by the main thread
        self.stopping: dict[str, Any] | None = None
        self.signalled = False  # set by the signal handler, acted on by the main loop
        self.start_after_exit: dict[str, bool] = {}  # searches to start again once their stopping driver ended
        self.pause_changed = threading.Condition()  # a search was paused or unpaused (op paused waits on it)
        self.started = time.time()
        self.pid = os.getpid()
        (paths.root / "drivers").mkdir(mode=0o700, exist_ok=True)

    # ---- requests (socket threads)

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Answer one request; every refusal is one line."""
        op = request.get("op")
        handler = getattr(self, f"_op_{op}", None) if isinstance(op, str) else None
        if handler is None:
            return protocol.refused(f"unknown request {op!r}")
        try:
            return handler(request)
        except (HpsearchError, KeyError, TypeError, ValueError) as exc:
            return protocol.refused(str(exc) or type(exc).__name__)
        except Exception as exc:  # a bug: the service goes on, the client gets one line
            log.exception("request %s failed", op)
            return protocol.refused(f"internal error in the service: {exc!r}")

    def _op_ping(self, _request: dict[str, Any]) -> dict[str, Any]:
        return protocol.ok(pid=self.pid, started=self.started)

    def _op_acquire(self, request: dict[str, Any]) -> dict[str, Any]:
        slots = self.broker.acquire(_folder_key(request["search"]), int(request["n"]), _limits(request["limits"]),
                                    request.get("num_jobs"), request.get("holding"))
        return protocol.ok(slots=slots)

    def _op_release(self, request: dict[str, Any]) -> dict[str, Any]:
        slots = request["slots"] if "slots" in request else [request["slot"]]
        self.broker.release(_folder_key(request["search"]), slots, bool(request.get("satisfied")))
        return protocol.ok()

    def _op_started(self, request: dict[str, Any]) -> dict[str, Any]:
        self.broker.started(_folder_key(request["search"]), request["slot"], int(request["pid"]),
                            float(request["pid_started"]))
        return protocol.ok()

    def _op_wait(self, request: dict[str, Any]) -> dict[str, Any]:
        woken = self.broker.wait(_folder_key(request["search"]), min(float(request.get("timeout", 5.0)), 30.0))
        return protocol.ok(woken=woken)

    def _op_stopping(self, request: dict[str, Any]) -> dict[str, Any]:
        driver = self.drivers.get(_folder_key(request["search"]))
        cancel = driver is not None and driver.end_state == "cancelled"
        return protocol.ok(cancel=cancel, kill=cancel and driver.kill)

    def _op_submit(self, request: dict[str, Any]) -> dict[str, Any]:
        entry = self._entry(request["folder"])
        if entry.kind != SERVICE:
            raise UsageError(f"search {entry.id} is a foreground search, not one of the service")
        self.broker.set_weight(_folder_key(entry.folder), entry.priority)
        self.actions.put(lambda: self._start_driver(entry.id))
        return protocol.ok(id=entry.id, folder=entry.folder)

    def _op_pause(self, request: dict[str, Any]) -> dict[str, Any]:
        entry = self._service_entry(request["search"])
        if not entry.active:
            raise UsageError(f"search {entry.id} is {entry.state}; only a queued or running search can be paused")
        self._set_paused(entry.folder, True)  # a cluster search's driver learns it through op paused
        self._update(entry.id, state="paused")
        return protocol.ok(id=entry.id, state="paused")

    def _op_unpause(self, request: dict[str, Any]) -> dict[str, Any]:
        entry = self._service_entry(request["search"])
        if entry.state == "finished":
            raise UsageError(f"search {entry.id} is finished; nothing to run")
        self._set_paused(entry.folder, False)
        self.actions.put(lambda: self._start_driver(entry.id))
        return protocol.ok(id=entry.id, state="running")

    def _op_paused(self, request: dict[str, Any]) -> dict[str, Any]:
        """Long-poll of a driver that submits to a scheduler itself (:mod:`hpsearch.service.pausewatch`):
        answered once the search's pause state differs from ``known`` (at once if it is null), or after
        ``timeout`` seconds."""
        key = _folder_key(request["search"])
        known = request.get("known")
        timeout = min(float(request.get("timeout", 5.0)), 60.0)
        with self.pause_changed:
            self.pause_changed.wait_for(lambda: known is None or self.broker.is_paused(key) != known, timeout)
            return protocol.ok(paused=self.broker.is_paused(key))

    def _set_paused(self, folder: str, paused: bool) -> None:
        with self.pause_changed:
            self.broker.set_paused(_folder_key(folder), paused)
            self.pause_changed.notify_all()

    def _op_cancel(self, request: dict[str, Any]) -> dict[str, Any]:
        entry = self._service_entry(request["search"])
        if not entry.active:
            raise UsageError(f"search {entry.id} is {entry.state}; nothing to cancel")
        kill = bool(request.get("kill"))
        self._set_paused(entry.folder, True)
        self.actions.put(lambda: self._cancel(entry.id, kill))
        return protocol.ok(id=entry.id, state="cancelled")

    def _op_priority(self, request: dict[str, Any]) -> dict[str, Any]:
        entry = self._service_entry(request["search"])
        n = int(request["n"])
        if n < 1:
            raise UsageError(f"priority must be at least 1, got {n}")
        self._update(entry.id, priority=n)
        self.broker.set_weight(_folder_key(entry.folder), n)
        return protocol.ok(id=entry.id, priority=n)

    def _op_stop(self, request: dict[str, Any]) -> dict[str, Any]:
        self.actions.put(lambda: self._begin_stop(bool(request.get("kill_runs"))))
        return protocol.ok(pid=self.pid)

    def _op_status(self, _request: dict[str, Any]) -> dict[str, Any]:
        with self.registry_lock:
            entries = self.registry.entries(include_over=False)
        drivers = {key: driver.proc.pid for key, driver in list(self.drivers.items())}
        pool = self.broker.describe()
        ids = {_folder_key(e.folder): e.id for e in entries}
        held = pool.pop("searches")
        searches = [{"id": e.id, "folder": e.folder, "state": e.state, "kind": e.kind, "priority": e.priority,
                     "driver_pid": drivers.get(_folder_key(e.folder)),
                     "slots_held": held.get(_folder_key(e.folder), {}).get("held", 0),
                     "waiting": bool(held.get(_folder_key(e.folder), {}).get("wanted", 0))} for e in entries]
        for place in [*pool.get("gpus", []), pool]:
            for name in ("held_by", "cpu_held_by"):
                if name in place:
                    place[name] = [ids.get(search, search) for search in place[name]]
        return protocol.ok(service={"pid": self.pid, "started": self.started, "uptime": time.time() - self.started,
                                    "socket": str(self.paths.socket)},
                           pool=pool, searches=searches)

    def _entry(self, text: str) -> SearchEntry:
        with self.registry_lock:
            entry = self.registry.resolve(str(text))
        if entry is None:
            raise UsageError(f"no search {text!r} in the registry (see hpsearch list --all)")
        return entry

    def _service_entry(self, text: str) -> SearchEntry:
        entry = self._entry(text)
        if entry.kind != SERVICE:
            raise UsageError(f"search {entry.id} runs in the foreground (pid {entry.pid}); control it there")
        return entry

    def _update(self, search_id: str, **values: Any) -> None:
        with self.registry_lock:
            self.registry.update(search_id, **values)

    # ---- drivers (main thread)

    def restart_active(self) -> None:
        """Start a driver for every service search that was not over when the last service ended."""
        with self.registry_lock:
            entries = [e for e in self.registry.entries() if e.kind == SERVICE and e.state in RESTART_STATES]
        for entry in entries:
            self.broker.set_weight(_folder_key(entry.folder), entry.priority)
            if entry.state == "paused":
                self.broker.set_paused(_folder_key(entry.folder), True)
            self._start_driver(entry.id, keep_paused=entry.state == "paused")

    def _start_driver(self, search_id: str, keep_paused: bool = False) -> None:
        with self.registry_lock:
            entry = self.registry.get(search_id)
        if entry is None or self.stopping is not None:
            return
        key = _folder_key(entry.folder)
        if key in self.drivers:
            if self.drivers[key].end_state is None:
                if not keep_paused:
                    self._update(search_id, state="running")
                return
            self.start_after_exit[search_id] = keep_paused  # the old driver is still stopping
            return
        if keep_paused:  # before it starts: its driver may ask at once
            self._set_paused(entry.folder, True)
        argv = [sys.executable, "-m", "hpsearch", "--resume", entry.folder, f"--service_socket={self.paths.socket}",
                "--detached_runs", "--quiet"]
        log_handle = open(self.paths.root / "drivers" / f"{entry.id}.log", "ab")
        preexec = None
        if _SETPRIV:
            argv = [_SETPRIV, "--pdeathsig", "KILL", "--", *argv]
        else:
            preexec = _die_with_parent()
        # a session of its own: a Ctrl-C meant for serve reaches the drivers only through serve
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_handle, stderr=log_handle,
                                preexec_fn=preexec, close_fds=True, start_new_session=True)
        started = _create_time(proc.pid)
        self.drivers[key] = _Driver(entry.id, key, proc, log_handle=log_handle)
        self._update(search_id, state="paused" if keep_paused else "running", pid=proc.pid, pid_started=started,
                     ended=None, exit_code=None)
        self._say(f"search {entry.id}: driver pid {proc.pid} for {entry.folder}")

    def _cancel(self, search_id: str, kill: bool) -> None:
        for driver in self.drivers.values():
            if driver.entry_id == search_id:
                self._signal_stop(driver, "cancelled", kill)
                return
        self._update(search_id, state="cancelled", ended=time.time())  # queued, no driver yet

    def _signal_stop(self, driver: _Driver, end_state: str, kill: bool) -> None:
        driver.end_state, driver.kill = end_state, kill  # the driver asks (op stopping) what to do with its runs
        driver.kill_at = time.monotonic() + STOP_PATIENCE
        _send(driver.proc, signal.SIGTERM)

    def _begin_stop(self, kill_runs: bool) -> None:
        if self.stopping is not None:
            return
        self.stopping = {"kill_runs": kill_runs}
        for driver in self.drivers.values():
            if driver.end_state is None:
                self._signal_stop(driver, "cancelled" if kill_runs else "stopped", kill_runs)

    def reap(self) -> None:
        """Record every driver that has ended; push on the stopping ones."""
        now = time.monotonic()
        for key, driver in list(self.drivers.items()):
            code = driver.proc.poll()
            if code is None:
                if driver.kill_at is not None and now >= driver.kill_at:
                    _send(driver.proc, signal.SIGKILL)
                    driver.kill_at = None
                continue
            del self.drivers[key]
            driver.log_handle.close()
            self.broker.forget(key)
            state = "finished" if code == 0 else driver.end_state or "failed"
            self._update(driver.entry_id, state=state, ended=time.time(), exit_code=code)
            self._say(f"search {driver.entry_id}: driver exited with {code}, {state}")
            if driver.entry_id in self.start_after_exit:
                self._start_driver(driver.entry_id, self.start_after_exit.pop(driver.entry_id))

    def _say(self, line: str) -> None:
        if not self.quiet:
            print(f"[hpsearch serve] {line}", file=sys.stderr, flush=True)

    def run_actions(self, timeout: float) -> None:
        try:
            action = self.actions.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            action()
            try:
                action = self.actions.get_nowait()
            except queue.Empty:
                return


def _send(proc: subprocess.Popen, signum: int) -> None:
    try:
        proc.send_signal(signum)
    except ProcessLookupError:
        pass


def _create_time(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _die_with_parent() -> Callable[[], None] | None:
    """``PR_SET_PDEATHSIG=SIGKILL`` for a driver when ``setpriv`` is missing."""
    from hpsearch import proctree

    prctl = proctree.prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def arm() -> None:
        prctl(1, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return arm


class _Handler(socketserver.StreamRequestHandler):
    """One connection: JSON lines in, JSON lines out, until the client closes it."""

    def handle(self) -> None:
        service: Service = self.server.service  # type: ignore[attr-defined]
        while True:
            try:
                line = self.rfile.readline(protocol.MAX_LINE)
            except OSError:
                return
            if not line:
                return
            try:
                answer = service.handle(protocol.decode(line))
            except ValueError as exc:
                answer = protocol.refused(f"malformed request: {exc}")
            try:
                self.wfile.write(protocol.encode(answer))
            except OSError:
                return


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def serve(options: ServeOptions, *, quiet: bool = False) -> int:
    """Run the service until ``serve --stop`` or SIGTERM/SIGINT; returns the exit status.

    Raises:
        AlreadyRunning: This user's service runs already.
        GpuQueryError: ``--visible_gpus`` names GPUs that cannot be read.
    """
    if options.http:
        _check_web(options.http)  # a bad --http is refused before the lock, socket or pid file exist
    paths = state_paths()
    lock = lock_service(paths)
    try:
        broker = make_broker(options)
        service = Service(paths, broker, options, quiet=quiet)
        if paths.socket.exists() or paths.socket.is_symlink():
            paths.socket.unlink()  # a dead service's: we hold the lock
        old_umask = os.umask(0o177)
        try:
            server = _Server(str(paths.socket), _Handler)
        finally:
            os.umask(old_umask)
        os.chmod(paths.socket, 0o600)
        server.service = service  # type: ignore[attr-defined]
        pid, started = own_process()
        paths.pid_file.write_text(f"{pid}\n")
        service.registry.set_service(pid=pid, started=started, last_seen=time.time(), socket=str(paths.socket),
                                     pool=json.dumps(broker.describe(), default=str))
        if options.http:
            _start_web(service, options.http)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5}, name="hpsearch-socket",
                         daemon=True).start()
        previous = {s: signal.signal(s, lambda *_: setattr(service, "signalled", True))
                    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        service._say(f"serving on {paths.socket} (pid {pid}); pool: {_describe_pool(broker)}")
        service.restart_active()
        try:
            return _supervise(service)
        finally:
            server.shutdown()
            server.server_close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            for path in (paths.socket, paths.pid_file):
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
            service.registry.set_service(last_seen=time.time(), stopped=time.time())
    finally:
        lock.close()


def _supervise(service: Service) -> int:
    last_seen = time.monotonic()
    while True:
        service.run_actions(TICK)
        if service.signalled:
            service._begin_stop(False)
        service.reap()
        if service.stopping is not None and not service.drivers:
            service._say("stopped")
            return 0
        if time.monotonic() - last_seen >= LAST_SEEN_EVERY:
            last_seen = time.monotonic()
            with service.registry_lock:
                service.registry.set_service(last_seen=time.time())


def _describe_pool(broker: Broker) -> str:
    if broker.planner is None:
        return f"{broker.num_jobs} CPU slot(s)"
    ids = ",".join(str(r.id) for r in broker.planner.readings)
    return f"GPUs {ids} x {broker.max_per_gpu} run(s)"


def _check_web(address: str) -> None:
    """``--http``'s address and the web extra, checked before anything is created.

    Raises:
        UsageError: a bad ``[HOST:]PORT``, or Flask/plotly missing.
    """
    from hpsearch.web import require_web

    require_web()
    from hpsearch.web.server import parse_http_address  # needs the extra's Werkzeug

    parse_http_address(address)


def _start_web(service: Service, address: str) -> None:
    """The web page (``--http``), served by :mod:`hpsearch.web`."""
    from hpsearch.web.server import start_web

    url = start_web(service, address)
    service._say(f"web page: {url}")


def service_alive(paths: StatePaths) -> bool:
    """A service answers on this user's socket."""
    try:
        protocol.call(paths.socket, {"op": "ping"}, timeout=5.0)
    except protocol.ServiceUnavailable:
        return False
    return True


def pid_alive(paths: StatePaths) -> bool:
    pid = _read_pid(paths)
    return process_alive(pid, None)
