"""Workload 2: what the driver costs per run, against ``xargs -P 2``.

N runs of 0 s on 2 CPU slots: the runs do nothing, so every second beyond
the ideal launcher's is the driver's overhead.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from benchmarks.common import Context, expect_runs, run_ours, tail_after_last_run
from benchmarks.figures import Figure, WorkloadResult
from benchmarks.harness import (
    ProcessRun,
    RunStamp,
    environment,
    read_stamps,
    run_folders,
    run_process,
    sleep_grid,
    write_project,
)


def launch_overhead(ctx: Context, result: WorkloadResult) -> None:
    """N runs of 0 s on 2 CPU slots, against the same commands under ``xargs -P 2``."""
    runs = ctx.launch_runs
    project = write_project(ctx.folder("launch", "project"), sleep_grid(runs, 0))
    env = environment()
    xargs_tries, our_tries = [], []
    for _ in range(ctx.repeats):  # interleaved, so a burst of load hits both
        xargs_tries.append(run_xargs(ctx, project, runs, env))
        our_tries.append(run_ours(ctx, "launch/ours", project, ["--visible_gpus=-1", "--num_jobs=2"], env,
                                  timeout=60 + runs))
        expect_runs(our_tries[-1][1], runs, "hpsearch")
    xargs_run, xargs_stamps = min(xargs_tries, key=lambda t: t[0].wall)
    ours, stamps = min(our_tries, key=lambda t: t[0].wall)
    tail = tail_after_last_run(ours, stamps)
    result.details = {"runs": runs, "repeats": ctx.repeats, "ours_wall_s": [t[0].wall for t in our_tries],
                      "xargs_wall_s": [t[0].wall for t in xargs_tries],
                      "ours_last_exit_to_exit_s": [tail_after_last_run(*t) for t in our_tries],
                      "xargs_last_exit_to_exit_s": tail_after_last_run(xargs_run, xargs_stamps)}
    best = f"best of {ctx.repeats}, " if ctx.repeats > 1 else ""
    result.figures += [
        Figure("wall_vs_xargs", ours.wall / xargs_run.wall, "x", "<=", 1.3,
               f"{runs} runs, {best}ours {ours.wall:.2f} s / xargs {xargs_run.wall:.2f} s"),
        Figure("last_exit_to_driver_exit", tail, "s", "<", 0.2, "last run's end stamp to the driver's exit"),
        Figure("ms_per_run_ours", 1000 * ours.wall / runs, "ms", note="wall / runs"),
        Figure("ms_per_run_xargs", 1000 * xargs_run.wall / runs, "ms", note="wall / runs"),
    ]


def run_xargs(ctx: Context, project: Path, runs: int, env: dict[str, str], *, parallel: int = 2,
              sleep: float = 0, name: str = "launch") -> tuple[ProcessRun, list[RunStamp]]:
    """The ideal launcher: ``xargs -0 -n 3 -P <parallel> python train.py`` over NUL-separated
    argument triples, so no value ever passes through a shell."""
    xargs = shutil.which("xargs")
    if xargs is None:
        raise RuntimeError("xargs not found on PATH")
    out = ctx.folder(name, "xargs")
    feed = ctx.work / name / "xargs-args"
    feed.write_bytes(b"".join(
        f"--sleep={sleep}\0--i={i}\0--out_dir={out / f'run_{i}'}\0".encode() for i in range(runs)
    ))
    argv = [xargs, "-0", "-n", "3", "-P", str(parallel), sys.executable, "train.py"]
    run = run_process(argv, cwd=project, env=env, log=ctx.work / name / "xargs.log", stdin=feed,
                      timeout=60 + runs).check()
    stamps = read_stamps(run_folders(out))
    expect_runs(stamps, runs, "xargs")
    return run, stamps
