"""The postprocessor, run as ``python -m postprocessing`` on search folders built by hand."""

from __future__ import annotations

import io
import json
import resource
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from hpsearch.store import RunStore

STAMP = "20260101120000"
KEYWORDS = ["acc", "finished"]
MODULE = """
grid = {"lr": [0.1, 0.2], "opt": ["adam", "sgd"]}
conditions = []
_SCRIPT_NAME = "train.py"
_SUMMARY_FILENAME = "performance_overview.txt"
_SUMMARY_KEYWORDS = ["acc", "finished"]
_PERFORMANCE_KEY = "acc"
_PERFORMANCE_SORT_ASC = False
"""
CRITERION = """
def _criterion(summary_dict, criteria):
    return float(summary_dict["acc"][0]) >= criteria

_PERFORMANCE_EVAL_HANDLE = _criterion
"""

# name -> (summary text or None, hpsearch_result.json status/reason or None, exit_code.txt or None)
RUNS = {
    1: ("acc 0.9\nfinished 1\n", ("done", None), None),
    2: ("acc 0.3\nfinished 1\n", None, None),  # driver killed before it wrote the result
    3: (None, ("failed", "exit code 3"), None),
    4: ("acc 0.95\nfinished 0\n", None, None),  # still running, or cut short
    5: (None, None, None),
    6: ("acc 0.4\nfinished 1\n", None, "0"),  # a job script submitted by hand
    7: ("acc 0.7\nfinished 1\n", None, "2"),
}
MISSING = 8


def run_name(index: int) -> str:
    return f"sim_{STAMP}_{index:02d}"


def config_of(index: int) -> dict:
    return {"lr": index / 10, "opt": "adam" if index % 2 else "sgd"}


def build_search(folder: Path, *, module: str = MODULE + CRITERION, with_store: bool = True) -> Path:
    """A search folder as a killed driver would leave it."""
    folder.mkdir()
    (folder / "grid_cfg.py").write_text(module)
    settings = {"grid_module": "grid_cfg", "module_file": "grid_cfg.py", "summary_filename": "performance_overview.txt",
                "summary_keywords": KEYWORDS, "out_arg": "out_dir", "performance_key": "acc",
                "performance_sort_asc": False, "grid_keys": ["lr", "opt"], "run_cwd": str(folder)}
    (folder / "search.json").write_text(json.dumps(settings))
    lines = ["#!/bin/sh", f"cd {shlex.quote(str(folder))}"]
    for index in range(1, MISSING + 1):
        argv = ["python3", "train.py", f"--lr={index / 10}", f"--opt={config_of(index)['opt']}",
                f"--out_dir={folder / run_name(index)}"]
        lines.append(shlex.join(argv))
    (folder / "commands.sh").write_text("\n".join(lines) + "\n")
    if with_store:
        with RunStore.open(folder) as store:
            store.add_configs(((f"key{i}", config_of(i)) for i in range(1, MISSING + 1)), lambda i: run_name(i + 1))
    for index, (summary, result, exit_code) in RUNS.items():
        run_dir = folder / run_name(index)
        run_dir.mkdir()
        (run_dir / "hpsearch_run.json").write_text(json.dumps(
            {"key": f"key{index}", "index": index - 1, "config": config_of(index), "argv": [], "cwd": str(folder)}))
        if summary is not None:
            (run_dir / "performance_overview.txt").write_text(summary)
        if result is not None:
            (run_dir / "hpsearch_result.json").write_text(json.dumps({"status": result[0], "reason": result[1]}))
        if exit_code is not None:
            (run_dir / "exit_code.txt").write_text(exit_code + "\n")
    return folder


