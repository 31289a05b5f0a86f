"""Runs that leave processes behind never outlive their search (issue 10 §4).

Through the real CLI and real processes: runs that double-fork a daemon
ignoring SIGTERM, call ``os.setsid()``, or ignore SIGTERM; after their normal
end, after ``--timeout``, after Ctrl-C and after ``kill -9`` of the driver, no
process of theirs is alive. A 1 GB summary fails its run without taking the
driver's memory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

import psutil
import pytest

from hpsearch import cgroup
from tests.helpers import TESTS, env_without_gpus, hpsearch_cmd, run_folders, write_project, wait_until


def wait_for(predicate, timeout: float, what: str):
    return wait_until(predicate, what, timeout)


HOSTILE = ("daemon", "setsid", "ignore")
GONE_WITHIN = 20.0  # seconds; the kill grace is 5 s, the guardian's 2 s


def project_with(tmp_path: Path, modes, then: str) -> tuple[Path, str]:
    tag = uuid.uuid4().hex
    project = write_project(tmp_path / "p", {"mode": list(modes), "then": [then], "tag": [tag]})
    shutil.copy(TESTS / "scripts" / "hostile.py", project / "train.py")
    return project, tag


def search_args(out: Path, *extra: str) -> list[str]:
    return ["--grid_module=grid_cfg", f"--out_dir={out}", "--force_out_dir", "--dont_force_new_dir",
            f"--num_jobs={len(HOSTILE)}", *extra]


def tagged(tag: str) -> list[psutil.Process]:
    """Live (not zombie) processes whose argv holds ``tag``."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["status"] != psutil.STATUS_ZOMBIE and any(tag in arg for arg in proc.info["cmdline"] or ()):
            found.append(proc)
    return found


def assert_none_left(tag: str) -> None:
    """No process of the runs is alive right now (the ones found are killed, for the next test)."""
    left = tagged(tag)
    for proc in left:
        proc.kill()
    assert not left, f"processes of the runs outlived the search: {[p.info['cmdline'] for p in left]}"


def assert_all_gone(tag: str) -> None:
    def none_left():
        return not tagged(tag)
    try:
        wait_for(none_left, GONE_WITHIN, "every process of the runs gone")
    finally:
        for proc in tagged(tag):  # never leave them to the next test
            proc.kill()


def results(out: Path) -> dict[str, dict]:
    found = {}
    for folder in run_folders(out):
        info = json.loads((folder / "hpsearch_run.json").read_text())
        result = folder / "hpsearch_result.json"
        found[info["config"]["mode"]] = json.loads(result.read_text()) if result.is_file() else None
    return found


def all_up(out: Path, count: int) -> bool:
    """Every run's hostile child is set up (it announces itself with up_<pid>)."""
    if not out.is_dir():
        return False
    ups = [f for folder in run_folders(out) for f in folder.iterdir() if f.name.startswith("up_")]
    return len(ups) >= count


@pytest.fixture(params=["cgroups", "no_cgroups"])
def env(request) -> dict[str, str]:
    """With cgroups where this machine has usable ones, and without (the fallback:
    subreaper and environment marker) everywhere."""
    env = env_without_gpus()
    if request.param == "no_cgroups":
        env[cgroup.NO_CGROUPS_ENV] = "1"
    elif not cgroups_usable():
        pytest.skip("no usable cgroup2 hierarchy here")
    return env


def cgroups_usable() -> bool:
    found = cgroup.SearchCgroups.create(uuid.uuid4().hex[:12])
    if found is None:
        return False
    cgroup.remove(found.root)
    return True


