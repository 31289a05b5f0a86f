"""A real hypnettorch grid module runs unchanged (issue 9): shared base conditions imported from a
sibling module, an action that adds a flag, a condition dropped because its key is not in the grid.

hypnettorch 0.0.4 runs exactly the six command lines of ``WORKED_EXAMPLE`` for this module."""

from __future__ import annotations

import json
import pickle
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import JOB_SCRIPT, read_results, run_folders, run_hpsearch

BASE_CONDITIONS = """
BASE_CONDITIONS = [
    ({'use_adam': [True]}, {'momentum': [-1]}),
    ({'local_reparam_trick': [True]}, {'kl_scale': [0]}),
]
"""
MY_GRID = """
from mysim.base_conditions import BASE_CONDITIONS

grid = {'use_adam': [True, False], 'lr': [1e-3, 1e-2]}
conditions = BASE_CONDITIONS + [({'lr': [1e-2]}, {'batch_size': [32, 64]})]
_SCRIPT_NAME = 'train.py'
_SUMMARY_FILENAME = 'performance_overview.txt'
_SUMMARY_KEYWORDS = ['acc', 'finished']
_OUT_ARG = 'out_dir'
"""
WORKED_EXAMPLE = {
    ("--lr=0.001",),
    ("--momentum=-1", "--use_adam", "--lr=0.001"),
    ("--batch_size=32", "--lr=0.01"),
    ("--batch_size=64", "--lr=0.01"),
    ("--batch_size=32", "--momentum=-1", "--use_adam", "--lr=0.01"),
    ("--batch_size=64", "--momentum=-1", "--use_adam", "--lr=0.01"),
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "proj"
    (folder / "mysim").mkdir(parents=True)
    (folder / "mysim" / "__init__.py").write_text("")
    (folder / "mysim" / "base_conditions.py").write_text(BASE_CONDITIONS)
    (folder / "mysim" / "my_grid.py").write_text(MY_GRID)
    shutil.copy(JOB_SCRIPT, folder / "train.py")
    return folder


def listed_flags(result: subprocess.CompletedProcess) -> set[tuple[str, ...]]:
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    assert listing["count"] == len(listing["configurations"])
    return {tuple(item["flags"]) for item in listing["configurations"]}


def dropped_warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "warning" in line and "conditions[" in line]


def test_list_shows_the_six_command_lines_of_hypnettorch(project):
    result = run_hpsearch(["--grid_module=mysim.my_grid", "--list", "--format=json"], project)
    assert listed_flags(result) == WORKED_EXAMPLE
    (warning,) = dropped_warnings(result.stderr)
    assert "conditions[1]" in warning and "'local_reparam_trick'" in warning
    assert str(project / "mysim" / "my_grid.py") in warning


SPELLINGS = {
    "python -m hpsearch.hpsearch, a file path without .py, from another folder":
        (["-m", "hpsearch.hpsearch", "--grid_module={project}/mysim/my_grid"], "elsewhere"),
    "python -m hpsearch, a relative .py path": (["-m", "hpsearch", "--grid_module=mysim/my_grid.py"], "project"),
    "a random search that picks every point": (["-m", "hpsearch.hpsearch", "--grid_module=mysim.my_grid",
                                                "--dont_generate_full_grid", "--num_searches=50"], "project"),
}


@pytest.mark.parametrize("case", sorted(SPELLINGS))
def test_other_spellings_of_the_command_give_the_same_configurations(project, tmp_path, case):
    args, where = SPELLINGS[case]
    cwd = project if where == "project" else tmp_path / "elsewhere"
    cwd.mkdir(exist_ok=True)
    command = [sys.executable, *(arg.format(project=project) for arg in args), "--list", "--format=json"]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert listed_flags(result) == WORKED_EXAMPLE


def test_a_real_search_hands_the_script_exactly_these_argvs(project, tmp_path):
    out = tmp_path / "search"
    result = run_hpsearch(["--grid_module=mysim.my_grid", f"--out_dir={out}", "--force_out_dir",
                           "--visible_gpus=-1", "--num_jobs=2"], project)
    assert result.returncode == 0, result.stderr
    received, recorded = set(), set()
    for folder in run_folders(out):
        out_flag = f"--out_dir={folder}"
        argv = json.loads((folder / "argv.json").read_text())  # what the script itself saw
        assert out_flag in argv
        received.add(tuple(arg for arg in argv[1:] if arg != out_flag))
        info = json.loads((folder / "hpsearch_run.json").read_text())
        recorded.add(tuple(arg for arg in info["argv"][2:] if arg != out_flag))
    assert received == recorded == WORKED_EXAMPLE
    commands = (out / "commands.sh").read_text()
    assert {tuple(a for a in shlex.split(line)[2:] if not a.startswith("--out_dir="))
            for line in commands.splitlines() if line and not line.startswith("#") and "train.py" in line} \
        == WORKED_EXAMPLE
    table = read_results(out)
    assert list(table.columns[:4]) == ["use_adam", "lr", "momentum", "batch_size"]
    assert sorted(table["momentum"].fillna(0).tolist()) == [-1, -1, -1, 0, 0, 0]  # empty for the SGD runs
    assert table["batch_size"].isna().sum() == 2
    assert set(table["status"]) == {"done"}


