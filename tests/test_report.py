"""The results table: column order, sorting, cell formats, atomic writes."""

from __future__ import annotations

import math
import time

import pandas as pd
import pytest

from hpsearch.runs import RunStatus
from hpsearch.report import ReportRow, ResultsReport, row_from_record
from hpsearch.store import RunRecord


def make_report(tmp_path, ascending=False, performance_key="acc"):
    return ResultsReport(
        tmp_path / "search_results.csv",
        grid_keys=["lr", "opt"],
        summary_keys=["acc", "finished"],
        out_arg="out_dir",
        performance_key=performance_key,
        sort_ascending=ascending,
    )


def row(name, acc=None, status="done", reason=None, lr=0.1, **summary):
    values = None if acc is None and not summary else {"acc": acc, "finished": 1, **summary}
    return ReportRow(key=f"key_{name}", config={"lr": lr, "opt": "adam"}, status=status, reason=reason,
                     run_dir=f"/s/{name}", summary=values)


def read(report):
    return pd.read_csv(report.path, sep=";")


def test_column_order(tmp_path):
    report = make_report(tmp_path)
    report.set_row(ReportRow("k1", {"opt": "sgd", "lr": 0.1, "depth": 3}, "done", None, "/s/a",
                             {"zeta": 1, "finished": 1, "acc": 0.5, "alpha": 2}))
    report.write()
    assert list(read(report).columns) == [
        "lr", "opt", "depth", "acc", "finished", "alpha", "zeta", "status", "reason", "out_dir", "config_key"]


def test_out_arg_names_the_folder_column_and_clashing_summary_keys_are_prefixed(tmp_path):
    report = ResultsReport(tmp_path / "r.csv", grid_keys=["lr"], summary_keys=["lr", "finished"], out_arg="log_dir",
                           performance_key="lr", sort_ascending=True)
    report.set_row(ReportRow("k", {"lr": 0.1}, "done", None, "/s/a", {"lr": 0.5, "finished": 1}))
    report.write()
    table = read(report)
    assert list(table.columns) == ["lr", "summary_lr", "finished", "status", "reason", "log_dir", "config_key"]
    assert table.loc[0, "log_dir"] == "/s/a" and table.loc[0, "summary_lr"] == 0.5


@pytest.mark.parametrize("ascending", [False, True])
def test_sorting_puts_nan_then_non_done_last(tmp_path, ascending):
    report = make_report(tmp_path, ascending=ascending)
    for item in [row("a", 0.5), row("b", 0.9), row("c", float("nan")), row("d", 0.1),
                 row("e", 0.99, status="failed", reason="exit code 3"), row("f", status="interrupted"),
                 row("g", [0.9, 0.2])]:
        report.set_row(item)
    report.write()
    names = [path.rsplit("/", 1)[1] for path in read(report)["out_dir"]]
    ranked = ["d", "g", "a", "b"] if ascending else ["b", "a", "g", "d"]
    assert names == [*ranked, "c", "e", "f"]


def test_without_performance_key_rows_follow_their_folders(tmp_path):
    report = make_report(tmp_path, performance_key=None)
    for name in ["c", "a", "b"]:
        report.set_row(row(name, 0.5))
    report.write()
    assert list(read(report)["out_dir"]) == ["/s/a", "/s/b", "/s/c"]


def test_list_values_are_comma_separated_numbers(tmp_path):
    report = make_report(tmp_path)
    report.set_row(row("a", [0.1, 0.2, 1e-05], curve=[1, 2, 3]))
    report.write()
    table = read(report)
    assert table.loc[0, "acc"] == "0.1,0.2,1e-05"
    assert table.loc[0, "curve"] == "1,2,3"
    assert [float(x) for x in table.loc[0, "acc"].split(",")] == [0.1, 0.2, 1e-05]


def test_numbers_round_trip(tmp_path):
    report = make_report(tmp_path)
    report.set_row(row("a", 1e-05, lr=1e-05, loss=-3, big=float("inf"), neg=float("-inf")))
    report.set_row(row("b", 0.5, lr=2e-07, loss=7, big=float("nan"), neg=1.5))
    report.write()
    table = read(report).set_index("out_dir")
    assert table.loc["/s/a", "acc"] == 1e-05 and table.loc["/s/a", "lr"] == 1e-05
    assert table.loc["/s/b", "lr"] == 2e-07
    assert table.loc["/s/a", "loss"] == -3 and table.loc["/s/b", "finished"] == 1
    assert table.loc["/s/a", "big"] == math.inf and table.loc["/s/a", "neg"] == -math.inf
    assert math.isnan(table.loc["/s/b", "big"])
    assert "1e-05" in report.path.read_text() and "1,05" not in report.path.read_text()


def test_values_with_separators_and_quotes_stay_in_their_cell(tmp_path):
    report = make_report(tmp_path)
    report.set_row(ReportRow("k", {"lr": 0.1, "opt": 'a;b "c"\nd'}, "failed", "summary line 2 malformed: 'x;y'",
                             "/s/a", None))
    report.write()
    table = read(report)
    assert table.loc[0, "opt"] == 'a;b "c"\nd' and table.loc[0, "reason"] == "summary line 2 malformed: 'x;y'"


def test_set_row_replaces_by_key(tmp_path):
    report = make_report(tmp_path)
    report.set_row(row("a", status="interrupted"))
    report.set_row(row("a", 0.7))
    report.write()
    table = read(report)
    assert len(table) == 1 and table.loc[0, "status"] == "done" and table.loc[0, "acc"] == 0.7


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path):
    report = make_report(tmp_path)
    report.set_row(row("a", 0.5))
    report.write()
    inode = report.path.stat().st_ino
    report.set_row(row("b", 0.6))
    report.write()
    assert report.path.stat().st_ino != inode  # replaced by rename, not rewritten in place
    assert [p.name for p in tmp_path.iterdir()] == ["search_results.csv"]
    assert len(read(report)) == 2


def test_dataframe_matches_the_file(tmp_path):
    report = make_report(tmp_path)
    report.set_row(row("a", 0.5))
    report.set_row(row("b", status="failed", reason="exit code 1"))
    frame = report.dataframe()
    assert list(frame["status"]) == ["done", "failed"]
    assert frame["lr"].dtype.kind == "f"


def test_20000_rows_write_fast(tmp_path):
    report = make_report(tmp_path)
    for i in range(20_000):
        report.set_row(row(f"sim_{i:05d}", i / 20_000, curve=[0.1, 0.2]) if i % 10 else
                       row(f"sim_{i:05d}", status="failed", reason="exit code 1"))
    start = time.process_time()  # CPU time: what writing costs, not what other processes take of the cores
    report.write()
    assert time.process_time() - start < 1.0
    assert len(read(report)) == 20_000


def test_row_from_record_gives_the_full_folder_path(tmp_path):
    record = RunRecord(key="k", index=3, config={"lr": 0.1}, run_dir="sim_x_004", status=RunStatus.FAILED,
                       reason="exit code 3", summary={"acc": 0.1})
    assert row_from_record(record, tmp_path) == ReportRow("k", {"lr": 0.1}, "failed", "exit code 3",
                                                          str(tmp_path / "sim_x_004"), {"acc": 0.1})


def test_empty_table_has_the_header(tmp_path):
    report = make_report(tmp_path)
    report.write()
    assert report.path.read_text() == "lr;opt;acc;finished;status;reason;out_dir;config_key\n"
