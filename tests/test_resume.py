"""``--resume DIR`` alone continues a search exactly as it was started.

Each case runs the real CLI: the saved options are restored, flags given with
the resume override them for one session (one line each), changes that would
change the search's configurations are refused, a larger ``--num_searches``
extends it, and a cluster search never runs anything on this machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.cluster_fixtures import cluster_args, most_at_once, run_intervals, start_events
from tests.helpers import hpsearch_cmd, run_folders, run_hpsearch, write_project

FOLDER = ("--force_out_dir", "--dont_force_new_dir")


def _search(out: Path, *extra: str) -> list[str]:
    return ["--grid_module=grid_cfg", f"--out_dir={out}", *FOLDER, *extra]


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def _listed_keys(project: Path, *extra: str) -> list[str]:
    listing = run_hpsearch(["--grid_module=grid_cfg", "--list", "--format=json", *extra], project)
    assert listing.returncode == 0, listing.stderr
    return [item["key"] for item in json.loads(listing.stdout)["configurations"]]


def _stored_keys(out: Path) -> list[str]:
    return [json.loads((folder / "hpsearch_run.json").read_text())["key"] for folder in run_folders(out)]


def _stop_when_started(command: list[str], cwd: Path, out: Path, started: int, sig: int, **kwargs) -> int:
    driver = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    try:
        _wait_for(lambda: len(list(out.glob("sim_*/argv.json"))) >= started)
    finally:
        driver.send_signal(sig)
        driver.wait(timeout=60)
    return driver.returncode


def test_cpu_num_jobs_is_restored(tmp_path):
    project = write_project(tmp_path / "p", {"mode": ["ok"], "sleep": [3], "i": [1, 2, 3, 4, 5, 6]})
    out = tmp_path / "search"
    code = _stop_when_started(hpsearch_cmd(*_search(out, "--visible_gpus=-1", "--num_jobs=2")), project, out, 2,
                              signal.SIGTERM)
    assert code == 128 + signal.SIGTERM
    for trace in out.glob("sim_*/trace.json"):  # only the resumed session's runs count
        trace.unlink()
    resumed = run_hpsearch(["--resume", str(out)], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    spans = run_intervals(out)
    assert len(spans) == 6
    assert most_at_once(spans) == 2  # with the default --num_jobs=1 this would be 1


def test_override_is_printed_and_lasts_one_session(tmp_path):
    project = write_project(tmp_path / "p", {"mode": ["ok", "exit3"], "i": [1, 2]})
    out = tmp_path / "search"
    assert run_hpsearch(_search(out, "--visible_gpus=-1", "--num_jobs=2", "--max_retries=1"), project).returncode == 1
    resumed = run_hpsearch(["--resume", str(out), "--num_jobs=1", "--rerun_failed"], tmp_path)
    assert resumed.returncode == 1, resumed.stderr
    lines = [line for line in resumed.stderr.splitlines() if "overrides" in line]
    assert lines == ["[hpsearch] --num_jobs=1 overrides the search's --num_jobs=2 for this session"]
    saved = json.loads((out / "search.json").read_text())
    assert saved["options"]["num_jobs"] == 2 and saved["options"]["max_retries"] == 1


def test_num_searches_is_restored_and_a_larger_one_extends_the_search(tmp_path):
    project = write_project(tmp_path / "p", {"i": list(range(1, 19))})
    out = tmp_path / "search"
    log = tmp_path / "events.log"
    env = dict(os.environ, HPSEARCH_TEST_LOG=str(log))
    assert run_hpsearch(_search(out, "--visible_gpus=-1", "--num_searches=2"), project, env=env).returncode == 0
    first = _stored_keys(out)
    assert first == _listed_keys(project, "--num_searches=2")

    again = run_hpsearch(["--resume", str(out)], tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    assert _stored_keys(out) == first and len(start_events(log)) == 2  # not the grid's 18

    extended = run_hpsearch(["--resume", str(out), "--num_searches=5"], tmp_path, env=env)
    assert extended.returncode == 0, extended.stderr
    assert "--num_searches=5 extends the search" in extended.stderr
    assert sorted(_stored_keys(out)) == sorted(_listed_keys(project, "--num_searches=5"))
    assert set(first) <= set(_stored_keys(out))
    assert list(start_events(log).values()) == [1] * 5  # the first two were not run again

    hypnettorch_style = run_hpsearch(_search(out), project, env=env)  # same as --resume DIR
    assert hypnettorch_style.returncode == 0, hypnettorch_style.stderr
    assert len(run_folders(out)) == 5 and list(start_events(log).values()) == [1] * 5


def test_changes_of_the_configurations_are_refused_before_anything_changes(tmp_path):
    project = write_project(tmp_path / "p", {"i": list(range(1, 19))})
    out = tmp_path / "search"
    assert run_hpsearch(_search(out, "--visible_gpus=-1", "--num_searches=4"), project).returncode == 0
    before = sorted(p.name for p in out.iterdir())
    settings_before = (out / "search.json").read_text()
    for flag in ("--num_searches=3", "--random_seed=7", "--deterministic_search", "--dont_generate_full_grid",
                 "--run_cluster"):
        refused = run_hpsearch(["--resume", str(out), flag], tmp_path)
        assert refused.returncode == 2, (flag, refused.stderr)
        name = flag.split("=")[0]
        assert refused.stderr.count("\n") == 1 and name in refused.stderr, refused.stderr
        assert "start a new search" in refused.stderr
    assert sorted(p.name for p in out.iterdir()) == before
    assert (out / "search.json").read_text() == settings_before


def test_search_json_keeps_every_session(tmp_path):
    project = write_project(tmp_path / "p", {"i": [1, 2]})
    out = tmp_path / "search"
    first = _search(out, "--visible_gpus=-1")
    assert run_hpsearch(first, project).returncode == 0
    assert run_hpsearch(["--resume", str(out)], tmp_path).returncode == 0
    assert run_hpsearch(["--resume", str(out), "--num_jobs=2"], tmp_path).returncode == 0
    saved = json.loads((out / "search.json").read_text())
    assert saved["driver_argv"] == first
    assert [s["argv"] for s in saved["sessions"]] == [first, ["--resume", str(out)],
                                                      ["--resume", str(out), "--num_jobs=2"]]
    assert all(s["pid"] > 0 and s["host"] and s["started"] > 0 for s in saved["sessions"])


def test_stop_hint_is_resume_alone(tmp_path):
    project = write_project(tmp_path / "p", {"mode": ["hang"], "i": [1]})
    out = tmp_path / "search"
    driver = subprocess.Popen(hpsearch_cmd(*_search(out, "--visible_gpus=-1")), cwd=project,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: len(list(out.glob("sim_*/argv.json"))) == 1)
    driver.send_signal(signal.SIGINT)
    _, stderr = driver.communicate(timeout=60)
    assert f"resume with: hpsearch --resume {out}" in stderr


# --------------------------------------------------------------------------- clusters (the fake LSF)


def test_lsf_search_resumed_alone_adopts_its_jobs_and_runs_nothing_locally(tmp_path, fake_lsf):  # noqa: F811
    project = write_project(tmp_path / "p", {"mode": ["ok"], "sleep": [3], "i": [1, 2, 3, 4]})
    out = tmp_path / "search"
    log = tmp_path / "events.log"
    env = dict(os.environ, HPSEARCH_TEST_LOG=str(log))
    code = _stop_when_started(hpsearch_cmd(*cluster_args(out, "lsf", "--num_jobs=2")), project, out, 2,
                              signal.SIGKILL, env=env)
    assert code == -signal.SIGKILL
    resumed = run_hpsearch(["--resume", str(out)], tmp_path, env=env, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "re-attaching to 2 runs" in resumed.stderr and "executor: lsf jobs" in resumed.stderr
    assert len(fake_lsf.calls("bsub")) == 4  # two before the kill, two after: none twice
    assert sorted(start_events(log).values()) == [1, 1, 1, 1]
    for folder in run_folders(out):
        assert json.loads((folder / "hpsearch_result.json").read_text())["backend"] == "lsf"


def test_generate_only_then_submit_sh_keeps_the_cap_and_resume_alone_submits_nothing(tmp_path, fake_lsf):  # noqa: F811
    release = tmp_path / "release"  # the runs wait for it: the first two surely overlap, however slow the machine
    project = write_project(tmp_path / "p", {"wait_for": [str(release)], "sleep": [0.5], "i": [1, 2, 3, 4, 5]})
    out = tmp_path / "search"
    log = tmp_path / "events.log"
    env = dict(os.environ, HPSEARCH_TEST_LOG=str(log), HPSEARCH_SUBMIT_POLL="0.1")
    generated = run_hpsearch(cluster_args(out, "lsf", "--generate_only", "--num_jobs=2"), project, env=env)
    assert generated.returncode == 0, generated.stderr
    assert "keeps at most --num_jobs of them in the queue" in generated.stderr
    assert f"hpsearch --resume {out}" in generated.stderr
    assert "at most 2 of them queued or running" in (out / "submit.sh").read_text()
    submit = subprocess.Popen(["bash", str(out / "submit.sh")], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: sum(start_events(log).values()) >= 2)
        release.touch()
        assert submit.wait(timeout=120) == 0
    finally:
        release.touch()
        submit.kill()
    _wait_for(lambda: len(list(out.glob("sim_*/exit_code.txt"))) == 5)
    assert most_at_once(run_intervals(out)) == 2  # 5 at once without the cap
    collected = run_hpsearch(["--resume", str(out)], tmp_path, env=env)
    assert collected.returncode == 0, collected.stderr
    assert len(fake_lsf.calls("bsub")) == 5  # only submit.sh's
    assert sorted(start_events(log).values()) == [1] * 5
    assert sorted(json.loads((f / "hpsearch_result.json").read_text())["status"] for f in run_folders(out)) == \
        ["done"] * 5


def test_folder_of_an_older_hpsearch_restores_its_first_argv(tmp_path):
    project = write_project(tmp_path / "p", {"i": list(range(1, 19))})
    out = tmp_path / "search"
    assert run_hpsearch(_search(out, "--visible_gpus=-1", "--num_searches=2"), project).returncode == 0
    saved = json.loads((out / "search.json").read_text())
    for key in ("options", "sessions"):  # what an hpsearch before the option table wrote
        del saved[key]
    (out / "search.json").write_text(json.dumps(saved))
    again = run_hpsearch(["--resume", str(out)], tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(run_folders(out)) == 2


def test_lsf_search_resumed_hypnettorch_style_stays_on_the_cluster(tmp_path, fake_lsf):  # noqa: F811
    project = write_project(tmp_path / "p", {"mode": ["ok"], "sleep": [3], "i": [1, 2, 3]})
    out = tmp_path / "search"
    log = tmp_path / "events.log"
    env = dict(os.environ, HPSEARCH_TEST_LOG=str(log))
    code = _stop_when_started(hpsearch_cmd(*cluster_args(out, "lsf", "--num_jobs=2")), project, out, 2,
                              signal.SIGKILL, env=env)
    assert code == -signal.SIGKILL
    resumed = run_hpsearch(_search(out), project, env=env, timeout=120)  # no --run_cluster, no --scheduler
    assert resumed.returncode == 0, resumed.stderr
    assert "re-attaching to 2 runs" in resumed.stderr
    assert len(fake_lsf.calls("bsub")) == 3
    assert sorted(start_events(log).values()) == [1, 1, 1]
