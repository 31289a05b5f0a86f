"""Workload 6: the end of a search on a machine whose every core is busy.

A GPU box's data loaders keep every core busy (load ≈ 13 on 2 cores was
seen), and a driver that waits there for a helper at a lower priority waited
seconds after its last run. Here CPU hogs, each in its own session (so each is
its own scheduling group, as another user's processes are), keep the load at
several times the core count while a short search runs; the figure is the
time from the last run's end stamp to the driver's exit, against the same
search on the quiet machine, and the CSV must hold every run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Iterator

import pandas as pd

from benchmarks.common import Context, expect_runs, run_ours, tail_after_last_run
from benchmarks.figures import Figure, WorkloadResult
from benchmarks.harness import environment, sleep_grid, write_project

HOGS_PER_CPU = 6
"""Hogs per core: with the search's own processes the load is a little above 12 on 2 cores."""

HOG_LIFETIME = 300.0
"""No hog lives longer than this, even if the benchmark is killed."""

_HOG = """
import os, sys, time
end = time.monotonic() + float(sys.argv[1])
parent = os.getppid()
while time.monotonic() < end and os.getppid() == parent:  # stops by itself, also when orphaned
    for _ in range(100_000):
        pass
"""


@contextmanager
def cpu_hogs(count: int, lifetime: float = HOG_LIFETIME) -> Iterator[list[subprocess.Popen]]:
    """``count`` busy-looping processes at normal priority, each in its own session; ended on exit."""
    hogs = [subprocess.Popen([sys.executable, "-c", _HOG, str(lifetime)], start_new_session=True,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(count)]
    try:
        time.sleep(0.5)  # let them reach their loop, so the load is there when the search starts
        yield hogs
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait()


def loaded_exit(ctx: Context, result: WorkloadResult) -> None:
    """20 runs of 0.2 s on 2 CPU slots, without load and beside CPU hogs; tail of each, CSV checked."""
    runs = 10 if ctx.quick else 20
    tries = 1 if ctx.quick else 3
    project = write_project(ctx.folder("loaded", "project"), sleep_grid(runs, 0.2))
    env = environment()
    args = ["--visible_gpus=-1", "--num_jobs=2"]
    hogs = HOGS_PER_CPU * (os.cpu_count() or 1)
    quiet, loaded, rows = [], [], []
    for _ in range(tries):  # interleaved, so that the machine's own load hits both alike
        run, stamps = run_ours(ctx, "loaded/quiet", project, args, env, timeout=120)
        expect_runs(stamps, runs, "hpsearch (quiet)")
        quiet.append(tail_after_last_run(run, stamps))
        with cpu_hogs(hogs):
            run, stamps = run_ours(ctx, "loaded/busy", project, args, env, timeout=240)
            load = os.getloadavg()[0]
        expect_runs(stamps, runs, "hpsearch (loaded)")
        loaded.append(tail_after_last_run(run, stamps))
        table = pd.read_csv(ctx.work / "loaded" / "busy" / "search" / "search_results.csv", sep=";")
        rows.append(int((table["status"] == "done").sum()))
    worst = max(loaded)
    result.details = {"runs": runs, "tries": tries, "hogs": hogs, "load_1min_at_end": load,
                      "quiet_last_exit_to_exit_s": quiet, "loaded_last_exit_to_exit_s": loaded,
                      "done_rows_in_csv": rows}
    result.figures += [
        Figure("loaded_last_exit_to_driver_exit", worst, "s", "<", 1.0,
               f"worst of {tries}, beside {hogs} CPU hogs (load {load:.1f})"),
        Figure("loaded_vs_quiet", worst / max(min(quiet), 1e-3), "x",
               note=f"worst loaded / best quiet ({min(quiet):.3f} s)"),
        Figure("csv_rows_missing", runs * tries - sum(rows), "rows", "<=", 0, "done rows the final CSV lacks"),
    ]
