"""The results table written by a helper process, and the driver taking over when it cannot."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import psutil
import pytest

from hpsearch import report_writer
from hpsearch.report import ReportRow
from hpsearch.report_writer import LiveReport, ReportLayout


def layout(tmp_path) -> ReportLayout:
    return ReportLayout(path=str(tmp_path / "search_results.csv"), grid_keys=["lr", "name"],
                        summary_keys=["acc", "finished"], out_arg="out_dir", performance_key="acc",
                        sort_ascending=False)


def rows(count: int, status: str = "done") -> list[ReportRow]:
    return [ReportRow(f"k{i}", {"lr": 10.0 ** -i, "name": f"a b; touch X {i}"}, status, None, f"/s/run_{i}",
                      {"acc": i / 10, "finished": 1, "curve": [0.1, 0.2]}) for i in range(count)]


def expected_text(tmp_path, items: list[ReportRow]) -> str:
    """What the driver itself would write for the same rows."""
    reference = dataclasses.replace(layout(tmp_path), path=str(tmp_path / "reference.csv")).build()
    for item in items:
        reference.set_row(item)
    reference.write()
    return reference.path.read_text()


def writer_pid(live: LiveReport) -> int:
    return live._writer.proc.pid


def test_helper_writes_the_same_table_the_driver_would(tmp_path):
    warnings = []
    live = LiveReport(layout(tmp_path), lambda: [], interval=0.05, warn=warnings.append)
    helper = psutil.Process(writer_pid(live))
    assert helper.nice() == report_writer.NICENESS
    group = Path(f"/proc/{helper.pid}/autogroup")
    if group.exists():  # its own session is its own scheduling group: that group's priority counts
        assert group.read_text().split()[-1] == str(report_writer.NICENESS)
    items = rows(5)
    for item in items[:3]:
        live.set_row(item)
    live.refresh()
    for item in items[3:]:
        live.set_row(item)
    live.set_row(ReportRow("k0", {"lr": 1.0, "name": "a b; touch X 0"}, "failed", "exit code 3", "/s/run_0", None))
    live.close()

    changed = [ReportRow("k0", {"lr": 1.0, "name": "a b; touch X 0"}, "failed", "exit code 3", "/s/run_0", None),
               *items[1:]]
    assert (tmp_path / "search_results.csv").read_text() == expected_text(tmp_path, changed)
    assert not helper.is_running() and warnings == []


def test_table_is_rewritten_while_the_search_goes_on(tmp_path):
    live = LiveReport(layout(tmp_path), lambda: [], interval=0.05, warn=print)
    live.set_row(rows(1)[0])
    live.refresh()
    path = tmp_path / "search_results.csv"
    deadline = time.monotonic() + 30
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert path.read_text() == expected_text(tmp_path, rows(1))
    live.close()


def test_driver_takes_over_when_the_helper_cannot_start(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "executable", "")
    warnings = []
    known = rows(2)
    live = LiveReport(layout(tmp_path), lambda: known, interval=0.05, warn=warnings.append)
    live.set_row(rows(3)[2])
    live.close()
    assert (tmp_path / "search_results.csv").read_text() == expected_text(tmp_path, rows(3))
    assert len(warnings) == 1 and "cannot start the report writer" in warnings[0]


def test_driver_takes_over_when_the_helper_dies(tmp_path):
    warnings = []
    store = rows(4)  # what the run store knows when the helper is found dead
    live = LiveReport(layout(tmp_path), lambda: store, interval=0.05, warn=warnings.append)
    helper = psutil.Process(writer_pid(live))
    helper.kill()
    helper.wait(10)
    live.set_row(store[3])
    live.refresh()  # the pipe is broken now
    live.close()
    assert (tmp_path / "search_results.csv").read_text() == expected_text(tmp_path, store)
    assert len(warnings) == 1 and "report writer exited" in warnings[0]


@pytest.mark.parametrize("payload", [b"", b'[["k9", {"lr": 1'])
def test_helper_writes_what_it_has_when_the_driver_vanishes(tmp_path, payload):
    live = LiveReport(layout(tmp_path), lambda: [], interval=60, warn=print)
    live.set_row(rows(1)[0])
    live.refresh()
    proc = live._writer.proc
    proc.stdin.write(payload)  # a driver killed in the middle of a line
    proc.stdin.close()  # what the kernel does when the driver dies
    assert proc.wait(30) == 0
    assert (tmp_path / "search_results.csv").read_text() == expected_text(tmp_path, rows(1))


def test_without_helper_writes_are_throttled_in_the_driver(tmp_path):
    live = LiveReport(layout(tmp_path), lambda: [], interval=3600, warn=print, use_helper=False)
    live.set_row(rows(1)[0])
    live.refresh()
    path = tmp_path / "search_results.csv"
    assert path.exists()  # the first write is due at once
    live.set_row(rows(2)[1])
    live.refresh()
    assert path.read_text() == expected_text(tmp_path, rows(1))  # the next one only after the interval
    assert live.due() > time.monotonic()
    live.close()
    assert path.read_text() == expected_text(tmp_path, rows(2))


@pytest.mark.parametrize("use_helper", [True, False])
def test_an_unwritable_table_is_a_warning_not_a_crash(tmp_path, use_helper):
    (tmp_path / "search_results.csv").mkdir()  # nothing can be renamed over a folder
    warnings = []
    live = LiveReport(layout(tmp_path), lambda: rows(2), interval=0.05, warn=warnings.append,
                      use_helper=use_helper)
    for item in rows(2):
        live.set_row(item)
    live.refresh()
    live.refresh(force=True)
    live.close()
    assert (tmp_path / "search_results.csv").is_dir()
    cannot = [w for w in warnings if "cannot write" in w]
    assert len(cannot) == 1 and "postprocessing" in cannot[0]
    assert [w for w in warnings if w not in cannot] == (["warning: the report writer failed; writing "
                                                         f"{tmp_path / 'search_results.csv'} from the driver instead"]
                                                        if use_helper else [])
