"""The service's wire format: JSON lines over its Unix socket.

A request is one JSON object on one line, ``{"op": NAME, ...}``; its answer is
one line back, ``{"ok": true, ...}`` or ``{"ok": false, "error": "one line"}``.
A connection may carry many requests in turn (a driver keeps one open for its
slot requests), so no framing beyond the newline is needed. The socket file
is 0600 inside the owner-only state folder: the file system is the access
check, as for pueue and task-spooler.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from hpsearch.errors import HpsearchError

DEFAULT_TIMEOUT = 10.0
MAX_LINE = 1 << 20  # a request longer than this is refused, not buffered forever


class ServiceUnavailable(HpsearchError):
    """No service answers on the socket."""


class ServiceError(HpsearchError):
    """The service answered ``{"ok": false}``; the message is its one line."""


def encode(message: dict[str, Any]) -> bytes:
    return (json.dumps(message, separators=(",", ":")) + "\n").encode()


def decode(line: bytes) -> dict[str, Any]:
    """One request or answer; a line that is no JSON object raises ValueError."""
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError("a message must be a JSON object")
    return message


class Connection:
    """A client's connection to the service, for one or many requests in turn."""

    def __init__(self, path: Path | str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.path = str(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(self.path)
        except (FileNotFoundError, ConnectionRefusedError, socket.timeout, OSError) as exc:
            sock.close()
            raise ServiceUnavailable(f"no hpsearch service answers on {self.path} ({_why(exc)})") from None
        self._sock = sock
        self._reader = sock.makefile("rb")

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send one request and return its answer (``ok`` true).

        Raises:
            ServiceUnavailable: The service went away or did not answer in time.
            ServiceError: The service refused the request.
        """
        try:
            self._sock.sendall(encode(request))
            line = self._reader.readline(MAX_LINE)
        except (OSError, socket.timeout) as exc:
            raise ServiceUnavailable(f"the hpsearch service on {self.path} did not answer ({_why(exc)})") from None
        if not line:
            raise ServiceUnavailable(f"the hpsearch service on {self.path} closed the connection")
        answer = decode(line)
        if not answer.get("ok"):
            raise ServiceError(str(answer.get("error", "the service refused the request")))
        return answer

    def close(self) -> None:
        self._reader.close()
        self._sock.close()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()


def call(path: Path | str, request: dict[str, Any], timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """One request on a connection of its own (the control commands)."""
    with Connection(path, timeout) as connection:
        return connection.call(request)


def ok(**fields: Any) -> dict[str, Any]:
    return {"ok": True, **fields}


def refused(error: str) -> dict[str, Any]:
    return {"ok": False, "error": error}


def _why(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    return getattr(exc, "strerror", None) or type(exc).__name__
