"""Runs that outlive their driver (``--detached_runs``, the search service's drivers).

Through the real CLI and real processes: a driver killed with ``kill -9``
leaves its runs running; a resumed driver adopts the live ones, collects the
exit status of those that ended while no driver ran (from the
``exit_code.txt`` their wrapper wrote), and starts each configuration exactly
once. ``--timeout`` still holds for detached and adopted runs, and SIGTERM of
the driver leaves the runs running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from hpsearch import runwrap
from tests.helpers import env_without_gpus, hpsearch_cmd, read_results, run_folders, write_project, wait_until

RUNWRAP = Path(runwrap.__file__)
DEADLINE = 90.0


def events(log: Path) -> list[dict]:
    if not log.is_file():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def starts(log: Path) -> dict[int, list[dict]]:
    found: dict[int, list[dict]] = {}
    for event in events(log):
        if event["event"] == "start":
            found.setdefault(event["i"], []).append(event)
    return found


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def run_log(tmp_path):
    """The job script's event log; every run process it names is killed at the end (they outlive drivers)."""
    log = tmp_path / "events.log"
    yield log
    for event in events(log):
        if event["event"] == "start" and alive(event["pid"]):
            for proc in [psutil.Process(event["pid"]), *psutil.Process(event["pid"]).children(recursive=True)]:
                try:
                    proc.kill()
                except psutil.Error:
                    pass


def table_project(folder: Path, rows: list[tuple]) -> Path:
    """A project whose configurations are the rows (mode, wait_for, i)."""
    grid = f"__import__('hpsearch').table(('mode', 'wait_for', 'i'), {rows!r})"
    return write_project(folder, None, raw_grid=grid)


def search_args(out: Path, *extra: str) -> list[str]:
    return ["--grid_module=grid_cfg", f"--out_dir={out}", "--force_out_dir", "--dont_force_new_dir",
            "--visible_gpus=-1", "--deterministic_search", "--detached_runs", *extra]


def results(out: Path) -> dict[int, dict]:
    found = {}
    for folder in run_folders(out):
        config = json.loads((folder / "hpsearch_run.json").read_text())["config"]
        found[config["i"]] = json.loads((folder / "hpsearch_result.json").read_text())
    return found


def folder_of(out: Path, i: int) -> Path:
    for folder in run_folders(out):
        if json.loads((folder / "hpsearch_run.json").read_text())["config"]["i"] == i:
            return folder
    raise AssertionError(f"no run folder of i={i}")


def test_kill_9_of_the_driver_then_resume_adopts_and_collects_every_run_once(tmp_path, run_log):
    gates = {name: tmp_path / f"release_{name}" for name in ("adopted", "exit3", "early", "killed")}
    rows = [("ok", str(gates["adopted"]), 1), ("exit3", str(gates["exit3"]), 2), ("ok", str(gates["early"]), 3),
            ("ok", str(gates["killed"]), 4), ("ok", "", 5), ("ok", "", 6)]
    project = table_project(tmp_path / "p", rows)
    out = tmp_path / "search"
    env = dict(env_without_gpus(), HPSEARCH_TEST_LOG=str(run_log))
    driver = subprocess.Popen(hpsearch_cmd(*search_args(out, "--num_jobs=4")), cwd=project, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: len(starts(run_log)) == 4, "four runs started")
        wait_until(lambda: sum((folder / "hpsearch_job.json").is_file() for folder in run_folders(out)) == 4,
                   "four starts recorded")
    finally:
        driver.kill()  # kill -9
        driver.wait(timeout=30)
    pids = {i: found[0]["pid"] for i, found in starts(run_log).items()}
    assert sorted(pids) == [1, 2, 3, 4]
    assert all(alive(pid) for pid in pids.values()), "the runs died with their driver"

    # while no driver runs: one run exits 3, one finishes, one is killed by a signal
    gates["exit3"].touch()
    gates["early"].touch()
    os.kill(pids[4], signal.SIGKILL)
    for i, code in ((2, "3"), (3, "0"), (4, str(128 + signal.SIGKILL))):
        exit_file = folder_of(out, i) / "exit_code.txt"
        wait_until(exit_file.is_file, f"exit_code.txt of run {i}")
        assert exit_file.read_text().strip() == code
    assert alive(pids[1])

    resumed = subprocess.Popen(hpsearch_cmd("--resume", str(out), "--detached_runs"), cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: len(starts(run_log)) == 6, "the two queued runs started after the resume")
        assert alive(pids[1]), "the resumed driver killed a live detached run instead of adopting it"
        gates["adopted"].touch()
        _, stderr = resumed.communicate(timeout=DEADLINE)
    finally:
        if resumed.poll() is None:
            resumed.kill()
    assert resumed.returncode == 1, stderr  # two runs failed
    assert "re-attaching to 4 runs" in stderr
    assert {i: len(found) for i, found in starts(run_log).items()} == {i: 1 for i in range(1, 7)}
    ended = results(out)
    assert ended[1]["status"] == "done" and "adopted" in ended[1]["backend_state"]
    assert ended[2]["status"] == "failed" and ended[2]["reason"].startswith("exit code 3")
    assert ended[2]["exit_code"] == 3
    assert ended[3]["status"] == "done"
    assert ended[4]["status"] == "failed" and "killed by signal 9 (SIGKILL)" in ended[4]["reason"]
    assert ended[4]["signal"] == signal.SIGKILL
    assert ended[5]["status"] == ended[6]["status"] == "done"
    table = read_results(out)
    assert sorted(table["status"]) == ["done"] * 4 + ["failed"] * 2


