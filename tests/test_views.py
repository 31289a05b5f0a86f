"""``hpsearch status``, ``list``, ``find`` and ``logs`` (issue 12), through the real CLI.

Every test has its own state folder (``HPSEARCH_STATE_DIR``). Searches are real
foreground searches of a small talking script; a search is put in the registry
through the Registry API where the test needs it registered.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from hpsearch.runs import JobHandle, RunStatus
from hpsearch.service.paths import StatePaths
from hpsearch.service.registry import FOREGROUND, SERVICE, Registry
from hpsearch.service.snapshot import SearchRef, listing, overview, search_document
from hpsearch.store import RunRecord, RunStore
from tests.helpers import env_without_gpus, hpsearch_cmd, write_project, wait_until


def wait_for(predicate, timeout: float, what: str):
    return wait_until(predicate, what, timeout)


DOCS = Path(__file__).resolve().parent.parent / "docs" / "service.md"

TALKER = """\
import argparse, os, sys, time
parser = argparse.ArgumentParser()
parser.add_argument("--score", type=float, default=0.5)
parser.add_argument("--mode", default="ok")
parser.add_argument("--wait_for", default="")
parser.add_argument("--out_dir", required=True)
args, _ = parser.parse_known_args()
print(f"hello from score {args.score}", flush=True)
print(f"complaint of score {args.score}", file=sys.stderr, flush=True)
deadline = time.monotonic() + 120
while args.wait_for and not os.path.exists(args.wait_for) and time.monotonic() < deadline:
    time.sleep(0.02)
print(f"bye from score {args.score}", flush=True)
if args.mode == "fail":
    sys.exit(3)
with open(os.path.join(args.out_dir, "performance_overview.txt"), "w") as handle:
    handle.write(f"acc {args.score}\\nfinished 1\\n")
"""


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def state(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "state"
    monkeypatch.setenv("HPSEARCH_STATE_DIR", str(folder))
    return folder


def project(tmp_path: Path, grid: dict) -> Path:
    folder = write_project(tmp_path / "project", grid)
    (folder / "train.py").write_text(TALKER)
    return folder


def driver_argv(out: Path, *extra: str) -> list[str]:
    return hpsearch_cmd("--grid_module=grid_cfg", f"--out_dir={out}", "--force_out_dir", "--visible_gpus=-1",
                        "--num_jobs=2", *extra)


def env_with(state_dir: Path) -> dict[str, str]:
    env = env_without_gpus()
    env["HPSEARCH_STATE_DIR"] = str(state_dir)
    return env


def cli(args: list[str], cwd: Path, state_dir: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(hpsearch_cmd(*args), cwd=cwd, env=env_with(state_dir), capture_output=True, text=True,
                          timeout=timeout)


def one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


def run_info(run_folder: Path) -> dict:
    return json.loads((run_folder / "hpsearch_run.json").read_text())


def run_with_score(search: Path, score: float, mode: str = "ok") -> Path:
    for folder in sorted(search.glob("sim_*")):
        config = run_info(folder)["config"]
        if config["score"] == score and config.get("mode", "ok") == mode:
            return folder
    raise AssertionError(f"no run with score {score}, mode {mode} in {search}")


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished foreground search of 6 runs: scores 0.3, 0.9, 0.1, each ok and failing (exit 3).

    Its driver ran with a state folder of its own, so no test's registry knows it unless it registers it.
    """
    tmp = tmp_path_factory.mktemp("finished")
    folder = project(tmp, {"score": [0.3, 0.9, 0.1], "mode": ["ok", "fail"]})
    out = tmp / "search"
    proc = subprocess.run(driver_argv(out), cwd=folder, env=env_with(tmp / "driver-state"), capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 1, proc.stderr  # three runs failed
    return out


def copy_search(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".hpsearch.lock"))
    return target


# --------------------------------------------------------------------------- the documented schema


