"""Clusters at scale, against the fake Slurm and LSF of tests/fakes (issue 15).

* State queries: one ``squeue``/``bjobs`` call covers every job of the search,
  they space out as jobs age, runs are reported from their ``exit_code.txt``
  without asking, and a finished job is never asked about twice.
* Packing (``--runs_per_job``): several runs one after another in one job,
  each in its own folder; a job cut off by its time limit keeps what it
  finished and the rest runs again.
* The scheduler's warning signal before the time limit is forwarded to the
  run, which is recorded as cut off and run again.

The fakes count real calls; nothing of the scheduler is monkeypatched. Their
minute lasts a second (``--time=6`` is six seconds; a warning lead of 60 s is
one second).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpsearch.errors import UsageError
from hpsearch.executors.base import Wakeup
from hpsearch.executors.jobscript import ClusterOptions
from hpsearch.executors.lsf import LsfExecutor, LsfOptions, bsub_argv
from hpsearch.executors.slurm import SlurmExecutor, SlurmOptions, sbatch_script
from hpsearch.runs import CUT_OFF_FILE, EXIT_CODE_FILE
from tests.cluster_fixtures import cluster_args, collect, job_spec, results, start_events
from tests.helpers import hpsearch_cmd, run_folders, run_hpsearch, write_project

PY = sys.executable


def slurm(search_dir: Path, *, poll: float = 0.05, cap: float = 0.4, **options) -> SlurmExecutor:
    options = {"mem": "", "gres": "", **options}
    return SlurmExecutor(Wakeup(), SlurmOptions(**options), search_dir, poll_interval=poll, max_poll_interval=cap)


def job_ids_asked(calls: list[list[str]]) -> list[list[str]]:
    """The ``-j`` list of each call."""
    return [call[call.index("-j") + 1].split(",") for call in calls if "-j" in call]


# --------------------------------------------------------------------------- state queries


def test_one_squeue_call_covers_every_array_of_the_search(tmp_path, fake_slurm):
    fake_slurm.write("max_array_size", "4")
    executor = slurm(tmp_path, array=True, num_jobs=3, runs_per_job=2)
    specs = [job_spec(tmp_path, i, "--sleep=0.3", python=PY) for i in range(14)]
    handles = executor.submit_many(specs)
    arrays = sorted({h.job_id.split("_")[0] for h in handles}, key=int)
    assert len(fake_slurm.calls("sbatch")) == 2 == len(arrays)  # 7 jobs of 2 runs: arrays of 4 and 3 tasks
    outcomes = collect(executor, 14, timeout=90)
    assert sorted(o.exit_code for o in outcomes) == [0] * 14
    asked = job_ids_asked(fake_slurm.calls("squeue"))
    assert asked and all(set(ids) <= set(arrays) for ids in asked)  # array ids, never one call per task
    assert fake_slurm.calls("sacct") == [] and fake_slurm.calls("scontrol") == [["show", "config"]]


def test_runs_are_reported_from_their_folders_without_asking(tmp_path, fake_slurm):
    executor = slurm(tmp_path, poll=5.0, cap=60.0, runs_per_job=4)
    specs = [job_spec(tmp_path, i, "--sleep=0.2", python=PY) for i in range(4)]
    executor.submit_many(specs)
    started = time.monotonic()
    outcomes = collect(executor, 4, timeout=30)
    took = time.monotonic() - started
    assert [o.key for o in outcomes] == ["key0", "key1", "key2", "key3"]  # in the order the job ran them
    assert all(o.exit_code == 0 and o.backend_state == "exit code 0" for o in outcomes)
    # the first query is due 5 s after the submission: the runs' ends came from their folders
    assert len(fake_slurm.calls("squeue")) <= took // 5.0, took


def test_queries_space_out_as_jobs_age_up_to_the_cap(tmp_path, fake_slurm):
    executor = slurm(tmp_path, poll=0.1, cap=0.8, array=True, num_jobs=2)
    executor.submit_many([job_spec(tmp_path, i, "--sleep=30", python=PY) for i in range(2)])
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        time.sleep(min(executor.next_event_in(), max(0.0, deadline - time.monotonic())))
        assert executor.poll() == []
    times = fake_slurm.call_times("squeue")
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    assert len(times) <= 14, gaps  # a fixed 0.1 s would have asked about 60 times
    # soon at first, then the cap (each gap also holds the fake squeue's own run time)
    assert gaps[0] < min(gaps[-3:]) and all(0.65 <= gap <= 1.8 for gap in gaps[-3:]), gaps
    executor.shutdown(cancel=True)


def test_a_job_that_left_the_queue_is_asked_about_once(tmp_path, fake_slurm, monkeypatch):
    monkeypatch.setenv("FAKE_SLURM_MIN_JOB_AGE", "0")  # ended jobs leave squeue at once
    fake_slurm.write("accounting", "")
    executor = slurm(tmp_path, num_jobs=3)
    specs = [job_spec(tmp_path, i, "--sleep=0.5", python=PY) for i in range(3)]
    specs[1] = job_spec(tmp_path, 1, "--mode=hang", python=PY)
    handles = executor.submit_many(specs)
    subprocess.run(["scancel", handles[1].job_id], check=True)  # it ends without recording its exit status
    outcomes = {o.key: o for o in collect(executor, 3, timeout=30)}
    assert outcomes["key1"].backend_state.startswith("CANCELLED") and outcomes["key1"].exit_code is None
    assert [o.exit_code for k, o in sorted(outcomes.items()) if k != "key1"] == [0, 0]
    asked = [job for ids in job_ids_asked(fake_slurm.calls("sacct")) for job in ids]
    assert asked == [handles[1].job_id]  # only the job without exit_code.txt, once


def test_lsf_one_bjobs_call_for_every_job(tmp_path, fake_lsf):
    executor = LsfExecutor(Wakeup(), LsfOptions(num_jobs=3, runs_per_job=2), tmp_path, poll_interval=0.05,
                           max_poll_interval=0.3)
    specs = [job_spec(tmp_path, i, "--sleep=0.5", python=PY) for i in range(6)]
    handles = executor.submit_many(specs)
    assert len({h.job_id for h in handles}) == 3 == len(fake_lsf.calls("bsub"))
    assert sorted(o.exit_code for o in collect(executor, 6, timeout=60)) == [0] * 6
    for call in fake_lsf.calls("bjobs"):
        assert set(call[4:]) <= {h.job_id for h in handles}


def test_status_reads_the_store_and_never_asks_the_scheduler(tmp_path, fake_slurm):
    project = write_project(tmp_path / "project", {"i": [1, 2], "sleep": [8]})
    out = tmp_path / "search"
    driver = subprocess.Popen(hpsearch_cmd(*cluster_args(out, "slurm", "--num_jobs=2", "--slurm_gres=")),
                              cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(list(out.glob("sim_*/argv.json"))) < 2:
            assert time.monotonic() < deadline and driver.poll() is None
            time.sleep(0.1)
        before = len((fake_slurm.state / "calls.log").read_text().splitlines())
        shown = subprocess.run(hpsearch_cmd("status", str(out), "--json"), capture_output=True, text=True,
                               timeout=60)
        after = len((fake_slurm.state / "calls.log").read_text().splitlines())
    finally:
        driver.kill()
        driver.wait()
    assert shown.returncode == 0, shown.stderr
    status = json.loads(shown.stdout)
    assert "running" in json.dumps(status)
    # the driver itself may have asked meanwhile; status adds no call: compare with the driver's pace
    calls = [json.loads(line) for line in (fake_slurm.state / "calls.log").read_text().splitlines()[before:after]]
    assert all(call["tool"] == "squeue" and "-j" in call["argv"] for call in calls), calls
    assert len(calls) <= 1


# --------------------------------------------------------------------------- packing


def test_time_per_run_chooses_the_runs_per_job():
    assert ClusterOptions(num_hours=2, time_per_run=25).pack_size() == 4  # (120 - 2) // 25
    assert ClusterOptions(num_hours=1, time_per_run=90).pack_size() == 1
    assert ClusterOptions(num_hours=2, time_per_run=25, runs_per_job=3).pack_size() == 3
    assert ClusterOptions().pack_size() == 1
    with pytest.raises(UsageError, match="--cluster_signal"):
        ClusterOptions(warn_signal="USR1")
    with pytest.raises(UsageError, match="--runs_per_job"):
        ClusterOptions(runs_per_job=0)


def test_packed_job_runs_its_runs_in_order_each_with_its_own_status(tmp_path, fake_slurm):
    executor = slurm(tmp_path, num_jobs=1, runs_per_job=3)
    assert executor.capacity() == 3
    specs = [job_spec(tmp_path, 0, "--sleep=0.2", python=PY), job_spec(tmp_path, 1, "--mode=exit3", python=PY),
             job_spec(tmp_path, 2, "--value=it's $(x)", python=PY)]
    handles = executor.submit_many(specs)
    assert len({h.job_id for h in handles}) == 1 and len(fake_slurm.calls("sbatch")) == 1
    assert [h.extra["slot"] for h in handles] == [0, 1, 2] and handles[1].where.endswith("run 2 of 3")
    outcomes = collect(executor, 3, timeout=30)
    assert [(o.key, o.exit_code) for o in outcomes] == [("key0", 0), ("key1", 3), ("key2", 0)]
    starts = [json.loads((spec.run_dir / "trace.json").read_text()) for spec in (specs[0], specs[2])]
    assert starts[0]["end"] <= starts[1]["start"]
    assert "--value=it's $(x)" in json.loads((specs[2].run_dir / "argv.json").read_text())
    assert [(spec.run_dir / EXIT_CODE_FILE).read_text() for spec in specs] == ["0\n", "3\n", "0\n"]


@pytest.mark.parametrize("warning", ["USR1@1", ""])
def test_packed_job_cut_by_its_time_limit_keeps_finished_runs_and_reruns_the_rest(tmp_path, fake_slurm, warning,
                                                                                 monkeypatch):
    """Five runs of 1.5 s in jobs of four with a six-second limit: the first job finishes two or
    three, the next one is cut off (warned a second before the limit, or killed at it), and it
    and the one not started run again in a later job."""
    monkeypatch.setenv("FAKE_SLURM_MINUTE", "60")  # real seconds: the job script judges the warning by them
    project = write_project(tmp_path / "project", {"i": list(range(5)), "sleep": [1.5]})
    out = tmp_path / "search"
    events = tmp_path / "events.log"
    args = cluster_args(out, "slurm", "--num_jobs=2", "--runs_per_job=4", "--slurm_gres=", "--max_retries=1",
                        "--slurm_extra=--time=0:06", f"--cluster_signal={warning}")
    result = run_hpsearch(args, project, env=dict(os.environ, HPSEARCH_TEST_LOG=str(events)), timeout=120)
    assert result.returncode == 0, result.stderr
    runs = results(out)
    assert sorted(r["status"] for r in runs.values()) == ["done"] * 5
    folders = sorted(run_folders(out), key=lambda f: json.loads((f / "hpsearch_run.json").read_text())["index"])
    attempts = [runs[f.name]["attempt"] for f in folders]
    # the first job ran folders 1-4 (in queue order): a prefix finished and counts, then one was cut
    # off and the rest were not started; they ran again in a third job, the second job ran folder 5
    finished = attempts[:4].index(2)
    assert finished >= 1 and attempts == [1] * finished + [2] * (4 - finished) + [1], attempts
    cut, skipped = folders[finished], folders[finished + 1:4]
    counts = start_events(events)
    # the cut run started twice (once if the limit struck before its first start wrote its log line)
    assert counts[str(cut)] in (1, 2) and all(counts[str(f)] == 1 for f in folders if f != cut), counts
    if warning:
        assert (cut / "previous_attempts" / "1" / CUT_OFF_FILE).read_text() == "time limit\n"
    assert f"{cut.name}: cut off: time limit; running it again" in result.stderr
    for folder in skipped:
        assert f"{folder.name}: interrupted (not started" in result.stderr


def test_lsf_warning_reaches_the_run_and_the_next_runs_are_skipped(tmp_path, fake_lsf):
    """LSF's -wa/-wt (whole minutes, here seconds): -W 2 and a lead of 30 s (one minute) warn the
    job after one fake minute; the script, counting real seconds, sees its end near."""
    executor = LsfExecutor(Wakeup(), LsfOptions(num_jobs=1, runs_per_job=2, warn_signal="USR1@30",
                                                extra=["-W", "2"]), tmp_path, poll_interval=0.05,
                           max_poll_interval=0.3)
    specs = [job_spec(tmp_path, 0, "--sleep=30", python=PY), job_spec(tmp_path, 1, python=PY)]
    executor.submit_many(specs)
    first, second = collect(executor, 2, timeout=30)
    assert first.timed_out and first.exit_code == 128 + 10  # killed by the forwarded SIGUSR1
    assert (specs[0].run_dir / CUT_OFF_FILE).read_text() == "time limit\n"
    assert second.interrupted and not (specs[1].run_dir / "argv.json").exists()
    [bsub] = fake_lsf.calls("bsub")
    assert bsub[bsub.index("-wa") + 1:bsub.index("-wa") + 4] == ["USR1", "-wt", "1"]


def test_runs_after_the_warning_are_not_started(tmp_path, fake_slurm, monkeypatch):
    monkeypatch.setenv("FAKE_SLURM_MINUTE", "60")
    executor = slurm(tmp_path, num_jobs=1, runs_per_job=3, warn_signal="USR1@1", extra=["--time=0:04"])
    specs = [job_spec(tmp_path, 0, "--sleep=1", python=PY), job_spec(tmp_path, 1, "--sleep=30", python=PY),
             job_spec(tmp_path, 2, python=PY)]
    executor.submit_many(specs)
    first, second, third = collect(executor, 3, timeout=30)
    assert (first.exit_code, first.cut_off, first.timed_out) == (0, "", False)
    assert (second.exit_code, second.cut_off) == (138, "time limit")  # cut by the forwarded SIGUSR1
    assert third.interrupted and "not started: time limit" in third.backend_state
    assert not (specs[2].run_dir / "argv.json").exists()
    assert "#SBATCH --signal=B:USR1@1" in (specs[0].run_dir / "job.sh").read_text().splitlines()


def test_a_warning_as_long_as_half_the_limit_is_left_out():
    assert "--signal" not in sbatch_script(_spec(), SlurmOptions(extra=["--time=0:01"]))  # 120 s lead, 60 s job
    assert "#SBATCH --signal=B:USR1@120" in sbatch_script(_spec(), SlurmOptions()).splitlines()
    assert "-wa" not in bsub_argv(LsfOptions(extra=["-W", "3"]), name="x", output=Path("/o"))
    assert bsub_argv(LsfOptions(extra=["-W", "5"]), name="x", output=Path("/o"))[-4:] == ["-wa", "USR1", "-wt", "2"]


def _spec():
    from hpsearch.runs import LaunchSpec
    return LaunchSpec(key="k", name="sim_1", argv=("true",), cwd=Path("/p"), run_dir=Path("/out/sim_1"))


# --------------------------------------------------------------------------- adoption after kill -9


@pytest.mark.parametrize("mode", [("--slurm_array",), ()])
def test_driver_killed_while_sbatch_answers_is_adopted_not_resubmitted(tmp_path, fake_slurm, mode):
    """The job is in the queue but the driver dies before it hears its id: the submission was
    recorded in submissions/ first, so the resume finds the job by name and submits nothing."""
    project = write_project(tmp_path / "project", {"i": list(range(6)), "sleep": [0.5]})
    out = tmp_path / "search"
    events = tmp_path / "events.log"
    env = dict(os.environ, HPSEARCH_TEST_LOG=str(events))
    fake_slurm.write("sbatch_delay", "30")
    args = cluster_args(out, "slurm", "--num_jobs=3", "--runs_per_job=2", "--slurm_gres=", *mode)
    driver = subprocess.Popen(hpsearch_cmd(*args), cwd=project, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not list(fake_slurm.state.glob("jobs/*/spec.json")):  # queued; sbatch has not answered
            assert time.monotonic() < deadline and driver.poll() is None
            time.sleep(0.05)
    finally:
        driver.kill()  # SIGKILL
        driver.wait()
    (fake_slurm.state / "sbatch_delay").unlink()
    submitted = len(fake_slurm.calls("sbatch"))
    assert submitted == 1 and list((out / "submissions").glob("*.json"))
    result = run_hpsearch(["--resume", str(out)], tmp_path, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"adopting {6 if mode else 2} runs submitted by the previous driver" in result.stderr
    # per-job mode submits the other two jobs on resume; arrays had every run in the one array
    assert len(fake_slurm.calls("sbatch")) == (1 if mode else 3)
    assert sorted(start_events(events).values()) == [1] * 6
    assert sorted(r["status"] for r in results(out).values()) == ["done"] * 6


def test_a_cut_off_run_is_interrupted_unless_it_finished(tmp_path):
    from hpsearch.runs import Outcome
    from hpsearch.verdict import SummaryReader, judge

    reader = SummaryReader("performance_overview.txt", ["acc", "finished"])
    cut = judge(Outcome("k", 138, cut_off="preempted"), tmp_path, 0, reader)
    assert (cut.status.value, cut.reason) == ("interrupted", "cut off: preempted")
    (tmp_path / "performance_overview.txt").write_text("acc 0.5\nfinished 1\n")
    assert judge(Outcome("k", 0, cut_off="time limit"), tmp_path, 0, reader).status.value == "done"


@pytest.mark.parametrize("scheduler", ["slurm", "lsf"])
def test_reclaim_finds_an_unconfirmed_submission_by_its_name(tmp_path, request, scheduler):
    """As if the driver died before it heard the job id: the intent names the runs and their
    attempt; a later driver finds the job by name (one call) and adopts it."""
    fake = request.getfixturevalue(f"fake_{scheduler}")
    if scheduler == "slurm":
        make = lambda: slurm(tmp_path, array=True, num_jobs=2, runs_per_job=2)  # noqa: E731
    else:
        make = lambda: LsfExecutor(Wakeup(), LsfOptions(array=True, num_jobs=2, runs_per_job=2), tmp_path,  # noqa: E731
                                   poll_interval=0.05, max_poll_interval=0.3)
    first = make()
    handles = first.submit_many([job_spec(tmp_path, i, "--sleep=0.3", python=PY) for i in range(4)])
    [intent] = (tmp_path / "submissions").glob("*.json")
    data = json.loads(intent.read_text())
    intent.write_text(json.dumps({**data, "job_id": None}))
    later = make()
    # key0 queued after one attempt: its next attempt is not the one this submission ran
    assert [h.key for h in later.reclaim({"key0": 1, "key1": 0})] == ["key1"]
    reclaimed = later.reclaim({"key1": 0, "key2": 0, "key3": 0})
    assert sorted((h.key, h.job_id) for h in reclaimed) == sorted((h.key, h.job_id) for h in handles[1:])
    assert len(fake.calls("sbatch" if scheduler == "slurm" else "bsub")) == 1
    done = later.adopt(reclaimed)
    done += collect(later, 3 - len(done), timeout=60)
    assert sorted(o.key for o in done) == ["key1", "key2", "key3"] and all(o.exit_code == 0 for o in done)