def postprocess(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "postprocessing", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def results(folder: Path, name: str = "search_results.csv") -> pd.DataFrame:
    return pd.read_csv(folder / name, sep=";")


def by_run(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(run=[Path(p).name for p in table["out_dir"]]).set_index("run")


def check_table(folder: Path, table: pd.DataFrame) -> None:
    assert list(table.columns) == ["lr", "opt", "acc", "finished", "status", "reason", "out_dir", "config_key"]
    rows = by_run(table)
    assert len(rows) == MISSING
    status = rows["status"].to_dict()
    assert status == {run_name(1): "done", run_name(2): "done", run_name(3): "failed", run_name(4): "unfinished",
                      run_name(5): "unfinished", run_name(6): "done", run_name(7): "failed",
                      run_name(MISSING): "missing"}
    assert rows.loc[run_name(3), "reason"] == "exit code 3"
    assert rows.loc[run_name(4), "reason"] == "running or interrupted: not finished (finished 0)"
    assert rows.loc[run_name(5), "reason"] == "running or interrupted: no summary file performance_overview.txt"
    assert rows.loc[run_name(7), "reason"].startswith("exit code 2")
    assert rows.loc[run_name(4), "acc"] == 0.95
    assert rows.loc[run_name(1), "out_dir"] == str(folder / run_name(1))
    # Done runs by accuracy (descending) first, then the rest.
    assert list(table["acc"][:3]) == [0.9, 0.4, 0.3]
    assert set(table["status"][3:]) == {"failed", "unfinished", "missing"}


def rebuild_without(tmp_path, file_name: str) -> tuple[subprocess.CompletedProcess, pd.DataFrame]:
    """Postprocess a hand-built search folder from which ``file_name`` was deleted."""
    folder = build_search(tmp_path / "search")
    (folder / file_name).unlink()
    result = postprocess(str(folder))
    assert result.returncode == 0, result.stderr
    table = results(folder)
    check_table(folder, table)
    return result, by_run(table)


def test_rebuilds_the_table_without_the_store(tmp_path):
    result, rows = rebuild_without(tmp_path, "hpsearch.db")
    assert rows.loc[run_name(1), "config_key"] == "key1"
    assert pd.isna(rows.loc[run_name(MISSING), "config_key"])  # known only from commands.sh
    assert rows.loc[run_name(MISSING), "lr"] == 0.8 and rows.loc[run_name(MISSING), "opt"] == "sgd"
    assert "finished: 3" in result.stdout
    assert "unfinished: 4" in result.stdout
    assert "missing: 1" in result.stdout
    assert f"{run_name(MISSING)}  missing: not started" in result.stdout
    assert f"{run_name(3)}  failed: exit code 3" in result.stdout


def test_missing_runs_come_from_the_store_when_it_is_there(tmp_path):
    _, rows = rebuild_without(tmp_path, "commands.sh")
    assert rows.loc[run_name(MISSING), "config_key"] == f"key{MISSING}"
    assert rows.loc[run_name(MISSING), "reason"] == "not started"


def test_performance_criteria_lists_and_set_aside_moves(tmp_path):
    folder = build_search(tmp_path / "search")
    listed = postprocess(str(folder), "--performance_criteria", "0.5")
    assert listed.returncode == 0, listed.stderr
    assert "performance criteria 0.5: 2 runs failing" in listed.stdout
    assert f"  {run_name(2)}\n" in listed.stdout and f"  {run_name(6)}\n" in listed.stdout
    assert (folder / run_name(2)).is_dir()

    moved = postprocess(str(folder), "--performance_criteria", "0.5", "--set_aside", "--output", str(tmp_path / "t.csv"))
    assert moved.returncode == 0, moved.stderr
    aside = folder / "failed_criteria"
    assert sorted(p.name for p in aside.iterdir()) == [run_name(2), run_name(6)]
    assert not (folder / run_name(2)).exists()
    assert (aside / run_name(2) / "performance_overview.txt").read_text() == "acc 0.3\nfinished 1\n"
    rows = by_run(results(tmp_path, "t.csv"))
    assert rows.loc[run_name(2), "out_dir"] == str(aside / run_name(2))
    assert rows.loc[run_name(2), "status"] == "done"

    again = postprocess(str(folder))  # set-aside runs are neither lost nor missing
    assert again.returncode == 0, again.stderr
    assert "finished: 3" in again.stdout and "missing: 1" in again.stdout


def test_custom_summary_parser_in_the_module_copy_is_honoured(tmp_path):
    parser = """
def _parse(out_dir, cmd_ident):
    import os
    with open(os.path.join(out_dir, "performance_overview.txt")) as handle:
        values = dict(line.split(":") for line in handle.read().split())
    return {"acc": [values["acc"]], "finished": [values["finished"]], "ident": [cmd_ident]}

_SUMMARY_PARSER_HANDLE = _parse
"""
    folder = build_search(tmp_path / "search", module=MODULE + parser)
    for index in range(1, 8):
        summary = folder / run_name(index) / "performance_overview.txt"
        if summary.exists():
            summary.write_text(summary.read_text().replace(" ", ":"))
    result = postprocess(str(folder))
    assert result.returncode == 0, result.stderr
    rows = by_run(results(folder))
    assert rows.loc[run_name(1), "status"] == "done" and rows.loc[run_name(1), "acc"] == 0.9
    assert rows.loc[run_name(1), "ident"] == 0 and rows.loc[run_name(6), "ident"] == 5
    assert rows.loc[run_name(5), "reason"].startswith("running or interrupted: custom summary parser failed: "
                                                      "FileNotFoundError")


def test_without_search_json_the_grid_module_supplies_the_settings(tmp_path):
    folder = build_search(tmp_path / "search")
    (folder / "search.json").unlink()
    project = tmp_path / "project"
    project.mkdir()
    (project / "my_cfg.py").write_text(MODULE.replace('"acc", "finished"]', '"finished", "acc"]'))
    refused = postprocess(str(folder))
    assert refused.returncode == 2
    assert "search.json" in refused.stderr and "--grid_module" in refused.stderr
    result = postprocess(str(folder), "--grid_module", "my_cfg", cwd=project)
    assert result.returncode == 0, result.stderr
    table = results(folder)
    assert list(table.columns)[:4] == ["lr", "opt", "finished", "acc"]
    assert set(table["status"]) == {"done", "failed", "unfinished", "missing"}


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_bad_folder_is_one_line_and_exit_2(tmp_path):
    message = one_line_error(postprocess(str(tmp_path / "nope")))
    assert "nope" in message and "no such folder" in message


def test_criteria_without_handle_is_a_clear_error(tmp_path):
    folder = build_search(tmp_path / "search", module=MODULE)
    message = one_line_error(postprocess(str(folder), "--performance_criteria", "0.5"))
    assert "_PERFORMANCE_EVAL_HANDLE" in message


def test_set_aside_needs_criteria(tmp_path):
    folder = build_search(tmp_path / "search")
    assert "--performance_criteria" in one_line_error(postprocess(str(folder), "--set_aside"))


def test_broken_module_copy_is_named(tmp_path):
    folder = build_search(tmp_path / "search", module=MODULE + "import not_a_module_anywhere\n")
    message = one_line_error(postprocess(str(folder)))
    assert "grid_cfg.py" in message and "not_a_module_anywhere" in message


def children_cpu_seconds() -> float:
    """CPU seconds (user + system) of the child processes that ended so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def test_20000_runs_take_under_20_seconds(tmp_path):
    folder = tmp_path / "big"
    folder.mkdir()
    (folder / "search.json").write_text(json.dumps(
        {"summary_filename": "performance_overview.txt", "summary_keywords": KEYWORDS, "grid_keys": ["i"],
         "performance_key": "acc"}))
    for index in range(20_000):
        run_dir = folder / f"sim_{index:05d}"
        run_dir.mkdir()
        (run_dir / "hpsearch_run.json").write_text(f'{{"key": "k{index}", "index": {index}, "config": {{"i": {index}}}}}')
        (run_dir / "performance_overview.txt").write_text(f"acc {index / 20_000}\nfinished 1\n")
        (run_dir / "hpsearch_result.json").write_text('{"status": "done", "reason": null}')
    start = children_cpu_seconds()
    result = postprocess(str(folder))
    assert children_cpu_seconds() - start < 20  # CPU time: what it costs, not what other processes take of the cores
    assert result.returncode == 0, result.stderr
    table = results(folder)
    assert len(table) == 20_000 and table.loc[0, "i"] == 19_999


@pytest.mark.parametrize("argv", [["--help"]])
def test_console_entry_point_main_exists(argv):
    from postprocessing.cli import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0


def test_warns_while_a_driver_holds_the_folder(tmp_path):
    from tests.test_store import start_holder

    folder = build_search(tmp_path / "search")
    holder = start_holder(folder)
    try:
        result = postprocess(str(folder))
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert result.returncode == 0, result.stderr
    assert f"warning: a driver (pid {holder.pid} on" in result.stderr


def read_only_command(folder: Path, argv: list[str]) -> list[str] | None:
    """``argv`` run with ``folder`` read-only: a chmod for a normal user; for root (whom
    permissions do not stop) a read-only bind mount in a private mount namespace.
    None if neither is possible here."""
    import os
    import shutil

    if os.geteuid() != 0:
        for path in [folder, *folder.rglob("*")]:
            if path.is_dir():
                path.chmod(0o555)
            else:
                path.chmod(0o444)
        return argv
    if shutil.which("unshare") is None:
        return None
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", str(folder),
                            "true"], capture_output=True)
    if probe.returncode != 0:
        return None
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", str(folder), *argv]


@pytest.fixture
def read_only_search(tmp_path):
    folder = build_search(tmp_path / "search")
    def command(*args: str) -> subprocess.CompletedProcess:
        argv = read_only_command(folder, [sys.executable, "-m", "postprocessing", str(folder), *args])
        if argv is None:
            pytest.skip("cannot make a folder read-only here (root without mount namespaces)")
        return subprocess.run(argv, capture_output=True, text=True, timeout=120)
    yield folder, command
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def test_read_only_folder_prints_the_table(read_only_search):
    folder, command = read_only_search
    result = command()
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "cannot be written" in result.stderr and "--output" in result.stderr
    assert "missing runs are taken from" not in result.stderr  # the store was read, read-only
    assert not (folder / "search_results.csv").exists()
    table = pd.read_csv(io.StringIO(result.stdout), sep=";")
    check_table(folder, table)
    assert "finished: 3" in result.stderr  # the overview goes to stderr, stdout is the table alone


def test_read_only_folder_with_output_writes_there(read_only_search, tmp_path):
    folder, command = read_only_search
    target = tmp_path / "elsewhere.csv"
    result = command(f"--output={target}")
    assert result.returncode == 0, result.stderr
    check_table(folder, pd.read_csv(target, sep=";"))
    assert f"results: {target}" in result.stdout


def test_unwritable_output_is_one_line(tmp_path):
    folder = build_search(tmp_path / "search")
    result = postprocess(str(folder), f"--output={tmp_path / 'no' / 'such' / 'dir' / 't.csv'}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("hpsearch_postprocessing: error: --output")
    assert "Traceback" not in result.stderr
