"""Workload 7: what the search service costs per run, against one foreground search.

S searches x N runs of 0 s through ``hpsearch serve --visible_gpus=-1
--num_jobs=2`` against one foreground search of the same S x N runs on 2 CPU
slots; the runs do nothing, so every second beyond the foreground's is the
service's (its broker round trips, S drivers sharing 2 cores). The service's
RSS is sampled while the runs go: it should stay flat.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import psutil

from benchmarks.common import GRID_MODULE, Context, expect_runs, run_ours
from benchmarks.figures import Figure, WorkloadResult
from benchmarks.harness import (
    environment,
    hpsearch_argv,
    read_stamps,
    run_folders,
    sleep_grid,
    wait_until,
    write_project,
)

SLOTS = 2


def service_overhead(ctx: Context, result: WorkloadResult) -> None:
    searches, per = ctx.service_searches, ctx.service_runs
    total = searches * per
    env = environment()
    project = write_project(ctx.folder("service", "project"), sleep_grid(per, 0))
    fg_project = write_project(ctx.folder("service", "fg_project"), sleep_grid(total, 0))
    foreground, fg_stamps = run_ours(ctx, "service/foreground", fg_project,
                                     ["--visible_gpus=-1", f"--num_jobs={SLOTS}"], env, timeout=120 + total)
    expect_runs(fg_stamps, total, "foreground")
    wall, rss, stamps = run_service(ctx, project, searches, env, timeout=120 + total)
    expect_runs(stamps, total, "service")
    early = [r for t, r in rss if t <= rss[0][0] + 0.2 * (rss[-1][0] - rss[0][0])] or [rss[0][1]]
    growth = (rss[-1][1] - max(early)) / 2**20
    result.details = {"searches": searches, "runs_per_search": per, "foreground_wall_s": foreground.wall,
                      "service_wall_s": wall, "service_rss_mb": [round(r / 2**20, 1) for _t, r in rss[::10]]}
    result.figures += [
        Figure("wall_vs_foreground", wall / foreground.wall, "x", "<=", 1.3,
               f"{searches} x {per} runs, service {wall:.1f} s (first submit to last search's end) / "
               f"foreground {foreground.wall:.1f} s"),
        Figure("service_rss_growth", growth, "MB", "<=", 20,
               f"service RSS at the end minus the highest of the first fifth ({rss[-1][1] / 2**20:.0f} MB at the end)"),
        Figure("ms_per_run_service", 1000 * wall / total, "ms", note="wall / runs"),
    ]


def run_service(ctx: Context, project: Path, searches: int, env: dict[str, str], *,
                timeout: float) -> tuple[float, list[tuple[float, int]], list]:
    """Start a service, submit the searches one after another, wait for all to end."""
    from hpsearch.service.paths import StatePaths
    from hpsearch.service.registry import Registry

    state = ctx.folder("service", "state")
    env = {**env, "HPSEARCH_STATE_DIR": str(state)}
    paths = StatePaths(state)
    outs = [ctx.work / "service" / f"search_{n}" for n in range(searches)]
    for out in outs:
        ctx.discard(out)
    log = open(ctx.work / "service" / "serve.log", "ab")
    serve = subprocess.Popen(hpsearch_argv("serve", "--visible_gpus=-1", f"--num_jobs={SLOTS}", "--quiet"),
                             cwd=project, env=env, stdout=log, stderr=log, start_new_session=True)
    samples: list[tuple[float, int]] = []
    done = threading.Event()
    try:
        wait_until(lambda: paths.socket.exists(), 60, "the service's socket")
        sampler = threading.Thread(target=_sample, args=(serve.pid, samples, done), daemon=True)
        sampler.start()
        started = time.time()
        for out in outs:
            subprocess.run(hpsearch_argv("submit", f"--grid_module={GRID_MODULE}", f"--run_cwd={project}",
                                         f"--out_dir={out}", "--force_out_dir"),
                           cwd=project, env=env, check=True, capture_output=True, timeout=120)
        with Registry.open(paths) as registry:
            def over() -> bool:
                entries = registry.entries()
                return len(entries) == searches and all(e.state in ("finished", "failed") for e in entries)

            wait_until(over, timeout, "every search to end", interval=0.2)
            ended = max(e.ended for e in registry.entries())
        done.set()
        stamps = [s for out in outs for s in read_stamps(run_folders(out))]
        return ended - started, samples, stamps
    finally:
        done.set()
        subprocess.run(hpsearch_argv("serve", "--stop", "--kill-runs"), env=env, capture_output=True, timeout=180)
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, 9)
            serve.wait()
        log.close()


def _sample(pid: int, samples: list[tuple[float, int]], done: threading.Event) -> None:
    process = psutil.Process(pid)
    while not done.is_set():
        try:
            samples.append((time.time(), process.memory_info().rss))
        except psutil.Error:
            return
        done.wait(0.5)
