"""Workload 4: does anything grow with the size of the search?

* listing 1,000 configurations of a 10^9-point grid (lazy enumeration);
* a search of 20,000 runs of 0 s: the driver's memory and the time per run at
  the start and at the end (the runs' own start stamps);
* rebuilding the report of that folder with ``python -m postprocessing``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.common import Context, expect_runs, run_ours, tail_after_last_run
from benchmarks.figures import Figure, WorkloadResult
from benchmarks.harness import (
    GRID_MODULE,
    SHELL_SLEEPER,
    SLEEPER,
    ProcessRun,
    RunStamp,
    environment,
    hpsearch_argv,
    run_process,
    sleep_grid,
    write_project,
)

MB = 1024 * 1024
HUGE_GRID = "{" + ", ".join(f"'p{k}': list(range(10))" for k in range(9)) + ", 'sleep': [0]}"
LISTED = 1000


def scale(ctx: Context, result: WorkloadResult) -> None:
    enumeration(ctx, result)
    search_dir = big_search(ctx, result)
    postprocessing(ctx, search_dir, result)


def enumeration(ctx: Context, result: WorkloadResult) -> None:
    project = write_project(ctx.folder("scale", "enumeration"), HUGE_GRID)
    argv = hpsearch_argv(f"--grid_module={GRID_MODULE}", f"--run_cwd={project}", f"--num_searches={LISTED}",
                         "--list", "--format=json")
    run = run_process(argv, cwd=project, env=environment(), log=project / "list.json", timeout=120).check()
    count = json.loads(run.log.read_text())["count"]
    if count != LISTED:
        raise RuntimeError(f"--list printed {count} configurations, expected {LISTED}")
    result.figures.append(Figure("enumerate_1e9_grid", run.wall, "s", "<", 1.0,
                                 f"--list --format=json --num_searches={LISTED} of a 10^9-point grid, whole process"))


def big_search(ctx: Context, result: WorkloadResult) -> Path:
    """The long search; returns its folder for the postprocessing step."""
    runs = ctx.scale_runs
    bash = shell_for_runs()
    script, python = (SHELL_SLEEPER, [f"--python={bash}"]) if bash else (SLEEPER, [])
    project = write_project(ctx.folder("scale", "search"), sleep_grid(runs, 0), script)
    run, stamps = run_ours(ctx, "scale/search", project, ["--visible_gpus=-1", "--num_jobs=2", "--quiet", *python],
                           environment(), timeout=300 + runs * 0.2, rss_interval=0.5 if runs >= 5000 else 0.1)
    expect_runs(stamps, runs, "hpsearch")
    window = min(2000, runs // 10)
    first, last = seconds_per_run(stamps[:window]), seconds_per_run(stamps[-window:])
    start_rss, end_rss = memory_at_start_and_end(run, stamps[window - 1].started)
    result.details["search"] = {
        "runs": runs, "run_script": script.name, "wall_s": run.wall, "window": window, "rss_samples": len(run.rss),
        "rss_peak_mb": max(rss for _, rss in run.rss) / MB,
        "rss_curve_mb": [[round(when - run.started, 1), round(rss / MB, 1)] for when, rss in thin(run.rss, 20)],
        "last_exit_to_driver_exit_s": tail_after_last_run(run, stamps),
    }
    result.figures += [
        Figure("runs_per_s", runs / run.wall, "/s", note=f"{runs} runs of 0 s, --num_jobs=2, wall {run.wall:.0f} s"),
        Figure("rss_start_mb", start_rss / MB, "MB", note=f"driver + report writer RSS after the first {window} runs"),
        Figure("rss_end_mb", end_rss / MB, "MB", note="driver + report writer RSS at the last sample before exit"),
        Figure("rss_change_abs_mb", abs(end_rss - start_rss) / MB, "MB", "<=", 20.0, "|end - start|"),
        Figure("ms_per_run_first", 1000 * first, "ms", note=f"first {window} runs, from their start stamps"),
        Figure("ms_per_run_last", 1000 * last, "ms", note=f"last {window} runs"),
        Figure("per_run_last_vs_first", last / first if first > 0 else None, "x", "<=", 1.2,
               "flat: the end no slower than the start"),
    ]
    return ctx.work / "scale" / "search" / "search"


def shell_for_runs() -> str | None:
    """bash 5 or newer (for ``$EPOCHREALTIME``), else None: the runs then
    use the Python sleeper and the search takes longer."""
    bash = shutil.which("bash")
    if bash is None:
        return None
    probe = subprocess.run([bash, "-c", 'echo "${EPOCHREALTIME:-}"'], capture_output=True, text=True, timeout=10)
    return bash if probe.stdout.strip() else None


def seconds_per_run(stamps: list[RunStamp]) -> float:
    """Mean gap between consecutive starts over a window of runs."""
    return (stamps[-1].started - stamps[0].started) / (len(stamps) - 1)


def thin(samples: list, count: int) -> list:
    """About ``count`` evenly spaced samples, the last one included."""
    step = max(1, len(samples) // count)
    return samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])


def memory_at_start_and_end(run: ProcessRun, settled: float) -> tuple[int, int]:
    """RSS at the first sample after ``settled`` (the driver has started its
    first window of runs and written its first report, so imports and caches
    are in) and at the last sample; a tiny search may end before the next
    sample, then both are the last one."""
    during = [rss for when, rss in run.rss if when >= settled] or [rss for _, rss in run.rss[-1:]] or [0]
    return during[0], during[-1]


def postprocessing(ctx: Context, search_dir: Path, result: WorkloadResult) -> None:
    argv = [sys.executable, "-m", "postprocessing", str(search_dir)]
    run = run_process(argv, cwd=search_dir.parent, env=environment(), log=ctx.work / "scale" / "postprocessing.log",
                      timeout=600)
    note = f"python -m postprocessing on {ctx.scale_runs} finished runs"
    if run.returncode != 0:
        tail = run.log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        result.details["postprocessing_error"] = f"exit {run.returncode}: {tail[0]}"
        result.figures.append(Figure("postprocessing_s", None, "s", "<", 20.0, f"FAILED (exit {run.returncode}): {tail[0]}"))
        return
    result.figures.append(Figure("postprocessing_s", run.wall, "s", "<", 20.0, note))
