"""Clusters at scale on the real one-node Slurm (scripts/slurm-local.sh): packed jobs cut
by Slurm's own time limit, the pre-timeout signal, and adopting arrays of packed jobs after
``kill -9``. Each test counts only its own jobs (its own folders), so they run beside others."""

from __future__ import annotations

import json
import re
import os
import subprocess

import pytest

from tests.cluster_fixtures import cluster_args, recorded_jobs, results, start_events
from tests.helpers import hpsearch_cmd, run_folders, run_hpsearch, write_project
from tests.test_slurm_cluster import SMALL, sbatch_calls, sbatch_log, slurm_cluster, wait_until  # noqa: F401

pytestmark = pytest.mark.slurm


def in_order(out):
    return sorted(run_folders(out), key=lambda f: json.loads((f / "hpsearch_run.json").read_text())["index"])


def test_packed_job_killed_at_its_time_limit_keeps_what_it_finished(tmp_path):
    """Four runs of 25 s in one job of one minute (Slurm checks limits about every 30 s, so it kills
    the job 60-90 s in): the runs it finished count, the one it killed and those it never started
    run again in the next job."""
    project = write_project(tmp_path / "project", {"i": [1, 2, 3, 4], "sleep": [25]})
    out = tmp_path / "search"
    events = tmp_path / "events.log"
    args = cluster_args(out, "slurm", "--num_jobs=1", "--runs_per_job=4", "--slurm_gres=", "--max_retries=1",
                        "--cluster_signal=", "--slurm_extra=--time=1", *SMALL)
    result = run_hpsearch(args, project, env=dict(os.environ, HPSEARCH_TEST_LOG=str(events)), timeout=300)
    assert result.returncode == 0, result.stderr
    runs = results(out)
    folders = in_order(out)
    assert [runs[f.name]["status"] for f in folders] == ["done"] * 4
    attempts = [runs[f.name]["attempt"] for f in folders]
    finished = attempts.index(2)
    assert finished >= 1 and attempts == [1] * finished + [2] * (4 - finished), attempts
    cut = folders[finished]
    assert f"{cut.name}: cut off: time limit; running it again" in result.stderr
    counts = start_events(events)
    assert counts[str(cut)] in (1, 2) and all(counts[str(f)] == 1 for f in folders if f != cut), counts


def test_pre_timeout_signal_cuts_the_run_and_it_runs_again(tmp_path):
    """``scancel --signal=USR1 --batch`` delivers the signal Slurm sends before a time limit (or
    at preemption) to the job script at once: it forwards it to the run's process group, records
    the run cut off (preempted: the job's end is far) and starts none of the job's later runs."""
    project = write_project(tmp_path / "project", {"i": [1, 2, 3], "sleep": [6]})
    out = tmp_path / "search"
    events = tmp_path / "events.log"
    args = cluster_args(out, "slurm", "--num_jobs=1", "--runs_per_job=3", "--slurm_gres=", "--max_retries=1", *SMALL)
    driver = subprocess.Popen(hpsearch_cmd(*args), cwd=project, env=dict(os.environ, HPSEARCH_TEST_LOG=str(events)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = wait_until(lambda: out.is_dir() and len(in_order(out)) == 3 and in_order(out), 60, "the run folders")
        second = first[1]
        wait_until(lambda: (second / "argv.json").exists(), 90, "the job's second run starting")
        job_id = json.loads((second / "hpsearch_job.json").read_text())["job_id"]
        subprocess.run(["scancel", "--signal=USR1", "--batch", job_id], check=True)
        output, _ = driver.communicate(timeout=180)
    finally:
        driver.kill()
    assert driver.returncode == 0, output
    runs = results(out)
    folders = in_order(out)
    assert [(runs[f.name]["status"], runs[f.name]["attempt"]) for f in folders] == [("done", 1), ("done", 2),
                                                                                  ("done", 2)]
    assert (folders[1] / "previous_attempts" / "1" / "cut_off.txt").read_text() == "preempted\n"
    assert (folders[1] / "previous_attempts" / "1" / "exit_code.txt").read_text() == "138\n"  # 128 + SIGUSR1
    assert f"{folders[1].name}: cut off: preempted; running it again" in output
    assert f"{folders[2].name}: interrupted (not started: preempted" in output
    assert sorted(start_events(events).values()) == [1, 1, 2]  # the third never started in the first job


def test_arrays_of_packed_jobs_are_adopted_after_kill_9(tmp_path, sbatch_log):  # noqa: F811
    """12 runs, 2 per job, in arrays of at most MaxArraySize=5 tasks (two sbatch calls): after
    ``kill -9`` of the driver, ``--resume`` adopts every queued and running task and submits none."""
    project = write_project(tmp_path / "project", {"i": list(range(12)), "sleep": [2]})
    out = tmp_path / "search"
    events = tmp_path / "events.log"
    env = dict(os.environ, HPSEARCH_TEST_LOG=str(events))
    args = cluster_args(out, "slurm", "--num_jobs=2", "--slurm_array", "--runs_per_job=2", "--slurm_gres=", *SMALL)
    driver = subprocess.Popen(hpsearch_cmd(*args), cwd=project, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: recorded_jobs(out) == 12, 60, "both arrays submitted and recorded")
    finally:
        driver.kill()
        driver.wait()
    assert sbatch_calls(sbatch_log) == 2
    unfinished = 12 - len(list(out.glob("sim_*/exit_code.txt")))
    assert unfinished > 0  # something is left to adopt
    result = run_hpsearch(["--resume", str(out)], tmp_path, env=env, timeout=240)
    assert result.returncode == 0, result.stderr
    assert re.search(r"re-attaching to \d+ runs", result.stderr)
    assert sbatch_calls(sbatch_log) == 2
    assert sorted(start_events(events).values()) == [1] * 12
    assert sorted(r["status"] for r in results(out).values()) == ["done"] * 12
