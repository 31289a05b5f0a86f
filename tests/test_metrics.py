"""``_METRICS``: results from a JSON file, the last JSON object on stdout, or regexes over
stdout, for scripts that write no summary file; the run folders stay the ground truth
(postprocessing and a rebuilt store read the same metrics); reading stays bounded (issue 14)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hpsearch import metrics
from hpsearch.errors import SummaryError
from hpsearch.metrics import metrics_source
from hpsearch.summary import IncompleteSummary
from tests.helpers import env_without_gpus, read_results, run_folders, run_hpsearch

CONSUMERS = Path(__file__).resolve().parent / "consumers"
FLAGS = ("--force_out_dir", "--dont_force_new_dir", "--deterministic_search", "--visible_gpus=-1", "--num_jobs=2")
REGEX = [r"val_acc=(?P<val_acc>\S+)", r"loss=(?P<val_loss>\S+)"]
SOURCES = {
    "json_file": {"source": "json_file", "file": "metrics.json", "keys": ["val_acc", "val_loss"]},
    "jsonl": {"source": "json_file", "file": "metrics.jsonl", "keys": ["val_acc"]},
    "stdout_json": {"source": "stdout_json", "keys": ["val_acc", "val_loss"]},
    "stdout_regex": {"source": "stdout_regex", "patterns": REGEX},
    "stdout_regex_all": {"source": "stdout_regex", "patterns": REGEX, "take": {"val_acc": "all"}},
}
WHERE = {"jsonl": "jsonl", "stdout_regex_all": "stdout_regex"}
EXPECTED = {  # val_acc of the run with --lr=0.25 (three epochs: 0.25, 0.5, 0.75)
    "json_file": 0.75, "jsonl": 0.75, "stdout_json": 0.75, "stdout_regex": 0.75, "stdout_regex_all": "0.25,0.5,0.75",
}


def project(tmp_path: Path, name: str, grid: dict) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(CONSUMERS / "metrics_train.py", folder / "train.py")
    (folder / "grid_cfg.py").write_text(
        f"grid = {grid!r}\nconditions = []\n_SCRIPT_NAME = 'train.py'\n_METRICS = {SOURCES[name]!r}\n")
    return folder


def search(folder: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_hpsearch(["--grid_module=grid_cfg", f"--out_dir={out}", *FLAGS, *extra], folder,
                        env=env_without_gpus(), timeout=240)


def postprocess(out: Path, output: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "postprocessing", str(out), f"--output={output}"],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", list(SOURCES))
def test_each_source_fills_the_table_and_a_rebuild_from_the_run_folders_gives_the_same(tmp_path, name):
    folder = project(tmp_path, name, {"where": [WHERE.get(name, name)], "lr": [0.25, 0.125]})
    out = tmp_path / "search"
    result = search(folder, out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not list(out.glob("*/performance_overview.txt"))
    assert "best val_acc=0.75 (" in result.stderr  # the progress line ranks by the first metric
    table = read_results(out)
    assert set(table["status"]) == {"done"}
    first = table.iloc[0]  # sorted by val_acc, largest first
    assert first["lr"] == 0.25
    assert first["val_acc"] == EXPECTED[name] or str(first["val_acc"]) == EXPECTED[name]
    if name in ("json_file", "stdout_json"):
        assert first["val_loss"] == pytest.approx(0.25) and first["note"] == "a b"
    if name == "stdout_regex":
        assert first["val_loss"] == pytest.approx(0.25)
    written = (out / "search_results.csv").read_text()

    rebuilt = postprocess(out, tmp_path / "rebuilt.csv")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert (tmp_path / "rebuilt.csv").read_text() == written

    (out / "hpsearch.db").unlink()
    for run_dir in run_folders(out):
        (run_dir / "hpsearch_result.json").unlink()  # only the exit code and the metrics' files are left
        (run_dir / "exit_code.txt").write_text("0\n")
    rebuilt = postprocess(out, tmp_path / "from_files.csv")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert (tmp_path / "from_files.csv").read_text() == written


def test_store_rebuilt_on_resume_keeps_the_metrics_and_runs_nothing_again(tmp_path):
    folder = project(tmp_path, "stdout_regex", {"where": ["stdout_regex"], "lr": [0.25, 0.125]})
    out = tmp_path / "search"
    assert search(folder, out).returncode == 0
    written = (out / "search_results.csv").read_text()
    stdout_files = {run_dir: (run_dir / "stdout.txt").stat().st_mtime_ns for run_dir in run_folders(out)}
    (out / "hpsearch.db").unlink()
    result = run_hpsearch(["--resume", str(out)], folder, env=env_without_gpus(), timeout=240)
    assert result.returncode == 0, result.stderr
    assert "run store rebuilt from 2 run folders (2 done)" in result.stderr
    assert {run_dir: (run_dir / "stdout.txt").stat().st_mtime_ns for run_dir in run_folders(out)} == stdout_files
    assert (out / "search_results.csv").read_text() == written


@pytest.mark.parametrize("name, reason", [
    ("json_file", "metrics not found: val_acc (the last JSON object in metrics.json lacks it)"),
    ("jsonl", "metrics not found: val_acc (the last JSON object in metrics.jsonl lacks it)"),
    ("stdout_json", "metrics not found: val_acc (the last JSON object in stdout.txt lacks it)"),
    ("stdout_regex", "metrics not found: val_acc (no line of stdout.txt matched it)"),
])
def test_a_run_without_its_metrics_failed_with_the_reason(tmp_path, name, reason):
    folder = project(tmp_path, name, {"where": [WHERE.get(name, name)], "lr": [0.5], "missing": [True, False]})
    out = tmp_path / "search"
    result = search(folder, out)
    assert result.returncode == 1
    table = read_results(out).set_index("missing")
    assert table.loc[False, "status"] == "done" and table.loc[True, "status"] == "failed"
    assert table.loc[True, "reason"].startswith(reason)


def test_metrics_found_but_a_failing_exit_is_still_a_failure(tmp_path):
    folder = project(tmp_path, "stdout_json", {"where": ["stdout_json"], "lr": [0.5], "fail": [True]})
    out = tmp_path / "search"
    result = search(folder, out)
    assert result.returncode == 1
    [row] = read_results(out).to_dict("records")
    assert row["status"] == "failed" and row["reason"].startswith("exit code 1")
    assert row["val_acc"] == 1.5  # what was found is still shown


def test_a_missing_metrics_file_is_named():
    source = metrics_source(SOURCES["json_file"])
    with pytest.raises(SummaryError, match="^no metrics file metrics.json$"):
        source.read(Path("/nonexistent"))
    with pytest.raises(SummaryError, match="^no stdout.txt$"):
        metrics_source(SOURCES["stdout_json"]).read(Path("/nonexistent"))


# --------------------------------------------------------------------------- bounded reading


def test_values_are_numbers_when_they_are_numbers(tmp_path):
    (tmp_path / "stdout.txt").write_text("acc=1e-05 n=3 name=adam l=[1,2]\nacc=-2 n=4 name=sgd l=[3, 4]\n")
    source = metrics_source({"source": "stdout_regex",
                             "patterns": [r"acc=(?P<acc>\S+) n=(?P<n>\S+) name=(?P<name>\S+) l=(?P<l>\[.*\])"],
                             "take": {"n": "all"}})
    assert source.read(tmp_path) == {"acc": -2, "n": [3, 4], "name": "sgd", "l": [3, 4]}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="ab{}\n é", max_size=40), max_size=30), st.integers(1, 16))
def test_lines_from_the_end_are_the_lines_reversed(tmp_path_factory, parts, chunk):
    path = tmp_path_factory.mktemp("lines") / "stdout.txt"
    text = "\n".join(parts)
    path.write_bytes(text.encode())
    original = metrics._CHUNK
    metrics._CHUNK = chunk  # chunk borders inside lines and multi-byte characters
    try:
        got = list(metrics._lines_from_end(path, "stdout"))
    finally:
        metrics._CHUNK = original
    assert got == [line.decode() for line in reversed(text.encode().split(b"\n")) if line]


def test_overlong_lines_are_skipped_and_the_scan_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(metrics, "MAX_LINE_BYTES", 100)
    monkeypatch.setattr(metrics, "_CHUNK", 32)
    path = tmp_path / "stdout.txt"
    path.write_text('{"val_acc": 1}\n' + "x" * 500 + '{"val_acc": 2}\n' + "y" * 300 + "\nend\n")
    assert list(metrics._lines_from_end(path, "stdout")) == ["end", '{"val_acc": 1}']
    assert list(metrics._lines_forward(path, "stdout")) == ['{"val_acc": 1}', "end"]
    source = metrics_source({"source": "stdout_json", "keys": ["val_acc"]})
    assert source.read(tmp_path) == {"val_acc": 1}
    monkeypatch.setattr(metrics, "MAX_SCAN_BYTES", 200)  # the object lies before the last 200 bytes
    assert list(metrics._lines_from_end(path, "stdout")) == ["end"]
    assert list(metrics._lines_forward(path, "stdout")) == ["end"]  # the cut line is left out
    with pytest.raises(IncompleteSummary, match="no JSON object in stdout.txt"):
        source.read(tmp_path)


def test_all_matches_keep_at_most_the_last_values(tmp_path, monkeypatch):
    monkeypatch.setattr(metrics, "MAX_ALL_VALUES", 3)
    (tmp_path / "stdout.txt").write_text("".join(f"loss={i}\n" for i in range(10)))
    source = metrics_source({"source": "stdout_regex", "patterns": [r"loss=(?P<loss>\d+)"], "take": "all"})
    assert source.read(tmp_path) == {"loss": [7, 8, 9]}


def test_a_fifo_instead_of_stdout_does_not_block(tmp_path):
    os.mkfifo(tmp_path / "stdout.txt")
    source = metrics_source({"source": "stdout_json", "keys": ["val_acc"]})
    with pytest.raises(SummaryError, match="not a regular file"):
        source.read(tmp_path)
