"""A lost or damaged run store is rebuilt from the run folders (issue 10 §2),
through the real CLI: nothing that ended runs again, no second folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import psutil
import pytest

from hpsearch.store import RunStore
from tests.helpers import JOB_SCRIPT, hpsearch_cmd, read_results, run_folders, run_hpsearch, write_project, wait_until


def wait_for(predicate, timeout: float):
    return wait_until(predicate, timeout=timeout)


# A training script that hangs in the run whose --i is $HPSEARCH_TEST_HANG, and
# otherwise is the test job script.
HANGING_TRAIN = f"""
import os, runpy, sys, time
if os.environ.get("HPSEARCH_TEST_HANG") and "--i=" + os.environ["HPSEARCH_TEST_HANG"] in sys.argv:
    time.sleep(300)
sys.argv[0] = {str(JOB_SCRIPT)!r}
runpy.run_path({str(JOB_SCRIPT)!r}, run_name="__main__")
"""


def search_args(out: Path, *extra: str) -> list[str]:
    return ["--grid_module=grid_cfg", f"--out_dir={out}", "--force_out_dir", "--dont_force_new_dir",
            "--visible_gpus=-1", *extra]


def starts(log: Path) -> list[int]:
    """The ``--i`` of every run start the job script logged, in order."""
    if not log.exists():
        return []
    events = [json.loads(line) for line in log.read_text().splitlines()]
    return [event["i"] for event in events if event["event"] == "start"]


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def training_processes(pid: int) -> list[psutil.Process]:
    """The descendants of ``pid`` that run train.py (a fresh fork shows its parent's command line)."""
    found = []
    for proc in psutil.Process(pid).children(recursive=True):
        try:
            if any("train.py" in part for part in proc.cmdline()):
                found.append(proc)
        except psutil.NoSuchProcess:
            pass
    return found


def folder_names(out: Path) -> list[str]:
    return [folder.name for folder in run_folders(out)]


def delete_store(out: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        (out / f"hpsearch.db{suffix}").unlink(missing_ok=True)


def rebuilt_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "run store rebuilt" in line]


@pytest.fixture
def finished_search(tmp_path):
    """A search of five configurations, all done, with a log of every run start."""
    project = write_project(tmp_path / "p", {"i": [1, 2, 3, 4, 5]})
    out = tmp_path / "search"
    log = tmp_path / "events.log"
    env = dict(os.environ, HPSEARCH_TEST_LOG=str(log))
    first = run_hpsearch(search_args(out), project, env=env)
    assert first.returncode == 0, first.stderr
    assert sorted(starts(log)) == [1, 2, 3, 4, 5]
    return project, out, log, env


def test_deleted_store_is_rebuilt_and_nothing_runs_again(finished_search):
    project, out, log, env = finished_search
    names = folder_names(out)
    delete_store(out)
    again = run_hpsearch(search_args(out), project, env=env)
    assert again.returncode == 0, again.stderr
    (line,) = rebuilt_lines(again.stderr)
    assert "5 run folders (5 done)" in line and "hpsearch.db was missing" in line
    assert "(new)" not in again.stderr and "(resumed)" in again.stderr
    assert sorted(starts(log)) == [1, 2, 3, 4, 5]
    assert folder_names(out) == names
    table = read_results(out)
    assert sorted(table["i"]) == [1, 2, 3, 4, 5] and set(table["status"]) == {"done"}
    assert table["acc"].notna().all()
    with RunStore.open(out) as store:
        assert sorted(r.run_dir for r in store.records()) == names


def test_resume_flag_accepts_a_folder_whose_store_is_gone(finished_search):
    project, out, log, env = finished_search
    delete_store(out)
    again = run_hpsearch(["--grid_module=grid_cfg", f"--resume={out}", "--visible_gpus=-1"], project, env=env)
    assert again.returncode == 0, again.stderr
    assert len(rebuilt_lines(again.stderr)) == 1
    assert sorted(starts(log)) == [1, 2, 3, 4, 5]


def test_store_deleted_mid_way_reruns_only_the_unfinished_in_their_folders(tmp_path):
    project = write_project(tmp_path / "p", {"i": [1, 2, 3, 4]})
    (project / "train.py").write_text(HANGING_TRAIN)
    out = tmp_path / "search"
    log = tmp_path / "events.log"
    env = dict(os.environ, HPSEARCH_TEST_LOG=str(log))
    args = search_args(out, "--num_jobs=1", "--deterministic_search")
    driver = subprocess.Popen(hpsearch_cmd(*args), cwd=project, env=dict(env, HPSEARCH_TEST_HANG="3"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Runs 1 and 2 ended and were recorded; run 3 hangs; run 4 has no folder yet.
        wait_for(lambda: out.is_dir() and len(run_folders(out)) == 3
                 and sum((f / "hpsearch_result.json").is_file() for f in run_folders(out)) == 2, 60)
        wait_for(lambda: (out / folder_names(out)[2] / "hpsearch_job.json").is_file(), 30)
        hanging = wait_for(lambda: [proc for proc in training_processes(driver.pid) if alive(proc)
                                    and "--i=3" in " ".join(proc.cmdline())], 30)  # not a fork on its way out
    finally:
        driver.kill()
        driver.wait()
    assert len(hanging) == 1 and hanging[0].is_running()  # the run outlived its driver
    names = folder_names(out)
    assert starts(log) == [1, 2]
    stale = "acc 0.1\nfinished 0\n"  # what the cut-short run had written so far
    (out / names[2] / "performance_overview.txt").write_text(stale)
    delete_store(out)

    try:
        again = run_hpsearch(args, project, env=env)
        left = [p for p in hanging if alive(p)]
    finally:
        for proc in hanging:
            if proc.is_running():
                proc.kill()
    assert again.returncode == 0, again.stderr
    (line,) = rebuilt_lines(again.stderr)
    assert "3 run folders (2 done, 1 running)" in line
    assert "re-attaching to 1 runs" in again.stderr
    assert left == []  # the resumed driver adopted the leftover and stopped it
    assert starts(log) == [1, 2, 3, 4]  # 3 once more (its first attempt hung before logging), 4 for the first time
    assert folder_names(out)[:3] == names and len(folder_names(out)) == 4
    table = read_results(out)
    assert sorted(table["i"]) == [1, 2, 3, 4] and set(table["status"]) == {"done"}
    run3 = Path(table.set_index("i").loc[3, "out_dir"])
    assert run3.name == names[2]
    assert (run3 / "previous_attempts" / "1" / "performance_overview.txt").read_text() == stale
    assert "finished 1" in (run3 / "performance_overview.txt").read_text()


@pytest.mark.parametrize("damage", ["zero bytes", "truncated", "garbage"])
def test_damaged_store_is_moved_aside_and_rebuilt(finished_search, damage):
    project, out, log, env = finished_search
    names = folder_names(out)
    db = out / "hpsearch.db"
    original = db.read_bytes()
    assert len(original) > 8192
    if damage == "zero bytes":
        db.write_bytes(b"")
    elif damage == "truncated":
        db.write_bytes(original[: len(original) // 2])
    else:
        db.write_bytes(os.urandom(len(original)))
    damaged = db.read_bytes()
    again = run_hpsearch(search_args(out), project, env=env)
    assert again.returncode == 0, again.stderr
    assert "database is locked" not in again.stderr and "Traceback" not in again.stderr
    (line,) = rebuilt_lines(again.stderr)
    assert "5 run folders (5 done)" in line and "moved to hpsearch.db.corrupt-" in line
    (aside,) = out.glob("hpsearch.db.corrupt-*")
    assert aside.read_bytes() == damaged
    assert sorted(starts(log)) == [1, 2, 3, 4, 5]
    assert folder_names(out) == names
    assert set(read_results(out)["status"]) == {"done"}
    third = run_hpsearch(search_args(out), project, env=env)  # the rebuilt store is used from now on
    assert third.returncode == 0 and not rebuilt_lines(third.stderr)


def test_set_aside_runs_stay_done_after_a_rebuild(finished_search):
    project, out, log, env = finished_search
    moved = run_folders(out)[0]
    (out / "failed_criteria").mkdir()
    shutil.move(str(moved), out / "failed_criteria" / moved.name)
    delete_store(out)
    again = run_hpsearch(search_args(out), project, env=env)
    assert again.returncode == 0, again.stderr
    assert sorted(starts(log)) == [1, 2, 3, 4, 5]
    assert len(run_folders(out)) == 4  # no new folder for the configuration set aside


def test_damaged_store_without_run_folders_is_set_aside_with_a_warning(tmp_path):
    project = write_project(tmp_path / "p", {"i": [1, 2]})
    out = tmp_path / "search"
    out.mkdir()
    (out / "hpsearch.db").write_bytes(b"not a database at all" * 100)
    (out / "search.json").write_text("{}")
    result = run_hpsearch(search_args(out), project)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    (warning,) = [line for line in result.stderr.splitlines() if "no run folders to rebuild" in line]
    assert "moved to hpsearch.db.corrupt-" in warning
    assert len(list(out.glob("hpsearch.db.corrupt-*"))) == 1
    assert len(run_folders(out)) == 2


def make_run(out: Path, name: str, key: str, index: int, result: dict | None = None, summary: str | None = None,
             info_text: str | None = None) -> Path:
    run_dir = out / name
    run_dir.mkdir(parents=True)
    info = {"key": key, "index": index, "config": {"i": index}, "argv": [], "cwd": str(out)}
    (run_dir / "hpsearch_run.json").write_text(info_text if info_text is not None else json.dumps(info))
    if result is not None:
        (run_dir / "hpsearch_result.json").write_text(json.dumps(result))
    if summary is not None:
        (run_dir / "performance_overview.txt").write_text(summary)
    return run_dir


def test_rebuild_keeps_one_folder_per_key_and_unique_indexes(tmp_path):
    from hpsearch.runs import RunStatus
    from hpsearch.rebuild import rebuild_store
    from hpsearch.verdict import SummaryReader

    out = tmp_path / "search"
    stamp = "20260101120000"
    make_run(out, f"sim_{stamp}_0001", "k1", 0, {"status": "done", "attempt": 1, "exit_code": 0},
             "acc 0.7\nfinished 1\n")
    cut_short = make_run(out, f"sim_{stamp}_0002", "k2", 1)
    (cut_short / "previous_attempts" / "1").mkdir(parents=True)
    make_run(out, f"sim_{stamp}_0006", "k1", 5)  # a second folder of k1, left by an old version
    make_run(out, f"sim_{stamp}_0003", "k3", 1, {"status": "failed", "reason": "exit code 3", "attempt": 2})
    make_run(out, f"sim_{stamp}_0004", "k4", 3, info_text="{truncated")
    with RunStore.open(out) as store:
        rebuilt = rebuild_store(store, out, SummaryReader("performance_overview.txt", ["acc", "finished"]), None)
        records = {r.key: r for r in store.records()}
        assert store.get_meta("stamp") == stamp and store.get_meta("name_width") == 4
    assert rebuilt.skipped == 2 and rebuilt.total == 3
    assert records["k1"].run_dir == f"sim_{stamp}_0001" and records["k1"].status == RunStatus.DONE
    assert records["k1"].summary == {"acc": 0.7, "finished": 1}
    assert records["k2"].status == RunStatus.INTERRUPTED and records["k2"].attempts == 2
    assert records["k3"].status == RunStatus.FAILED and records["k3"].reason == "exit code 3"
    assert records["k3"].attempts == 2
    assert sorted(r.index for r in records.values()) == [0, 1, 2]
    with RunStore.open(out) as store:  # new configurations get folders no existing folder has
        store.add_configs([("k9", {"i": 9})], lambda i: f"sim_{stamp}_{i + 1:04d}")
        assert store.get("k9").run_dir == f"sim_{stamp}_0007"


# --------------------------------------------------------------------------- a cluster search


@pytest.fixture
def fake_lsf_env(tmp_path):
    """The fake LSF (tests/fakes/lsf) first on PATH; its jobs are killed at the end."""
    import signal
    import sys

    from tests.helpers import FAKES

    state = tmp_path / "lsf_state"
    state.mkdir()
    env = dict(os.environ, FAKE_LSF_STATE=str(state), FAKE_LSF_MINUTE="1",
               PATH=os.pathsep.join([str(FAKES / "lsf"), os.path.dirname(sys.executable), os.environ["PATH"]]))
    yield env, state
    for pid_file in state.glob("jobs/*/runner.pid"):
        try:
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)
        except (ProcessLookupError, PermissionError, ValueError):
            pass


def bsub_calls(state: Path) -> int:
    log = state / "calls.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return sum(1 for line in lines if json.loads(line)["tool"] == "bsub")


def test_cluster_jobs_of_a_lost_store_are_adopted_not_submitted_again(tmp_path, fake_lsf_env):
    env, state = fake_lsf_env
    project = write_project(tmp_path / "p", {"i": [1, 2, 3, 4], "sleep": [1.5]})
    out = tmp_path / "search"
    log = tmp_path / "events.log"
    env = dict(env, HPSEARCH_TEST_LOG=str(log))
    args = ["--grid_module=grid_cfg", f"--out_dir={out}", "--force_out_dir", "--dont_force_new_dir",
            "--deterministic_search", "--run_cluster", "--scheduler=lsf", "--num_jobs=2"]
    driver = subprocess.Popen(hpsearch_cmd(*args), cwd=project, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: out.is_dir() and len(list(out.glob("sim_*/hpsearch_job.json"))) == 2, 60)
    finally:
        driver.kill()
        driver.wait()
    assert bsub_calls(state) == 2
    delete_store(out)
    again = run_hpsearch(args, project, env=env, timeout=120)
    assert again.returncode == 0, again.stderr
    (line,) = rebuilt_lines(again.stderr)
    assert "2 running" in line
    assert bsub_calls(state) == 4  # the two jobs of the lost store were followed, not submitted again
    assert sorted(starts(log)) == [1, 2, 3, 4]
    assert len(run_folders(out)) == 4
    assert set(read_results(out)["status"]) == {"done"}


def test_resume_of_a_folder_without_any_search_is_one_line(tmp_path):
    project = write_project(tmp_path / "p", {"i": [1]})
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_hpsearch(["--grid_module=grid_cfg", f"--resume={empty}", "--visible_gpus=-1"], project)
    assert result.returncode == 2
    assert "no hpsearch search folder there" in result.stderr and "Traceback" not in result.stderr
    assert list(empty.iterdir()) == []
