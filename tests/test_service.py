"""The search service: the fair-share policy, the broker, and ``hpsearch serve`` end to end.

End-to-end tests start the real ``serve`` as a subprocess with its state in a
tmp folder (``HPSEARCH_STATE_DIR``), submit real searches with the real CLI,
and measure from the runs' own records (``trace.json``: start, end, GPU).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Callable

import psutil
import pytest

from hpsearch.gpu.monitor import GpuReading
from hpsearch.gpu.planner import SlotLimits
from hpsearch.service.broker import Broker, fair_shares
from tests.helpers import hpsearch_cmd, write_project

LIMITS = SlotLimits(max_per_gpu=1, allowed_memory=0.9, allowed_load=0.9, startup_time=0)


def wait_for(condition: Callable[[], object], timeout: float = 60, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# --------------------------------------------------------------------------- the policy (pure)


def test_fair_shares_equal_weights_alternate():
    assert fair_shares(4, {"a": 10, "b": 10}, {}, {}) == {"a": 2, "b": 2}
    assert fair_shares(3, {"a": 10, "b": 10}, {}, {}) == {"a": 2, "b": 1}  # the first listed waited longest


def test_fair_shares_weighted_three_to_one():
    assert fair_shares(8, {"a": 100, "b": 100}, {"a": 3, "b": 1}, {}) == {"a": 6, "b": 2}
    assert fair_shares(4, {"b": 100, "a": 100}, {"a": 3, "b": 1}, {}) == {"a": 3, "b": 1}


def test_fair_shares_count_what_is_held_and_never_exceed_demand():
    assert fair_shares(2, {"a": 5, "b": 5}, {}, {"a": 4}) == {"b": 2}
    assert fair_shares(5, {"a": 1, "b": 10}, {}, {}) == {"a": 1, "b": 4}
    assert fair_shares(0, {"a": 3}, {}, {}) == {}
    assert fair_shares(3, {"a": 0}, {}, {}) == {}


# --------------------------------------------------------------------------- the broker (in process)


def test_cpu_broker_refuses_when_full_and_wakes_the_waiting_search():
    broker = Broker(None, num_jobs=2)
    assert broker.acquire("a", 5, LIMITS) == [None, None]
    assert broker.acquire("b", 5, LIMITS) == []
    assert not broker.wait("b", 0.01)
    broker.release("a", [None])
    assert broker.wait("b", 0.01)  # the freed slot is b's: it has waited, a holds one
    assert broker.acquire("a", 5, LIMITS) == []  # a may not take it back first
    assert broker.acquire("b", 5, LIMITS) == [None]


def test_cpu_broker_weighted_share_while_both_wait():
    broker = Broker(None, num_jobs=8)
    broker.set_weight("a", 3)
    assert len(broker.acquire("a", 8, LIMITS)) == 8  # alone: the whole pool
    assert broker.acquire("b", 8, LIMITS) == []
    held: Counter = Counter(a=8)
    for round_ in range(12):  # every round one run of each search ends, then both ask again
        for search in ("a", "b"):
            if held[search]:
                broker.release(search, [None])
                held[search] -= 1
        for search in (("a", "b") if round_ % 2 else ("b", "a")):
            held[search] += len(broker.acquire(search, 8, LIMITS))
        assert held["a"] + held["b"] <= 8
    assert (held["a"], held["b"]) == (6, 2)


def test_paused_search_gets_nothing_and_its_share_goes_to_others():
    broker = Broker(None, num_jobs=2)
    broker.set_paused("a", True)
    assert broker.acquire("a", 2, LIMITS) == []
    assert broker.acquire("b", 2, LIMITS) == [None, None]


def test_forgotten_driver_releases_its_slots():
    broker = Broker(None, num_jobs=1)
    assert broker.acquire("a", 1, LIMITS) == [None]
    assert broker.acquire("b", 1, LIMITS) == []
    assert broker.forget("a") == [None]
    assert broker.acquire("b", 1, LIMITS) == [None]


class _FakeMonitor:
    """Four idle GPUs; counts polls."""

    visible = None

    def __init__(self) -> None:
        self.polls = 0

    def poll(self) -> list[GpuReading]:
        self.polls += 1
        return [GpuReading(i, 0.0, 16000.0, 0.0) for i in range(4)]


def test_gpu_broker_shares_one_pool_and_one_poll():
    monitor = _FakeMonitor()
    broker = Broker(monitor, max_per_gpu=1, poll_interval=3600, first=monitor.poll())
    first = broker.acquire("a", 3, LIMITS)
    assert sorted(first) == ["0", "1", "2"] or len(set(first)) == 3
    second = broker.acquire("b", 3, LIMITS)
    assert len(second) == 1 and second[0] not in first  # the pool's cap per GPU holds across searches
    assert broker.acquire("c", 1, LIMITS) == []
    assert monitor.polls == 1  # the start-up poll served every search
    broker.release("b", second)
    assert broker.acquire("c", 1, LIMITS) == []  # b, still wanting 2 more, has waited longer
    assert broker.acquire("b", 3, LIMITS) == second
    broker.release("b", second, satisfied=True)
    assert broker.acquire("c", 1, LIMITS) == second


# --------------------------------------------------------------------------- serve end to end


class Serve:
    """One ``hpsearch serve`` subprocess with its state in a tmp folder; always stopped at the end."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.env = env
        self.cwd = tmp_path
        self.proc: subprocess.Popen | None = None
        self.log = tmp_path / "serve.log"

    def start(self, *args: str) -> "Serve":
        handle = open(self.log, "ab")
        self.proc = subprocess.Popen(hpsearch_cmd("serve", *args), cwd=self.cwd, env=self.env, stdout=handle,
                                     stderr=handle, start_new_session=True)
        handle.close()
        wait_for(lambda: self.run("status-ping").returncode == 0 or self.proc.poll() is not None, 60,
                 "the service to answer")
        assert self.proc.poll() is None, self.log.read_text()
        return self

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        if args == ("status-ping",):
            code = ("import sys\nfrom hpsearch.service import protocol\nfrom hpsearch.service.paths import "
                    "state_paths\ntry:\n protocol.call(state_paths().socket, {'op': 'ping'})\nexcept Exception:\n"
                    " sys.exit(1)")
            return subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True, text=True)
        return subprocess.run(hpsearch_cmd(*args), cwd=self.cwd, env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def call(self, request: dict) -> dict:
        code = ("import json, sys\nfrom hpsearch.service import protocol\nfrom hpsearch.service.paths import "
                f"state_paths\nprint(json.dumps(protocol.call(state_paths().socket, {request!r})))")
        done = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def submit(self, *args: str) -> tuple[str, Path]:
        done = self.run("submit", *args)
        assert done.returncode == 0, done.stderr
        search_id, folder = done.stdout.split()
        return search_id, Path(folder)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.run("serve", "--stop", "--kill-runs", timeout=150)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def service_env(tmp_path, monkeypatch) -> dict[str, str]:
    monkeypatch.setenv("HPSEARCH_STATE_DIR", str(tmp_path / "state"))
    env = dict(os.environ)
    env["HPSEARCH_STATE_DIR"] = str(tmp_path / "state")
    return env


@pytest.fixture
def serve(tmp_path, service_env, request) -> Serve:
    service = Serve(tmp_path, service_env)
    request.addfinalizer(service.stop)
    return service


@pytest.fixture
def gpu_serve(tmp_path, fake_gpus, service_env, request) -> Serve:
    service = Serve(tmp_path, dict(os.environ))  # the fake GPUs' PATH and the state folder
    request.addfinalizer(service.stop)
    return service


def traces(folder: Path) -> list[dict]:
    found = []
    for trace in folder.glob("sim_*/trace.json"):
        try:
            found.append(json.loads(trace.read_text()))
        except (OSError, ValueError):
            pass  # being written
    return found


def started(folder: Path) -> int:
    return len(list(folder.glob("sim_*/argv.json")))


def registry_state(_serve: Serve, search_id: str) -> str:
    from hpsearch.service.registry import Registry

    with Registry.open() as registry:
        return registry.get(search_id).state


def test_second_search_gets_slots_within_a_run_and_both_run_side_by_side(gpu_serve, tmp_path):
    release = tmp_path / "release"  # A's first runs hold the GPUs until B's driver waits for a slot
    project = write_project(tmp_path / "proj", {"i": list(range(8)), "sleep": [3.0], "wait_for": [str(release)]})
    write_project(project, {"i": list(range(4)), "sleep": [3.0]}, module="grid_b")
    gpu_serve.start("--max_num_jobs_per_gpu=1")
    common = (f"--run_cwd={project}", "--sim_startup_time=0")
    id_a, folder_a = gpu_serve.submit("--grid_module=grid_cfg", *common, f"--out_dir={tmp_path / 'a'}")
    try:
        wait_for(lambda: started(folder_a) >= 4, 60, "search A to fill the 4 GPUs")
        id_b, folder_b = gpu_serve.submit("--grid_module=grid_b", *common, f"--out_dir={tmp_path / 'b'}")
        wait_for(lambda: any(s["id"] == id_b and s["waiting"] for s in gpu_serve.call({"op": "status"})["searches"]),
                 60, "search B to wait for a slot")
    finally:
        release.touch()
    released = time.time()
    for search_id in (id_a, id_b):
        wait_for(lambda: registry_state(gpu_serve, search_id) == "finished", 180, "both searches to finish")
    runs_a, runs_b = traces(folder_a), traces(folder_b)
    assert (len(runs_a), len(runs_b)) == (8, 4)
    first_b = min(run["start"] for run in runs_b)
    # B's first run starts once one of A's runs has ended: about one run's length after A's runs went on
    assert first_b - released < 3.0 + 6.0, (first_b - released)
    assert first_b < max(run["start"] for run in runs_a)  # not after A had started all its runs
    # side by side: some run of A was running while one of B ran
    assert any(a["start"] < b["end"] and b["start"] < a["end"] for a in runs_a for b in runs_b)
    # never more than 4 runs at once on the 4 GPUs x 1 slot, and never two on one GPU
    everything = runs_a + runs_b
    for run in everything:
        alongside = [other for other in everything if other["start"] < run["end"] and run["start"] < other["end"]]
        assert len(alongside) <= 4
        assert Counter(other["gpu"] for other in alongside)[run["gpu"]] == 1
    assert {run["gpu"] for run in everything} <= {"0", "1", "2", "3"}


def test_pause_unpause_cancel_and_resume(serve, tmp_path):
    release = tmp_path / "release"  # while it is missing, started runs wait: the search cannot end before the cancel
    project = write_project(tmp_path / "proj", {"i": list(range(6)), "sleep": [1.0], "wait_for": [str(release)]})
    serve.start("--visible_gpus=-1", "--num_jobs=2")
    search_id, folder = serve.submit("--grid_module=grid_cfg", f"--run_cwd={project}", f"--out_dir={tmp_path / 'o'}")
    wait_for(lambda: started(folder) >= 1, 60, "a first run")
    assert serve.run("pause", search_id[:4]).returncode == 0
    assert registry_state(serve, search_id) == "paused"
    before = started(folder)
    release.touch()
    wait_for(lambda: len(traces(folder)) >= before, 30, "the running runs to end")
    time.sleep(1.5)  # a paused search must stay put; nothing to wait on but time
    assert started(folder) == before
    release.unlink()
    assert serve.run("unpause", search_id).returncode == 0
    wait_for(lambda: started(folder) > before, 30, "runs after unpause")
    assert serve.run("cancel", str(folder)).returncode == 0
    wait_for(lambda: registry_state(serve, search_id) == "cancelled", 60, "the search to be cancelled")
    interrupted = _statuses(folder)
    assert "running" not in interrupted.values() and "interrupted" in interrupted.values()
    release.touch()
    assert serve.run("unpause", search_id).returncode == 0
    wait_for(lambda: registry_state(serve, search_id) == "finished", 120, "the search to finish after unpause")
    statuses = _statuses(folder)
    assert set(statuses.values()) == {"done"} and len(statuses) == 6


def _statuses(folder: Path) -> dict[str, str]:
    import sqlite3

    with sqlite3.connect(f"file:{folder / 'hpsearch.db'}?mode=ro", uri=True) as db:
        return dict(db.execute("SELECT key, status FROM runs").fetchall())


def test_priority_three_gets_about_three_times_the_slots(serve, tmp_path):
    project = write_project(tmp_path / "proj", {"i": list(range(40)), "sleep": [0.5]})
    serve.start("--visible_gpus=-1", "--num_jobs=4")
    common = ("--grid_module=grid_cfg", f"--run_cwd={project}")
    heavy, folder_h = serve.submit(*common, f"--out_dir={tmp_path / 'h'}")
    assert serve.run("priority", heavy, "3").returncode == 0
    light, folder_l = serve.submit(*common, f"--out_dir={tmp_path / 'l'}")
    wait_for(lambda: started(folder_l) >= 1, 60, "the light search to start")
    mark = time.time()
    wait_for(lambda: len(traces(folder_l)) >= 6, 120, "runs of the light search")
    end = time.time()

    def overlap(runs: list[dict]) -> float:
        return sum(max(0.0, min(r["end"], end) - max(r["start"], mark)) for r in runs)

    ratio = overlap(traces(folder_h)) / max(1e-9, overlap(traces(folder_l)))
    assert 1.8 < ratio < 5.0, ratio  # loosely 3: slot time of weight 3 against weight 1


def test_second_serve_is_refused_naming_the_first(serve, tmp_path):
    serve.start("--visible_gpus=-1")
    done = serve.run("serve", "--visible_gpus=-1")
    assert done.returncode == 2
    assert f"pid {serve.proc.pid}" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_submit_bad_input_and_no_service_exit_2(serve, tmp_path):
    project = write_project(tmp_path / "proj", {"i": [1, 2]})
    no_service = serve.run("submit", "--grid_module=grid_cfg", f"--run_cwd={project}", f"--out_dir={tmp_path / 'x'}")
    assert no_service.returncode == 2 and "hpsearch serve" in no_service.stderr
    assert len(no_service.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
    serve.start("--visible_gpus=-1")
    for args in (["--grid_module=missing_mod"], ["--grid_module=grid_cfg", "--max_retries=-1"], ["--bogus"]):
        done = serve.run("submit", *args, f"--run_cwd={project}", f"--out_dir={tmp_path / 'y'}")
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "y").exists()
    for args in (["pause"], ["priority", "abc", "x"], ["priority", "abc", "0"], ["cancel", "nosuch"],
                 ["serve", "--kill-runs"]):
        done = serve.run(*args)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, (args, done.stderr)



def test_bad_http_address_is_refused_before_anything_exists(serve, tmp_path):
    for address in ("abc", "localhost:99999", "host:"):
        done = serve.run("serve", f"--http={address}")
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, (address, done.stderr)
        assert "--http" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "state").exists()  # no state folder, lock, socket or pid file