def test_sigterm_leaves_detached_runs_running_and_their_timeout_holds_after_adoption(tmp_path, run_log):
    project = table_project(tmp_path / "p", [("hang", "", 1)])
    out = tmp_path / "search"
    env = dict(env_without_gpus(), HPSEARCH_TEST_LOG=str(run_log))
    driver = subprocess.Popen(hpsearch_cmd(*search_args(out, "--timeout=8")), cwd=project, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: starts(run_log), "the run started")
        wait_until(lambda: (folder_of(out, 1) / "hpsearch_job.json").is_file(), "its start recorded")
        started = time.monotonic()
        driver.send_signal(signal.SIGTERM)
        _, stderr = driver.communicate(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 128 + signal.SIGTERM
    assert "1 jobs keep running" in stderr or "1 cluster jobs keep running" in stderr
    pid = starts(run_log)[1][0]["pid"]
    assert alive(pid), "SIGTERM of a detached-runs driver stopped its run"
    resumed = subprocess.run(hpsearch_cmd("--resume", str(out), "--detached_runs"), cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=DEADLINE)
    took = time.monotonic() - started
    assert resumed.returncode == 1, resumed.stderr
    ended = results(out)[1]
    assert ended["status"] == "timed_out", ended
    assert "adopted" in ended["backend_state"]
    assert not alive(pid)
    assert took >= 6  # the limit counts from the run's start, not from the adoption
    assert len(starts(run_log)[1]) == 1


def test_a_detached_run_is_timed_out_by_the_driver_that_started_it(tmp_path, run_log):
    project = table_project(tmp_path / "p", [("hang", "", 1), ("ok", "", 2)])
    out = tmp_path / "search"
    env = dict(env_without_gpus(), HPSEARCH_TEST_LOG=str(run_log))
    done = subprocess.run(hpsearch_cmd(*search_args(out, "--timeout=2", "--num_jobs=2")), cwd=project, env=env,
                          capture_output=True, text=True, timeout=DEADLINE)
    assert done.returncode == 1, done.stderr
    ended = results(out)
    assert ended[1]["status"] == "timed_out" and ended[2]["status"] == "done"
    assert not alive(starts(run_log)[1][0]["pid"])
    assert (folder_of(out, 2) / "exit_code.txt").read_text().strip() == "0"


# --------------------------------------------------------------------------- the wrapper itself


def wrap(tmp_path: Path, *argv: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-I", "-S", str(RUNWRAP), str(tmp_path / "exit_code.txt"), "--",
                             *argv], cwd=tmp_path, **kwargs)


