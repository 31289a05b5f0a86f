"""``hpsearch verify``: real searches, then verifications of their best configurations (issue 13, item 2)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from hpsearch.seeds import SEED_LIMIT, new_seeds
from tests.helpers import hpsearch_cmd, run_folders, run_hpsearch, wait_until, write_project

TOY = Path(__file__).resolve().parent.parent / "examples" / "toy"
FOLDER_FLAGS = ("--force_out_dir", "--dont_force_new_dir")


def search(project: Path, out: Path, *flags: str, env: dict | None = None) -> None:
    result = run_hpsearch(["--grid_module=grid_cfg", f"--out_dir={out}", *FOLDER_FLAGS, *flags], project, env)
    assert result.returncode in (0, 1), result.stderr


def listing(folder: Path) -> list[str]:
    """The folder's entries, without the -wal/-shm files SQLite keeps next to a store it reads."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("hpsearch.db-"))


def verify(project: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_hpsearch(["verify", *args], project, env)


def argvs(folder: Path) -> list[list[str]]:
    """The argv each run's script saw (tests/scripts/job.py writes it)."""
    return [json.loads((run / "argv.json").read_text()) for run in run_folders(folder)]


def flag_values(argv: list[str], name: str) -> list[str]:
    return [word.split("=", 1)[1] for word in argv if word.startswith(f"--{name}=")]


def config_of(argv: list[str]) -> tuple:
    """The flags of a run without its seed and its output folder."""
    return tuple(sorted(w for w in argv[1:] if not w.startswith(("--seed=", "--out_dir="))))


# --------------------------------------------------------------------------- seeds


def test_new_seeds_are_reproducible_distinct_and_skip_used_ones():
    first = new_seeds("20261201120000:grid", "abc", [], 5)
    assert first == new_seeds("20261201120000:grid", "abc", [], 5)
    assert len(set(first)) == 5 and all(0 <= seed < SEED_LIMIT for seed in first)
    assert new_seeds("20261201120000:grid", "abc", [], 3) == first[:3]  # more seeds extend the list
    skipping = new_seeds("20261201120000:grid", "abc", [first[0], str(first[2]), float(first[3])], 3)
    assert skipping == [first[1], first[4], *new_seeds("20261201120000:grid", "abc", [], 6)[5:]]
    assert new_seeds("20261201120000:grid", "abd", [], 5) != first
    assert new_seeds("20261201120001:grid", "abc", [], 5) != first


# --------------------------------------------------------------------------- end to end


@pytest.fixture
def finished(tmp_path, fake_gpus):
    """A search on two fake GPUs: 3 scores x 2 seeds, one score failing."""
    project = write_project(tmp_path / "p", {"score": [0.3, 0.9, 0.6], "seed": [1, 2], "mode": ["ok"]},
                            conditions=[({"score": [0.6]}, {"mode": ["crash"]})])
    out = tmp_path / "search"
    search(project, out, "--visible_gpus=0,1", "--sim_startup_time=0", "--keep_going")
    return project, out


def starts(log: Path) -> list[str]:
    lines = log.read_text().splitlines() if log.exists() else []
    return [json.loads(line)["out_dir"] for line in lines if json.loads(line)["event"] == "start"]


def test_top_2_with_3_seeds_starts_6_runs_with_new_seeds_and_a_repeat_starts_none(finished, tmp_path):
    project, out = finished
    log = tmp_path / "runs.log"
    env = {**os.environ, "HPSEARCH_TEST_LOG": str(log)}
    result = verify(project, str(out), "--top", "2", "--seeds", "3", env=env)
    assert result.returncode == 0, result.stderr
    folder = out / "verify_2x3"
    seen = argvs(folder)
    assert len(seen) == 6
    original = {config_of(argv): set() for argv in argvs(out)}
    for argv in argvs(out):
        original[config_of(argv)].update(flag_values(argv, "seed"))
    by_config: dict[tuple, list[str]] = {}
    for argv in seen:
        assert argv[-1].startswith(f"--out_dir={folder}/sim_")
        by_config.setdefault(config_of(argv), []).extend(flag_values(argv, "seed"))
    # the two best (scores 0.9 and 0.3; 0.6 crashed), 3 new seeds each, none used before
    assert sorted(by_config) == sorted(c for c in original if "--score=0.6" not in c)
    for config, seeds in by_config.items():
        assert len(seeds) == 3 and len(set(seeds)) == 3
        assert not set(seeds) & original[config] and not set(seeds) & {"1", "2"}
    gpus = {json.loads((run / "trace.json").read_text())["gpu"] for run in run_folders(folder)}
    assert gpus <= {"0", "1"} and gpus  # the original's executor choice: its GPUs
    record = json.loads((folder / "search.json").read_text())["verification"]
    assert record["origin"] == str(out) and record["command"][:2] == ["hpsearch", "verify"]
    assert record["top"] == 2 and record["seeds"] == 3 and record["seed_key"] == "seed"

    assert len(starts(log)) == 6

    again = verify(project, str(out), "--top", "2", "--seeds", "3", env=env)
    assert again.returncode == 0, again.stderr
    assert len(starts(log)) == 6  # no run started again
    assert len(run_folders(folder)) == 6 and argvs(folder) == seen
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("verify")) == ["verify_2x3"]
    assert set(pd.read_csv(folder / "search_results.csv", sep=";")["status"]) == {"done"}
    assert again.stdout == result.stdout and len(_printed(result.stdout)) == 2


