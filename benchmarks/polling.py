"""Workload 3: how often the driver asks ``nvidia-smi``.

Counted from the fake's call log: calls per started run, and calls per
second while runs wait (all GPUs busy with others; our only slot busy).
"""

from __future__ import annotations

import subprocess
import time

from benchmarks.common import (
    GPUS,
    SLOTS_PER_GPU,
    Context,
    expect_runs,
    gpu_args,
    run_ours,
    search_args,
)
from benchmarks.figures import Figure, WorkloadResult
from benchmarks.harness import (
    TimedProcess,
    environment,
    fake_gpus,
    nvidia_smi_calls,
    read_stamps,
    run_folders,
    sleep_grid,
    wait_until,
    write_project,
)


def gpu_polling(ctx: Context, result: WorkloadResult) -> None:
    """``nvidia-smi`` calls per started run, and per second while runs wait."""
    for part in (calls_per_run, calls_while_blocked, calls_while_slots_full):
        result.figures += part(ctx, result.details)


def calls_per_run(ctx: Context, details: dict) -> list[Figure]:
    runs = ctx.slot_runs
    project = write_project(ctx.folder("polling", "per_run", "project"), sleep_grid(runs, 0.5))
    gpus = fake_gpus(ctx.work / "polling" / "per_run")
    run, stamps = run_ours(ctx, "polling/per_run", project, gpu_args(), environment(gpus), timeout=120)
    expect_runs(stamps, runs, "hpsearch")
    calls = len(nvidia_smi_calls(gpus))
    details["per_run"] = {"runs": runs, "calls": calls, "wall_s": run.wall}
    return [
        Figure("calls_per_started_run", calls / runs, "", "<=", 1.0,
               f"{calls} calls for {runs} runs on {GPUS} GPUs x {SLOTS_PER_GPU} in {run.wall:.2f} s"),
        Figure("calls_per_s_running", calls / run.wall, "/s", note="while the search ran (1 s poll interval)"),
    ]


def calls_while_blocked(ctx: Context, details: dict) -> list[Figure]:
    """Every GPU over ``--allowed_memory`` for a while, then freed: the driver
    must wait, polling calmly, and start the runs soon after the GPUs free up."""
    folder = ctx.folder("polling", "blocked")
    project = write_project(folder / "project", sleep_grid(GPUS, 0))
    gpus = fake_gpus(folder, memory_used=12000)  # 75 % of 16000 > allowed 50 %
    with TimedProcess(search_args(project, folder / "search", *gpu_args()), cwd=project, env=environment(gpus),
                      log=folder / "driver.log") as driver:
        wait_until(lambda: bool(nvidia_smi_calls(gpus)), 30, "the driver's first nvidia-smi call")
        _hold(driver, ctx.idle_seconds)
        gpus.configure(GPUS)
        freed = time.time()
        run = driver.wait(60).check()
    stamps = read_stamps(run_folders(folder / "search"))
    expect_runs(stamps, GPUS, "hpsearch")
    calls = nvidia_smi_calls(gpus)
    # Calls per second of the blocked window: the calls after the driver's
    # first one (its start-up probe, which also serves the first round) until
    # the GPUs were freed, over the window's length.
    waiting = [t for t in calls if t <= freed][1:]
    rate = len(waiting) / (freed - calls[0]) if freed > calls[0] else 0.0
    details["blocked"] = {"blocked_s": freed - calls[0], "calls_while_blocked": len(waiting) + 1,
                          "call_times_rel_s": [round(t - calls[0], 3) for t in calls], "wall_s": run.wall}
    return [
        Figure("calls_per_s_blocked", rate, "/s", "<=", 1.0,
               f"{len(waiting) + 1} calls in {freed - calls[0]:.1f} s with every GPU over --allowed_memory"),
        Figure("start_after_gpus_free", stamps[0].started - freed, "s",
               note="from freeing the GPUs to the first run's start"),
    ]


def calls_while_slots_full(ctx: Context, details: dict) -> list[Figure]:
    """Runs of a few seconds on 1 GPU x 1 slot: while the only slot is busy,
    no poll can start anything, so ideally none is made."""
    folder = ctx.folder("polling", "full")
    duration = 1.5 if ctx.quick else 3.0
    project = write_project(folder / "project", sleep_grid(2, duration))
    gpus = fake_gpus(folder, count=1)
    run, stamps = run_ours(ctx, "polling/full", project, gpu_args(max_per_gpu=1, gpus=1), environment(gpus),
                           timeout=60)
    expect_runs(stamps, 2, "hpsearch")
    calls = nvidia_smi_calls(gpus)
    inside = [t for t in calls if any(s.started < t < s.ended for s in stamps)]
    busy = sum(s.duration for s in stamps)
    details["slots_full"] = {"run_s": duration, "calls": len(calls), "calls_during_runs": len(inside),
                             "wall_s": run.wall}
    return [Figure("calls_per_s_slots_full", len(inside) / busy, "/s", "<=", 1.0,
                   f"{len(inside)} calls during {busy:.1f} s with the only slot busy")]


def _hold(driver: TimedProcess, seconds: float) -> None:
    """Keep the GPUs busy for ``seconds`` (the measurement window itself),
    failing if the driver gives up meanwhile."""
    try:
        driver.proc.wait(seconds)
    except subprocess.TimeoutExpired:
        return
    raise RuntimeError(f"the driver exited ({driver.proc.returncode}) while the GPUs were busy; log {driver.log}")
