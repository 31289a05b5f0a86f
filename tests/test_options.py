"""The option table and the command line derived from it: bad input gets exit 2
and one line naming the parameter before anything exists; a full disk exit 4."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpsearch import cli
from hpsearch.options import OPTIONS, Group, Resume
from hpsearch.settings import SearchSettings
from tests.helpers import hpsearch_cmd, run_hpsearch, write_project

PACKAGE = Path(cli.__file__).resolve().parent


def _literals(path: Path) -> list:
    return [node.value for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Constant)]


@pytest.mark.parametrize("literal", ["8G", "gpu:1", '"rusage[mem=8000, ngpus_excl_p=1]"', "./out/hyperparam_search"])
def test_each_default_is_written_once(literal):
    owners = [p for p in PACKAGE.rglob("*.py") if literal in _literals(p)]
    assert owners == [PACKAGE / "options.py"]


def test_settings_fields_are_the_options():
    fields = set(SearchSettings.__dataclass_fields__)
    assert fields == {o.field for o in OPTIONS} | {"driver_argv"}
    assert "csv_interval" not in fields
    settings = SearchSettings(grid_module="m")
    assert (settings.shuffle, settings.seed, settings.random_search, settings.max_failures) == (True, 42, False, 3)


def test_help_groups_follow_the_table():
    text = cli.build_parser().format_help()
    for group in Group:
        assert f"\n{group.value}:\n" in text
    runs = text.split("\nruns (local and cluster):\n")[1].split("\n\n")[0]
    for flag in ("--num_jobs", "--timeout", "--max_retries", "--rerun_failed", "--keep_going", "--max_failures"):
        assert flag in runs
    assert all(o.resume in Resume for o in OPTIONS)


def test_new_flags_reach_the_settings(tmp_path):
    given = vars(cli.build_parser().parse_args(
        ["--grid_module=m", "--strict_conditions", "--keep_going", "--max_failures=5", f"--out_dir={tmp_path}"]))
    settings = cli.settings_from_args(given, [])
    assert (settings.strict_conditions, settings.keep_going, settings.max_failures) == (True, True, 5)


@pytest.fixture
def project(tmp_path):
    return write_project(tmp_path / "p", {"i": [1, 2]})


def _refused(project: Path, out: Path, *flags: str) -> str:
    result = run_hpsearch(["--grid_module=grid_cfg", f"--out_dir={out}", "--visible_gpus=-1", *flags], project)
    assert result.returncode == 2, (flags, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert not out.exists() or out.is_file() or not any(out.iterdir())
    return result.stderr


@pytest.mark.parametrize("flag, named", [
    ("--allowed_memory=0", "--allowed_memory"), ("--allowed_memory=1.5", "--allowed_memory"),
    ("--allowed_load=-1", "--allowed_load"), ("--allowed_load=0", "--allowed_load"),
    ("--sim_startup_time=-1", "--sim_startup_time"), ("--sim_startup_time=nan", "--sim_startup_time"),
    ("--gpu_poll_interval=0", "--gpu_poll_interval"), ("--gpu_poll_interval=-2", "--gpu_poll_interval"),
    ("--visible_gpus=0,1,0", "--visible_gpus"), ("--python=/nonexistent/python", "--python"),
    ("--python=no-such-python-here", "--python"), ("--num_jobs=0", "--num_jobs"), ("--timeout=0", "--timeout"),
    ("--max_failures=0", "--max_failures"), ("--num_searches=0", "--num_searches"),
    ("--num_job=2", "did you mean --num_jobs?"), ("--allowed_mem=0.3", "did you mean --allowed_memory?"),
])
def test_bad_values_are_refused_before_anything_exists(project, tmp_path, flag, named):
    assert named in _refused(project, tmp_path / "out", flag)


def test_python_that_is_not_executable(project, tmp_path):
    (project / "notpython").write_text("text")
    assert "--python" in _refused(project, tmp_path / "out", "--python=./notpython")


def test_out_dir_that_is_a_file_or_under_one(project, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert "--out_dir" in _refused(project, afile)
    assert "--out_dir" in _refused(project, afile / "below")


@pytest.fixture
def small_mount(tmp_path):
    """A tiny tmpfs of our own (root only), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    mounts = []

    def mount(options: str) -> Path:
        point = tmp_path / f"mnt{len(mounts)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
        mounts.append(point)
        return point

    yield mount
    for point in mounts:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_out_dir_under_an_unwritable_folder(project, tmp_path, small_mount):
    readonly = small_mount("ro,size=64k")
    assert "--out_dir" in _refused(project, readonly / "search")