def documented_objects() -> dict[str, dict[str, str]]:
    """The tables of docs/service.md's "status --json schema" section: object name -> {field: type}."""
    text = DOCS.read_text()
    section = text.split("## status --json schema", 1)[1]
    section = re.split(r"\n## ", section, maxsplit=1)[0]
    objects: dict[str, dict[str, str]] = {}
    name = None
    for line in section.splitlines():
        heading = re.match(r"^### (.+?)\s*$", line)
        if heading:
            name = heading.group(1).split(" (")[0].strip("`")
            continue
        row = re.match(r"^\| `([a-z_]+)` \| ([^|]+) \|", line)
        if row and name:
            objects.setdefault(name, {})[row.group(1)] = row.group(2).strip()
    return objects


PRIMITIVES = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,), "null": (type(None),)}


def check_against_docs(value: Any, object_name: str, objects: dict, where: str = "") -> int:
    """Raise unless ``value`` has exactly the documented fields with the documented types; returns objects checked."""
    fields = objects[object_name]
    assert isinstance(value, dict), f"{where or object_name}: not an object"
    assert set(value) == set(fields), (f"{where or object_name}: undocumented {sorted(set(value) - set(fields))}, "
                                       f"missing {sorted(set(fields) - set(value))}")
    checked = 1
    for field, kinds in fields.items():
        checked += check_type(value[field], kinds, objects, f"{where or object_name}.{field}")
    return checked


def check_type(value: Any, kinds: str, objects: dict, where: str) -> int:
    for kind in (alternative.strip() for alternative in kinds.split(" or ")):
        if kind in PRIMITIVES:
            if isinstance(value, PRIMITIVES[kind]) and not (kind in ("integer", "number") and isinstance(value, bool)):
                return 0
        elif kind.removeprefix("object ") in objects and isinstance(value, dict):
            return check_against_docs(value, kind.removeprefix("object "), objects, where)
        elif kind.startswith("array of ") and isinstance(value, list):
            item = kind[len("array of "):]
            return sum(check_type(element, item, objects, f"{where}[{i}]") for i, element in enumerate(value))
    raise AssertionError(f"{where}: {value!r} is not {kinds}")


def test_every_documented_type_names_a_documented_object():
    objects = documented_objects()
    assert {"overview document", "search document", "list document", "search", "running-run", "failure",
            "service", "pool", "gpu"} <= set(objects)
    for fields in objects.values():
        for kinds in fields.values():
            for kind in kinds.split(" or "):
                kind = kind.strip().removeprefix("object ").removeprefix("array of ")
                assert kind in PRIMITIVES or kind in objects, kinds


# --------------------------------------------------------------------------- a finished foreground search


def test_status_of_a_folder_no_registry_knows_works_without_service_or_state_folder(finished, tmp_path, state):
    proc = cli(["status", str(finished), "--json"], tmp_path, state)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert check_against_docs(doc, "search document", documented_objects()) > 5
    search = doc["search"]
    assert search["registered"] is False and search["id"] is None
    assert search["folder"] == str(finished.resolve())
    assert search["counts"] == {"queued": 0, "running": 0, "done": 3, "failed": 3, "timed_out": 0,
                                "interrupted": 0, "total": 6}
    assert search["state"] == "failed" and search["driver"]["alive"] is False
    best = run_with_score(finished, 0.9)
    assert search["best"] == {"value": 0.9, "number": run_info(best)["index"] + 1, "key": run_info(best)["key"],
                              "run": best.name}
    assert search["performance_key"] == "acc" and search["ascending"] is False
    assert len(search["failures"]) == 3
    assert all(f["reason"].startswith("exit code 3") for f in search["failures"])
    assert {f["exit_code"] for f in search["failures"]} == {3}
    failed_names = {run_with_score(finished, score, "fail").name for score in (0.3, 0.9, 0.1)}
    assert {f["run"] for f in search["failures"]} == failed_names
    assert search["running"] == [] and search["eta_s"] is None
    assert search["mean_duration_s"] is not None and search["mean_duration_s"] > 0
    assert not state.exists(), "status DIR must not need, nor create, a state folder"

    text = cli(["status", str(finished)], tmp_path, state)
    assert text.returncode == 0, text.stderr
    assert "3 done, 0 running, 3 failed, 0 queued" in text.stdout
    assert f"best acc=0.9 ({best.name})" in text.stdout
    assert "exit code 3" in text.stdout


