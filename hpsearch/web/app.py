"""The Flask application of the web page: pages, their JSON, run files and actions.

Read-only by construction: every GET only calls the provider; only the POST
routes of the four actions change anything, through the ``actions`` object the
service hands in. Every request needs the token (see :mod:`hpsearch.web.security`).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

from flask import Flask, Response, abort, jsonify, redirect, render_template, request, send_file
from werkzeug.exceptions import HTTPException

from hpsearch.web import security
from hpsearch.web.figures import search_figures
from hpsearch.web.files import read_tail, run_file
from hpsearch.web.provider import Provider

ACTIONS = ("pause", "unpause", "cancel", "priority")
_PLOTLY_JS = "plotly.min.js"


class Actions(Protocol):
    def pause(self, search_id: str) -> Any: ...

    def unpause(self, search_id: str) -> Any: ...

    def cancel(self, search_id: str) -> Any: ...

    def priority(self, search_id: str, n: int) -> Any: ...


def plotly_js_path() -> Path:
    """plotly.js as the installed plotly package ships it (never from a CDN)."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / _PLOTLY_JS


def create_app(provider: Provider, actions: Actions, token: str) -> Flask:
    """The web page over ``provider`` (reads) and ``actions`` (pause, unpause, cancel, priority)."""
    app = Flask(__name__)
    app.config["HPSEARCH_TOKEN"] = token
    csrf = security.csrf_token(token)

    @app.before_request
    def _require_token() -> Response | None:
        cookie = security.cookie_name(request.environ.get("SERVER_PORT") and int(request.environ["SERVER_PORT"]))
        from_query = request.args.get("token")
        given = request.headers.get(security.TOKEN_HEADER) or from_query or request.cookies.get(cookie)
        if not security.same_secret(given, token):
            return _refuse(403, "this page needs the token that `hpsearch serve` printed "
                                "(also in its web-token file); open the URL with ?token=...")
        if from_query is not None and request.method == "GET" and not request.path.startswith("/api/"):
            # A person's first visit: set the cookie and drop the token from the address bar and history.
            arguments = [(name, value) for name, value in request.args.items(multi=True) if name != "token"]
            target = "/" + request.path.lstrip("/")  # never "//host": no redirect off this server
            target += "?" + urlencode(arguments) if arguments else ""
            answer = redirect(target, code=303)
            answer.set_cookie(cookie, token, httponly=True, samesite="Strict", path="/")
            return answer
        if request.routing_exception is not None:
            return None  # 404 or 405, once the caller has shown the token
        if request.method == "POST":
            if not security.same_origin(request.headers.get("Origin"), request.headers.get("Referer"), request.host):
                return _refuse(403, "cross-origin request refused")
            if not security.same_secret(request.headers.get(security.CSRF_HEADER), csrf):
                return _refuse(403, "missing or wrong CSRF token")
        return None

    @app.after_request
    def _headers(answer: Response) -> Response:
        # plotly's WebGL traces (parcoords) compile their shaders with Function(): 'unsafe-eval'.
        answer.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data: blob:; worker-src blob:; frame-ancestors 'none'; form-action 'none'")
        answer.headers["X-Content-Type-Options"] = "nosniff"
        answer.headers["Referrer-Policy"] = "same-origin"  # "no-referrer" would make some browsers send "Origin: null"
        answer.headers["X-Frame-Options"] = "DENY"
        answer.headers.setdefault("Cache-Control", "no-store")
        return answer

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        return _refuse(error.code or 500, error.description or error.name)

    @app.get("/")
    def searches_page() -> str:
        return render_template("searches.html", page="searches", csrf=csrf)

    @app.get("/queue")
    def queue_page() -> str:
        return render_template("queue.html", page="queue", csrf=csrf)

    @app.get("/search/<search_id>")
    def search_page(search_id: str) -> str:
        if provider.search(search_id) is None:
            abort(404, f"no search {search_id}")
        return render_template("search.html", page="search", csrf=csrf, search_id=search_id)

    @app.get("/api/searches")
    def searches_json() -> Response:
        return _json({"searches": provider.searches(), "pool": provider.pool()})

    @app.get("/api/queue")
    def queue_json() -> Response:
        return _json({"queue": queue(provider.searches()), "pool": provider.pool()})

    encoded: dict[str, tuple[dict[str, Any], str]] = {}

    @app.get("/api/search/<search_id>")
    def search_json(search_id: str) -> Response:
        search = provider.search(search_id)
        if search is None:
            abort(404, f"no search {search_id}")
        cached = encoded.get(search_id)
        if cached is None or cached[0] is not search:  # a provider returns the same dict while nothing changed
            part = json.dumps(_finite({"search": search, "figures": search_figures(search)}))
            encoded[search_id] = cached = (search, part)
        body = cached[1][:-1] + ', "pool": ' + json.dumps(_finite(provider.pool())) + "}"
        return _etagged(body)

    @app.get("/search/<search_id>/runs/<run_dir>/<which>")
    def run_file_text(search_id: str, run_dir: str, which: str) -> Response:
        search = provider.search(search_id)
        path = run_file(search, run_dir, which) if search else None
        if path is None:
            abort(404, "no such run file")
        try:
            text, skipped = read_tail(path)
        except FileNotFoundError:
            abort(404, f"{run_dir}/{path.name} does not exist (yet)")
        except OSError as exc:
            abort(404, f"{run_dir}/{path.name}: {exc}")
        if skipped:
            text = f"[... the first {skipped} bytes are left out ...]\n" + text
        return Response(text, mimetype="text/plain", headers={"Content-Disposition": "inline"})

    @app.get("/static/vendor/plotly.min.js")
    def plotly_js() -> Response:
        answer = send_file(plotly_js_path(), mimetype="text/javascript", max_age=3600)
        answer.headers["Cache-Control"] = "private, max-age=3600"
        return answer

    @app.post("/api/search/<search_id>/<action>")
    def act(search_id: str, action: str) -> Response:
        if action not in ACTIONS:
            abort(404, f"no action {action}")
        if provider.search(search_id) is None:
            abort(404, f"no search {search_id}")
        arguments: list[Any] = [search_id]
        if action == "priority":
            body = request.get_json(silent=True) or {}
            n = body.get("n") if isinstance(body, dict) else None
            if isinstance(n, bool) or not isinstance(n, int):
                return _refuse(400, "priority needs an integer n")
            arguments.append(n)
        try:
            outcome = getattr(actions, action)(*arguments)
        except Exception as exc:  # noqa: BLE001 - the service's one-line answer goes back to the page
            return _refuse(409, str(exc) or type(exc).__name__)
        if isinstance(outcome, dict) and outcome.get("ok") is False:
            return _refuse(409, str(outcome.get("error", "refused")))
        return _json({"ok": True, "action": action, "search": search_id})

    return app


def queue(searches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Active searches with runs still to start, in the order the pool serves them (priority, then age)."""
    waiting = [search for search in searches
               if search["state"] in ("queued", "running", "paused")
               and (search["state"] == "queued" or search.get("queue_length"))]
    return sorted(waiting, key=lambda search: (search["state"] == "paused", -search["priority"], search["submitted"]))


def _refuse(code: int, message: str) -> Response:
    """JSON for the API and actions, a short page for a person."""
    if request.path.startswith("/api/"):
        answer = jsonify({"ok": False, "error": message})
    else:
        answer = Response(render_template("refused.html", code=code, message=message), mimetype="text/html")
    answer.status_code = code
    return answer


def _json(data: Any) -> Response:
    return _etagged(json.dumps(_finite(data)))


def _etagged(body: str) -> Response:
    """JSON with an ETag: a poll that finds nothing new gets 304 and the page skips redrawing."""
    answer = Response(body, mimetype="application/json")
    answer.set_etag(hashlib.sha1(body.encode()).hexdigest())
    answer.headers["Cache-Control"] = "no-cache"
    return answer.make_conditional(request)


def _finite(value: Any) -> Any:
    """NaN and infinities become null: JSON has no such numbers and the browser's parser refuses them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
