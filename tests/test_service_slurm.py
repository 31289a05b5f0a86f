"""Pause of a Slurm search run by the service, on the real local Slurm (scripts/slurm-local.sh).

A job array capped at one running task: pause holds the waiting tasks
(``scontrol hold``; squeue then gives them a ``JobHeld*`` reason), the running
one finishes and no held one starts; unpause releases them and the search
finishes with each configuration run once.
"""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest

from tests.helpers import write_project
from tests.test_service import _statuses, registry_state, serve, service_env, started, wait_for  # noqa: F401
from tests.test_slurm_cluster import SMALL, slurm_cluster, squeue  # noqa: F401

pytestmark = pytest.mark.slurm


def tasks(folder) -> dict[str, tuple[str, str]]:
    """This search's array tasks in the queue: {"12_1": ("PENDING", "JobHeldUser"), ...}."""
    return {row[0]: (row[1], row[2]) for row in squeue("-t", "all", "-r", "-o", "%i|%T|%r|%Z")
            if row[3].startswith(str(folder))}


def test_pause_holds_the_waiting_tasks_of_a_slurm_search_and_unpause_releases_them(serve, tmp_path):  # noqa: F811
    log = tmp_path / "runs.log"
    serve.env = {**serve.env, "HPSEARCH_TEST_LOG": str(log), "SLURM_CONF": os.environ["SLURM_CONF"]}
    gate = tmp_path / "release"
    project = write_project(tmp_path / "proj", {"i": [1, 2, 3], "wait_for": [str(gate)]})
    serve.start("--visible_gpus=-1")
    out = tmp_path / "o"
    search_id, folder = serve.submit("--grid_module=grid_cfg", f"--run_cwd={project}", f"--out_dir={out}",
                                     "--run_cluster", "--scheduler=slurm", "--slurm_array", "--num_jobs=1",
                                     "--slurm_gres=", *SMALL)
    wait_for(lambda: started(folder) == 1, 120, "the first task to run")
    assert serve.run("pause", search_id).returncode == 0
    wait_for(lambda: sorted(reason.startswith("JobHeld") for state, reason in tasks(folder).values()
                            if state == "PENDING") == [True, True], 60, "the two waiting tasks to be held")
    gate.touch()
    wait_for(lambda: list(_statuses(folder).values()).count("done") == 1, 120, "the running task to be recorded done")
    queued = tasks(folder)
    assert started(folder) == 1
    assert sorted(state for state, _reason in queued.values() if state != "COMPLETED") == ["PENDING", "PENDING"]
    assert serve.run("unpause", search_id).returncode == 0
    wait_for(lambda: registry_state(serve, search_id) in ("finished", "failed"), 180, "the search to end")
    assert registry_state(serve, search_id) == "finished"
    assert set(_statuses(folder).values()) == {"done"}
    starts = Counter(json.loads(line)["i"] for line in log.read_text().splitlines()
                     if json.loads(line)["event"] == "start")
    assert starts == Counter([1, 2, 3])
