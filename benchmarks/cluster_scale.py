"""Workload 9: a cluster search at scale on the real one-node Slurm (issue 15).

2,000 configurations of 0.2 s (200 with ``--quick``) as job arrays with
``--runs_per_job 20``. Wrappers first on PATH log every ``sbatch``,
``squeue``, ``sacct``, ``scontrol`` and ``scancel`` call and then exec the
real program, so the figures are the scheduler calls the driver really made.
The driver's RSS (with its report writer) is sampled every second.

Needs the Slurm of ``scripts/slurm-local.sh`` running (it is not started or
changed here); otherwise the workload is skipped with the reason.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
from pathlib import Path

from benchmarks.common import Context, search_args
from benchmarks.figures import Figure, WorkloadResult
from benchmarks.harness import environment, read_stamps, run_folders, run_process, sleep_grid, write_project

REPO = Path(__file__).resolve().parent.parent
SLURM_SCRIPT = REPO / "scripts" / "slurm-local.sh"
TOOLS = ("sbatch", "squeue", "sacct", "scontrol", "scancel")
RUNS, QUICK_RUNS = 2000, 200
RUNS_PER_JOB = 20
RUN_SECONDS = 0.2
STEADY_AFTER = 60.0  # "once jobs have run a minute"


def write_wrappers(folder: Path, log: Path) -> None:
    """``folder/<tool>``: append ``<epoch> <tool> <args>`` to ``log``, then exec the real one."""
    folder.mkdir(parents=True, exist_ok=True)
    for tool in TOOLS:
        real = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout.strip()
        if not real:
            raise RuntimeError(f"{tool} not on PATH")
        wrapper = folder / tool
        wrapper.write_text(f'#!/bin/sh\nprintf "%s {tool} %s\\n" "$(date +%s.%N)" "$*" >> {shlex.quote(str(log))}\n'
                           f'exec {shlex.quote(real)} "$@"\n')
        wrapper.chmod(0o755)


def read_calls(log: Path) -> list[tuple[float, str, list[str]]]:
    calls = []
    for line in log.read_text().splitlines() if log.exists() else []:
        stamp, tool, *args = line.split(" ")
        calls.append((float(stamp), tool, args))
    return calls


def asked_about(calls: list[tuple[float, str, list[str]]]) -> list[str]:
    """Every job id named in a ``sacct -j`` or ``scontrol show job`` call (each finished
    job should appear once at most)."""
    ids: list[str] = []
    for _, tool, args in calls:
        if tool == "sacct" and "-j" in args:
            ids += args[args.index("-j") + 1].split(",")
        elif tool == "scontrol" and args[-2:-1] == ["job"]:
            ids.append(args[-1])
    return ids


def per_minute(times: list[float], start: float, end: float) -> tuple[float, int]:
    """Mean calls a minute in [start, end], and the most in any 60 s window starting at a call."""
    inside = [t for t in times if start <= t <= end]
    span = max(end - start, 1e-9)
    most = max((sum(1 for u in inside if t <= u < t + 60) for t in inside), default=0)
    return len(inside) * 60 / span, most


def cluster_scale(ctx: Context, result: WorkloadResult) -> None:
    base = os.environ.get("SLURM_LOCAL_BASE", "/tmp/hpsearch-slurm")
    status = subprocess.run([str(SLURM_SCRIPT), "status"], capture_output=True,
                            env=dict(os.environ, SLURM_CONF=f"{base}/slurm.conf"))
    if status.returncode != 0:
        result.skipped = "the local Slurm of scripts/slurm-local.sh is not running (start it as root)"
        return
    runs = QUICK_RUNS if ctx.quick else RUNS
    root = ctx.folder("cluster")
    project = write_project(root / "project", sleep_grid(runs, RUN_SECONDS))
    log = root / "calls.log"
    write_wrappers(root / "wrappers", log)
    env = environment(first_on_path=[root / "wrappers"])
    env["SLURM_CONF"] = f"{base}/slurm.conf"
    env["PATH"] = f"{root / 'wrappers'}{os.pathsep}{env['PATH']}"
    out = root / "search"
    args = search_args(project, out, "--run_cluster", "--scheduler=slurm", "--slurm_array",
                       f"--runs_per_job={RUNS_PER_JOB}", "--slurm_gres=", "--slurm_mem=100M", "--num_jobs=8",
                       "--keep_going")
    run = run_process(args, cwd=project, env=env, log=root / "driver.log", timeout=3600, rss_interval=1.0).check()
    stamps = read_stamps(run_folders(out))
    calls = read_calls(log)
    times = {tool: [t for t, name, _ in calls if name == tool] for tool in TOOLS}
    max_array = _max_array_size(env)
    jobs = math.ceil(runs / RUNS_PER_JOB)
    steady_from = min(s.started for s in stamps) + STEADY_AFTER if stamps else run.ended
    squeue_rate, squeue_most = per_minute(times["squeue"], steady_from, run.ended)
    sacct_rate, _ = per_minute(times["sacct"], steady_from, run.ended)
    asked = asked_about(calls)
    twice = sorted({job for job in asked if asked.count(job) > 1})
    results = [json.loads((f / "hpsearch_result.json").read_text()) for f in run_folders(out)
               if (f / "hpsearch_result.json").exists()]
    once = sum(1 for r in results if r["status"] == "done" and r["attempt"] == 1)
    busy = sum(s.duration for s in stamps)
    rss = [sample for _, sample in run.rss]
    result.figures += [
        Figure("sbatch_calls", len(times["sbatch"]), "", "<=", math.ceil(jobs / max_array),
               f"{runs} configurations, {jobs} jobs of {RUNS_PER_JOB}, arrays of at most MaxArraySize={max_array} "
               f"tasks (the issue's goal of 5 holds from MaxArraySize 20 up)"),
        Figure("squeue_per_minute_steady", squeue_rate, "/min", "<=", 2.0,
               "mean squeue calls a minute once the first job has run a minute"),
        Figure("squeue_most_in_a_minute_steady", squeue_most, "", "<=", 3, "most squeue calls in any 60 s then"),
        Figure("sacct_per_minute_steady", sacct_rate, "/min", None, None, "sacct calls a minute then"),
        Figure("finished_jobs_asked_twice", len(twice), "", "<=", 0, "job ids named twice by sacct/scontrol"),
        Figure("runs_done_once", once, "", ">=", runs, "runs done on their first attempt"),
        Figure("wall_over_run_time", run.wall / busy if busy else None, "", None, None,
               f"driver wall {run.wall:.0f} s over the sum of run times {busy:.0f} s"),
        Figure("rss_growth_mb", (rss[-1] - rss[len(rss) // 4]) / 2**20 if len(rss) > 4 else None, "MB", "<=", 20,
               "driver + report writer RSS at the end minus at a quarter of the search"),
    ]
    result.details.update({
        "runs": runs, "jobs": jobs, "max_array_size": max_array, "wall_s": round(run.wall, 1),
        "sum_of_run_times_s": round(busy, 1), "calls": {tool: len(times[tool]) for tool in TOOLS},
        "rss_mb": [round(s / 2**20, 1) for s in rss[:: max(1, len(rss) // 20)]],
        "asked_twice": twice[:20],
        "command": shlex.join(args[2:]),
    })


def _max_array_size(env: dict[str, str]) -> int:
    shown = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, env=env).stdout
    match = re.search(r"^MaxArraySize\s*=\s*(\d+)", shown, re.MULTILINE)
    return int(match.group(1)) if match else 1001
