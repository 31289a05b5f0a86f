"""Workload 1: how much of 4 GPUs x 2 slots the runner keeps busy.

40 runs of 0.5 s, measured against the ideal wall time (packing bound with
``--sim_startup_time=0``; the one-start-per-GPU-per-second bound with 1), and
against ``xargs -P 8`` running the same command lines: the runs' own Python
start-up and exit are charged to every launcher, and xargs shows how much of
the ideal they leave on this machine.
"""

from __future__ import annotations

from benchmarks.common import (
    GPUS,
    SLOTS_PER_GPU,
    Context,
    expect_runs,
    gpu_args,
    run_ours,
    steady_utilisation,
    tail_after_last_run,
    utilisation,
)
from benchmarks.figures import Figure, WorkloadResult
from benchmarks.harness import (
    environment,
    fake_gpus,
    max_concurrency,
    sleep_grid,
    write_project,
)
from benchmarks.ideal import ideal_wall_time
from benchmarks.launch import run_xargs


def slot_utilisation(ctx: Context, result: WorkloadResult) -> None:
    """40 runs of 0.5 s on 4 fake GPUs x 2 slots, with start-up time 0 and 1."""
    runs, duration = ctx.slot_runs, 0.5
    project = write_project(ctx.folder("utilisation", "project"), sleep_grid(runs, duration))
    gpus = fake_gpus(ctx.work / "utilisation")
    env = environment(gpus)
    slots = GPUS * SLOTS_PER_GPU
    xargs, xargs_stamps = run_xargs(ctx, project, runs, env, parallel=slots, sleep=duration, name="utilisation")
    xargs_utilisation = utilisation(xargs_stamps, slots, xargs.wall)
    result.details["xargs"] = {"wall_s": xargs.wall, "busy_s": sum(s.duration for s in xargs_stamps),
                               "first_run_after_launch_s": xargs_stamps[0].started - xargs.started}
    for startup in (0, 1):
        run, stamps = run_ours(ctx, f"utilisation/startup{startup}", project, gpu_args(startup=startup), env,
                               timeout=120)
        expect_runs(stamps, runs, "hpsearch")
        bound = ideal_wall_time(runs, GPUS, SLOTS_PER_GPU, duration, startup_gap=startup)
        result.details[f"startup{startup}"] = {
            "wall_s": run.wall, "ideal_wall_s": bound, "busy_s": sum(s.duration for s in stamps),
            "max_concurrency": max_concurrency(stamps), "last_exit_to_driver_exit_s": tail_after_last_run(run, stamps),
        }
        if startup == 0:
            result.figures += [
                Figure("utilisation_startup0", utilisation(stamps, slots, run.wall), "%", ">=", 0.9,
                       f"sum of run times / ({slots} slots x wall {run.wall:.2f} s); ideal wall {bound:.2f} s"),
                Figure("utilisation_xargs", xargs_utilisation, "%",
                       note=f"the same 40 command lines under xargs -P {slots}: what a launcher without "
                            f"GPUs, files or bookkeeping reaches here (wall {xargs.wall:.2f} s)"),
                Figure("utilisation_ours_over_xargs", utilisation(stamps, slots, run.wall) / xargs_utilisation, "x",
                       note="our utilisation as a fraction of xargs'"),
                Figure("utilisation_steady_startup0", steady_utilisation(stamps, slots), "%",
                       note="same, from the first run's start to the last run's end"),
                Figure("first_run_after_launch", stamps[0].started - run.started, "s",
                       note="driver start to the first run's start stamp"),
                Figure("driver_exit_after_last_run", tail_after_last_run(run, stamps), "s",
                       note="last run's end stamp to the driver's exit"),
                Figure("max_concurrency", max_concurrency(stamps), "runs", note=f"of {slots} slots"),
            ]
        else:
            result.figures += [
                Figure("wall_vs_bound_startup1", run.wall / bound, "x", "<=", 1.15,
                       f"wall {run.wall:.2f} s / bound {bound:.2f} s (one start per GPU per s)"),
                Figure("utilisation_startup1", utilisation(stamps, slots, run.wall), "%",
                       note="startup time is a memory reservation here, not a lock-out"),
            ]
