"""End-to-end tests of the local runner through the real CLI (issue 2)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from hpsearch.runs import RunStatus
from hpsearch.store import RunStore
from tests.helpers import (
    env_without_gpus,
    fake_gpu_env,
    hpsearch_cmd,
    read_results,
    run_folders,
    run_hpsearch,
    wait_until,
    write_project,
)


def wait_for(predicate, timeout: float):
    return wait_until(predicate, timeout=timeout)


IDLE_GPU = {"memory_total": 16000, "memory_used": 0, "load": 0.0}
FOLDER_FLAGS = ("--force_out_dir", "--dont_force_new_dir")


def search_args(out: Path, *extra: str) -> list[str]:
    return ["--grid_module=grid_cfg", f"--out_dir={out}", *FOLDER_FLAGS, *extra]


def traces(search_dir: Path) -> list[dict]:
    return [json.loads((d / "trace.json").read_text()) for d in run_folders(search_dir) if (d / "trace.json").exists()]


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = current = 0
    for _, delta in events:
        current += delta
        best = max(best, current)
    return best


def test_cpu_search_writes_sorted_results_and_run_folders(tmp_path):
    project = write_project(tmp_path / "p", {"score": [0.3, 0.9, 0.1], "mode": ["ok"], "i": [1, 2]})
    out = tmp_path / "search"
    result = run_hpsearch(search_args(out, "--visible_gpus=-1", "--num_jobs=2", "--deterministic_search"), project)
    assert result.returncode == 0, result.stderr
    table = read_results(out)
    assert len(table) == 6
    assert list(table.columns) == ["score", "mode", "i", "acc", "finished", "status", "reason", "out_dir",
                                   "config_key"]
    assert set(table["status"]) == {"done"}
    assert list(table["finished"]) == [1] * 6
    assert list(table["acc"]) == sorted(table["acc"], reverse=True)
    assert list(table["acc"]) == list(table["score"])  # sorted on _PERFORMANCE_KEY, descending
    folders = run_folders(out)
    assert len(folders) == 6
    for folder in folders:
        info = json.loads((folder / "hpsearch_run.json").read_text())
        assert info["argv"][-1] == f"--out_dir={folder}"
        assert (folder / "stdout.txt").exists() and (folder / "stderr.txt").exists()
        assert json.loads((folder / "hpsearch_result.json").read_text())["status"] == "done"
    assert (out / "commands.sh").read_text().count("train.py") == 6
    assert (out / "grid_cfg.py").is_file() and (out / "search.json").is_file()


def test_four_gpus_two_slots_reach_eight_parallel_runs(tmp_path):
    project = write_project(tmp_path / "p", {"mode": ["ok"], "sleep": [1.0], "i": list(range(40))})
    gpus = [IDLE_GPU] * 4 + [{"memory_total": 16000, "memory_used": 12000, "load": 0.0}]
    env = fake_gpu_env(tmp_path, gpus)
    out = tmp_path / "search"
    result = run_hpsearch(
        search_args(out, "--visible_gpus=0,1,2,3,4", "--max_num_jobs_per_gpu=2", "--sim_startup_time=0"),
        project, env=env,
    )
    assert result.returncode == 0, result.stderr
    runs = traces(out)
    assert len(runs) == 40
    assert {run["gpu"] for run in runs} <= {"0", "1", "2", "3"}  # GPU 4 is over --allowed_memory
    assert {run["order"] for run in runs} == {"PCI_BUS_ID"}
    assert max_overlap([(r["start"], r["end"]) for r in runs]) == 8
    per_gpu = {}
    for gpu in "0123":
        per_gpu[gpu] = max_overlap([(r["start"], r["end"]) for r in runs if r["gpu"] == gpu])
    assert max(per_gpu.values()) <= 2
    assert set(read_results(out)["status"]) == {"done"}


HOSTILE = "a b; touch PWNED #\"'$(id)"


def test_hostile_value_reaches_argv_exactly(tmp_path):
    value = HOSTILE + "\nsecond line ü `id` ${HOME}"
    project = write_project(tmp_path / "p", {"value": [value]})
    out = tmp_path / "search"
    result = run_hpsearch(search_args(out, "--visible_gpus=-1"), project)
    assert result.returncode == 0, result.stderr
    (folder,) = run_folders(out)
    argv = json.loads((folder / "argv.json").read_text())
    assert argv[1:] == [f"--value={value}", f"--out_dir={folder}"]
    assert not list(tmp_path.rglob("PWNED"))
    assert not (project / "PWNED").exists()


def test_hypnettorch_quoted_strings_lose_their_outer_quotes(tmp_path):
    project = write_project(tmp_path / "p", {"value": ['"example string"']})
    out = tmp_path / "search"
    assert run_hpsearch(search_args(out, "--visible_gpus=-1"), project).returncode == 0
    (folder,) = run_folders(out)
    assert json.loads((folder / "argv.json").read_text())[1] == "--value=example string"


def test_kill_9_then_resume_runs_every_configuration_exactly_once(tmp_path):
    project = write_project(tmp_path / "p", {"sleep": [0.3], "i": list(range(16))})
    out = tmp_path / "search"
    log = tmp_path / "events.log"
    env = dict(os.environ, HPSEARCH_TEST_LOG=str(log))
    args = search_args(out, "--visible_gpus=-1", "--num_jobs=2")
    driver = subprocess.Popen(hpsearch_cmd(*args), cwd=project, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)

    def some_done():
        return log.exists() and log.read_text().count('"done"') >= 5

    wait_for(some_done, 60)
    writer = [p for p in psutil.Process(driver.pid).children() if "hpsearch.report_writer" in " ".join(p.cmdline())]
    driver.kill()
    driver.wait()
    store = RunStore.open(out)
    recorded_done = {r.config["i"] for r in store.records([RunStatus.DONE])}
    store.close()
    assert 1 <= len(recorded_done) < 16
    # The report writer sees its input end and brings the table up to the kill
    # (short of at most one round's runs, recorded but not yet passed on).
    assert len(writer) == 1
    writer[0].wait(30)  # not our child: psutil cannot tell its exit status
    table = read_results(out)
    in_table = set(table.loc[table["status"] == "done", "i"])
    assert in_table <= recorded_done and len(in_table) >= len(recorded_done) - 2
    result = run_hpsearch(args, project, env=env)
    assert result.returncode == 0, result.stderr
    table = read_results(out)
    assert len(table) == 16
    assert table["config_key"].is_unique
    assert set(table["status"]) == {"done"}
    assert sorted(table["i"]) == list(range(16))
    folders = run_folders(out)
    keys = [json.loads((f / "hpsearch_run.json").read_text())["key"] for f in folders]
    assert len(folders) == 16 and len(set(keys)) == 16
    # A run recorded as done before the kill is never started again.
    starts = [json.loads(line) for line in log.read_text().splitlines() if '"start"' in line]
    for i in recorded_done:
        assert sum(1 for e in starts if e["i"] == i) == 1


def _processes_with(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(marker in part for part in proc.info["cmdline"] or []):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


def test_sigterm_stops_every_run_and_its_children(tmp_path):
    project = write_project(tmp_path / "p", {"mode": ["spawn"], "i": [1, 2, 3]})
    out = tmp_path / "search"
    log = tmp_path / "events.log"
    env = dict(os.environ, HPSEARCH_TEST_LOG=str(log))
    driver = subprocess.Popen(hpsearch_cmd(*search_args(out, "--visible_gpus=-1", "--num_jobs=3")), cwd=project,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: len(_processes_with("hpsearch-test-grandchild")) == 3, 30)
    driver.send_signal(signal.SIGTERM)
    _, stderr = driver.communicate(timeout=30)
    assert driver.returncode == 128 + signal.SIGTERM, stderr
    wait_for(lambda: not _processes_with("hpsearch-test-grandchild") and not _processes_with(str(out)), 10)
    assert set(read_results(out)["status"]) == {"interrupted"}


def test_failures_are_recorded_with_reasons_and_the_search_goes_on(tmp_path):
    modes = ["ok", "crash", "exit3", "nosummary", "malformed", "unfinished", "hang"]
    project = write_project(tmp_path / "p", {"mode": modes})
    out = tmp_path / "search"
    args = search_args(out, "--visible_gpus=-1", "--num_jobs=4", "--timeout=3", "--keep_going")
    result = run_hpsearch(args, project)
    assert result.returncode == 1, result.stderr
    table = read_results(out).set_index("mode")
    assert table.loc["ok", "status"] == "done"
    assert table.loc["crash", "status"] == "failed" and table.loc["crash", "reason"].startswith("exit code 1")
    assert table.loc["exit3", "reason"].startswith("exit code 3")
    assert "no summary file" in table.loc["nosummary", "reason"]
    assert "line 2 malformed" in table.loc["malformed", "reason"]
    assert table.loc["unfinished", "reason"].startswith("not finished")
    assert table.loc["hang", "status"] == "timed_out"
    crash_dir = Path(table.loc["crash", "out_dir"])
    assert "deliberate crash" in (crash_dir / "stderr.txt").read_text()


def test_a_search_whose_first_runs_all_fail_stops_and_shows_why(tmp_path):
    project = write_project(tmp_path / "p", {"mode": ["crash"], "i": list(range(8))})
    out = tmp_path / "search"
    log = tmp_path / "events.log"
    env = dict(os.environ, HPSEARCH_TEST_LOG=str(log))
    result = run_hpsearch(search_args(out, "--visible_gpus=-1", "--num_jobs=1"), project, env=env)
    assert result.returncode == 1, result.stderr
    assert log.read_text().count('"start"') == 3  # no fourth run was started
    table = read_results(out)
    assert list(table["status"]) == ["failed"] * 3
    for reason, folder in zip(table["reason"], table["out_dir"]):
        assert reason == f"exit code 1; {Path(folder).name}/stderr.txt: 'RuntimeError: deliberate crash'"
    assert "the first 3 runs to end have all failed: starting no more runs" in result.stderr
    stderr_paths = [line for line in result.stderr.splitlines() if line.endswith("stderr.txt:")]
    assert len(stderr_paths) == 1 and str(out) in stderr_paths[0]
    assert "    RuntimeError: deliberate crash" in result.stderr.splitlines()
    assert "5 not started" in result.stderr


def test_retries_run_a_failing_configuration_again(tmp_path):
    project = write_project(tmp_path / "p", {"mode": ["exit3"]})
    out = tmp_path / "search"
    log = tmp_path / "events.log"
    env = dict(os.environ, HPSEARCH_TEST_LOG=str(log))
    result = run_hpsearch(search_args(out, "--visible_gpus=-1", "--max_retries=2"), project, env=env)
    assert result.returncode == 1
    assert log.read_text().count('"start"') == 3


def test_second_driver_on_the_same_folder_is_refused(tmp_path):
    project = write_project(tmp_path / "p", {"mode": ["hang"]})
    out = tmp_path / "search"
    args = search_args(out, "--visible_gpus=-1")
    first = subprocess.Popen(hpsearch_cmd(*args), cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (out / "hpsearch.db").exists() and run_folders(out), 30)
        second = run_hpsearch(args, project)
        assert second.returncode == 2
        assert "another hpsearch driver" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.terminate()
        first.wait(30)


def test_visible_gpus_without_nvidia_smi_is_an_error(tmp_path):
    project = write_project(tmp_path / "p", {"i": [1]})
    result = run_hpsearch(search_args(tmp_path / "s", "--visible_gpus=0"), project, env=env_without_gpus())
    assert result.returncode == 2
    assert "nvidia-smi" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "s").exists()


def test_no_gpus_and_no_flag_falls_back_to_the_cpu(tmp_path):
    project = write_project(tmp_path / "p", {"i": [1, 2]})
    out = tmp_path / "s"
    result = run_hpsearch(search_args(out), project, env=env_without_gpus())
    assert result.returncode == 0, result.stderr
    assert "warning" in result.stderr and "CPU" in result.stderr
    assert set(read_results(out)["status"]) == {"done"}


def test_new_search_folder_per_run_without_force_out_dir(tmp_path):
    project = write_project(tmp_path / "p", {"i": [1]})
    base = tmp_path / "out"
    assert run_hpsearch(["--grid_module=grid_cfg", f"--out_dir={base}", "--visible_gpus=-1"], project).returncode == 0
    (search,) = list(base.iterdir())
    assert search.name.startswith("search_")
    (folder,) = run_folders(search)
    assert folder.name.startswith("sim_") and folder.name.endswith("_0001")


BAD_MODULES = {
    "missing attribute": ("del _SCRIPT_NAME", "_SCRIPT_NAME"),
    "no finished keyword": ("_SUMMARY_KEYWORDS = ['score']", "finished"),
    "grid key is out arg": ("grid['out_dir'] = ['x']", "out_dir"),
    "empty value list": ("grid['i'] = []", "'i'"),
    "empty grid": ("grid = {}", "grid is an empty dict"),
    "grid key with '='": ("grid['a=b'] = [1]", "'a=b'"),
    "grid key with whitespace": ("grid['a b'] = [1]", "'a b'"),
    "grid key starting with '-'": ("grid['-a'] = [1]", "'-a'"),
    "sort order not a boolean": ("_PERFORMANCE_SORT_ASC = 'yes'", "_PERFORMANCE_SORT_ASC"),
    "strip quotes not a boolean": ("_STRIP_OUTER_QUOTES = 1", "_STRIP_OUTER_QUOTES"),
    "NUL in a grid value": ("grid['mode'] = ['o\\x00k']", "parameter 'mode', value 0: value 'o\\x00k' contains a NUL"),
    "NUL in an action value": ("conditions = [({'i': [1]}, {'tag': ['\\x00']})]", "parameter 'tag': value '\\x00' contains a NUL"),
    "NUL in a derived value": ("from hpsearch import derived\ngrid['tag'] = derived(lambda c: 'a\\x00' if c['i'] == 2 else 'a')",
                               "derived parameter 'tag'"),
    "action sets the out arg": ("conditions = [({'i': [1]}, {'out_dir': ['x']})]", "conditions[0] (action) sets 'out_dir'"),
    "action sets a derived key": ("from hpsearch import derived\ngrid['d'] = derived(lambda c: 1)\n"
                                  "conditions = [({'i': [1]}, {'d': [2]})]", "derived parameter 'd'"),
    "cond value not a list": ("conditions = [({'i': 1}, {'mode': ['ok']})]", "conditions[0] (cond): parameter 'i'"),
    "missing script": ("_SCRIPT_NAME = 'nope.py'", "nope.py"),
    "syntax error": ("def broken(:", "SyntaxError"),
}


@pytest.mark.parametrize("case", sorted(BAD_MODULES))
def test_bad_grid_modules_exit_2_naming_the_problem(tmp_path, case):
    line, expected = BAD_MODULES[case]
    project = write_project(tmp_path / "p", {"i": [1, 2], "mode": ["ok"]}, extra=line)
    out = tmp_path / "s"
    result = run_hpsearch(search_args(out, "--visible_gpus=-1"), project)
    assert result.returncode == 2, result.stderr
    assert "grid_cfg" in result.stderr and expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()  # nothing started, nothing created


def test_list_is_a_dry_run_with_stable_keys_across_hash_seeds(tmp_path):
    grid = {"a": [1, 2, 3], "b": ["x", "y"], "c": [[1, 2], [3]]}
    project = write_project(tmp_path / "p", grid, conditions=[({"a": [1]}, {"b": ["z"]})])
    outputs = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        result = run_hpsearch(["--grid_module=grid_cfg", "--list", "--format=json", "--random_seed=7"], project,
                              env=env)
        assert result.returncode == 0, result.stderr
        outputs.append(json.loads(result.stdout))
    assert outputs[0] == outputs[1]
    assert outputs[0]["count"] == 10
    assert not (project / "out").exists()


def test_second_ctrl_c_kills_at_once_and_still_records_the_runs(tmp_path):
    project = write_project(tmp_path / "p", {"mode": ["stubborn"], "i": [1, 2]})
    out = tmp_path / "search"
    log = tmp_path / "events.log"
    env = dict(os.environ, HPSEARCH_TEST_LOG=str(log))
    driver = subprocess.Popen(hpsearch_cmd(*search_args(out, "--visible_gpus=-1", "--num_jobs=2")), cwd=project,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: log.exists() and log.read_text().count('"stubborn"') == 2, 60)  # SIGTERM handlers set
    pids = [json.loads(line)["pid"] for line in log.read_text().splitlines() if '"start"' in line]
    driver.send_signal(signal.SIGINT)
    # the first Ctrl-C has reached the runs; the driver waits out their grace period (5 s) now
    wait_for(lambda: log.read_text().count('"ignored SIGTERM"') == 2, 60)
    assert driver.poll() is None
    driver.send_signal(signal.SIGINT)
    second = time.monotonic()
    _, stderr = driver.communicate(timeout=30)  # the runs are recorded and the CSV written before the exit
    assert driver.returncode == 128 + signal.SIGINT, stderr
    assert time.monotonic() - second < 4  # not the grace period
    wait_for(lambda: not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                             for pid in pids), 30)
    table = read_results(out)
    assert list(table["status"]) == ["interrupted", "interrupted"]
    assert "stopped by SIGINT" in stderr


def test_condition_on_a_parameter_missing_from_the_grid_is_dropped_with_one_warning_line(tmp_path):
    extra = ("# grid['lr'] = [0.1, 0.2]  -- commented out for now\n"
             "conditions = [({'i': [1]}, {'tag': ['x']}), ({'lr': [0.1]}, {'mode': ['exit3']})]")
    project = write_project(tmp_path / "p", {"i": [1, 2], "mode": ["ok"]}, extra=extra)
    result = run_hpsearch(search_args(tmp_path / "s", "--visible_gpus=-1", "--allow_unknown_condition_keys"), project)
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "conditions[" in line]
    assert "warning" in line and "conditions[1]" in line and "'lr'" in line and str(project / "grid_cfg.py") in line
    assert "--allow_unknown_condition_keys is deprecated and has no effect" in result.stderr
    results = read_results(tmp_path / "s")
    assert set(results["status"]) == {"done"}  # the dropped condition's exit3 never happened
    assert sorted(results["tag"].fillna("").tolist()) == ["", "x"]  # the kept condition's added flag


def test_strict_conditions_refuse_a_condition_on_a_parameter_missing_from_the_grid(tmp_path):
    project = write_project(tmp_path / "p", {"i": [1, 2], "mode": ["ok"]},
                            extra="conditions = [({'ii': [1]}, {'mode': ['ok']})]")
    out = tmp_path / "s"
    result = run_hpsearch(search_args(out, "--visible_gpus=-1", "--strict_conditions"), project)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "grid_cfg" in line and "conditions[0]" in line and "'ii'" in line and "--strict_conditions" in line
    assert not out.exists()


def test_resume_with_only_the_search_folder(tmp_path):
    project = write_project(tmp_path / "p", {"mode": ["ok", "exit3"], "i": [1, 2]})
    out = tmp_path / "search"
    assert run_hpsearch(search_args(out, "--visible_gpus=-1"), project).returncode == 1
    log = tmp_path / "events.log"
    env = dict(os.environ, HPSEARCH_TEST_LOG=str(log))
    result = run_hpsearch(["--resume", str(out), "--visible_gpus=-1", "--rerun_failed"], tmp_path, env=env)
    assert result.returncode == 1, result.stderr  # the exit3 runs fail again
    assert log.read_text().count('"start"') == 2  # only the two failed runs ran again
    assert len(read_results(out)) == 4


def test_missing_grid_module_without_resume_is_a_usage_error(tmp_path):
    result = run_hpsearch(["--visible_gpus=-1"], tmp_path)
    assert result.returncode == 2 and "--grid_module is required" in result.stderr