def test_status_list_find_logs_of_a_registered_finished_search(finished, tmp_path, state):
    with Registry.open() as registry:
        entry = registry.register(finished, kind=FOREGROUND, state="finished")
    assert cli(["list"], tmp_path, state).stdout.count(entry.id) == 0, "finished searches only with --all"
    listed = cli(["list", "--all", "--json"], tmp_path, state)
    assert listed.returncode == 0, listed.stderr
    doc = json.loads(listed.stdout)
    check_against_docs(doc, "list document", documented_objects())
    (search,) = doc["searches"]
    assert (search["id"], search["state"], search["kind"]) == (entry.id, "finished", "foreground")
    assert search["best"]["value"] == 0.9 and search["counts"]["done"] == 3
    text = cli(["list", "--all"], tmp_path, state).stdout
    assert entry.id in text and str(finished.resolve()) in text and "best acc=0.9" in text

    by_prefix = cli(["status", entry.id[:5], "--json"], tmp_path, state)
    assert json.loads(by_prefix.stdout)["search"]["id"] == entry.id

    target = run_with_score(finished, 0.9)
    info = run_info(target)
    for name in (info["key"], info["key"][:8], f"{entry.id}:{info['index'] + 1}", f"{entry.id[:4]}:{info['index'] + 1}",
                 f"{finished}:{info['index'] + 1}", target.name):
        found = cli(["find", name], tmp_path, state)
        assert (found.returncode, found.stdout) == (0, f"{target.resolve()}\n"), (name, found.stderr)

    logs = cli(["logs", target.name], tmp_path, state)
    assert (logs.returncode, logs.stdout) == (0, "hello from score 0.9\nbye from score 0.9\n"), logs.stderr
    errors = cli(["logs", info["key"][:10], "--stderr"], tmp_path, state)
    assert (errors.returncode, errors.stdout) == (0, "complaint of score 0.9\n"), errors.stderr
    done = cli(["logs", target.name, "--follow"], tmp_path, state, timeout=30)
    assert (done.returncode, done.stdout) == (0, "hello from score 0.9\nbye from score 0.9\n"), "ended runs end at once"


def test_find_and_logs_refuse_unknown_and_ambiguous_runs_in_one_line(finished, tmp_path, state):
    twin = copy_search(finished, tmp_path / "twin")  # the same configurations, so the same keys
    with Registry.open() as registry:
        first = registry.register(finished, kind=FOREGROUND, state="finished")
        second = registry.register(twin, kind=FOREGROUND, state="finished")
    key = run_info(run_with_score(finished, 0.3))["key"]
    ambiguous = cli(["find", key[:6]], tmp_path, state)
    one_line_error(ambiguous, "ambiguous", first.id, second.id, "SEARCH:NUMBER")
    one_line_error(cli(["logs", key], tmp_path, state), "ambiguous")
    one_line_error(cli(["find", "0123456789abcdefff"], tmp_path, state), "no run")
    one_line_error(cli(["logs", "sim_19990101000000_0001"], tmp_path, state), "no run folder named")
    one_line_error(cli(["find", f"{first.id}:0"], tmp_path, state), "run number")
    one_line_error(cli(["find", f"{first.id}:x"], tmp_path, state), "run number")
    one_line_error(cli(["find", f"{first.id}:99"], tmp_path, state), "has no run 99")
    one_line_error(cli(["find", "zz-not-a-key"], tmp_path, state), "expected a configuration key")
    one_line_error(cli(["find", "nosuchsearch:1"], tmp_path, state), "no search 'nosuchsearch'")
    one_line_error(cli(["find"], tmp_path, state), "RUN")
    one_line_error(cli(["logs", key, "--folow"], tmp_path, state), "--folow")
    one_line_error(cli(["status", "nosuchsearch"], tmp_path, state), "no search")
    one_line_error(cli(["status", str(tmp_path)], tmp_path, state), "no hpsearch search folder")
    one_line_error(cli(["status", "--watc"], tmp_path, state), "--watc")
    one_line_error(cli(["list", "--al"], tmp_path, state), "--al")


