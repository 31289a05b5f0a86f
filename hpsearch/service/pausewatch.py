"""Whether the service has paused a search whose driver does not ask it for slots.

A cluster search's driver submits to its scheduler itself, so the broker's
pause (no slots) does not reach it. :class:`PauseWatch` keeps one connection
to the service with a long-poll (``{"op": "paused", "known": ...}``, answered
when the state differs from ``known`` or after a timeout) in a thread, and
wakes the driver when the state changes; the driver then stops submitting
and has its scheduler hold the jobs still pending (or release them).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable

from hpsearch.service.protocol import Connection, ServiceError, ServiceUnavailable

log = logging.getLogger(__name__)

WAIT_TIMEOUT = 25.0  # seconds one long-poll may block in the service


class PauseWatch:
    """The service's pause state of one search, kept current by a thread.

    Args:
        socket_path: The service's socket.
        search: The search folder (how drivers name their search).
        wake: Called from the thread when the state changed.
    """

    def __init__(self, socket_path: Path | str, search: str, wake: Callable[[], None]) -> None:
        self.socket_path = str(socket_path)
        self.search = search
        self._wake = wake
        self._closed = False
        self.paused = False
        try:  # known before the first submission
            first = Connection(self.socket_path)
            try:
                self.paused = self._ask(None, first)
            finally:
                first.close()
        except (ServiceUnavailable, ServiceError) as exc:  # the thread keeps asking
            log.debug("pause watch: %s", exc)
        self._thread = threading.Thread(target=self._loop, name="hpsearch-pause-watch", daemon=True)
        self._thread.start()

    def _ask(self, known: bool | None, connection: Connection) -> bool:
        answer = connection.call({"op": "paused", "search": self.search, "known": known, "timeout": WAIT_TIMEOUT})
        return bool(answer.get("paused"))

    def _loop(self) -> None:
        connection: Connection | None = None
        while not self._closed:
            try:
                connection = connection or Connection(self.socket_path, timeout=WAIT_TIMEOUT + 10)
                paused = self._ask(self.paused, connection)
            except (ServiceUnavailable, ServiceError) as exc:  # the service restarts: keep the last state
                log.debug("pause watch: %s", exc)
                if connection is not None:
                    connection.close()
                connection = None
                time.sleep(1.0)
                continue
            if paused != self.paused and not self._closed:
                self.paused = paused
                self._wake()

    def close(self) -> None:
        self._closed = True
