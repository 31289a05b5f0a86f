"""The web page through Flask's test client and a real server: token, CSRF, run files, JSON, figures."""

from __future__ import annotations

import json
import math
import os
import socket
import stat
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("flask", reason="the web page needs the web extra: pip install 'hpsearch[web]'")

from hpsearch.errors import UsageError  # noqa: E402
from hpsearch.service.paths import state_paths  # noqa: E402
from hpsearch.web import figures, security  # noqa: E402
from hpsearch.web.app import create_app, plotly_js_path, queue  # noqa: E402
from hpsearch.web.provider import RegistryProvider  # noqa: E402
from hpsearch.web.server import announce, parse_http_address, start_server, start_web  # noqa: E402
from tests.web_helpers import RecordingActions, counts, finished_search, records, register  # noqa: E402

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def search_folder(tmp_path_factory) -> Path:
    return finished_search(tmp_path_factory.mktemp("web"))


@pytest.fixture
def site(search_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("HPSEARCH_STATE_DIR", str(tmp_path / "state"))
    paths = state_paths()
    search_id = register(paths, search_folder, "finished")
    actions = RecordingActions()
    app = create_app(RegistryProvider(paths), actions, TOKEN)
    return app, actions, search_id, paths


def a_run(folder: Path) -> str:
    return sorted(record.run_dir for record in records(folder))[0]


def test_every_route_refuses_a_request_without_the_token(site, search_folder):
    app, actions, sid, _ = site
    client = app.test_client()
    run = a_run(search_folder)
    gets = ["/", "/queue", f"/search/{sid}", "/api/searches", "/api/queue", f"/api/search/{sid}",
            f"/search/{sid}/runs/{run}/stdout", f"/search/{sid}/runs/{run}/summary", "/static/app.js",
            "/static/vendor/plotly.min.js", "/no/such/page"]
    for url in gets:
        for headers in ({}, {security.TOKEN_HEADER: "wrong"}):
            answer = client.get(url, headers=headers)
            assert answer.status_code == 403, url
            assert TOKEN not in answer.get_data(as_text=True)
    assert client.get("/?token=wrong").status_code == 403
    refusal = client.get("/api/searches").json
    assert refusal["ok"] is False and "token" in refusal["error"]
    assert "Forbidden" in client.get("/").get_data(as_text=True)
    csrf = security.csrf_token(TOKEN)
    answer = client.post(f"/api/search/{sid}/pause", headers={security.CSRF_HEADER: csrf})
    assert answer.status_code == 403
    assert actions.calls == []


def test_the_token_in_the_address_becomes_a_strict_httponly_cookie(site):
    app, _, sid, _ = site
    client = app.test_client()
    answer = client.get(f"/search/{sid}?token={TOKEN}&x=1")
    assert answer.status_code == 303
    assert answer.headers["Location"] == f"/search/{sid}?x=1"
    cookie = answer.headers["Set-Cookie"]
    assert TOKEN in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    page = client.get(f"/search/{sid}")  # the test client keeps the cookie
    assert page.status_code == 200
    assert f'content="{security.csrf_token(TOKEN)}"' in page.get_data(as_text=True)
    assert TOKEN not in page.get_data(as_text=True)  # the page never holds the secret itself
    off_site = client.get(f"/?token={TOKEN}", environ_overrides={"PATH_INFO": "//evil.example/x"})
    assert off_site.headers["Location"] == "/evil.example/x"  # a path, never another host
    header_only = app.test_client().get("/api/searches", headers={security.TOKEN_HEADER: TOKEN})
    assert header_only.status_code == 200


def authorised(app):
    client = app.test_client()
    client.get(f"/?token={TOKEN}")
    return client


def test_actions_need_post_csrf_and_the_same_origin(site):
    app, actions, sid, _ = site
    client = authorised(app)
    csrf = security.csrf_token(TOKEN)
    assert client.get(f"/api/search/{sid}/pause").status_code == 405
    assert client.post(f"/api/search/{sid}/pause").status_code == 403
    assert client.post(f"/api/search/{sid}/pause", headers={security.CSRF_HEADER: "forged"}).status_code == 403
    assert client.post(f"/api/search/{sid}/pause", headers={security.CSRF_HEADER: TOKEN}).status_code == 403
    evil = {security.CSRF_HEADER: csrf, "Origin": "http://evil.example"}
    assert client.post(f"/api/search/{sid}/pause", headers=evil).status_code == 403
    assert actions.calls == []
    same = {security.CSRF_HEADER: csrf, "Origin": "http://localhost"}
    for action in ("pause", "unpause", "cancel"):
        answer = client.post(f"/api/search/{sid}/{action}", headers=same)
        assert answer.status_code == 200 and answer.json["ok"] is True
    assert client.post(f"/api/search/{sid}/priority", headers=same, json={"n": 5}).status_code == 200
    assert client.post(f"/api/search/{sid}/priority", headers=same, json={"n": "5"}).status_code == 400
    assert client.post(f"/api/search/{sid}/explode", headers=same).status_code == 404
    assert client.post("/api/search/nosuch/pause", headers=same).status_code == 404
    assert actions.calls == [("pause", sid), ("unpause", sid), ("cancel", sid), ("priority", sid, 5)]
    actions.error = "search is over"
    answer = client.post(f"/api/search/{sid}/pause", headers=same)
    assert answer.status_code == 409 and answer.json == {"ok": False, "error": "search is over"}


def test_run_files_are_served_read_only_and_nothing_outside_the_run_folders(site, search_folder, tmp_path):
    app, _, sid, _ = site
    client = authorised(app)
    failed = next(record for record in records(search_folder) if record.status.value == "failed")
    answer = client.get(f"/search/{sid}/runs/{failed.run_dir}/stderr")
    assert answer.status_code == 200 and answer.mimetype == "text/plain"
    assert answer.get_data(as_text=True) == (search_folder / failed.run_dir / "stderr.txt").read_text()
    assert "diverged" in answer.get_data(as_text=True)
    done = next(record for record in records(search_folder) if record.status.value == "done")
    summary = client.get(f"/search/{sid}/runs/{done.run_dir}/summary").get_data(as_text=True)
    assert summary == (search_folder / done.run_dir / "performance_overview.txt").read_text()
    assert client.post(f"/search/{sid}/runs/{done.run_dir}/stdout").status_code == 405
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the page")
    link = search_folder / done.run_dir / "stdout.txt"
    original = link.read_text()
    link.unlink()
    link.symlink_to(secret)  # a run (or another user) points its log elsewhere
    try:
        hostile = [
            f"/search/{sid}/runs/{done.run_dir}/stdout",
            f"/search/{sid}/runs/..%2Fsearch.json/stdout",
            f"/search/{sid}/runs/%2E%2E/stdout",
            f"/search/{sid}/runs/{done.run_dir}/..%2F..%2Fsearch.json",
            f"/search/{sid}/runs/{done.run_dir}/search.json",
            f"/search/{sid}/runs/{done.run_dir}/hpsearch_run.json",
            f"/search/{sid}/runs/{done.run_dir}%2F..%2F..%2F{secret.parent.name}/stdout",
            f"/search/{sid}/runs/{secret}/stdout",
            f"/search/{sid}/runs/../../etc/passwd",
            f"/search/nosuch/runs/{done.run_dir}/stdout",
        ]
        for url in hostile:
            answer = client.get(url)
            assert answer.status_code == 404, url
            assert "not for the page" not in answer.get_data(as_text=True)
    finally:
        link.unlink()
        link.write_text(original)


def test_search_json_matches_the_store_and_the_best_run(site, search_folder):
    app, _, sid, _ = site
    client = authorised(app)
    data = client.get(f"/api/search/{sid}").json
    stored = records(search_folder)
    assert len(data["search"]["runs"]) == len(stored) == 12
    assert {k: n for k, n in data["search"]["counts"].items() if n} == {"done": 10, "failed": 2, "total": 12}
    assert counts(search_folder) == {"done": 10, "failed": 2}
    assert data["search"]["queue_length"] == 0
    best = max((r for r in stored if r.status.value == "done"), key=lambda r: r.summary["acc"])
    assert data["search"]["best"] == {"value": pytest.approx(best.summary["acc"]), "run": best.run_dir,
                                      "number": best.index + 1, "key": best.key}
    assert data["figures"]["best"]["data"][1]["y"][-1] == pytest.approx(best.summary["acc"])
    again = client.get(f"/api/search/{sid}", headers={"If-None-Match": client.get(f"/api/search/{sid}").headers["ETag"]})
    assert again.status_code == 304 and again.data == b""  # nothing new: nothing sent, nothing redrawn
    listing = client.get("/api/searches").json["searches"]
    assert [(s["id"], s["state"], s["counts"]["total"]) for s in listing] == [(sid, "finished", 12)]
    assert "runs" not in listing[0]
    assert client.get("/api/search/nosuch").status_code == 404


def test_pages_load_scripts_only_from_the_server_itself(site):
    app, _, sid, _ = site
    client = authorised(app)
    html = client.get(f"/search/{sid}").get_data(as_text=True)
    assert "/static/vendor/plotly.min.js" in html and "/static/app.js" in html
    assert "http://" not in html and "https://" not in html and "//cdn" not in html
    served = client.get("/static/vendor/plotly.min.js")
    assert served.status_code == 200 and served.data == plotly_js_path().read_bytes()
    assert "default-src 'self'" in served.headers["Content-Security-Policy"]


def test_not_a_number_becomes_null_in_the_json(tmp_path, monkeypatch):
    class Provider:
        def searches(self):
            return [{"id": "a", "state": "running", "counts": {}, "best": {"value": math.nan, "run": "x"}}]

        def search(self, search_id):
            return None

        def pool(self):
            return {"service": {}, "gpus": []}

    app = create_app(Provider(), RecordingActions(), TOKEN)
    answer = app.test_client().get("/api/searches", headers={security.TOKEN_HEADER: TOKEN})
    assert b"NaN" not in answer.data
    assert json.loads(answer.data)["searches"][0]["best"]["value"] is None


def run(index, status, value=None, ended=None, **config):
    return {"number": index + 1, "run": f"sim_{index}", "status": status, "value": value, "ended": ended,
            "config": config}


def test_best_so_far_only_improves_and_follows_the_end_times():
    runs = [run(0, "done", 0.5, 30.0), run(1, "done", 0.7, 10.0), run(2, "failed", None, 5.0),
            run(3, "done", 0.6, 20.0), run(4, "running")]
    figure = figures.best_so_far(runs, "acc", ascending=False)
    assert figure["data"][0]["y"] == [0.7, 0.6, 0.5]
    assert figure["data"][1]["y"] == [0.7, 0.7, 0.7]
    lower = figures.best_so_far(runs, "loss", ascending=True)
    assert lower["data"][1]["y"] == [0.7, 0.6, 0.5]
    assert lower["layout"]["yaxis"]["title"]["text"] == "loss"


def test_parallel_coordinates_leave_out_constants_and_label_categories():
    runs = [run(0, "done", 0.1, lr=1e-4, opt="sgd", batch=32), run(1, "done", 0.2, lr=1e-2, opt="adam", batch=32),
            run(2, "done", 0.3, lr=1e-3, opt="sgd", batch=32), run(3, "failed", None, lr=1.0, opt="x", batch=64)]
    figure = figures.parallel_coordinates(runs, ["lr", "opt", "batch"], "acc", ascending=False)
    dimensions = figure["data"][0]["dimensions"]
    assert [d["label"] for d in dimensions] == ["lr (log)", "opt", "acc"]
    assert dimensions[0]["values"] == pytest.approx([-4, -2, -3])
    assert dimensions[0]["ticktext"] == ["0.0001", "0.001", "0.01"]
    assert dimensions[1]["values"] == [0, 1, 0] and dimensions[1]["ticktext"] == ["sgd", "adam"]
    assert dimensions[2]["values"] == [0.1, 0.2, 0.3]


def test_slices_show_mean_and_std_over_repeats_of_a_value():
    runs = [run(0, "done", 0.1, lr=0.1, seed=1), run(1, "done", 0.3, lr=0.1, seed=2),
            run(2, "done", 0.5, lr=0.2, seed=1), run(3, "done", 0.5, lr=0.2, seed=2)]
    lr_slice, seed_slice = figures.slices(runs, ["lr", "seed"], "acc")
    mean = lr_slice["data"][1]
    assert mean["x"] == [0.1, 0.2] and mean["y"] == pytest.approx([0.2, 0.5])
    assert mean["error_y"]["array"] == pytest.approx([0.1, 0.0])
    assert lr_slice["layout"]["xaxis"]["title"]["text"] == "lr"
    assert seed_slice["data"][1]["y"] == pytest.approx([0.3, 0.4])
    assert figures.search_figures({"performance_key": "acc", "runs": [run(0, "failed")]})["best"] is None


def test_queue_puts_priority_first_and_paused_searches_last():
    def search(sid, state, priority, submitted, queued):
        return {"id": sid, "state": state, "priority": priority, "submitted": submitted, "queue_length": queued}

    searches = [search("old", "running", 1, 1.0, 5), search("high", "running", 3, 2.0, 5),
                search("paused", "paused", 9, 0.5, 5), search("empty", "running", 5, 0.1, 0),
                search("waiting", "queued", 1, 3.0, 0), search("over", "finished", 1, 0.0, 4)]
    assert [s["id"] for s in queue(searches)] == ["high", "old", "waiting", "paused"]


def test_the_server_answers_over_http_and_announces_its_url(site, capsys):
    app, _, sid, paths = site
    handle, url = start_server(app, "127.0.0.1", 0)
    try:
        assert url == f"http://127.0.0.1:{handle.port}/?token={TOKEN}"
        base = url.split("?")[0]
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + "api/searches", timeout=30)
        assert refused.value.code == 403
        request = urllib.request.Request(base + "api/searches", headers={security.TOKEN_HEADER: TOKEN})
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert json.load(answer)["searches"][0]["id"] == sid
        with pytest.raises(UsageError, match="cannot listen"):
            start_server(app, "127.0.0.1", handle.port)
        announce(url, TOKEN, paths)
        assert url in capsys.readouterr().out
        assert paths.token_file.read_text().strip() == TOKEN
        assert stat.S_IMODE(os.stat(paths.token_file).st_mode) == 0o600
    finally:
        handle.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", handle.port), timeout=5).close()