def test_kill_9_mid_verify_then_repeat_runs_every_run_exactly_once(tmp_path):
    project = write_project(tmp_path / "p", {"score": [0.2, 0.8], "seed": [0], "sleep": [0.6]})
    out = tmp_path / "search"
    search(project, out, "--visible_gpus=-1", "--num_jobs=2")
    log = tmp_path / "runs.log"
    env = {**os.environ, "HPSEARCH_TEST_LOG": str(log)}
    args = ["verify", str(out), "--top", "2", "--seeds", "4", "--num_jobs", "2"]
    folder = out / "verify_2x4"
    driver = subprocess.Popen(hpsearch_cmd(*args), cwd=project, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)

    def recorded_done() -> set[str]:
        return {str(run.parent) for run in folder.glob("sim_*/hpsearch_result.json")
                if json.loads(run.read_text())["status"] == "done"}

    wait_until(lambda: recorded_done() and len(set(starts(log))) > len(recorded_done()),
               "a run recorded done and another in flight")
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)
    done_before = recorded_done()
    assert 0 < len(done_before) < 8
    result = run_hpsearch(args, project, env)
    assert result.returncode == 0, result.stderr
    started = starts(log)
    runs = [str(run) for run in run_folders(folder)]
    assert len(runs) == 8 and set(started) == set(runs)
    for run in done_before:  # recorded done before the kill: never started again
        assert started.count(run) == 1
    for run in runs:  # cut short by the kill: run again once, in its own folder
        assert started.count(run) <= 2
    table = pd.read_csv(folder / "search_results.csv", sep=";")
    assert len(table) == 8 and set(table["status"]) == {"done"} and table["seed"].nunique() == 8
    assert len(_printed(result.stdout)) == 2
    again = run_hpsearch(args, project, env)
    assert again.returncode == 0 and starts(log) == started


def _toy_project(tmp_path: Path, grid: str) -> Path:
    project = tmp_path / "toy"
    project.mkdir()
    shutil.copy(TOY / "train.py", project / "train.py")
    module = (TOY / "hpsearch_config.py").read_text()
    module = re.sub(r"grid = \{.*?\n\}\n", grid, module, flags=re.S)
    (project / "grid_cfg.py").write_text(module)
    return project


def _printed(stdout: str) -> list[tuple[int, float, float, int]]:
    """(rank in the original search, mean, std, n) of each printed configuration, in printed order."""
    rows = re.findall(r"^\s*\d+\s+(\d+)\s+(\S+) ± (\S+)\s+n=(\d+)", stdout, flags=re.M)
    return [(int(was), float(mean), float(std), int(n)) for was, mean, std, n in rows]


def _independent(frames: list[pd.DataFrame], keys: list[str], top_keys: list[tuple]) -> list[tuple[float, float, int]]:
    runs = pd.concat(frames, ignore_index=True)
    runs = runs[runs["status"] == "done"]
    stats = runs.groupby(keys)["val_acc"].agg(["mean", "std", "count"])
    return [(stats.loc[key, "mean"], stats.loc[key, "std"], int(stats.loc[key, "count"])) for key in top_keys]


