"""Serving the web page from the service: a Werkzeug server in a thread, its URL and token.

The service calls :func:`start_web` (or :func:`start_server`, then
:func:`announce`, which writes the token owner-only into the state folder and
prints the URL with the token, as Jupyter does).
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable, TextIO

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from hpsearch.errors import UsageError
from hpsearch.service.paths import StatePaths

DEFAULT_HOST = "127.0.0.1"


class _QuietHandler(WSGIRequestHandler):
    """No line per request: the page polls every 2 s and would fill the service log."""

    def log_request(self, *args: object, **kwargs: object) -> None:
        pass


@dataclass
class WebServer:
    """The running server; ``stop()`` ends it and its thread."""

    server: BaseWSGIServer
    thread: threading.Thread
    port: int

    def stop(self, timeout: float = 5.0) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout)


def parse_http_address(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` of ``--http`` (``[::1]:8000`` for IPv6); the host defaults to 127.0.0.1.

    Raises:
        UsageError: not a port number in 0..65535.
    """
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or DEFAULT_HOST
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--http {text}: expected [HOST:]PORT with a port number in 0..65535")
    return host, int(port)


def start_server(app: object, host: str = DEFAULT_HOST, port: int = 0) -> tuple[WebServer, str]:
    """Serve ``app`` on ``host:port`` (0: a free port) in a daemon thread; the handle and the URL with the token.

    Raises:
        UsageError: the address cannot be listened on (in use, not ours).
    """
    try:
        server = make_server(host, port, app, threaded=True, request_handler=_QuietHandler)  # type: ignore[arg-type]
    except (OSError, SystemExit) as exc:  # werkzeug exits on a port in use
        raise UsageError(f"--http {host}:{port}: cannot listen there: {exc}") from None
    thread = threading.Thread(target=server.serve_forever, name="hpsearch-web", daemon=True)
    thread.start()
    handle = WebServer(server, thread, server.socket.getsockname()[1])
    token = app.config["HPSEARCH_TOKEN"]  # type: ignore[attr-defined]
    return handle, f"http://{_url_host(host)}:{handle.port}/?token={token}"


def announce(url: str, token: str, paths: StatePaths, stream: TextIO | None = None) -> None:
    """Write the token to the owner-only token file and print the URL with it."""
    write_token(paths, token)
    print(f"[hpsearch] web page: {url}\n[hpsearch] (the token is also in {paths.token_file})",
          file=stream or sys.stdout, flush=True)


def write_token(paths: StatePaths, token: str) -> None:
    """Replace the token file atomically; created 0600, so no other user can read it at any moment."""
    temp = paths.token_file.with_name(f".{paths.token_file.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (token + "\n").encode())
    finally:
        os.close(fd)
    os.replace(temp, paths.token_file)


def _url_host(host: str) -> str:
    """What a browser should open: the machine's name for a wildcard bind, IPv6 in brackets."""
    if host in ("", "0.0.0.0", "::"):
        return socket.gethostname()
    return f"[{host}]" if ":" in host else host


class ServiceActions:
    """The page's actions as requests to the service's own handler: the same checks and answers as the CLI's."""

    def __init__(self, handle: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self._handle = handle

    def pause(self, search_id: str) -> dict[str, Any]:
        return self._ask({"op": "pause", "search": search_id})

    def unpause(self, search_id: str) -> dict[str, Any]:
        return self._ask({"op": "unpause", "search": search_id})

    def cancel(self, search_id: str) -> dict[str, Any]:
        return self._ask({"op": "cancel", "search": search_id, "kill": False})

    def priority(self, search_id: str, n: int) -> dict[str, Any]:
        return self._ask({"op": "priority", "search": search_id, "n": n})

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        answer = self._handle(request)
        if not answer.get("ok"):
            raise UsageError(str(answer.get("error", "refused")))
        return answer


def start_web(service: Any, address: str) -> str:
    """What ``hpsearch serve --http ADDRESS`` calls: serve the page for ``service``; the URL with the token.

    ``service`` needs ``paths`` (its StatePaths) and ``handle(request) -> answer`` (its control requests).
    The token is written to ``paths.token_file`` (0600); the server's handle is kept as
    ``service.web_server`` (a daemon thread, it ends with the process; ``stop()`` ends it sooner).

    Raises:
        UsageError: a bad address, Flask or plotly missing, or the address cannot be listened on.
    """
    from hpsearch.web import require_web

    host, port = parse_http_address(address)
    require_web()
    from hpsearch.web.app import create_app
    from hpsearch.web.provider import RegistryProvider
    from hpsearch.web.security import new_token

    token = new_token()
    app = create_app(RegistryProvider(service.paths), ServiceActions(service.handle), token)
    handle, url = start_server(app, host, port)
    write_token(service.paths, token)
    service.web_server = handle
    return url