def test_http_address_parsing():
    assert parse_http_address("8000") == ("127.0.0.1", 8000)
    assert parse_http_address(":8000") == ("127.0.0.1", 8000)
    assert parse_http_address("0.0.0.0:80") == ("0.0.0.0", 80)
    assert parse_http_address("[::1]:8080") == ("::1", 8080)
    for bad in ("", "host:", "8000x", "host:70000", "-1"):
        with pytest.raises(UsageError, match="--http"):
            parse_http_address(bad)


def test_start_web_serves_the_service_and_turns_its_refusals_into_409(tmp_path, monkeypatch, search_folder):
    monkeypatch.setenv("HPSEARCH_STATE_DIR", str(tmp_path / "state"))
    paths = state_paths()
    sid = register(paths, search_folder, "running")

    class FakeService:
        def __init__(self):
            self.paths = paths
            self.requests = []

        def handle(self, request):
            self.requests.append(request)
            if request["op"] == "pause":
                return {"ok": False, "error": f"search {sid} runs on a cluster"}
            return {"ok": True}

    service = FakeService()
    with pytest.raises(UsageError, match="--http"):
        start_web(service, "no-port")
    url = start_web(service, "127.0.0.1:0")
    try:
        token = paths.token_file.read_text().strip()
        assert url.endswith(f"/?token={token}") and url.startswith("http://127.0.0.1:")
        assert stat.S_IMODE(os.stat(paths.token_file).st_mode) == 0o600
        base = url.split("?")[0]
        host = base.split("/")[2]
        csrf = security.csrf_token(token)

        def post(action, body):
            request = urllib.request.Request(
                f"{base}api/search/{sid}/{action}", data=json.dumps(body).encode(), method="POST",
                headers={security.TOKEN_HEADER: token, security.CSRF_HEADER: csrf, "Origin": f"http://{host}",
                         "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    return answer.status, json.load(answer)
            except urllib.error.HTTPError as error:
                return error.code, json.load(error)

        assert post("priority", {"n": 3}) == (200, {"ok": True, "action": "priority", "search": sid})
        assert post("cancel", {}) == (200, {"ok": True, "action": "cancel", "search": sid})
        assert post("pause", {}) == (409, {"ok": False, "error": f"search {sid} runs on a cluster"})
        assert service.requests == [{"op": "priority", "search": sid, "n": 3},
                                    {"op": "cancel", "search": sid, "kill": False},
                                    {"op": "pause", "search": sid}]
    finally:
        service.web_server.stop()