def test_wrapper_passes_argv_unchanged_and_records_the_exit_status(tmp_path):
    words = ["$(touch pwned)", "a b", "'", ";", "*", "--x=`id`", ""]
    code = "import json, sys; json.dump(sys.argv[1:], open('argv.json', 'w')); sys.exit(7)"
    proc = wrap(tmp_path, sys.executable, "-c", code, *words)
    assert proc.wait(timeout=30) == 7
    assert json.loads((tmp_path / "argv.json").read_text()) == words
    assert not (tmp_path / "pwned").exists()
    assert (tmp_path / "exit_code.txt").read_text() == "7\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_wrapper_forwards_sigterm_and_ends_like_the_run(tmp_path):
    ready = tmp_path / "ready"
    code = (f"import pathlib, signal, time; signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw("
            f"SystemExit(5))); pathlib.Path({str(ready)!r}).touch(); time.sleep(60)")
    proc = wrap(tmp_path, sys.executable, "-c", code)
    wait_until(ready.is_file, "the run is up")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 5  # the run handled SIGTERM and exited 5
    assert (tmp_path / "exit_code.txt").read_text() == "5\n"

    plain = wrap(tmp_path, sys.executable, "-c", f"import pathlib, time; pathlib.Path({str(ready)!r}).touch(); "
                                                  "time.sleep(60)")
    ready.unlink()
    wait_until(ready.is_file, "the second run is up")
    plain.send_signal(signal.SIGTERM)
    assert plain.wait(timeout=30) == -signal.SIGTERM  # killed by the forwarded signal, as the run was
    assert (tmp_path / "exit_code.txt").read_text() == f"{128 + signal.SIGTERM}\n"


def test_wrapper_of_a_missing_program_records_127(tmp_path):
    proc = wrap(tmp_path, str(tmp_path / "no-such-program"), stderr=subprocess.PIPE, text=True)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 127 and "cannot start" in stderr
    assert (tmp_path / "exit_code.txt").read_text() == "127\n"


# --------------------------------------------------------------------------- the window between start and record


def stopped(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_STOPPED
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("point, ends_before_resume", [("before_start", False), ("after_start", False),
                                                       ("after_start", True)])
def test_driver_killed_between_starting_a_run_and_recording_it_runs_it_exactly_once(tmp_path, run_log, point,
                                                                                     ends_before_resume):
    """The driver stops itself (SIGSTOP, the real HPSEARCH_TEST_STOP_AT hook) just before or just after it
    started the first run's process, before the store or hpsearch_job.json know of it, and is killed -9 there.
    The resume finds the launch written beforehand: it adopts the live run, collects the exit status of one
    that ended meanwhile, or starts the run that never began. Each configuration's script runs exactly once
    (its own 'start' lines)."""
    gate = tmp_path / "release"
    project = table_project(tmp_path / "p", [("ok", str(gate), 1), ("ok", "", 2)])
    out = tmp_path / "search"
    env = dict(env_without_gpus(), HPSEARCH_TEST_LOG=str(run_log))
    driver = subprocess.Popen(hpsearch_cmd(*search_args(out, "--num_jobs=1")), cwd=project,
                              env=dict(env, HPSEARCH_TEST_STOP_AT=point), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: stopped(driver.pid), "the driver to stop itself in the window")
        if point == "after_start":
            wait_until(lambda: starts(run_log).get(1), "the run's script to start")
        launches = [folder for folder in run_folders(out) if (folder / "hpsearch_launch.json").is_file()]
        assert len(launches) == 1 and not (launches[0] / "hpsearch_job.json").exists()
        assert _statuses(out) == {"queued": 2}  # the store does not know of the start
    finally:
        driver.kill()  # kill -9, while it is stopped in the window
        driver.wait(timeout=30)
    if point == "before_start":
        assert not starts(run_log)
    if ends_before_resume:
        gate.touch()
        wait_until((launches[0] / "exit_code.txt").is_file, "the run to end while no driver runs")
    resumed = subprocess.Popen(hpsearch_cmd("--resume", str(out), "--detached_runs"), cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if point == "after_start" and not ends_before_resume:
            wait_until(lambda: _statuses(out).get("running") == 1, "the resumed driver to adopt the run")
            assert len(starts(run_log)) == 1
        gate.touch()
        _, stderr = resumed.communicate(timeout=DEADLINE)
    finally:
        if resumed.poll() is None:
            resumed.kill()
    assert resumed.returncode == 0, stderr
    assert {i: len(found) for i, found in starts(run_log).items()} == {1: 1, 2: 1}
    ended = results(out)
    assert ended[1]["status"] == ended[2]["status"] == "done"
    if point == "after_start" and not ends_before_resume:
        assert "re-attaching to 1 runs the previous driver started but had not recorded" in stderr
        assert "adopted" in ended[1]["backend_state"]
    elif point == "after_start":
        assert "started just before its driver died" in ended[1]["backend_state"]


def _statuses(out: Path) -> dict[str, int]:
    import sqlite3

    with sqlite3.connect(f"file:{out / 'hpsearch.db'}?mode=ro", uri=True, timeout=10) as db:
        return dict(db.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())