def test_printed_mean_and_std_equal_an_independent_computation(tmp_path):
    project = _toy_project(tmp_path, 'grid = {"lr": [0.01, 0.5], "momentum": [0.0, 0.9], "epochs": [2], '
                                     '"seed": [0, 1]}\n')
    out = tmp_path / "search"
    search(project, out, "--visible_gpus=-1", "--num_jobs=2")
    result = verify(project, str(out), "--top", "2", "--seeds", "3")
    assert result.returncode == 0, result.stderr
    original = pd.read_csv(out / "search_results.csv", sep=";")
    added = pd.read_csv(out / "verify_2x3" / "search_results.csv", sep=";")
    keys = ["lr", "momentum"]
    means = original[original["status"] == "done"].groupby(keys)["val_acc"].mean()
    top = list(means.sort_values(ascending=False, kind="stable").index[:2])
    assert set(map(tuple, added[keys].values)) == set(top)
    expected = _independent([original, added], keys, top)
    printed = _printed(result.stdout)
    assert [n for *_, n in printed] == [5, 5]  # 2 original seeds + 3 new ones
    assert sorted(was for was, *_ in printed) == [1, 2]
    assert [mean for _, mean, _, _ in printed] == sorted((mean for _, mean, _, _ in printed), reverse=True)
    for was, mean, std, n in printed:
        want_mean, want_std, want_n = expected[was - 1]
        assert n == want_n
        assert mean == pytest.approx(want_mean, rel=1e-5) and std == pytest.approx(want_std, rel=1e-2)


def test_seed_key_outside_the_grid_adds_the_flag_and_original_runs_do_not_count(tmp_path):
    project = _toy_project(tmp_path, 'grid = {"lr": [0.01, 0.5], "epochs": [2]}\n')
    out = tmp_path / "search"
    search(project, out, "--visible_gpus=-1", "--num_jobs=2")
    refused = verify(project, str(out), "--top", "1", "--seeds", "2")
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "grid_cfg.py" in refused.stderr
    assert "--seed_key" in refused.stderr and "_SEED_KEYS" in refused.stderr
    assert not list(out.glob("verify_*"))
    result = verify(project, str(out), "--top", "1", "--seeds", "2", "--seed_key", "seed")
    assert result.returncode == 0, result.stderr
    runs = [json.loads((run / "hpsearch_run.json").read_text()) for run in run_folders(out / "verify_1x2")]
    assert len(runs) == 2
    for run in runs:
        assert run["argv"][-2].startswith("--seed=") and run["argv"][-1].startswith("--out_dir=")
    assert [n for *_, n in _printed(result.stdout)] == [2]  # the original run's seed is unknown: not counted


def test_seed_keys_of_the_grid_module_are_used(tmp_path):
    project = write_project(tmp_path / "p", {"score": [0.3, 0.9], "rs": [5]}, extra="_SEED_KEYS = ['rs']")
    out = tmp_path / "search"
    search(project, out, "--visible_gpus=-1")
    result = verify(project, str(out), "--top", "1", "--seeds", "2")
    assert result.returncode == 0, result.stderr
    seen = argvs(out / "verify_1x2")
    assert all("--score=0.9" in argv for argv in seen)
    seeds = [flag_values(argv, "rs")[0] for argv in seen]
    assert len(set(seeds)) == 2 and "5" not in seeds
    assert [n for *_, n in _printed(result.stdout)] == [3]


@pytest.fixture(scope="module")
def cpu_search(tmp_path_factory):
    """One finished CPU search for the tests that must leave it as it is; its registry in its own folder."""
    root = tmp_path_factory.mktemp("cpu_search")
    env = {**os.environ, "HPSEARCH_STATE_DIR": str(root / "state"), "HPSEARCH_CLAIMS_DIR": str(root / "claims")}
    project = write_project(root / "p", {"score": [0.3, 0.9], "seed": [1, 2]})
    out = root / "search"
    search(project, out, "--visible_gpus=-1", "--num_jobs=2", env=env)
    return project, out, env


