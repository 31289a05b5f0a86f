"""The driver's rules, in-process against the fake executor (tests/fakes/fakeexecutor.py):
retries, resume, stopping on a signal, fail-fast, and what the report receives.

No process is started: the whole module runs in well under two seconds.
"""

from __future__ import annotations

import io
import json
import signal
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from hpsearch.progress import Progress
from hpsearch.runner import run_search
from hpsearch.settings import SearchSettings
from tests.fakes.fakeexecutor import CRASH, OK, FakeExecutor, Script, by_mode
from tests.helpers import write_project


@dataclass
class Session:
    code: int
    fake: FakeExecutor
    log: str
    out: Path

    def table(self) -> pd.DataFrame:
        return pd.read_csv(self.out / "search_results.csv", sep=";")

    def statuses(self) -> list[str]:
        return sorted(self.table()["status"])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "project", {"mode": ["ok"], "i": [1, 2, 3, 4]})


def search(project: Path, behave=lambda spec, attempt: OK, *, slots: int = 2, outlive: bool = False,
           **settings) -> Session:
    """One driver session over ``project``'s grid in ``project/../search`` (resumed if it exists)."""
    out = project.parent / "search"
    stream = io.StringIO()
    made: list[FakeExecutor] = []

    def factory(wakeup, search_dir):
        made.append(FakeExecutor(wakeup, behave, slots=slots, outlive=outlive))
        return made[0]

    values = dict(grid_module=str(project / "grid_cfg.py"), out_dir=str(out), force_out_dir=True,
                  dont_force_new_dir=True, shuffle=False, run_cwd=str(project), visible_gpus="-1")
    values.update(settings)
    code = run_search(SearchSettings(**values), Progress("acc", False, stream=stream), executor_factory=factory,
                      report_helper=False)
    return Session(code, made[0], stream.getvalue(), out)


def grid(project: Path, modes: list[str], count: int = 1) -> None:
    write_project(project, {"mode": modes, "i": list(range(count))})


# --------------------------------------------------------------------------- a plain search


def test_every_configuration_runs_once_and_reaches_the_report(project):
    session = search(project)
    assert session.code == 0
    assert len(session.fake.submitted()) == 4 and len(set(session.fake.submitted())) == 4
    assert session.fake.most_in_flight == 2
    table = session.table()
    assert list(table["status"]) == ["done"] * 4 and list(table["acc"]) == [0.5] * 4
    assert session.fake.events[-1] == ("shutdown", False)


def test_failure_reason_names_stderr_and_quotes_its_last_line(project):
    grid(project, ["ok", "crash"])
    session = search(project, by_mode({"crash": CRASH}))
    assert session.code == 1
    row = session.table().set_index("mode").loc["crash"]
    folder = Path(row["out_dir"]).name
    assert row["reason"] == f"exit code 1; {folder}/stderr.txt: \"NameError: name 'lr' is not defined\""
    assert f"{folder}: failed: exit code 1; {folder}/stderr.txt" in session.log


def test_missing_keyword_keeps_the_keywords_present(project):
    grid(project, ["ok", "partial"])
    session = search(project, by_mode({"partial": Script(summary="acc 0.25\n")}))
    row = session.table().set_index("mode").loc["partial"]
    assert (row["status"], row["acc"]) == ("failed", 0.25)
    assert row["reason"].startswith("summary lacks keyword 'finished'")


def test_refused_submission_is_a_failed_run(project):
    grid(project, ["ok", "bad"])
    session = search(project, by_mode({"bad": Script(refuse="Invalid account")}))
    row = session.table().set_index("mode").loc["bad"]
    assert row["status"] == "failed" and "submission failed" in row["reason"] and "Invalid account" in row["reason"]


# --------------------------------------------------------------------------- retries


def test_a_run_that_fails_is_retried_until_it_succeeds(project):
    grid(project, ["flaky"])
    unfinished = Script(exit_code=1, summary="acc 0.1\nfinished 0\n")
    session = search(project, lambda spec, attempt: unfinished if attempt < 3 else OK, max_retries=2)
    assert session.code == 0
    assert len(session.fake.submitted()) == 3
    run_dir = session.out / session.fake.submitted()[0]
    assert sorted(p.name for p in (run_dir / "previous_attempts").iterdir()) == ["1", "2"]
    assert list(session.table()["status"]) == ["done"]
    assert session.log.count("running it again") == 2


def test_retries_are_bounded(project):
    grid(project, ["crash"])
    session = search(project, by_mode({"crash": CRASH}), max_retries=1)
    assert session.code == 1 and len(session.fake.submitted()) == 2
    assert list(session.table()["status"]) == ["failed"]


# --------------------------------------------------------------------------- fail fast


