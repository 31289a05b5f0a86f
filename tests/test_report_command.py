"""hpsearch report and hpsearch compare, run as a user runs them, checked against plain pandas."""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.results_fixtures import real_search

HNT = Path(__file__).resolve().parent / "data" / "hypnettorch_search"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    return real_search(tmp_path_factory.mktemp("seeded"))


def hpsearch(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hpsearch", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


def runs_from_store(folder: Path) -> pd.DataFrame:
    """The runs read straight from hpsearch.db with sqlite3 and json, not through hpsearch.results."""
    with sqlite3.connect(folder / "hpsearch.db") as db:
        rows = db.execute("SELECT config, status, summary, run_dir FROM runs").fetchall()
    records = []
    for config, status, summary, run_dir in rows:
        records.append({**json.loads(config), **(json.loads(summary) if summary else {}), "status": status,
                        "run": run_dir})
    return pd.DataFrame(records)


def test_by_config_json_equals_an_independent_groupby(seeded):
    result = hpsearch("report", str(seeded), "--by_config", "--format=json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    runs = runs_from_store(seeded)
    finished = runs[runs.status == "done"]
    expected = finished.groupby(["lr", "opt"]).agg(
        n=("val_acc", "count"), mean=("val_acc", "mean"), std=("val_acc", "std"), min=("val_acc", "min"),
        max=("val_acc", "max"), loss_mean=("loss", "mean"), loss_std=("loss", "std"))
    expected = expected.sort_values("mean", ascending=False, kind="stable")
    assert [(c["config"]["lr"], c["config"]["opt"]) for c in doc["configs"]] == expected.index.tolist()
    for entry, (_, row) in zip(doc["configs"], expected.iterrows()):
        stats = entry["stats"]["val_acc"]
        assert stats["n"] == row["n"]
        for name in ("mean", "std", "min", "max"):
            assert stats[name] == pytest.approx(row[name], nan_ok=True) if not math.isnan(row[name]) \
                else stats[name] is None
        assert entry["stats"]["loss"]["mean"] == pytest.approx(row["loss_mean"])
        group = finished[(finished.lr == entry["config"]["lr"]) & (finished.opt == entry["config"]["opt"])]
        width = max(len(c) for c in group.val_curve)
        curves = pd.DataFrame([c + [math.nan] * (width - len(c)) for c in group.val_curve])
        assert entry["stats"]["val_curve"]["n"] == curves.count().tolist()
        np.testing.assert_allclose(entry["stats"]["val_curve"]["mean"], curves.mean())
        all_runs = runs[(runs.lr == entry["config"]["lr"]) & (runs.opt == entry["config"]["opt"])]
        assert entry["n_runs"] == len(all_runs) and entry["counts"]["failed"] == (all_runs.status == "failed").sum()
        assert sorted(entry["seeds"]) == sorted(all_runs.random_seed)
    assert [(c["config"], c["counts"]["failed"]) for c in doc["configs_without_done_runs"]] == \
        [({"lr": 0.01, "opt": "bad"}, 3)]
    assert doc["counts"] == {"queued": 0, "running": 0, "done": 14, "failed": 4, "timed_out": 0, "interrupted": 0,
                             "total": 18}
    assert doc["failures"] == [{"reason": "exit code 3; <run>/stderr.txt: 'diverged'", "count": 4,
                                "runs": sorted(runs[runs.status == "failed"].run)}]


def test_runs_json_is_ranked_by_the_performance_key(seeded):
    doc = json.loads(hpsearch("report", str(seeded), "--format=json", "--top=5").stdout)
    runs = runs_from_store(seeded)
    best = runs[runs.status == "done"].sort_values("val_acc", ascending=False, kind="stable").head(5)
    assert [r["summary"]["val_acc"] for r in doc["runs"]] == best.val_acc.tolist()
    assert [r["rank"] for r in doc["runs"]] == [1, 2, 3, 4, 5]
    ascending = json.loads(hpsearch("report", str(seeded), "--format=json", "--performance_key=loss").stdout)
    losses = [r["summary"]["loss"] for r in ascending["runs"]]
    assert losses == sorted(losses, reverse=True)  # the search's order (descending) applies to the key given
    ascending = json.loads(hpsearch("report", str(seeded), "--format=json", "--performance_key=loss",
                                    "--ascending").stdout)
    losses = [r["summary"]["loss"] for r in ascending["runs"]]
    assert losses == sorted(losses) and ascending["ascending"] is True


def test_by_config_file_is_written_by_the_driver_and_by_report(seeded, tmp_path):
    path = seeded / "search_results_by_config.csv"
    assert path.is_file()  # the driver wrote it when the search ended (it has a random_seed)
    from_driver = pd.read_csv(path, sep=";")
    assert len(from_driver) == 6 and from_driver.n_runs.sum() == 18 and from_driver.n_done.sum() == 14
    assert from_driver.val_acc_mean.dropna().is_monotonic_decreasing
    copy = tmp_path / "copy"
    shutil.copytree(seeded, copy)
    (copy / "search_results_by_config.csv").unlink()
    assert hpsearch("report", str(copy), "--by_config", "--format=csv").returncode == 0
    assert (copy / "search_results_by_config.csv").read_text() == path.read_text().replace(str(seeded), str(copy))
    assert not list(copy.glob(".*tmp*"))  # written through a temporary file, none left


def test_text_and_markdown_show_the_table_counts_and_failures(seeded):
    text = hpsearch("report", str(seeded), "--by_config").stdout
    assert "18 runs: done 14, failed 4" in text and "ranked by val_acc (higher is better)" in text
    assert "   4  exit code 3; <run>/stderr.txt: 'diverged'" in text
    table = [line for line in text.splitlines() if line[:1].isdigit()]
    assert len(table) == 5 and table[0].split()[:4] == ["1", "0.1", "adam", "3/3"]
    markdown = hpsearch("report", str(seeded), "--format=markdown", "--top=2").stdout
    rows = [line for line in markdown.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0].startswith("| rank | lr | opt | random_seed | val_acc |") and len(rows) == 3


def test_performance_criteria_leaves_out_the_runs_it_rejects(seeded):
    doc = json.loads(hpsearch("report", str(seeded), "--format=json", "--by_config",
                              "--performance_criteria=0.9").stdout)
    runs = runs_from_store(seeded)
    rejected = ((runs.status == "done") & (runs.val_acc < 0.9)).sum()
    assert doc["criteria"] == {"value": 0.9, "failing": int(rejected)} and rejected > 0
    assert doc["counts"]["failed_criteria"] == rejected and doc["counts"]["done"] == 14 - rejected
    assert all(c["stats"]["val_acc"]["min"] >= 0.9 for c in doc["configs"])


@pytest.mark.parametrize("args, problem", [
    (["/nonexistent/search"], "no search '/nonexistent/search'"),
    (["SEARCH", "--top=0"], "--top: must be a positive integer, got '0'"),
    (["SEARCH", "--top=many"], "--top: must be a positive integer"),
    (["SEARCH", "--performance_key=nope"], "--performance_key nope: no such summary key"),
    (["SEARCH", "--by_config", "--seed_keys=nope"], "--seed_keys nope: 'nope' is not a grid key"),
    (["SEARCH", "--format=html"], "invalid choice: 'html'"),
])
def test_bad_input_is_one_line_and_exit_2(seeded, tmp_path, args, problem):
    copy = tmp_path / "copy"
    shutil.copytree(seeded, copy)
    (copy / "search_results_by_config.csv").unlink()
    result = hpsearch("report", *[str(copy) if a == "SEARCH" else a for a in args])
    assert result.returncode == 2 and problem in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
    assert not (copy / "search_results_by_config.csv").exists()


def test_report_reads_a_search_folder_of_hypnettorch(tmp_path):
    folder = tmp_path / "old"
    shutil.copytree(HNT, folder)
    doc = json.loads(hpsearch("report", str(folder), "--by_config", "--format=json").stdout)
    assert doc["source"] == "hypnettorch" and doc["performance_key"] == "acc"
    assert [(c["config"]["lr"], c["config"]["opt"], c["stats"]["acc"]["n"]) for c in doc["configs"]] == [
        (0.1, "adam", 3), (0.01, "adam", 3), (0.1, "bad", 2), (0.01, "bad", 1)]
    assert doc["configs"][0]["stats"]["acc"]["mean"] == pytest.approx(0.62)
    assert doc["counts"]["unfinished"] == 3 and (folder / "search_results_by_config.csv").is_file()


# --------------------------------------------------------------------------- compare


@pytest.fixture(scope="module")
def changed(tmp_path_factory):
    """The same grid written in another key order, one lr replaced, and every accuracy 0.05 higher."""
    return real_search(tmp_path_factory.mktemp("changed"), offset=0.05,
                       grid='grid = {"opt": ["adam", "sgd", "bad"], "random_seed": [1, 2, 3], "lr": [0.1, 0.5]}')


def test_compare_matches_configurations_on_grid_values(seeded, changed):
    result = hpsearch("compare", str(seeded), str(changed), "--format=json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["shared_total"], doc["only_in_a"], doc["only_in_b"]) == (3, 3, 3)
    a, b = runs_from_store(seeded), runs_from_store(changed)
    for entry in doc["shared"]:
        config = entry["config"]
        assert config["lr"] == 0.1
        mean_a = a[(a.status == "done") & (a.lr == 0.1) & (a.opt == config["opt"])].val_acc.mean()
        mean_b = b[(b.status == "done") & (b.lr == 0.1) & (b.opt == config["opt"])].val_acc.mean()
        assert entry["a"]["mean"] == pytest.approx(mean_a) and entry["b"]["mean"] == pytest.approx(mean_b)
        assert entry["difference"] == pytest.approx(0.05)
    means = [entry["a"]["mean"] for entry in doc["shared"]]
    assert means == sorted(means, reverse=True)  # A's ranking order
    assert doc["a"]["best"]["config"] == doc["b"]["best"]["config"] == {"lr": 0.1, "opt": "adam"}
    assert doc["b"]["best"]["mean"] == pytest.approx(doc["a"]["best"]["mean"] + 0.05)
    text = hpsearch("compare", str(seeded), str(changed)).stdout
    assert "3 configurations in both" in text and "+0.05" in text and "best of B: opt=" in text


def test_compare_refuses_bad_input(seeded):
    result = hpsearch("compare", str(seeded), str(HNT))
    assert result.returncode == 2 and "SEARCH_A's performance key val_acc: no such summary key" in result.stderr
    result = hpsearch("compare", str(seeded))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_report_and_compare_are_subcommands():
    from hpsearch.subcommands import subcommand

    assert subcommand("report").__name__ == "report_main" and subcommand("compare").__name__ == "compare_main"
    helped = hpsearch("report", "--help")
    assert helped.returncode == 0 and "--by_config" in helped.stdout and "--performance_criteria" in helped.stdout


def test_compare_two_hypnettorch_folders(tmp_path):
    other = tmp_path / "other"
    shutil.copytree(HNT, other)
    summary = other / "sim_20261201121601_01" / "performance_overview.txt"  # lr 0.1, adam, seed 3
    summary.write_text(summary.read_text().replace("acc 0.63", "acc 0.93"))
    doc = json.loads(hpsearch("compare", str(HNT), str(other), "--format=json").stdout)
    assert (doc["shared_total"], doc["only_in_a"], doc["only_in_b"]) == (4, 0, 0)
    differences = {(e["config"]["lr"], e["config"]["opt"]): e["difference"] for e in doc["shared"]}
    assert differences[(0.1, "adam")] == pytest.approx(0.1)  # (0.93 - 0.63) / 3 seeds
    assert all(d == pytest.approx(0) for key, d in differences.items() if key != (0.1, "adam"))