def drivers_of(folder: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        words = " ".join(process.info["cmdline"] or [])
        if "--service_socket" in words and str(folder) in words and process.status() != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found


def test_serve_stop_leaves_runs_running_and_next_serve_adopts_them(serve, tmp_path):
    release = tmp_path / "release"  # the runs wait for it: they are surely running when the service stops
    project = write_project(tmp_path / "proj", {"i": list(range(4)), "sleep": [0.5], "wait_for": [str(release)]})
    log = tmp_path / "runs.log"
    serve.env = {**serve.env, "HPSEARCH_TEST_LOG": str(log)}
    serve.start("--visible_gpus=-1", "--num_jobs=2")
    search_id, folder = serve.submit("--grid_module=grid_cfg", f"--run_cwd={project}", f"--out_dir={tmp_path / 'o'}")
    wait_for(lambda: log.exists() and log.read_text().count('"start"') >= 2, 60, "two runs to start")
    done = serve.run("serve", "--stop")
    assert done.returncode == 0, done.stderr
    serve.proc.wait(timeout=60)
    assert registry_state(serve, search_id) == "stopped"
    assert not drivers_of(folder)
    events = [json.loads(line) for line in log.read_text().splitlines()]
    ended = {e["i"] for e in events if e["event"] == "done"}
    running = [e["pid"] for e in events if e["event"] == "start" and e["i"] not in ended]
    assert running and all(psutil.pid_exists(pid) for pid in running)  # the runs outlive the stopped service
    serve.start("--visible_gpus=-1", "--num_jobs=2")
    release.touch()
    wait_for(lambda: registry_state(serve, search_id) == "finished", 120, "the search to finish after restart")
    assert set(_statuses(folder).values()) == {"done"}
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert Counter(e["i"] for e in events if e["event"] == "start") == Counter(range(4))  # adopted, not re-run
    assert Counter(e["i"] for e in events if e["event"] == "done") == Counter(range(4))


def lsf_elements(env: dict[str, str]) -> dict[str, str]:
    """The fake LSF's jobs as bjobs prints them: {"101[2]": "PSUSP", ...}."""
    done = subprocess.run(["bjobs", "-a", "-noheader", "-o", "jobid jobindex stat delimiter='|'"], env=env,
                          capture_output=True, text=True)
    found = {}
    for line in done.stdout.splitlines():
        job, index, stat = line.strip().split("|")
        found[f"{job}[{index}]"] = stat
    return found


def bjobs_calls(state: Path) -> int:
    log = state / "calls.log"
    return sum('"bjobs"' in line for line in log.read_text().splitlines()) if log.exists() else 0


def test_pause_of_a_cluster_search_holds_its_waiting_jobs_and_unpause_releases_them(serve, tmp_path):
    """An LSF job array capped at 1 running: one element runs, three wait (PEND). Pause: the three are
    bstop'ed (PSUSP, LSF's held pending state) and the running one goes on to its end; none of the held ones
    starts. Unpause: bresume, and the search finishes with every configuration run once."""
    from tests.helpers import FAKES

    env = dict(serve.env)
    env["PATH"] = f"{FAKES / 'lsf'}{os.pathsep}{env['PATH']}"
    env["FAKE_LSF_STATE"] = str(tmp_path / "lsf_state")
    env["HPSEARCH_TEST_LOG"] = str(tmp_path / "runs.log")
    serve.env = env
    gate = tmp_path / "release"
    project = write_project(tmp_path / "proj", {"i": [1, 2, 3, 4], "wait_for": [str(gate)]})
    serve.start("--visible_gpus=-1")
    search_id, folder = serve.submit("--grid_module=grid_cfg", f"--run_cwd={project}", f"--out_dir={tmp_path / 'o'}",
                                     "--run_cluster", "--scheduler=lsf", "--lsf_array", "--num_jobs=1")
    wait_for(lambda: started(folder) == 1 and len(lsf_elements(env)) == 4, 60, "one element running, three waiting")
    assert sorted(lsf_elements(env).values()) == ["PEND", "PEND", "PEND", "RUN"]
    paused = serve.run("pause", search_id)
    assert paused.returncode == 0, paused.stderr
    assert registry_state(serve, search_id) == "paused"
    wait_for(lambda: sorted(lsf_elements(env).values()) == ["PSUSP", "PSUSP", "PSUSP", "RUN"], 60,
             "the waiting elements to be held")
    gate.touch()  # the running one ends; the held ones must not start
    wait_for(lambda: sorted(lsf_elements(env).values()) == ["DONE", "PSUSP", "PSUSP", "PSUSP"], 60,
             "the running element to end")
    calls = bjobs_calls(tmp_path / "lsf_state")
    wait_for(lambda: bjobs_calls(tmp_path / "lsf_state") >= calls + 2, 60, "the driver to look at its jobs again")
    assert started(folder) == 1 and sorted(lsf_elements(env).values()) == ["DONE", "PSUSP", "PSUSP", "PSUSP"]
    assert serve.run("unpause", search_id).returncode == 0
    wait_for(lambda: registry_state(serve, search_id) in ("finished", "failed"), 120, "the cluster search to end")
    assert registry_state(serve, search_id) == "finished"
    assert set(_statuses(folder).values()) == {"done"}
    starts = Counter(json.loads(line)["i"] for line in (tmp_path / "runs.log").read_text().splitlines()
                     if json.loads(line)["event"] == "start")
    assert starts == Counter([1, 2, 3, 4])
    calls_log = (tmp_path / "lsf_state" / "calls.log").read_text()
    assert '"bstop"' in calls_log and '"bresume"' in calls_log


def test_kill_9_of_the_service_then_serve_again_does_every_configuration_once(serve, tmp_path):
    project = write_project(tmp_path / "proj", {"i": list(range(6)), "sleep": [2.5]})
    log = tmp_path / "runs.log"
    serve.env = {**serve.env, "HPSEARCH_TEST_LOG": str(log)}
    serve.start("--visible_gpus=-1", "--num_jobs=2")
    search_id, folder = serve.submit("--grid_module=grid_cfg", f"--run_cwd={project}", f"--out_dir={tmp_path / 'o'}")
    # runs in flight, some ended: those the driver had not recorded yet are collected from their exit_code.txt
    wait_for(lambda: started(folder) >= 3 and started(folder) > len(traces(folder)), 60, "runs in flight")
    os.kill(serve.proc.pid, signal.SIGKILL)  # the service alone: its driver goes by the parent-death signal
    serve.proc.wait()
    wait_for(lambda: not drivers_of(folder), 30, "the driver to die with the service")
    serve.start("--visible_gpus=-1", "--num_jobs=2")
    wait_for(lambda: registry_state(serve, search_id) == "finished", 120, "the search to finish after the restart")
    assert set(_statuses(folder).values()) == {"done"} and len(_statuses(folder)) == 6
    done = Counter(json.loads(line)["i"] for line in log.read_text().splitlines()
                   if json.loads(line)["event"] == "done")
    assert done == Counter(range(6)), done  # every configuration finished exactly once


def test_broker_counts_the_slots_a_driver_says_its_runs_hold():
    broker = Broker(None, num_jobs=2)
    assert broker.acquire("a", 2, LIMITS, holding=[None]) == [None]  # one adopted run holds a slot already
    assert broker.acquire("b", 1, LIMITS) == []
    assert broker.acquire("a", 1, LIMITS, holding=[]) == [None]  # a's runs ended: its count is corrected


def test_detach_returns_once_the_socket_answers_and_stop_ends_it(serve):
    done = serve.run("serve", "--detach", "--visible_gpus=-1")
    try:
        assert done.returncode == 0, done.stderr
        pid = int(done.stdout.split("pid ")[1].split(")")[0])
        assert serve.call({"op": "ping"})["pid"] == pid
        assert os.getsid(pid) == pid  # a session of its own
    finally:
        stopped = serve.run("serve", "--stop")
    assert stopped.returncode == 0, stopped.stderr
    wait_for(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, 30,
             "the detached service to end")
    again = serve.run("serve", "--stop")
    assert again.returncode == 2 and "no hpsearch service is running" in again.stderr


def test_a_paused_search_does_not_ask_again_until_unpaused():
    broker = Broker(None, num_jobs=2)
    broker.set_paused("a", True)
    assert broker.acquire("a", 1, LIMITS) == []
    assert not broker.wait("a", 0.05)  # no busy loop between a paused driver and the service
    broker.set_paused("a", False)
    assert broker.wait("a", 0.05)
    assert broker.acquire("a", 1, LIMITS) == [None]


def test_unpause_right_after_cancel_starts_the_search_once_its_driver_stopped(serve, tmp_path):
    project = write_project(tmp_path / "proj", {"i": list(range(4)), "sleep": [1.0]})
    serve.start("--visible_gpus=-1", "--num_jobs=2")
    search_id, folder = serve.submit("--grid_module=grid_cfg", f"--run_cwd={project}", f"--out_dir={tmp_path / 'o'}")
    wait_for(lambda: started(folder) >= 1, 60, "a first run")
    assert serve.run("cancel", search_id).returncode == 0
    assert serve.run("unpause", search_id).returncode == 0  # while the cancelled driver may still be stopping
    wait_for(lambda: registry_state(serve, search_id) == "finished", 120, "the search to finish")
    assert set(_statuses(folder).values()) == {"done"}


def test_cancel_kill_stops_runs_that_ignore_sigterm_without_the_grace(serve, tmp_path):
    from hpsearch.proctree import DEFAULT_GRACE

    project = write_project(tmp_path / "proj", {"i": [0, 1], "mode": ["stubborn"]})
    log = tmp_path / "runs.log"
    serve.env = {**serve.env, "HPSEARCH_TEST_LOG": str(log)}
    serve.start("--visible_gpus=-1", "--num_jobs=2")
    search_id, folder = serve.submit("--grid_module=grid_cfg", f"--run_cwd={project}", f"--out_dir={tmp_path / 'o'}")
    wait_for(lambda: log.exists() and log.read_text().count('"stubborn"') == 2, 60, "both runs to ignore SIGTERM")
    asked = time.monotonic()
    assert serve.run("cancel", "--kill", search_id).returncode == 0
    wait_for(lambda: registry_state(serve, search_id) == "cancelled", 60, "the search to be cancelled")
    assert time.monotonic() - asked < DEFAULT_GRACE, time.monotonic() - asked  # TERM is ignored: KILL at once
    assert set(_statuses(folder).values()) == {"interrupted"}
    pids = [json.loads(line)["pid"] for line in log.read_text().splitlines() if json.loads(line)["event"] == "start"]
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)


