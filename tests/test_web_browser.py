"""The web page in a real browser: Debian's chromium driven by Playwright (no browser download).

What a person sees: the runs table has one row per run of a real search, the
status cells say what the store says, the plots are drawn, the status filter
changes the rows, a running run turns done without a reload, and without the
token the page is refused. No errors in the browser's console.
"""

from __future__ import annotations

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