def test_find_follows_a_run_folder_the_postprocessor_set_aside(finished, tmp_path, state):
    search = copy_search(finished, tmp_path / "copy")
    target = run_with_score(search, 0.1, "fail")
    aside = search / "failed_criteria" / target.name
    aside.parent.mkdir()
    target.rename(aside)
    with Registry.open() as registry:
        entry = registry.register(search, kind=FOREGROUND, state="finished")
    info = run_info(aside)
    for name in (target.name, info["key"].upper()[:9], f"{entry.id}:{info['index'] + 1}", str(aside)):
        found = cli(["find", name], tmp_path, state)
        assert (found.returncode, found.stdout) == (0, f"{aside}\n"), (name, found.stderr)
    logs = cli(["logs", target.name], tmp_path, state)
    assert logs.stdout == "hello from score 0.1\nbye from score 0.1\n"


# --------------------------------------------------------------------------- a running foreground search


def test_status_list_and_logs_follow_of_a_running_foreground_search(tmp_path, state):
    release = tmp_path / "release"
    folder = project(tmp_path, {"score": [0.3, 0.9, 0.1], "wait_for": [str(release)]})
    out = tmp_path / "search"
    driver = subprocess.Popen(driver_argv(out), cwd=folder, env=env_with(state), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(list(out.glob("sim_*/stdout.txt"))) == 2, 60, "two runs started")
        with Registry.open() as registry:
            entry = registry.register(out, kind=FOREGROUND, state="running", pid=driver.pid,
                                      pid_started=psutil.Process(driver.pid).create_time())

        def running_two() -> dict | None:
            doc = json.loads(cli(["status", entry.id, "--json"], tmp_path, state).stdout)
            return doc if doc["search"]["counts"]["running"] == 2 else None

        doc = wait_for(running_two, 60, "the store says two runs are running")
        check_against_docs(doc, "search document", documented_objects())
        search = doc["search"]
        assert search["state"] == "running" and search["driver"] == {"pid": driver.pid, "alive": True}
        assert search["counts"]["queued"] == 1 and search["queue_length"] == 1
        assert search["best"] is None and search["eta_s"] is None  # nothing ended yet
        for run in search["running"]:
            process = psutil.Process(run["pid"])
            assert any("train.py" in word for word in process.cmdline())
            assert run["where"] == "cpu" and run["gpu"] is None and run["backend"] == "local"
            assert run["elapsed_s"] >= 0 and run["attempt"] == 1
            assert Path(run["folder"]).name == run["run"]

        overview_text = cli(["status"], tmp_path, state)
        assert overview_text.returncode == 0, overview_text.stderr
        assert "service not running" in overview_text.stdout
        assert re.search(rf"{entry.id}  running  0 done, 2 running, 0 failed, 1 queued", overview_text.stdout)
        listed = json.loads(cli(["list", "--json"], tmp_path, state).stdout)
        assert [(s["id"], s["state"]) for s in listed["searches"]] == [(entry.id, "running")]

        first = search["running"][0]
        log = tmp_path / "follow.txt"
        with open(log, "w") as sink:
            follower = subprocess.Popen(hpsearch_cmd("logs", f"{entry.id}:{first['number']}", "--follow"),
                                        cwd=tmp_path, env=env_with(state), stdout=sink, stderr=subprocess.PIPE,
                                        text=True)
        wait_for(lambda: "hello" in log.read_text(), 30, "the follower printed the run's first line")
        assert follower.poll() is None, "a running run is followed until it ends"
        release.touch()
        assert follower.wait(60) == 0, follower.stderr.read()
        score = json.loads((Path(first["folder"]) / "hpsearch_run.json").read_text())["config"]["score"]
        assert log.read_text() == f"hello from score {score}\nbye from score {score}\n"
        assert driver.wait(120) == 0, driver.stderr.read()
    finally:
        release.touch()
        if driver.poll() is None:
            driver.kill()
            driver.wait()


