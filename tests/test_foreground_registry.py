"""A foreground search registers itself in the per-user registry of searches
(so ``hpsearch list`` shows it from any terminal), and records how it ended;
a registry that cannot be written never fails the search."""

from __future__ import annotations

import os
import signal
import subprocess

from hpsearch.service.registry import FOREGROUND, Registry
from tests.helpers import env_without_gpus, hpsearch_cmd, write_project, wait_until


def entry_of(out):
    if not os.path.exists(os.environ["HPSEARCH_STATE_DIR"]):
        return None
    with Registry.open() as registry:
        return registry.by_folder(out)


def search(tmp_path, modes, release, name="search"):
    project = write_project(tmp_path / f"p_{name}", {"mode": modes, "wait_for": [str(release)]})
    out = tmp_path / name
    args = ["--grid_module=grid_cfg", f"--out_dir={out}", "--force_out_dir", "--visible_gpus=-1", "--keep_going"]
    return subprocess.Popen(hpsearch_cmd(*args), cwd=project, env=env_without_gpus(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True), out


def test_a_foreground_search_is_registered_while_it_runs_and_keeps_its_end_state(tmp_path):
    release = tmp_path / "release"
    driver, out = search(tmp_path, ["ok"], release)
    try:
        running = wait_until(lambda: entry_of(out), "the search registered")
        assert (running.kind, running.state, running.pid) == (FOREGROUND, "running", driver.pid)
        assert running.driver_alive() and running.exit_code is None
        release.touch()
        _, stderr = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, stderr
    ended = entry_of(out)
    assert (ended.id, ended.state, ended.exit_code) == (running.id, "finished", 0)
    assert ended.ended is not None and not ended.driver_alive()


def test_failed_and_stopped_searches_say_so(tmp_path):
    release = tmp_path / "release"
    release.touch()
    driver, out = search(tmp_path, ["exit3"], release)
    driver.communicate(timeout=60)
    assert driver.returncode == 1
    assert (entry_of(out).state, entry_of(out).exit_code) == ("failed", 1)

    release.unlink()
    driver, out = search(tmp_path, ["ok"], release, "stopped")
    try:
        wait_until(lambda: list(out.glob("sim_*/argv.json")), "the run started")
        driver.send_signal(signal.SIGTERM)
        driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 128 + signal.SIGTERM
    assert (entry_of(out).state, entry_of(out).exit_code) == ("stopped", 128 + signal.SIGTERM)


def test_a_registry_that_cannot_be_written_never_fails_the_search(tmp_path, monkeypatch):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the state folder should be")
    monkeypatch.setenv("HPSEARCH_STATE_DIR", str(blocked))
    release = tmp_path / "release"
    release.touch()
    driver, _out = search(tmp_path, ["ok"], release)
    _, stderr = driver.communicate(timeout=60)
    assert driver.returncode == 0, stderr
    assert stderr.count("cannot record this search in the registry") == 1
