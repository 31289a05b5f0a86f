"""``--resume DIR`` alone on a real Slurm search (scripts/slurm-local.sh): its
jobs are adopted, nothing is submitted twice and nothing runs on this machine."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.cluster_fixtures import cluster_args, most_at_once, recorded_jobs, run_intervals, start_events
from tests.helpers import hpsearch_cmd, run_folders, run_hpsearch, write_project
from tests.test_slurm_cluster import SMALL, sbatch_calls, sbatch_log, slurm_cluster, wait_until  # noqa: F401

pytestmark = pytest.mark.slurm


def test_killed_slurm_search_resumed_alone_adopts_and_runs_nothing_locally(tmp_path, sbatch_log):  # noqa: F811
    project = write_project(tmp_path / "project", {"i": [1, 2, 3, 4], "sleep": [3]})
    out = tmp_path / "search"
    events = tmp_path / "events.log"
    env = dict(os.environ, HPSEARCH_TEST_LOG=str(events))
    args = cluster_args(out, "slurm", "--num_jobs=2", "--slurm_gres=", *SMALL)
    driver = subprocess.Popen(hpsearch_cmd(*args), cwd=project, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: recorded_jobs(out) == 2, 60, "two jobs submitted and recorded")
    finally:
        driver.kill()
        driver.wait()
    result = run_hpsearch(["--resume", str(out)], tmp_path, env=env, timeout=240)
    assert result.returncode == 0, result.stderr
    assert "re-attaching to 2 runs" in result.stderr and "executor: slurm jobs" in result.stderr
    assert sbatch_calls(sbatch_log) == 4
    assert sorted(start_events(events).values()) == [1, 1, 1, 1]
    for folder in run_folders(out):
        result_file = json.loads((folder / "hpsearch_result.json").read_text())
        assert (result_file["status"], result_file["backend"]) == ("done", "slurm")


def test_generate_only_submit_sh_keeps_the_cap_on_slurm(tmp_path, sbatch_log):  # noqa: F811
    project = write_project(tmp_path / "project", {"i": [1, 2, 3], "sleep": [2]})
    out = tmp_path / "search"
    env = dict(os.environ, HPSEARCH_SUBMIT_POLL="0.2")
    args = cluster_args(out, "slurm", "--num_jobs=1", "--generate_only", "--slurm_gres=", *SMALL)
    generated = run_hpsearch(args, project, env=env)
    assert generated.returncode == 0, generated.stderr
    subprocess.run(["bash", str(out / "submit.sh")], check=True, env=env, capture_output=True, timeout=180)
    wait_until(lambda: len(list(out.glob("sim_*/exit_code.txt"))) == 3, 120, "three jobs ended")
    assert sbatch_calls(sbatch_log) == 3
    assert most_at_once(run_intervals(out)) == 1  # the node runs two at once without the cap
    collected = run_hpsearch(["--resume", str(out)], tmp_path, env=env)
    assert collected.returncode == 0, collected.stderr
    assert sbatch_calls(sbatch_log) == 3