def test_logs_follow_waits_for_a_queued_run_to_start_and_end(tmp_path, state):
    release = tmp_path / "release"
    folder = project(tmp_path, {"score": [0.3, 0.9, 0.1], "wait_for": [str(release)]})
    out = tmp_path / "search"
    driver = subprocess.Popen(driver_argv(out), cwd=folder, env=env_with(state), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(list(out.glob("sim_*/stdout.txt"))) == 2, 60, "two runs started")
        queued = next(record for record in RunStore.open(out, readonly=True).records() if record.status == RunStatus.QUEUED)
        follower = subprocess.Popen(hpsearch_cmd("logs", f"{out}:{queued.index + 1}", "--follow"), cwd=tmp_path,
                                    env=env_with(state), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)  # not a wait for a condition: the follower must still be there, a queued run has not ended
        assert follower.poll() is None
        release.touch()
        stdout, stderr = follower.communicate(timeout=90)
        assert follower.returncode == 0, stderr
        score = queued.config["score"]
        assert stdout == f"hello from score {score}\nbye from score {score}\n"
        assert driver.wait(120) == 0
    finally:
        release.touch()
        if driver.poll() is None:
            driver.kill()
            driver.wait()


def test_readers_never_break_a_running_search(tmp_path, state):
    """status, list and the snapshots read in a tight loop while a search of 60 runs of 0 s runs."""
    folder = project(tmp_path, {"score": [round(0.01 * i, 2) for i in range(60)]})
    out = tmp_path / "search"
    driver = subprocess.Popen(driver_argv(out), cwd=folder, env=env_with(state), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    reads, problems = [0], []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            if (out / "hpsearch.db").is_file():
                doc = search_document(SearchRef(out, None))
                if doc["search"]["error"]:
                    problems.append(doc["search"]["error"])
                reads[0] += 1

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        while driver.poll() is None:
            proc = cli(["status", str(out), "--json"], tmp_path, state)
            assert proc.returncode == 0 or not (out / "hpsearch.db").exists(), proc.stderr
        stop.set()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        if driver.poll() is None:
            driver.kill()
    assert driver.wait() == 0, driver.stderr.read()
    assert reads[0] > 10 and problems == []
    final = search_document(SearchRef(out, None))["search"]
    assert final["counts"]["done"] == 60 and final["best"]["value"] == 0.59


@pytest.mark.parametrize("journal", ["WAL", "DELETE"])
def test_a_reader_in_a_loop_never_makes_a_store_write_fail(tmp_path, journal):
    """The driver's store calls (one transaction each) beside status reads, on both journals."""
    folder = tmp_path / "search"
    folder.mkdir()
    (folder / "search.json").write_text(json.dumps({"performance_key": "acc", "performance_sort_asc": False}))
    store = RunStore.open(folder, journal_mode=journal)
    store.add_configs(((f"{i:016x}", {"i": i}) for i in range(150)), lambda i: f"sim_20260101000000_{i + 1:04d}")
    stop, seen, problems = threading.Event(), [], []

    def read() -> None:
        while not stop.is_set():
            search = search_document(SearchRef(folder, None))["search"]
            (problems if search["error"] else seen).append(search["error"] or search["counts"]["done"])

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(150):
            key = f"{i:016x}"
            store.mark_running(key, JobHandle(key, "local", str(10_000 + i), "cpu", {}), time.time())
            store.mark_final(key, RunStatus.DONE, reason=None, exit_code=0, signal=None,
                             summary={"acc": i / 150, "finished": 1}, ended=time.time(), backend_state=None)
            time.sleep(0.002)  # a driver does other things between its transactions
    finally:
        stop.set()
        reader.join()
        store.close()
    assert problems == [] and len(seen) >= 2 and min(seen) < 150, seen  # some reads came during the writes
    assert seen == sorted(seen), "each read sees one state of the store, and states only move forward"
    assert search_document(SearchRef(folder, None))["search"]["best"]["value"] == pytest.approx(149 / 150)


# --------------------------------------------------------------------------- the service's part


def store_with_runs(folder: Path, runs: list[tuple[RunStatus, str | None, dict | None]]) -> Path:
    """A search folder whose store holds ``runs`` as (status, placement, summary), built through the store API."""
    folder.mkdir(parents=True)
    (folder / "search.json").write_text(json.dumps({"performance_key": "loss", "performance_sort_asc": True,
                                                    "grid_module": "grid_cfg"}))
    now = time.time()
    records = [RunRecord(key=f"{index:016x}", index=index, config={"i": index},
                         run_dir=f"sim_20260101000000_{index + 1:04d}", status=status, attempts=1,
                         backend="local", job_id=str(os.getpid()), where=where, started=now - 60,
                         ended=now - 30 if status in (RunStatus.DONE, RunStatus.FAILED) else None, summary=summary,
                         reason="exit code 1" if status == RunStatus.FAILED else None)
               for index, (status, where, summary) in enumerate(runs)]
    with RunStore.open(folder) as store:
        store.restore(records)
    return folder


class FakeService:
    """Answers ``{"op": "status"}`` on the service socket as the daemon does (a stand-in for svc-daemon's)."""

    def __init__(self, path: Path, answer: dict) -> None:
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen()
        self.answer, self.requests = answer, []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                data = b""
                while not data.endswith(b"\n"):
                    data += conn.recv(4096)
                self.requests.append(json.loads(data))
                conn.sendall(json.dumps(self.answer).encode() + b"\n")

    def close(self) -> None:
        self.server.close()


def test_overview_with_the_service_up_shows_readings_and_which_runs_hold_each_gpu(tmp_path, state):
    search = store_with_runs(tmp_path / "a", [
        (RunStatus.DONE, "gpu 0", {"loss": [0.9, 0.4], "finished": 1}),
        (RunStatus.DONE, "gpu 1", {"loss": 0.2, "finished": 1}),
        (RunStatus.DONE, "gpu 1", {"loss": float("nan"), "finished": 1}),
        (RunStatus.FAILED, "gpu 0", None),
        (RunStatus.RUNNING, "gpu 1", None),
        (RunStatus.QUEUED, None, None),
        (RunStatus.QUEUED, None, None),
    ])
    with Registry.open() as registry:
        entry = registry.register(search, kind=SERVICE, state="running", pid=os.getpid())
        registry.set_service(pid=os.getpid(), started=time.time() - 3600)
    paths = StatePaths(state)
    # the shape of svc-daemon's answer (hpsearch/service/daemon.py, _op_status)
    service = FakeService(paths.socket, {
        "ok": True, "service": {"pid": os.getpid(), "started": time.time() - 3600, "uptime": 3600.0},
        "pool": {"kind": "gpu", "max_per_gpu": 1, "num_jobs": 1,
                 "gpus": [{"id": 0, "memory_used": 100, "memory_total": 16000, "load": 0.25, "held_by": []},
                          {"id": 1, "memory_used": 9000, "memory_total": 16000, "load": 0.75,
                           "held_by": [entry.id]}]},
        "searches": [{"id": entry.id, "folder": str(search), "state": "running", "kind": "service",
                      "priority": 1, "driver_pid": os.getpid(), "slots_held": 1, "waiting": True}]})
    try:
        proc = cli(["status", "--json"], tmp_path, state)
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        text = cli(["status"], tmp_path, state).stdout
    finally:
        service.close()
    assert service.requests and service.requests[0] == {"op": "status"}
    check_against_docs(doc, "overview document", documented_objects())
    assert doc["service"]["running"] is True and doc["service"]["uptime_s"] == 3600.0
    assert doc["service"]["queue_length"] == 2 and doc["pool"]["source"] == "service"
    assert (doc["pool"]["kind"], doc["pool"]["slots_per_gpu"], doc["pool"]["cpu_slots"]) == ("gpu", 1, None)
    gpus = {gpu["id"]: gpu for gpu in doc["pool"]["gpus"]}
    assert gpus["0"]["runs"] == [] and gpus["0"]["memory_used_mb"] == 100 and gpus["0"]["load"] == 0.25
    assert gpus["1"]["held_by"] == [entry.id] and gpus["0"]["held_by"] == []
    assert [(r["search"], r["run"], r["number"]) for r in gpus["1"]["runs"]] == [(entry.id, "sim_20260101000000_0005", 5)]
    (shown,) = doc["searches"]
    assert shown["slots_held"] == 1
    assert shown["best"] == {"value": 0.2, "number": 2, "key": f"{1:016x}", "run": "sim_20260101000000_0002"}
    assert shown["ascending"] is True
    assert shown["mean_duration_s"] == pytest.approx(30, abs=1)
    # 2 queued runs of 30 s each, plus nothing left of the running one (60 s > 30 s), on 1 slot
    assert shown["eta_s"] == pytest.approx(60, abs=2)
    assert "service running" in text and "up 1:00:00" in text and "2 runs queued" in text
    assert re.search(r"GPU 1  9000/16000 MB  load 75%  sim_20260101000000_0005", text)


def test_overview_with_the_service_down_says_when_it_was_last_seen(tmp_path, state):
    search = store_with_runs(tmp_path / "a", [(RunStatus.RUNNING, "gpu 3", None), (RunStatus.QUEUED, None, None)])
    last_seen = time.time() - 600
    with Registry.open() as registry:
        registry.register(search, kind=SERVICE, state="running", pid=None)
        registry.set_service(pid=999_999_999, started=last_seen - 60, last_seen=last_seen)
    StatePaths(state).socket.touch()  # a socket file left behind: nobody answers
    doc = overview(Registry.open(), paths=StatePaths(state))
    check_against_docs(doc, "overview document", documented_objects())
    assert doc["service"]["running"] is False and doc["service"]["last_seen"] == pytest.approx(last_seen)
    assert doc["pool"]["source"] == "runs" and [g["id"] for g in doc["pool"]["gpus"]] == ["3"]
    assert doc["searches"][0]["driver"]["alive"] is False and doc["searches"][0]["eta_s"] is None
    text = cli(["status"], tmp_path, state).stdout
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last_seen))
    assert f"service not running, last seen {when}" in text
    assert "no driver" in text


