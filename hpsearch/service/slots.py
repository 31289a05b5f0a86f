"""Where a driver in service mode gets its slots: the service's broker.

A :class:`SlotSource` replaces the executor's own GPU planner or ``num_jobs``
count. It keeps one connection for its requests; when the broker gives fewer
slots than asked, a thread waits on a second connection (``wait``) and wakes
the driver as soon as a slot it would get frees, so the driver neither polls
nor misses a slot.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

from hpsearch.gpu.planner import SlotLimits
from hpsearch.service.protocol import Connection, ServiceUnavailable

log = logging.getLogger(__name__)

WAIT_TIMEOUT = 5.0  # seconds one wait request may block in the service


class SlotSource:
    """Asks the service for slots on behalf of one search.

    Args:
        socket_path: The service's socket.
        search: The search's id in the registry.
        wake: Called (from a thread) when the driver should ask again.
    """

    def __init__(self, socket_path: Path | str, search: str, wake: Callable[[], None]) -> None:
        self.socket_path = str(socket_path)
        self.search = search
        self._wake = wake
        self._connection = Connection(self.socket_path)
        self._lock = threading.Lock()
        self._want_wait = threading.Event()  # the driver was refused: the waiter sends the next wait
        self._waiter: threading.Thread | None = None
        self._closed = False
        self.refused = False  # the last request got fewer slots than asked, and nothing changed since

    def may_ask(self) -> bool:
        """Whether asking again could get more: not after a refusal, until the
        broker wakes us (a slot we would get freed, or the wait timed out) or
        a run of ours gave a slot back. Saves a round trip per driver wake-up."""
        return not self.refused

    def acquire(self, n: int, limits: SlotLimits, holding: list[Any] | None = None) -> list[Any]:
        """Up to ``n`` slots (GPU id text, or None for a CPU slot); fewer means wait to be woken.
        ``holding``: the slots this search's runs hold now (the broker's count is set to it)."""
        request = {"op": "acquire", "search": self.search, "n": n, "limits": dataclasses.asdict(limits),
                   "holding": holding}
        slots = self._call(request).get("slots", [])
        self.refused = len(slots) < n
        if self.refused:
            self._start_waiting()
        return slots

    def release(self, slots: list[Any], satisfied: bool = False) -> None:
        """Give slots back; ``satisfied``: the search wants no more for now."""
        if not (slots or satisfied):
            return
        self.refused = False
        try:
            self._call({"op": "release", "search": self.search, "slots": list(slots), "satisfied": satisfied})
        except ServiceUnavailable as exc:  # a service that went away holds no slots: nothing to give back
            log.debug("slot release failed: %s", exc)

    def started(self, slot: Any, pid: int, pid_started: float) -> None:
        """A run started on a GPU slot as process ``pid``: its start-up claim becomes the run's."""
        try:
            self._call({"op": "started", "search": self.search, "slot": slot, "pid": pid, "pid_started": pid_started})
        except ServiceUnavailable as exc:
            log.debug("started: %s", exc)

    def stop_request(self) -> tuple[bool, bool]:
        """Why the service stops this driver: ``(cancel, kill)``. Cancel: the search is
        cancelled and its runs stop too (else the service stops, and runs may outlive
        the driver); kill: at once, without the grace between SIGTERM and SIGKILL."""
        try:
            answer = self._call({"op": "stopping", "search": self.search})
        except ServiceUnavailable:
            return False, False
        return bool(answer.get("cancel")), bool(answer.get("kill"))

    def close(self) -> None:
        self._closed = True
        self._connection.close()

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            return self._connection.call(request)

    def _start_waiting(self) -> None:
        self._want_wait.set()
        if self._waiter is None:
            self._waiter = threading.Thread(target=self._wait_loop, name="hpsearch-slot-wait", daemon=True)
            self._waiter.start()

    def _wait_loop(self) -> None:
        """One thread, one connection: a wait request whenever the driver was refused;
        each answer wakes the driver, which asks again."""
        connection: Connection | None = None
        while not self._closed:
            self._want_wait.wait()
            self._want_wait.clear()  # before the request: a refusal meanwhile sends the next one
            try:
                connection = connection or Connection(self.socket_path, timeout=WAIT_TIMEOUT + 5)
                connection.call({"op": "wait", "search": self.search, "timeout": WAIT_TIMEOUT})
            except ServiceUnavailable as exc:
                log.debug("slot wait failed: %s", exc)
                if connection is not None:
                    connection.close()
                connection = None
                time.sleep(0.5)  # the service is gone or restarting; the driver's own calls will say so
            if not self._closed:
                self.refused = False
                self._wake()
