"""LSF executor against the fake LSF in tests/fakes/lsf (which really runs the jobs):
first the executor alone, then whole searches through ``python -m hpsearch``. The
promises every executor keeps are in tests/test_executor_contract.py."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpsearch.errors import SchedulerQueryError
from hpsearch.executors.base import Wakeup
from hpsearch.executors.lsf import (
    BJOBS_FORMAT,
    LsfExecutor,
    LsfOptions,
    bsub_argv,
    lsf_state,
    parse_bjobs,
    parse_bsub_id,
)
from hpsearch.runs import EXIT_CODE_FILE
from hpsearch.verdict import SummaryReader, judge
from tests.cluster_fixtures import (
    FakeLsf,
    cluster_args,
    collect,
    job_spec,
    most_at_once,
    recorded_jobs,
    results,
    run_intervals,
    start_events,
)
from tests.helpers import hpsearch_cmd, read_results, run_hpsearch, write_project

NASTY = "a b; touch X \"'$(id)"
PY = sys.executable


def lsf_executor(search_dir: Path, **options) -> LsfExecutor:
    return LsfExecutor(Wakeup(), LsfOptions(**options), search_dir, poll_interval=0.1, max_poll_interval=0.4)


# --------------------------------------------------------------------------- pure parts


def test_default_resources_lose_their_shell_quotes():
    argv = bsub_argv(LsfOptions(num_hours=3, extra=["-P", "my project", "-q", "gpu"]), name="sim_1",
                     output=Path("/s d/lsf-%J.out"), depends_on=["7", "9"])
    assert argv == ["bsub", "-J", "sim_1", "-o", "/s d/lsf-%J.out", "-e", "/s d/lsf-%J.out", "-W", "3:00",
                    "-n", "1", "-R", "rusage[mem=8000, ngpus_excl_p=1]", "-P", "my project", "-q", "gpu",
                    "-wa", "USR1", "-wt", "2", "-w", "ended(7) && ended(9)"]
    assert bsub_argv(LsfOptions(resources="select[ngpus>0]", warn_signal=""), name="x", output=Path("/o"))[-1] == \
        "select[ngpus>0]"
    assert "-R" not in bsub_argv(LsfOptions(resources=""), name="x", output=Path("/o"))


def test_bsub_and_bjobs_answers():
    assert parse_bsub_id("Job <1234> is submitted to queue <normal>.\n") == "1234"
    assert parse_bsub_id("Request aborted by esub. Job not submitted.") is None
    states = parse_bjobs("7|0|RUN|-|-\n8|0|DONE|-|-\n9|2|EXIT|3|-\n9|3|PEND|-|-\n"
                         "10|0|EXIT|143|TERM_OWNER: job killed by owner\n"
                         "11|0|EXIT|140|TERM_RUNLIMIT: job killed after reaching LSF run time limit\n")
    assert states["7"].ending is None and states["9[3]"].ending is None
    assert (states["8"].ending.value, states["8"].exit_code) == ("exited", 0)
    assert (states["9[2]"].state, states["9[2]"].exit_code) == ("EXIT 3", 3)
    assert (states["10"].ending.value, states["10"].signal) == ("killed", 15)
    assert states["11"].ending.value == "timed_out" and "TERM_RUNLIMIT" in states["11"].state
    assert lsf_state("EXIT", "-", "TERM_PREEMPT: job killed after preemption").ending.value == "interrupted"


# --------------------------------------------------------------------------- the executor


def test_jobs_run_and_exit_codes_are_recorded(tmp_path, fake_lsf):
    lsf = lsf_executor(tmp_path, num_jobs=2)
    specs = [job_spec(tmp_path, 1, python=PY), job_spec(tmp_path, 2, "--mode=exit3", python=PY),
             job_spec(tmp_path, 3, python=PY)]
    assert lsf.capacity() == 2
    handles = lsf.submit_many(specs[:2])
    assert [h.job_id for h in handles] == ["100", "101"] and lsf.capacity() == 0
    outcomes = {o.key: o for o in collect(lsf, 2, timeout=20)}
    # from exit_code.txt, with bjobs' word if the same poll saw the job end
    assert (outcomes["key1"].exit_code, outcomes["key1"].backend_state) in ((0, "exit code 0"), (0, "DONE"))
    assert (outcomes["key2"].exit_code, outcomes["key2"].backend_state) in ((3, "exit code 3"), (3, "EXIT 3"))
    assert (tmp_path / "sim_02" / EXIT_CODE_FILE).read_text() == "3\n"
    trace = json.loads((tmp_path / "sim_01" / "trace.json").read_text())
    assert trace["key"] == "key1"
    deadline = time.monotonic() + 20  # the jobs hold their places until bjobs shows them gone, soon after
    while lsf.capacity() < 2:
        assert time.monotonic() < deadline and lsf.poll() == []
        time.sleep(0.05)
    [bsub] = fake_lsf.calls("bsub")[:1]
    assert bsub[bsub.index("-R") + 1] == "rusage[mem=8000, ngpus_excl_p=1]"


def test_array_caps_concurrency_and_uses_lsb_jobindex(tmp_path, fake_lsf):
    lsf = lsf_executor(tmp_path, num_jobs=2, array=True)
    specs = [job_spec(tmp_path, i, "--sleep=0.4", python=PY) for i in range(5)]
    handles = lsf.submit_many(specs)
    assert [h.job_id for h in handles] == [f"100[{i}]" for i in range(1, 6)]
    outcomes = collect(lsf, 5, timeout=30)
    assert sorted(o.exit_code for o in outcomes) == [0] * 5
    [bsub] = fake_lsf.calls("bsub")
    assert bsub[bsub.index("-J") + 1].endswith("[1-5]%2")
    assert most_at_once(run_intervals(tmp_path)) == 2
    for i, spec in enumerate(specs):
        assert json.loads((spec.run_dir / "trace.json").read_text())["key"] == f"key{i}"


def test_cancel_on_shutdown_bkills_and_reports_interrupted(tmp_path, fake_lsf):
    lsf = lsf_executor(tmp_path, num_jobs=3)
    specs = [job_spec(tmp_path, i, "--mode=hang", python=PY) for i in range(2)]
    lsf.submit_many(specs)
    deadline = time.monotonic() + 60
    while not all((s.run_dir / "argv.json").exists() for s in specs):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    outcomes = lsf.shutdown(cancel=True)
    assert sorted((o.key, o.interrupted) for o in outcomes) == [("key0", True), ("key1", True)]
    assert fake_lsf.calls("bkill") == [["100", "101"]]
    deadline = time.monotonic() + 60
    while True:
        bjobs = subprocess.run(["bjobs", "-noheader", "-o", BJOBS_FORMAT, "100", "101"], capture_output=True,
                               text=True)
        states = parse_bjobs(bjobs.stdout)
        if all(state.ending for state in states.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert {job: state.state for job, state in states.items()} == {
        "100": "EXIT 143 (TERM_OWNER: job killed by owner)", "101": "EXIT 143 (TERM_OWNER: job killed by owner)"}


def test_bkill_from_outside_is_a_failed_run_not_a_rerun(tmp_path, fake_lsf):
    lsf = lsf_executor(tmp_path)
    spec = job_spec(tmp_path, 1, "--mode=hang", python=PY)
    lsf.submit(spec)
    deadline = time.monotonic() + 20
    while not (spec.run_dir / "argv.json").exists():  # killed while running, not while pending
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)
    subprocess.run(["bkill", "100"], check=True, capture_output=True)
    [outcome] = collect(lsf, 1, timeout=20)
    assert not outcome.interrupted and outcome.exit_code is None and outcome.signal == signal.SIGTERM
    assert "TERM_OWNER" in outcome.backend_state
    verdict = judge(outcome, spec.run_dir, 0, SummaryReader("performance_overview.txt", ["acc", "finished"]))
    assert verdict.status.value == "failed" and "killed by signal 15" in verdict.reason


def test_failing_bjobs_is_retried_with_backoff(tmp_path, fake_lsf):
    lsf = lsf_executor(tmp_path)
    lsf.submit(job_spec(tmp_path, 1, "--sleep=2.5", python=PY))
    fake_lsf.fail_bjobs(3)
    outcomes = collect(lsf, 1, timeout=20)
    assert outcomes[0].exit_code == 0
    times = fake_lsf.call_times("bjobs")
    assert len(times) >= 4
    gaps = [later - earlier for earlier, later in zip(times, times[1:4])]
    # waits of 0.2, 0.4, 0.4 s (the cap) after the failures, plus each call's own time
    assert gaps[0] < gaps[1] and all(0.35 <= gap <= 0.9 for gap in gaps[1:]), gaps


def test_bjobs_failing_for_too_long_stops_the_search(tmp_path, fake_lsf):
    lsf = LsfExecutor(Wakeup(), LsfOptions(), tmp_path, poll_interval=0.01, max_poll_interval=0.02,
                      give_up_after=0.3)
    lsf.submit(job_spec(tmp_path, 1, "--sleep=30", python=PY))
    fake_lsf.fail_bjobs(-1)
    with pytest.raises(SchedulerQueryError, match="Cannot connect to LSF"):
        collect(lsf, 1, timeout=20)


def test_generate_only_then_submit_by_hand(tmp_path, fake_lsf):
    lsf = lsf_executor(tmp_path, generate_only=True, array=True, num_jobs=2)
    specs = [job_spec(tmp_path, i, python=PY) for i in range(3)]
    assert [h.job_id for h in lsf.submit_many(specs)] == ["", "", ""]
    assert fake_lsf.calls("bsub") == []
    subprocess.run(["bash", str(tmp_path / "submit.sh")], check=True, capture_output=True)
    deadline = time.monotonic() + 20
    while not all((s.run_dir / EXIT_CODE_FILE).exists() for s in specs):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert [(s.run_dir / EXIT_CODE_FILE).read_text() for s in specs] == ["0\n"] * 3


# --------------------------------------------------------------------------- whole searches


@pytest.fixture
def project(tmp_path):
    return write_project(tmp_path / "project", {"score": [0.1, 0.2, 0.3, 0.4], "mode": ["ok"], "value": [NASTY]})


def test_search_on_lsf(tmp_path, fake_lsf, project):
    write_project(project, {"score": [0.1, 0.2], "mode": ["ok", "exit3"], "value": [NASTY]})
    out = tmp_path / "search"
    result = run_hpsearch(cluster_args(out, "lsf", "--num_jobs=2"), project, timeout=120)
    assert result.returncode == 1, result.stderr  # two runs fail with exit code 3
    runs = results(out)
    assert sorted(r["status"] for r in runs.values()) == ["done", "done", "failed", "failed"]
    assert {r["reason"].split("; sim_")[0] for r in runs.values() if r["status"] == "failed"} == {"exit code 3"}
    assert all(r["reason"].endswith("stderr.txt is empty") for r in runs.values() if r["status"] == "failed")
    assert {r["backend"] for r in runs.values()} == {"lsf"}
    assert len(fake_lsf.calls("bsub")) == 4
    assert most_at_once(run_intervals(out)) <= 2
    table = read_results(out)
    assert set(table["value"]) == {NASTY}
    for folder in out.glob("sim_*"):
        argv = json.loads((folder / "argv.json").read_text())
        assert f"--value={NASTY}" in argv


def test_array_search_on_lsf(tmp_path, fake_lsf, project):
    out = tmp_path / "search"
    result = run_hpsearch(cluster_args(out, "lsf", "--num_jobs=2", "--lsf_array"), project, timeout=120)
    assert result.returncode == 0, result.stderr
    assert sorted(r["status"] for r in results(out).values()) == ["done"] * 4
    [bsub] = fake_lsf.calls("bsub")
    assert bsub[bsub.index("-J") + 1].endswith("[1-4]%2")
    assert len(read_results(out)) == 4


def test_killed_driver_is_resumed_without_submitting_twice(tmp_path, fake_lsf, project):
    write_project(project, {"score": [0.1, 0.2, 0.3, 0.4], "sleep": [1.5], "value": ["v"]})
    out = tmp_path / "search"
    log = tmp_path / "events.log"
    env = fake_lsf.env(HPSEARCH_TEST_LOG=str(log))
    driver = subprocess.Popen(hpsearch_cmd(*cluster_args(out, "lsf", "--num_jobs=2")), cwd=project, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while recorded_jobs(out) < 2:
        assert time.monotonic() < deadline and driver.poll() is None
        time.sleep(0.05)
    driver.kill()
    driver.wait()
    resume = ["--grid_module=grid_cfg", f"--resume={out}", "--run_cluster", "--scheduler=lsf", "--num_jobs=2"]
    result = run_hpsearch(resume, project, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "re-attaching to 2 runs" in result.stderr + result.stdout
    assert len(fake_lsf.calls("bsub")) == 4
    assert sorted(start_events(log).values()) == [1, 1, 1, 1]
    assert sorted(r["status"] for r in results(out).values()) == ["done"] * 4


def test_generate_only_search_is_collected_on_resume(tmp_path, fake_lsf, project):
    out = tmp_path / "search"
    args = cluster_args(out, "lsf", "--num_jobs=2", "--generate_only")
    result = run_hpsearch(args, project, timeout=120)
    assert result.returncode == 0, result.stderr
    assert fake_lsf.calls("bsub") == []
    scripts = sorted(out.glob("sim_*/job.sh"))
    assert len(scripts) == 4
    subprocess.run(["bash", str(out / "submit.sh")], check=True, capture_output=True)
    deadline = time.monotonic() + 30
    while len(list(out.glob(f"sim_*/{EXIT_CODE_FILE}"))) < 4:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    resume = ["--grid_module=grid_cfg", f"--resume={out}", "--run_cluster", "--scheduler=lsf"]
    result = run_hpsearch(resume, project, timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(fake_lsf.calls("bsub")) == 4  # only those of submit.sh
    assert sorted(r["status"] for r in results(out).values()) == ["done"] * 4


# --------------------------------------------------------------------------- stopping the driver


def _start_driver(out: Path, project: Path, *extra: str, terminal: int | None = None) -> subprocess.Popen:
    """The driver, attached to ``terminal`` (a pty) if given: the prompt goes wherever readline puts it."""
    stdin = subprocess.DEVNULL if terminal is None else terminal
    output = subprocess.PIPE if terminal is None else terminal
    return subprocess.Popen(hpsearch_cmd(*cluster_args(out, "lsf", "--num_jobs=2", *extra)), cwd=project,
                            stdin=stdin, stdout=output, stderr=output)


def _bkilled(fake_lsf: FakeLsf) -> list[str]:
    return sorted(job for call in fake_lsf.calls("bkill") for job in call)


def _wait_for_running_jobs(out: Path, count: int) -> None:
    deadline = time.monotonic() + 30
    while len(list(out.glob("sim_*/argv.json"))) < count:
        assert time.monotonic() < deadline, "the jobs never started"
        time.sleep(0.05)


def _job_states(fake_lsf: FakeLsf) -> list[str]:
    listing = subprocess.run(["bjobs", "-noheader", "-o", "jobid stat"], capture_output=True, text=True,
                             env=fake_lsf.env())
    return [line.split()[1] for line in listing.stdout.splitlines() if line.strip()]


def test_sigterm_with_cancel_on_exit_kills_the_jobs(tmp_path, fake_lsf):
    project = write_project(tmp_path / "project", {"mode": ["hang"], "i": [1, 2]})
    out = tmp_path / "search"
    driver = _start_driver(out, project, "--cancel_on_exit")
    _wait_for_running_jobs(out, 2)
    driver.send_signal(signal.SIGTERM)
    _, stderr = driver.communicate(timeout=30)
    assert driver.returncode == 128 + signal.SIGTERM, stderr
    assert _bkilled(fake_lsf) == ["100", "101"]
    assert {r["status"] for r in results(out).values()} == {"interrupted"}


def test_sigterm_leaves_cluster_jobs_running_for_a_resume(tmp_path, fake_lsf):
    release = tmp_path / "release"  # the jobs run until the test creates it, however slow the machine
    project = write_project(tmp_path / "project", {"mode": ["ok"], "wait_for": [str(release)], "i": [1, 2]})
    out = tmp_path / "search"
    driver = _start_driver(out, project)
    _wait_for_running_jobs(out, 2)
    driver.send_signal(signal.SIGTERM)
    _, stderr = driver.communicate(timeout=30)
    assert driver.returncode == 128 + signal.SIGTERM
    assert b"keep running" in stderr
    assert fake_lsf.calls("bkill") == [] and _job_states(fake_lsf) == ["RUN", "RUN"]
    release.touch()
    resumed = run_hpsearch(cluster_args(out, "lsf", "--num_jobs=2"), project, timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    assert len(fake_lsf.calls("bsub")) == 2  # adopted, not submitted again
    assert set(read_results(out)["status"]) == {"done"}


def test_ctrl_c_at_a_terminal_asks_before_cancelling(tmp_path, fake_lsf):
    import pty

    project = write_project(tmp_path / "project", {"mode": ["hang"], "i": [1, 2]})
    out = tmp_path / "search"
    leader, follower = pty.openpty()
    driver = _start_driver(out, project, terminal=follower)
    os.close(follower)
    _wait_for_running_jobs(out, 2)
    driver.send_signal(signal.SIGINT)
    deadline, seen = time.monotonic() + 20, b""
    while b"[y/N]" not in seen:
        assert time.monotonic() < deadline, f"no prompt, got {seen!r}"
        if select.select([leader], [], [], 0.5)[0]:
            seen += os.read(leader, 1024)
    assert b"Cancel the 2 jobs of this search?" in seen
    os.write(leader, b"y\n")
    driver.communicate(timeout=30)
    os.close(leader)
    assert driver.returncode == 128 + signal.SIGINT
    assert _bkilled(fake_lsf) == ["100", "101"]
