"""The benchmark harness runs end to end on tiny sizes and reports sane figures.

Goals are not checked here (the benchmark is no pass/fail test); the figures
must exist, be finite and be physically possible.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.common import Context
from benchmarks.figures import Figure, WorkloadResult, render_table
from benchmarks.ideal import ideal_wall_time
from benchmarks.run import run_workload

REPO = Path(__file__).resolve().parent.parent
RUN = REPO / "benchmarks" / "run.py"
FAST = ("utilisation", "launch", "polling", "scale", "status")


def test_ideal_wall_time_packs_waves_and_honours_the_start_gap():
    assert ideal_wall_time(40, 4, 2, 0.5) == pytest.approx(2.5)
    assert ideal_wall_time(41, 4, 2, 0.5) == pytest.approx(3.0)
    # one start per GPU per second: 10 starts per GPU, the last at t=9
    assert ideal_wall_time(40, 4, 2, 0.5, startup_gap=1) == pytest.approx(9.5)
    # long runs: the second slot of each GPU is what limits
    assert ideal_wall_time(40, 4, 2, 2.0, startup_gap=1) == pytest.approx(11.0)


def test_figure_verdicts():
    assert Figure("u", 0.95, "%", ">=", 0.9).verdict == "PASS"
    assert Figure("u", 0.5, "%", ">=", 0.9).verdict == "MISS"
    assert Figure("u", None, "%", ">=", 0.9).verdict == "MISS"
    assert Figure("t", 0.2, "s", "<", 0.2).verdict == "MISS"
    assert Figure("n", 3, "runs").verdict is None
    table = render_table([WorkloadResult("w", "t", [Figure("u", 0.95, "%", ">=", 0.9)])])
    assert "95.0 %" in table and "PASS" in table


def test_quick_mode_leaves_hypnettorch_out_unless_named(tmp_path):
    ctx = Context(tmp_path, quick=True)
    result = run_workload("hypnettorch", ctx, chosen=False)
    assert result.skipped and "--only" in result.skipped
    assert not any(tmp_path.iterdir()), "a left-out workload must not do any work"


def test_unknown_workload_is_refused():
    proc = subprocess.run([sys.executable, str(RUN), "--only", "utilisation,nope"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert "unknown workload nope" in proc.stderr


@pytest.mark.timeout(180)
def test_quick_benchmark_writes_sane_results(tmp_path):
    output = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--only", ",".join(FAST), "--scale_runs", "40",
         "--output", str(output), "--work", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=170,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(output.read_text())
    assert data["quick"] is True
    assert data["command"].startswith("python benchmarks/run.py --quick")
    assert list(data["workloads"]) == list(FAST)
    for name, workload in data["workloads"].items():
        assert workload["error"] is None and workload["skipped"] is None, name
        for figure_name, figure in workload["figures"].items():
            assert figure["value"] is not None and math.isfinite(figure["value"]), (name, figure_name)
            assert figure["verdict"] in (None, "PASS", "MISS")
    counted = sum(1 for w in data["workloads"].values() for f in w["figures"].values() if f["verdict"])
    assert data["verdicts"]["PASS"] + data["verdicts"]["MISS"] == counted > 0

    figures = {name: {k: f["value"] for k, f in w["figures"].items()} for name, w in data["workloads"].items()}
    util = figures["utilisation"]
    assert 0 < util["utilisation_startup0"] <= util["utilisation_steady_startup0"] <= 1.05
    assert 2 <= util["max_concurrency"] <= 8
    assert util["wall_vs_bound_startup1"] > 0
    assert figures["launch"]["wall_vs_xargs"] > 0.5
    assert 0 <= figures["launch"]["last_exit_to_driver_exit"] < 10
    polling = figures["polling"]
    assert 0 < polling["calls_per_started_run"] < 16
    assert 0 <= polling["calls_per_s_blocked"] < 50
    assert polling["start_after_gpus_free"] >= 0
    scale = figures["scale"]
    assert 0 < scale["enumerate_1e9_grid"] < 60
    assert scale["rss_end_mb"] > 1 and scale["rss_start_mb"] > 1, data["workloads"]["scale"]["details"]
    assert scale["postprocessing_s"] > 0
    status = figures["status"]
    assert 0 < status["status_json_s"] < 30 and status["status_over_python_startup"] > 1
    assert "PASS" in proc.stdout and "written to" in proc.stdout


def test_cpu_hogs_of_the_loaded_workload_stop_by_themselves():
    from benchmarks.loaded import _HOG, cpu_hogs

    hog = subprocess.Popen([sys.executable, "-c", _HOG, "0.3"])  # a lifetime of 0.3 s
    assert hog.wait(60) == 0
    with cpu_hogs(1, lifetime=60) as (running,):
        assert running.poll() is None
    assert running.poll() is not None  # ended with the workload, not after its lifetime


def test_results_workload_reports_its_figures(tmp_path):
    result = run_workload("results", Context(tmp_path, quick=True, scale_runs=40), chosen=True)
    assert result.error is None and result.details["runs"] == 40
    figures = {figure.name: figure.value for figure in result.figures}
    assert set(figures) == {"load_results_s", "load_over_read_sql", "group_seeds_s"}
    assert all(value > 0 and math.isfinite(value) for value in figures.values())