@pytest.mark.parametrize("args, words", [
    (["--top", "0", "--seeds", "3"], ["--top", "at least 1"]),
    (["--top", "2", "--seeds", "-1"], ["--seeds", "at least 1"]),
    (["--top", "2", "--seeds", "3", "--seed_key", "a=b"], ["--seed_key", "a=b"]),
    (["--top", "2", "--seeds", "3", "--seed_key", "out_dir"], ["--seed_key", "_OUT_ARG"]),
    (["--top", "2"], ["--seeds"]),
    (["--top", "2", "--seeds", "3", "--num_job=2"], ["did you mean --num_jobs"]),
    (["--top", "2", "--seeds", "3", "--grid_module=x"], ["--grid_module"]),
    (["--top", "2", "--seeds", "3", "--num_jobs=0"], ["--num_jobs", "at least 1"]),
])
def test_bad_input_is_one_line_exit_2_and_creates_nothing(cpu_search, args, words):
    project, out, env = cpu_search
    before = listing(out)
    result = verify(project, str(out), *args, env=env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr
    assert listing(out) == before


def test_missing_folder_and_search_without_finished_runs_are_refused(tmp_path):
    project = write_project(tmp_path / "p", {"mode": ["crash"], "seed": [1, 2, 3]})
    missing = verify(project, str(tmp_path / "nowhere"), "--top", "1", "--seeds", "2")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "nowhere" in missing.stderr
    out = tmp_path / "search"
    search(project, out, "--visible_gpus=-1")
    before = listing(out)
    result = verify(project, str(out), "--top", "1", "--seeds", "2")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "no finished run" in result.stderr and str(out) in result.stderr
    assert listing(out) == before


def test_a_verification_of_a_cluster_search_runs_on_its_scheduler(tmp_path, fake_lsf):
    project = write_project(tmp_path / "p", {"score": [0.4, 0.7], "seed": [3]})
    out = tmp_path / "search"
    search(project, out, "--run_cluster", "--scheduler=lsf", "--num_jobs=2")
    submitted = len(fake_lsf.calls("bsub"))
    assert submitted == 2
    result = verify(project, str(out), "--top", "1", "--seeds", "3", "--num_hours=2")
    assert result.returncode == 0, result.stderr
    calls = fake_lsf.calls("bsub")
    assert len(calls) == submitted + 3
    assert all(argv[argv.index("-W") + 1] == "2:00" for argv in calls[submitted:])  # a flag given to verify
    folder = out / "verify_1x3"
    assert all("--score=0.7" in argv for argv in argvs(folder)) and len(argvs(folder)) == 3
    for run in run_folders(folder):
        assert json.loads((run / "hpsearch_result.json").read_text())["backend"] == "lsf"
    assert verify(project, str(out), "--top", "1", "--seeds", "3").returncode == 0
    assert len(fake_lsf.calls("bsub")) == submitted + 3


def _registry_state(search_id: str) -> str:
    from hpsearch.service.registry import Registry

    with Registry.open() as registry:
        return registry.get(search_id).state


def test_submit_hands_the_verification_to_the_service_and_a_repeat_prints_the_summary(tmp_path):
    from tests.test_service import Serve

    project = write_project(tmp_path / "p", {"score": [0.4, 0.7], "seed": [3]})
    out = tmp_path / "search"
    search(project, out, "--visible_gpus=-1")
    refused = verify(project, str(out), "--top", "1", "--seeds", "2", "--submit")
    assert refused.returncode == 2 and "no hpsearch service is running" in refused.stderr
    assert not list(out.glob("verify_*"))
    service = Serve(tmp_path, dict(os.environ))
    try:
        service.start("--visible_gpus=-1", "--num_jobs=2")
        submitted = verify(project, str(out), "--top", "1", "--seeds", "2", "--submit")
        assert submitted.returncode == 0, submitted.stderr
        search_id, folder = submitted.stdout.split()
        assert Path(folder) == out / "verify_1x2"
        wait_until(lambda: len(list(Path(folder).glob("sim_*/hpsearch_result.json"))) == 2, "the two runs")
        wait_until(lambda: _registry_state(search_id) == "finished", "the search to finish")
        shown = verify(project, str(out), "--top", "1", "--seeds", "2")
        assert shown.returncode == 0, shown.stderr
        assert [n for *_, n in _printed(shown.stdout)] == [3]
        assert len(argvs(Path(folder))) == 2
    finally:
        service.stop()


def test_verify_is_a_subcommand():
    from hpsearch.subcommands import subcommand

    assert subcommand("verify").__name__ == "verify_main"


def test_top_beyond_the_configurations_with_a_done_run_verifies_those(finished):
    project, out = finished
    result = verify(project, str(out), "--top", "5", "--seeds", "1", "--visible_gpus=-1")
    assert result.returncode == 0, result.stderr
    assert "only 2 configurations" in result.stderr
    assert len(argvs(out / "verify_5x1")) == 2 and len(_printed(result.stdout)) == 2
    assert json.loads((out / "verify_5x1" / "search.json").read_text())["options"]["visible_gpus"] == "-1"