def run_search(project: Path, out: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(hpsearch_cmd(*search_args(out, *extra)), cwd=project, env=env, capture_output=True,
                          text=True, timeout=120)


def start_search(project: Path, out: Path, env: dict[str, str], *extra: str) -> subprocess.Popen:
    return subprocess.Popen(hpsearch_cmd(*search_args(out, *extra)), cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_leftovers_of_runs_that_ended_are_stopped_and_the_runs_are_done(tmp_path, env):
    project, tag = project_with(tmp_path, HOSTILE, "exit")
    out = tmp_path / "search"
    proc = run_search(project, out, env)
    assert_none_left(tag)
    assert proc.returncode == 0, proc.stderr
    found = results(out)
    assert {mode: r["status"] for mode, r in found.items()} == dict.fromkeys(HOSTILE, "done")
    for mode, result in found.items():
        assert result["leftovers_killed"] >= 1, (mode, result)
        assert result["reason"] is None


def test_a_run_that_exited_0_is_done_even_if_its_leftover_outlasts_the_time_limit(tmp_path):
    """The leftover ignores SIGTERM, so stopping it takes the 5 s grace, past --timeout."""
    project, tag = project_with(tmp_path, ["ignore"], "exit")
    out = tmp_path / "search"
    proc = run_search(project, out, env_without_gpus(), "--timeout=4")
    assert_all_gone(tag)
    result = results(out)["ignore"]
    assert (proc.returncode, result["status"], result["exit_code"]) == (0, "done", 0), (proc.stderr, result)
    assert result["leftovers_killed"] == 1
    assert result["ended"] - result["started"] > 4, "the leftover was stopped before the limit: nothing shown"


def test_timed_out_runs_leave_nothing_behind(tmp_path, env):
    project, tag = project_with(tmp_path, HOSTILE, "sleep")
    out = tmp_path / "search"
    proc = run_search(project, out, env, "--timeout=6")  # time enough to start the children on a busy machine
    assert_all_gone(tag)
    found = results(out)
    assert proc.returncode == 1, proc.stderr
    assert {mode: r["status"] for mode, r in found.items()} == dict.fromkeys(HOSTILE, "timed_out")
    assert all(r["leftovers_killed"] >= 1 for r in found.values()), found


def test_ctrl_c_leaves_nothing_behind(tmp_path, env):
    project, tag = project_with(tmp_path, HOSTILE, "sleep")
    out = tmp_path / "search"
    driver = start_search(project, out, env)
    try:
        wait_for(lambda: all_up(out, len(HOSTILE)), 60, "the runs' children set up")
        driver.send_signal(signal.SIGINT)
        driver.communicate(timeout=60)
    finally:
        driver.kill()
    assert driver.returncode == 128 + signal.SIGINT
    assert_all_gone(tag)
    assert {mode: r["status"] for mode, r in results(out).items()} == dict.fromkeys(HOSTILE, "interrupted")


def test_a_second_ctrl_c_leaves_nothing_behind(tmp_path):
    """The second Ctrl-C kills at once and exits without waiting for the grace."""
    project, tag = project_with(tmp_path, HOSTILE, "sleep")
    out = tmp_path / "search"
    driver = start_search(project, out, env_without_gpus())
    try:
        wait_for(lambda: all_up(out, len(HOSTILE)), 60, "the runs' children set up")
        # the runs' leaders lead their sessions (the adopted daemon, also a child of the driver, does not)
        leaders = [p for p in psutil.Process(driver.pid).children() if p in tagged(tag) and os.getsid(p.pid) == p.pid]
        assert len(leaders) == len(HOSTILE)
        driver.send_signal(signal.SIGINT)
        # the first Ctrl-C has been handled once the leaders got their SIGTERM; the SIGTERM-ignorers live on
        wait_for(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in leaders), 30,
                 "the leaders stopped")
        driver.send_signal(signal.SIGINT)
        driver.communicate(timeout=60)
    finally:
        driver.kill()
    assert driver.returncode == 128 + signal.SIGINT
    assert_all_gone(tag)


def test_kill_9_of_the_driver_leaves_nothing_behind(tmp_path, env):
    project, tag = project_with(tmp_path, HOSTILE, "sleep")
    out = tmp_path / "search"
    driver = start_search(project, out, env)
    try:
        wait_for(lambda: all_up(out, len(HOSTILE)), 60, "the runs' children set up")
        assert len(tagged(tag)) >= 2 * len(HOSTILE)
        driver.kill()
        driver.communicate(timeout=30)
    finally:
        driver.kill()
    assert_all_gone(tag)


def test_a_huge_summary_fails_its_run_and_leaves_the_driver_small(tmp_path):
    project, _tag = project_with(tmp_path, ["huge"], "exit")
    out = tmp_path / "search"
    driver = start_search(project, out, env_without_gpus(), "--num_jobs=1")
    _pid, status, usage = os.wait4(driver.pid, 0)
    driver.returncode = os.waitstatus_to_exitcode(status)
    driver.communicate()
    result = results(out)["huge"]
    assert (driver.returncode, result["status"]) == (1, "failed")
    assert result["reason"].startswith("summary file too large (1024 MB); "), result["reason"]  # then the stderr quote
    summary = run_folders(out)[0] / "performance_overview.txt"
    assert summary.stat().st_size == 2**30 and summary.stat().st_blocks * 512 < 2**20, "the test file is not sparse"
    # ru_maxrss (KiB) is the largest of the driver and the children it reaped (the run, the report helper)
    assert usage.ru_maxrss < 300 * 1024, f"peak RSS {usage.ru_maxrss} KiB"


@pytest.mark.skipif(not cgroups_usable(), reason="no usable cgroup2 hierarchy here")
def test_each_run_has_a_cgroup_and_none_is_left_after_the_search(tmp_path):
    own = cgroup.own_cgroup(cgroup.unified_mount())
    before = {p.name for p in own.iterdir() if p.name.startswith("hpsearch-")}
    project, tag = project_with(tmp_path, HOSTILE, "sleep")
    out = tmp_path / "search"
    driver = start_search(project, out, env_without_gpus())
    try:
        wait_for(lambda: all_up(out, len(HOSTILE)), 60, "the runs' children set up")
        groups = {}
        for proc in tagged(tag):
            line = next(l for l in Path(f"/proc/{proc.pid}/cgroup").read_text().splitlines() if l.startswith("0::"))
            groups[proc.pid] = line[3:]
        assert all("/hpsearch-" in group for group in groups.values()), groups
        assert len(set(groups.values())) == len(HOSTILE), "one cgroup per run"
        driver.send_signal(signal.SIGINT)
        driver.communicate(timeout=60)
    finally:
        driver.kill()
    assert_all_gone(tag)
    # only this search's session cgroup: other hpsearch processes on the machine may hold theirs meanwhile
    sessions = {part for group in groups.values() for part in group.split("/") if part.startswith("hpsearch-")}
    assert sessions and not any((own / name).exists() for name in sessions - before)


def command_line(process: psutil.Process) -> list[str]:
    """Its argv; empty for a process that is a zombie or gone (other tests' children may be)."""
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def test_runs_outlive_the_driver_only_where_the_executor_says_so(tmp_path):
    """The foreground executor arms the parent-death signal and starts a guardian;
    one whose runs must outlive it (the service to come) does neither."""
    from hpsearch.executors.base import Wakeup
    from hpsearch.runs import LaunchSpec
    from hpsearch.executors.local import LocalExecutor

    def start(name: str, die_with_driver: bool) -> tuple[LocalExecutor, psutil.Process]:
        executor = LocalExecutor(Wakeup(), gpu_monitor=None)
        executor.runs_die_with_driver = die_with_driver
        run_dir = tmp_path / name
        run_dir.mkdir()
        spec = LaunchSpec(key=name, name=name, argv=("sleep", "60"), cwd=tmp_path, run_dir=run_dir)
        run = psutil.Process(int(executor.submit(spec).job_id))
        wait_for(lambda: run.cmdline() and "setpriv" not in run.cmdline()[0], 10, "the run's exec")
        return executor, run

    guarded, _run = start("guarded", True)
    loose, run = start("loose", False)
    try:
        guardians = [p for p in psutil.Process().children() if "hpsearch.guardian" in " ".join(command_line(p))]
        marker = f"HPSEARCH_RUN={guarded._containment.token}:"
        assert any(marker in command_line(p) for p in guardians), "no guardian for the foreground executor"
        assert not any(loose._containment.token in " ".join(command_line(p)) for p in guardians)
        assert run.environ()["HPSEARCH_RUN"] == f"{loose._containment.token}:loose"
    finally:
        guarded.shutdown(cancel=True)
        loose.shutdown(cancel=True)
