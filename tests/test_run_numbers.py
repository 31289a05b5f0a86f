"""Run folders keep one number width for the life of a search (issue 10 §1),
and the progress line's best remembers runs done before a resume."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from hpsearch.runs import RunStatus
from hpsearch.progress import Progress
from hpsearch.searchdir import MIN_RUN_NUMBER_WIDTH, run_name, run_number_width
from hpsearch.store import RunStore
from tests.helpers import run_folders, run_hpsearch, write_project


def search_args(out: Path, *extra: str) -> list[str]:
    return ["--grid_module=grid_cfg", f"--out_dir={out}", "--force_out_dir", "--dont_force_new_dir",
            "--visible_gpus=-1", "--deterministic_search", *extra]


@pytest.mark.parametrize("planned, stored, width", [
    (1, None, MIN_RUN_NUMBER_WIDTH), (9999, None, 4), (10_000, None, 5), (2_000_000, None, 7),
    (12, 4, 4), (12, 1, 1),  # a search keeps the width it has, also one started by an older version
    (20_000, 4, 4),
])
def test_width_is_chosen_once(planned, stored, width):
    assert run_number_width(planned, stored) == width


def test_names_sort_in_run_order_up_to_the_width():
    names = [run_name("20260101120000", i, run_number_width(3, None)) for i in range(9999)]
    assert names == sorted(names)
    assert names[0] == "sim_20260101120000_0001"


def numbers(out: Path) -> list[str]:
    return [folder.name.rsplit("_", 1)[1] for folder in run_folders(out)]


def test_extended_search_keeps_the_width_of_its_first_folders(tmp_path):
    project = write_project(tmp_path / "p", {"i": list(range(1, 13))})
    out = tmp_path / "search"
    first = run_hpsearch(search_args(out, "--num_searches=2"), project)
    assert first.returncode == 0, first.stderr
    assert numbers(out) == ["0001", "0002"]
    more = run_hpsearch(search_args(out, "--num_searches=12"), project)
    assert more.returncode == 0, more.stderr
    assert numbers(out) == [f"{n:04d}" for n in range(1, 13)]
    assert [f.name for f in run_folders(out)] == sorted(f.name for f in run_folders(out))


def test_a_search_with_a_narrow_width_keeps_it(tmp_path):
    """A store made before the minimum width (``name_width`` 1) goes on with width 1."""
    project = write_project(tmp_path / "p", {"i": list(range(1, 13))})
    out = tmp_path / "search"
    out.mkdir()
    with RunStore.open(out) as store:
        store.set_meta("stamp", "20260101120000")
        store.set_meta("name_width", 1)
    result = run_hpsearch(search_args(out, "--num_searches=3"), project)
    assert result.returncode == 0, result.stderr
    assert numbers(out) == ["1", "2", "3"]


def test_best_after_a_resume_counts_the_runs_done_before(tmp_path):
    project = write_project(tmp_path / "p", {"score": [0.9, 0.2, 0.1]})
    out = tmp_path / "search"
    first = run_hpsearch(search_args(out, "--num_searches=1"), project)
    assert first.returncode == 0, first.stderr
    (best_folder,) = run_folders(out)
    resumed = run_hpsearch(search_args(out, "--num_searches=3"), project)
    assert resumed.returncode == 0, resumed.stderr
    final = [line for line in resumed.stderr.splitlines() if " done," in line][-1]
    assert final.startswith("[hpsearch] 3 done")
    assert f"best acc=0.9 ({best_folder.name})" in final, final


def test_seeded_runs_count_for_best_but_not_for_the_eta():
    progress = Progress("acc", ascending=False, stream=io.StringIO())
    progress.seed([("sim_1", {"acc": 0.7}), ("sim_2", {"acc": 0.9}), ("sim_3", None)])
    progress.set_counts({RunStatus.DONE: 3, RunStatus.QUEUED: 2})
    line = progress.line()
    assert "best acc=0.9 (sim_2)" in line and "ETA" not in line
    progress.record_final("sim_4", {"acc": 0.8}, done=True)
    assert "best acc=0.9 (sim_2)" in progress.line()
    progress.record_final("sim_5", {"acc": 0.95}, done=False)  # not done: never the best
    assert re.search(r"best acc=0.9 \(sim_2\)", progress.line())
