"""The web page in a real browser: Debian's chromium driven by Playwright (no browser download).

What a person sees: the runs table has one row per run of a real search, the
status cells say what the store says, the plots are drawn, the status filter
changes the rows, a running run turns done without a reload, and without the
token the page is refused. No errors in the browser's console.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

pytest.importorskip("flask", reason="the web page needs the web extra: pip install 'hpsearch[web]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

from hpsearch.service.paths import state_paths  # noqa: E402
from hpsearch.web.app import create_app  # noqa: E402
from hpsearch.web.provider import RegistryProvider  # noqa: E402
from hpsearch.web.server import start_server  # noqa: E402
from tests.web_helpers import RecordingActions, counts, finished_search, records, register, running_search  # noqa: E402

pytestmark = pytest.mark.xdist_group("browser")  # one chromium and one pair of searches for the module, not one per worker

TOKEN = "browser-test-token"
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """Two real searches (one finished, one running) behind a real web server."""
    base = tmp_path_factory.mktemp("browser")
    previous = os.environ.get("HPSEARCH_STATE_DIR")
    os.environ["HPSEARCH_STATE_DIR"] = str(base / "state")
    paths = state_paths()
    finished = finished_search(base)
    driver, running, release = running_search(base)
    ids = {"finished": register(paths, finished, "finished"), "running": register(paths, running, "running",
                                                                                   pid=driver.pid)}
    actions = RecordingActions()
    handle, url = start_server(create_app(RegistryProvider(paths), actions, TOKEN), "127.0.0.1", 0)
    try:
        yield {"url": url, "base": url.split("?")[0], "ids": ids, "folders": {"finished": finished, "running": running},
               "release": release, "actions": actions, "driver": driver}
    finally:
        handle.stop()
        release.touch()
        try:
            driver.wait(timeout=120)
        except subprocess.TimeoutExpired:
            driver.kill()
            driver.wait()
        if previous is None:
            os.environ.pop("HPSEARCH_STATE_DIR", None)
        else:
            os.environ["HPSEARCH_STATE_DIR"] = previous


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh browser context (no cookie) whose console errors the test asserts on."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    tab.errors = []
    tab.on("console", lambda message: tab.errors.append(message.text) if message.type == "error" else None)
    tab.on("pageerror", lambda error: tab.errors.append(str(error)))
    yield tab
    context.close()


def open_search(page, service, which: str):
    page.goto(f"{service['base']}search/{service['ids'][which]}?token={TOKEN}")
    page.wait_for_selector("#runs tbody tr")


def visible_rows(page) -> int:
    return page.locator("#runs tbody tr").count()


def test_finished_search_shows_every_run_its_status_and_the_plots(page, service):
    folder = service["folders"]["finished"]
    stored = records(folder)
    open_search(page, service, "finished")
    assert "token" not in page.url  # the token went into the cookie
    assert visible_rows(page) == len(stored) == 12
    failed = next(r for r in stored if r.status.value == "failed")
    row = page.locator(f'#runs tbody tr:has-text("{failed.run_dir}")')
    assert row.locator("td.col-status").inner_text() == "failed"
    assert "exit code 3" in row.locator("td.col-reason").inner_text()
    assert page.locator("#search-state").inner_text() == "finished"
    page.wait_for_selector("#plot-best svg.main-svg")
    page.wait_for_selector("#plot-parallel svg")
    assert page.locator("#plot-slices .plot").count() == 3  # lr, hidden, seed vary; optimizer does not
    assert page.locator("#plot-slices .plot").first.locator("svg.main-svg").count() >= 1
    assert "lr" in page.locator("#plot-slices .plot").first.locator(".xtitle").text_content()
    best = max((r for r in stored if r.status.value == "done"), key=lambda r: r.summary["acc"])
    assert best.run_dir in page.locator("#best").inner_text()
    assert page.errors == []


def test_filtering_by_status_and_sorting_change_the_rows(page, service):
    open_search(page, service, "finished")
    page.select_option("#status-filter", "failed")
    page.wait_for_function("document.querySelectorAll('#runs tbody tr').length === 2")
    assert set(page.locator("#runs tbody td.col-status").all_inner_texts()) == {"failed"}
    page.select_option("#status-filter", "done")
    page.wait_for_function("document.querySelectorAll('#runs tbody tr').length === 10")
    page.locator('#runs thead th[data-key="value"]').click()  # best first for a metric to maximise
    values = [float(text) for text in page.locator("#runs tbody td.col-value").all_inner_texts()]
    assert values == sorted(values, reverse=True)
    before = page.locator("#live").inner_text()
    page.wait_for_function(f"document.getElementById('live').textContent !== {before!r}")  # the next poll
    assert visible_rows(page) == 10
    assert page.errors == []


def test_a_run_file_link_opens_its_log(page, service):
    open_search(page, service, "finished")
    failed = next(r for r in records(service["folders"]["finished"]) if r.status.value == "failed")
    link = page.locator(f'#runs tbody tr:has-text("{failed.run_dir}") a', has_text="stderr")
    page.goto(link.evaluate("a => a.href"))
    assert "diverged: loss is nan" in page.locator("body").inner_text()


def test_running_search_updates_live_without_a_reload(page, service):
    folder = service["folders"]["running"]
    open_search(page, service, "running")
    assert visible_rows(page) == len(records(folder)) == 4
    statuses = page.locator("#runs tbody td.col-status").all_inner_texts()
    assert statuses.count("running") == counts(folder)["running"] == 2
    assert statuses.count("queued") == 2
    running = {r.run_dir: r.where for r in records(folder) if r.status.value == "running"}
    page.wait_for_selector("#gpus tbody tr")
    gpu_rows = page.locator("#gpus tbody tr")
    assert gpu_rows.count() == 2  # one run on each fake GPU
    shown = {gpu_rows.nth(i).locator("td").nth(4).inner_text(): "gpu " + gpu_rows.nth(i).locator("td").first.inner_text()
             for i in range(2)}
    assert shown == running
    page.evaluate("window.__same_document = true")
    service["release"].touch()  # let the runs finish
    page.wait_for_function(
        "[...document.querySelectorAll('#runs tbody td.col-status')].filter(td => td.innerText === 'done').length === 4",
        timeout=120_000)
    assert page.evaluate("window.__same_document") is True  # updated in place, not reloaded
    page.wait_for_selector("#plot-best svg.main-svg")
    assert page.errors == []


def test_the_searches_and_queue_pages_list_the_searches(page, service):
    page.goto(f"{service['base']}?token={TOKEN}")
    page.wait_for_selector("#searches tbody tr")
    rows = page.locator("#searches tbody tr")
    assert rows.count() == 2
    finished = page.locator(f'#searches tbody tr[data-search="{service["ids"]["finished"]}"]')
    assert finished.locator("td").nth(1).inner_text() == "finished"
    assert finished.locator("td").nth(4).inner_text() == "10"
    page.click("text=Queue")
    page.wait_for_selector("#queue")
    page.wait_for_function("document.getElementById('live').textContent.startsWith('live')")
    assert page.errors == []


def test_pause_button_posts_the_action(page, service):
    open_search(page, service, "finished")
    service["actions"].calls.clear()
    page.click('button[data-action="pause"]')
    page.wait_for_function("document.getElementById('action-result').textContent === 'pause: done'")
    assert service["actions"].calls == [("pause", service["ids"]["finished"])]


def test_without_the_token_the_page_is_refused(page, service):
    answer = page.goto(f"{service['base']}search/{service['ids']['finished']}")
    assert answer.status == 403
    assert page.locator("#refused").inner_text() == "Forbidden"
    assert "token" in page.locator("#refused-reason").inner_text()
    assert page.locator("#runs").count() == 0
    wrong = page.goto(f"{service['base']}?token=not-the-token")
    assert wrong.status == 403


# --------------------------------------------------------------------------- a search larger than one page


BIG = 5000


@pytest.fixture(scope="module")
def big_search(tmp_path_factory):
    """A 5,000-run search folder written with the store API (running 5,000 runs here would take minutes):
    90 % done with an acc value, 5 % failed, 8 running, the rest queued; in a registry and behind a web
    server of its own (the other tests count the searches of theirs)."""
    from benchmarks.status import build_search
    from hpsearch.service.paths import StatePaths

    base = tmp_path_factory.mktemp("big")
    folder = base / "search"
    folder.mkdir()
    build_search(folder, BIG)
    settings = json.loads((folder / "search.json").read_text())
    (folder / "search.json").write_text(json.dumps({**settings, "grid_keys": ["lr", "i"]}))
    paths = StatePaths(base / "state")
    paths.root.mkdir(mode=0o700)
    search_id = register(paths, folder, "running")
    handle, url = start_server(create_app(RegistryProvider(paths), RecordingActions(), TOKEN), "127.0.0.1", 0)
    try:
        yield folder, search_id, url.split("?")[0]
    finally:
        handle.stop()


def test_every_run_of_a_large_search_is_reachable_sorted_and_filtered_over_all_runs(page, big_search):
    folder, search_id, base = big_search
    stored = records(folder)
    assert len(stored) == BIG
    page.goto(f"{base}search/{search_id}?token={TOKEN}")
    page.wait_for_selector("#runs tbody tr")
    assert visible_rows(page) == 500
    assert page.locator("#shown").inner_text() == f"runs 1–500 of {BIG} runs"
    assert page.locator("#page-info").inner_text() == "page 1 of 10"
    for _ in range(9):
        page.click("#page-next")
    page.wait_for_function("document.getElementById('page-info').textContent === 'page 10 of 10'")
    numbers = [int(text) for text in page.locator("#runs tbody td.col-number").all_inner_texts()]
    assert numbers == list(range(4501, BIG + 1))  # the last runs, from the store
    assert page.locator("#page-next").is_disabled()

    # sorting covers every run: the best value first, from whichever page it was on
    page.locator('#runs thead th[data-key="value"]').click()
    page.wait_for_function("document.getElementById('page-info').textContent === 'page 1 of 10'")
    best = max((r for r in stored if r.status.value == "done"), key=lambda r: r.summary["acc"])
    first = page.locator("#runs tbody tr").first
    assert first.locator("td.col-run").inner_text() == best.run_dir

    # the status filter covers every run too: 250 failed runs, on one page
    page.select_option("#status-filter", "failed")
    page.wait_for_function("document.querySelectorAll('#runs tbody tr').length === 250")
    failed = {r.run_dir for r in stored if r.status.value == "failed"}
    assert set(page.locator("#runs tbody td.col-run").all_inner_texts()) == failed
    assert page.locator("#pager").is_hidden()
    page.select_option("#status-filter", "done")
    page.wait_for_function("document.getElementById('page-info').textContent === 'page 1 of 9'")
    assert page.locator("#shown").inner_text() == f"runs 1–500 of 4500 of {BIG} runs"
    assert page.errors == []



# --------------------------------------------------------------------------- through a real `hpsearch serve --http`


def test_the_page_of_a_real_serve_http_shows_a_submitted_search_live(browser, tmp_path):
    """The real service with --http on a free port (0: the kernel picks it) and its own state folder; a real
    search submitted to it; the URL the service printed opened in chromium."""
    import re
    import urllib.error
    import urllib.request

    from tests.helpers import write_project
    from tests.test_service import Serve, wait_for

    env = dict(os.environ, HPSEARCH_STATE_DIR=str(tmp_path / "state"), HPSEARCH_CLAIMS_DIR=str(tmp_path / "claims"))
    serve = Serve(tmp_path, env)
    gate = tmp_path / "release"
    project = write_project(tmp_path / "proj", {"score": [0.2, 0.4, 0.6, 0.8], "wait_for": [str(gate)]})
    try:
        serve.start("--visible_gpus=-1", "--num_jobs=2", "--http=127.0.0.1:0")
        url = wait_for(lambda: re.search(r"web page: (http://127\.0\.0\.1:\d+/\?token=\S+)", serve.log.read_text()),
                       60, "the service to print its URL").group(1)
        base = url.split("?")[0]
        search_id, folder = serve.submit("--grid_module=grid_cfg", f"--run_cwd={project}",
                                         f"--out_dir={tmp_path / 'out'}")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}api/search/{search_id}", timeout=30)
        assert refused.value.code == 403

        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        errors: list[str] = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(url)  # the searches page, as the service printed it
        page.wait_for_selector(f'#searches tbody tr[data-search="{search_id}"]')
        page.click(f'#searches a:has-text("{search_id}")')
        page.wait_for_function("document.querySelectorAll('#runs tbody tr').length === 4")
        page.wait_for_function("[...document.querySelectorAll('#runs tbody td.col-status')]"
                               ".filter(td => td.innerText === 'running').length === 2")
        assert sorted(page.locator("#runs tbody td.col-status").all_inner_texts()) == ["queued", "queued",
                                                                                   "running", "running"]
        page.evaluate("window.__same_document = true")
        gate.touch()
        page.wait_for_function("[...document.querySelectorAll('#runs tbody td.col-status')]"
                               ".filter(td => td.innerText === 'done').length === 4", timeout=120_000)
        assert page.evaluate("window.__same_document") is True  # changed live, not by a reload
        page.wait_for_selector("#plot-best svg.main-svg")
        page.wait_for_selector("#plot-parallel svg")
        assert "score" in page.locator("#plot-slices .plot").first.locator(".xtitle").text_content()
        assert errors == []
        context.close()
        wait_for(lambda: "finished" in serve.run("status", search_id).stdout, 60, "the search to finish")
    finally:
        gate.touch()
        serve.stop()