def test_grid_config_accepts_hypnettorchs_json_and_a_pickle(project, tmp_path):
    grid = {"use_adam": [True], "lr": [0.5]}
    conditions = [[{"use_adam": [True]}, {"momentum": [-1]}]]  # JSON has lists, not tuples
    as_json = tmp_path / "hpsearch_config.json"
    as_json.write_text(json.dumps({"grid": grid, "conditions": conditions}))
    as_pickle = tmp_path / "grid.json"  # a pickle whatever its name says
    as_pickle.write_bytes(pickle.dumps({"grid": grid, "conditions": [tuple(c) for c in conditions]}))
    for path in (as_json, as_pickle):
        result = run_hpsearch(["--grid_module=mysim.my_grid", f"--grid_config={path}", "--list", "--format=json"],
                              project)
        assert listed_flags(result) == {("--momentum=-1", "--use_adam", "--lr=0.5")}
    garbage = tmp_path / "garbage.cfg"
    garbage.write_bytes(b"\x01\x02 not a config")
    result = run_hpsearch(["--grid_module=mysim.my_grid", f"--grid_config={garbage}", "--list"], project)
    assert result.returncode == 2 and "--grid_config" in result.stderr and "Traceback" not in result.stderr


def test_csv_and_list_show_a_quoted_string_as_the_run_received_it(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    shutil.copy(JOB_SCRIPT, folder / "train.py")
    (folder / "grid_q.py").write_text(
        "grid = {'value': ['\"my run\"'], 'i': [1]}\nconditions = []\n_SCRIPT_NAME = 'train.py'\n"
        "_SUMMARY_FILENAME = 'performance_overview.txt'\n_SUMMARY_KEYWORDS = ['acc', 'finished']\n")
    listing = run_hpsearch(["--grid_module=grid_q", "--list"], folder)
    assert listing.returncode == 0 and "value='my run'" in listing.stdout
    out = tmp_path / "s"
    result = run_hpsearch(["--grid_module=grid_q", f"--out_dir={out}", "--force_out_dir", "--visible_gpus=-1"], folder)
    assert result.returncode == 0, result.stderr
    assert "--value=my run" in json.loads((run_folders(out)[0] / "argv.json").read_text())
    assert read_results(out)["value"].tolist() == ["my run"]
    assert '"""' not in (out / "search_results.csv").read_text()


def test_a_search_compiles_its_space_once(project, tmp_path, monkeypatch):
    from hpsearch.runner import run_search
    from hpsearch.settings import SearchSettings
    from hpsearch.space.searchspace import SearchSpace

    compiled = []
    original = SearchSpace.compile.__func__
    monkeypatch.setattr(SearchSpace, "compile", classmethod(lambda cls, *a: compiled.append(a) or original(cls, *a)))
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "modules", dict(sys.modules))  # the project's mysim stays out of later tests
    settings = SearchSettings(grid_module=str(project / "mysim" / "my_grid.py"), out_dir=str(tmp_path / "s"),
                              force_out_dir=True, run_cwd=str(project), visible_gpus="-1", quiet=True)
    assert run_search(settings) == 0
    assert len(compiled) == 1
    assert len(run_folders(tmp_path / "s")) == len(WORKED_EXAMPLE)


@pytest.mark.parametrize("strip", [True, False])
def test_postprocessing_shows_values_as_the_runs_received_them(tmp_path, strip):
    """The rebuilt table follows the module's ``_STRIP_OUTER_QUOTES`` as the driver's table does."""
    folder = tmp_path / "p"
    folder.mkdir()
    shutil.copy(JOB_SCRIPT, folder / "train.py")
    (folder / "grid_q.py").write_text(
        "grid = {'value': ['\"my run\"'], 'i': [1]}\nconditions = []\n_SCRIPT_NAME = 'train.py'\n"
        f"_STRIP_OUTER_QUOTES = {strip}\n"
        "_SUMMARY_FILENAME = 'performance_overview.txt'\n_SUMMARY_KEYWORDS = ['acc', 'finished']\n")
    out = tmp_path / "s"
    result = run_hpsearch(["--grid_module=grid_q", f"--out_dir={out}", "--force_out_dir", "--visible_gpus=-1"], folder)
    assert result.returncode == 0, result.stderr
    received = "my run" if strip else '"my run"'
    assert read_results(out)["value"].tolist() == [received]
    (out / "search_results.csv").unlink()
    rebuilt = subprocess.run([sys.executable, "-m", "postprocessing", str(out)], cwd=folder, capture_output=True,
                             text=True, timeout=120)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert read_results(out)["value"].tolist() == [received]