def test_a_cluster_search_is_shown_from_its_store_without_asking_the_scheduler(tmp_path, state):
    folder = store_with_runs(tmp_path / "cluster", [(RunStatus.DONE, "array 7 task 0", {"loss": 0.5, "finished": 1}),
                                                    (RunStatus.RUNNING, "array 7 task 1", None)])
    with RunStore.open(folder) as store:
        key = f"{1:016x}"
        store.mark_running(key, JobHandle(key, "slurm", "7_1", "array 7 task 1", {}), time.time() - 5)
    spies = tmp_path / "bin"
    spies.mkdir()
    calls = tmp_path / "scheduler-calls.log"
    for name in ("squeue", "sacct", "scontrol", "bjobs", "bhist"):
        (spies / name).write_text(f"#!/bin/sh\necho {name} >> {calls}\nexit 1\n")
        (spies / name).chmod(0o755)
    env = env_with(state)
    env["PATH"] = f"{spies}{os.pathsep}{env['PATH']}"
    proc = subprocess.run(hpsearch_cmd("status", str(folder), "--json"), cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    (run,) = json.loads(proc.stdout)["search"]["running"]
    assert (run["backend"], run["job_id"], run["pid"], run["gpu"], run["where"]) == (
        "slurm", "7_1", None, None, "array 7 task 1")
    assert 4 <= run["elapsed_s"] < 120
    assert not calls.exists(), calls.read_text()


def test_list_shows_active_searches_and_hides_those_that_are_over(tmp_path, state):
    folders = {name: store_with_runs(tmp_path / name, [(RunStatus.DONE, "cpu", {"loss": 1.0, "finished": 1})])
               for name in ("active", "paused", "stopped", "finished", "failed", "cancelled")}
    with Registry.open() as registry:
        for name, folder in folders.items():
            registry.register(folder, kind=SERVICE, state=name if name != "active" else "running")
        shown = {Path(s["folder"]).name for s in listing(registry)["searches"]}
        every = {Path(s["folder"]).name for s in listing(registry, include_over=True)["searches"]}
    assert shown == {"active", "paused", "stopped"}
    assert every == set(folders)


def test_status_watch_redraws_until_ctrl_c_and_ends_cleanly(finished, tmp_path, state):
    watcher = subprocess.Popen(hpsearch_cmd("status", str(finished), "--watch", "--json"), cwd=tmp_path,
                               env=env_with(state), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        frames = [json.loads(watcher.stdout.readline()) for _ in range(2)]
        assert frames[1]["generated"] > frames[0]["generated"]
        assert all(frame["search"]["counts"]["done"] == 3 for frame in frames)
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(30) == 0
        assert "Traceback" not in watcher.stderr.read()
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()


def test_a_driver_pid_reused_by_another_process_is_not_alive(tmp_path, state):
    folder = store_with_runs(tmp_path / "a", [(RunStatus.QUEUED, None, None)])
    settings = json.loads((folder / "search.json").read_text())
    # this process was started before the session was saved: it could be that driver
    settings["sessions"] = [{"pid": os.getpid(), "started": time.time(), "host": socket.gethostname()}]
    (folder / "search.json").write_text(json.dumps(settings))
    assert search_document(SearchRef(folder, None))["search"]["driver"]["alive"] is True
    # a session saved before this process existed was another process's
    settings["sessions"] = [{"pid": os.getpid(), "started": psutil.Process().create_time() - 100,
                             "host": socket.gethostname()}]
    (folder / "search.json").write_text(json.dumps(settings))
    search = search_document(SearchRef(folder, None))["search"]
    assert search["driver"]["alive"] is False and search["state"] == "stopped"


def test_best_value_ranks_as_the_report_does(tmp_path):
    nan = float("nan")
    folder = store_with_runs(tmp_path / "a", [
        (RunStatus.DONE, None, {"loss": True, "finished": 1}),  # a boolean is no value
        (RunStatus.DONE, None, {"loss": [3.0, 0.5], "finished": 1}),  # a list counts by its last element
        (RunStatus.DONE, None, {"loss": 0.5, "other": nan, "finished": 1}),  # a tie: the first number wins
        (RunStatus.DONE, None, {"loss": "0.1", "finished": 1}),  # text is no value
        (RunStatus.FAILED, None, {"loss": 0.0, "finished": 1}),  # only done runs count
        (RunStatus.DONE, None, {"loss": 0.7, "other": nan, "finished": 1}),
        (RunStatus.DONE, None, {"loss": nan, "finished": 1}),
    ])
    best = search_document(SearchRef(folder, None))["search"]["best"]
    assert (best["value"], best["number"]) == (0.5, 2)
    settings = json.loads((folder / "search.json").read_text())
    (folder / "search.json").write_text(json.dumps({**settings, "performance_sort_asc": False}))
    best = search_document(SearchRef(folder, None))["search"]["best"]
    assert (best["value"], best["number"]) == (0.7, 6)
