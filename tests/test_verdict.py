"""The verdict of a run: exit status and summary together (issue 10 §4: a time limit that strikes as a
run exits, or while its leftovers are stopped, does not undo a finished run)."""

from __future__ import annotations

import pytest

from hpsearch.runs import Outcome, RunStatus
from hpsearch.verdict import SummaryReader, judge

READER = SummaryReader("performance_overview.txt", ["acc", "finished"])


def run_dir_with(tmp_path, summary: str | None):
    if summary is not None:
        (tmp_path / "performance_overview.txt").write_text(summary)
    return tmp_path


def test_exit_0_with_a_finished_summary_is_done_even_when_the_time_limit_struck(tmp_path):
    run_dir = run_dir_with(tmp_path, "acc 0.5\nfinished 1\n")
    verdict = judge(Outcome("k", 0, timed_out=True, backend_state="timed out after 3s"), run_dir, 0, READER)
    assert (verdict.status, verdict.reason, verdict.summary) == (RunStatus.DONE, None, {"acc": 0.5, "finished": 1})


@pytest.mark.parametrize("exit_code, signal, summary", [
    (0, None, "acc 0.5\nfinished 0\n"),  # stopped before it finished, though it exited 0 on SIGTERM
    (0, None, None),
    (None, 15, "acc 0.5\nfinished 1\n"),  # killed by the limit after writing its summary
    (1, None, "acc 0.5\nfinished 1\n"),
])
def test_a_timed_out_run_that_did_not_exit_0_finished_stays_timed_out(tmp_path, exit_code, signal, summary):
    run_dir = run_dir_with(tmp_path, summary)
    outcome = Outcome("k", exit_code, signal=signal, timed_out=True, backend_state="timed out after 3s")
    assert judge(outcome, run_dir, 0, READER).status == RunStatus.TIMED_OUT


def test_an_interrupted_run_stays_interrupted_even_if_it_finished(tmp_path):
    run_dir = run_dir_with(tmp_path, "acc 0.5\nfinished 1\n")
    assert judge(Outcome("k", 0, interrupted=True), run_dir, 0, READER).status == RunStatus.INTERRUPTED