def test_disk_full_has_its_own_exit_status_and_the_search_continues(tmp_path, small_mount):
    full = small_mount("size=256k")
    project = write_project(tmp_path / "p", {"i": list(range(6)), "value": ["x" * 60000]})
    out = full / "search"
    result = run_hpsearch(["--grid_module=grid_cfg", f"--out_dir={out}", "--force_out_dir", "--visible_gpus=-1"],
                          project)
    assert result.returncode == cli.EXIT_DISK_FULL, result.stderr
    assert result.stderr.count("\n") == 1 and "disk full" in result.stderr, result.stderr
    assert f"continue with: hpsearch --resume {out}" in result.stderr
    subprocess.run(["mount", "-o", "remount,size=16m", str(full)], check=True)
    resumed = run_hpsearch(["--resume", str(out), "--num_jobs=2"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert len(list(out.glob("sim_*/performance_overview.txt"))) == 6


def test_list_into_a_closed_pipe_is_quiet(project, tmp_path):
    write_project(project, {"i": list(range(5000))})
    line = " ".join(hpsearch_cmd("--grid_module=grid_cfg", "--list"))
    result = subprocess.run(f"{line} | head -1", shell=True, cwd=project, capture_output=True, text=True,
                            executable="/bin/bash")
    assert result.stdout.count("\n") == 1
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr


def test_allow_unknown_condition_keys_is_a_noop_with_a_note(tmp_path):
    notes: list[str] = []
    given = vars(cli.build_parser().parse_args(["--grid_module=m", "--allow_unknown_condition_keys",
                                                f"--out_dir={tmp_path}"]))
    settings = cli.settings_from_args(given, [], note=notes.append)
    assert settings.allow_unknown_condition_keys is False
    assert len(notes) == 1 and "deprecated" in notes[0]


def test_python_on_the_path_and_sys_executable_are_accepted(tmp_path):
    for python in (sys.executable, "python3"):
        given = vars(cli.build_parser().parse_args(["--grid_module=m", f"--python={python}", f"--out_dir={tmp_path}"]))
        assert cli.settings_from_args(given, []).python == python


def test_cluster_groups_fill_the_executor_options_whole():
    """A Slurm/LSF option is a table row plus its field in the executor's options: the factory maps it by name."""
    import dataclasses

    from hpsearch.executors.factory import choose_executor
    from hpsearch.executors.lsf import LsfOptions
    from hpsearch.executors.slurm import SlurmOptions
    from hpsearch.options import in_group

    for group, options_class in ((Group.SLURM, SlurmOptions), (Group.LSF, LsfOptions)):
        fields = {f.name for f in dataclasses.fields(options_class)}
        for option in (*in_group(group), *in_group(Group.CLUSTER)):
            assert not option.executor_field or option.executor_field in fields, option.flag
    settings = dataclasses.replace(SearchSettings(grid_module="m"), run_cluster=True, scheduler="slurm",
                                   slurm_qos="high", slurm_extra="--account='a b'", num_hours=3)
    executor = choose_executor(settings, print)(None, Path("/nonexistent"))
    assert (executor.options.qos, executor.options.extra, executor.options.num_hours) == ("high", ["--account=a b"], 3)
    assert executor.options.num_jobs == 8 and executor.options.mem == "8G"