def test_first_failures_stop_new_runs_and_show_the_stderr(project):
    grid(project, ["crash"], count=10)
    session = search(project, by_mode({"crash": CRASH}), slots=2)
    assert session.code == 1
    assert len(session.fake.submitted()) == 4  # 3 failed, the 4th was in flight and was recorded too
    statuses = pd.Series(session.statuses()).value_counts().to_dict()
    assert statuses == {"failed": 4}  # the CSV has the started runs only
    assert "the first 3 runs to end have all failed: starting no more runs" in session.log
    assert "/stderr.txt:\n    Traceback (most recent call last):\n    NameError: name 'lr' is not defined" in session.log
    assert "6 not started" in session.log and "--rerun_failed" in session.log


def test_max_failures_sets_the_count_and_keep_going_disables_it(project):
    grid(project, ["crash"], count=6)
    assert len(search(project, by_mode({"crash": CRASH}), slots=1, max_failures=1).fake.submitted()) == 1
    other_project = write_project(project.parent / "second" / "project", {"mode": ["crash"], "i": list(range(6))})
    session = search(other_project, by_mode({"crash": CRASH}), slots=1, keep_going=True)
    assert len(session.fake.submitted()) == 6 and session.code == 1
    assert "starting no more runs" not in session.log


def test_a_done_run_among_the_first_keeps_the_search_going(project):
    write_project(project, {"i": list(range(6))})
    session = search(project, lambda spec, attempt: OK if spec.name.endswith("1") else CRASH, slots=1)
    assert len(session.fake.submitted()) == 6


# --------------------------------------------------------------------------- stopping


def test_signal_stops_submitting_and_reports_runs_interrupted(project):
    grid(project, ["hang"], count=6)
    calls = {"n": 0}

    def behave(spec, attempt):
        calls["n"] += 1
        return Script(polls=None, raise_signal=signal.SIGTERM if calls["n"] == 2 else None)

    session = search(project, behave)
    assert session.code == 128 + signal.SIGTERM
    assert len(session.fake.submitted()) == 2
    assert ("shutdown", True) in session.fake.events  # runs that die with the driver are stopped
    assert session.statuses() == ["interrupted", "interrupted"]
    assert "stopped by SIGTERM" in session.log


def test_second_signal_kills_at_once_and_still_records_the_runs(project):
    grid(project, ["hang"], count=4)
    session = search(project, lambda spec, attempt: Script(polls=None, raise_signal=signal.SIGINT))
    assert session.code == 128 + signal.SIGINT
    assert ("kill_now",) in session.fake.events
    assert session.statuses() == ["interrupted", "interrupted"]
    assert "stopped by SIGINT" in session.log


def test_runs_that_outlive_the_driver_are_left_running_and_adopted_on_resume(project):
    grid(project, ["ok"], count=5)
    first = search(project, lambda spec, attempt: Script(polls=None, raise_signal=signal.SIGINT
                                                         if spec.name.endswith("2") else None), outlive=True)
    assert first.code == 128 + signal.SIGINT
    assert ("shutdown", False) in first.fake.events
    assert "2 jobs keep running and will be adopted on resume" in first.log
    second = search(project, outlive=True)
    assert second.code == 0
    adopted = [event[1] for event in second.fake.events if event[0] == "adopt"]
    assert len(adopted) == 2
    assert len(second.fake.submitted()) == 3  # the adopted two are not submitted again
    assert set(first.fake.submitted()).isdisjoint(second.fake.submitted())
    assert second.statuses() == ["done"] * 5


# --------------------------------------------------------------------------- resume


def test_resume_keeps_done_runs_and_reruns_interrupted_ones(project):
    grid(project, ["ok"], count=5)
    calls = {"n": 0}

    def behave(spec, attempt):
        calls["n"] += 1
        return Script(polls=None if calls["n"] > 2 else 1, raise_signal=signal.SIGINT if calls["n"] == 4 else None)

    first = search(project, behave, slots=2)
    assert first.code == 128 + signal.SIGINT
    assert first.statuses() == ["done", "done", "interrupted", "interrupted"]
    table = first.table()
    done_first = {Path(p).name for p, s in zip(table["out_dir"], table["status"]) if s == "done"}
    second = search(project)
    assert second.code == 0
    assert done_first.isdisjoint(second.fake.submitted())
    assert len(second.fake.submitted()) == 3  # two interrupted, one never started
    assert second.statuses() == ["done"] * 5
    result = json.loads((second.out / second.fake.submitted()[0] / "hpsearch_result.json").read_text())
    assert result["status"] == "done" and result["backend"] == "fake"


def test_resume_leaves_failed_runs_alone_unless_asked(project):
    grid(project, ["ok", "crash"], count=1)
    assert search(project, by_mode({"crash": CRASH})).code == 1
    again = search(project)
    assert again.fake.submitted() == [] and again.code == 1
    rerun = search(project, rerun_failed=True)
    assert len(rerun.fake.submitted()) == 1 and rerun.code == 0