def test_subcommands_are_dispatched_and_a_foreground_flag_is_not_one():
    from hpsearch.subcommands import SUBCOMMANDS, subcommand

    assert set(SUBCOMMANDS) >= {"serve", "submit", "status", "list", "find", "logs", "pause", "unpause", "cancel",
                                "priority", "init", "report", "compare", "plot", "verify"}
    assert subcommand("--grid_module=x") is None and subcommand("servee") is None
    assert subcommand("pause").__name__ == "pause_main"
    hidden = subprocess.run(hpsearch_cmd("--help"), capture_output=True, text=True)
    assert hidden.returncode == 0 and "--service_socket" not in hidden.stdout and "--detached_runs" not in hidden.stdout


def test_a_service_runs_gpu_claim_is_the_runs_and_outlives_a_killed_service(gpu_serve, fake_gpus, tmp_path):
    """The service's broker claims a GPU slot for the start-up window (the run's memory never shows:
    per_run_memory is 0) and hands the claim to the run's wrapper once the driver says it started. After kill -9
    of the service (its driver dies with it; the run goes on), a foreground search on the same GPU, through the
    real GPUtil and the same claims folder, gets it only once the run has ended."""
    fake_gpus.configure(1)
    claims_dir = Path(os.environ["HPSEARCH_CLAIMS_DIR"])
    gate = tmp_path / "release"
    project = write_project(tmp_path / "proj", {"i": [1], "wait_for": [str(gate)]})
    project_b = write_project(tmp_path / "proj_b", {"i": [2]})
    gpu_serve.start("--max_num_jobs_per_gpu=1")
    b = None
    try:
        _id, folder = gpu_serve.submit("--grid_module=grid_cfg", f"--run_cwd={project}", "--sim_startup_time=120",
                                       f"--out_dir={tmp_path / 'a'}")
        job = wait_for(lambda: next(iter(folder.glob("sim_*/hpsearch_job.json")), None), 60, "A's run to start")
        wrapper = int(json.loads(job.read_text())["job_id"])
        wait_for(lambda: [json.loads(p.read_text())["pid"] for p in claims_dir.glob("*.claim")] == [wrapper], 30,
                 "the claim to be the run's")
        os.kill(gpu_serve.proc.pid, signal.SIGKILL)
        gpu_serve.proc.wait()
        wait_for(lambda: not drivers_of(folder), 30, "the driver to die with the service")
        assert psutil.pid_exists(wrapper) and psutil.Process(wrapper).status() != psutil.STATUS_ZOMBIE
        calls = len(fake_gpus.calls_log.read_text().splitlines())
        out_b = tmp_path / "b"
        b = subprocess.Popen(hpsearch_cmd("--grid_module=grid_cfg", f"--out_dir={out_b}", "--force_out_dir",
                                          "--visible_gpus=0", "--max_num_jobs_per_gpu=1", "--allowed_memory=0.5",
                                          "--sim_startup_time=120", "--gpu_poll_interval=0.2"),
                             cwd=project_b, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: len(fake_gpus.calls_log.read_text().splitlines()) >= calls + 8, 60, "B to plan a few rounds")
        assert started(out_b) == 0, "B got the GPU of the service's live run"
        gate.touch()
        _, stderr = b.communicate(timeout=120)
        assert b.returncode == 0, stderr
    finally:
        gate.touch()
        if b is not None and b.poll() is None:
            b.kill()
    run_a, run_b = traces(folder)[0], traces(out_b)[0]
    assert run_a["gpu"] == run_b["gpu"] == "0"
    assert run_b["start"] >= run_a["end"], (run_a, run_b)
