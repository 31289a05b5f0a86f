"""Workload 7: ``hpsearch status DIR --json`` of a search of 20,000 runs (issue 12: under 0.5 s).

The search folder is built through the store API (``RunStore.restore``), not by
running 20,000 runs: 18,000 done with summaries, 1,000 failed, 8 running on
4 GPUs, the rest queued. ``status`` is timed as a user starts it (a fresh
``python -m hpsearch`` process, best of a few tries), against the interpreter's
own start-up (``python -c pass``) and the CLI's (``python -m hpsearch
--version``), measured in the same tries, interleaved.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

from benchmarks.common import Context
from benchmarks.figures import Figure, WorkloadResult
from benchmarks.harness import environment, hpsearch_argv, run_process
from hpsearch.runs import RunStatus
from hpsearch.service.snapshot import SearchRef, search_document
from hpsearch.store import RunRecord, RunStore

RUNS = 20_000
TRIES = 5
RUNNING = 8


def status_json(ctx: Context, result: WorkloadResult) -> None:
    runs = RUNS if not ctx.quick else min(RUNS, ctx.scale_runs)
    folder = ctx.folder("status", "search")
    started = time.perf_counter()
    build_search(folder, runs)
    built = time.perf_counter() - started
    env = environment()
    ours, python, cli = [], [], []
    for number in range(TRIES):  # interleaved, so a burst of load hits all three
        log = ctx.work / "status" / f"status-{number}.json"
        ours.append(run_process(hpsearch_argv("status", str(folder), "--json"), cwd=folder, env=env, log=log,
                                timeout=60).check())
        python.append(run_process([sys.executable, "-c", "pass"], cwd=folder, env=env,
                                  log=ctx.work / "status" / "python.log", timeout=60).check())
        cli.append(run_process(hpsearch_argv("--version"), cwd=folder, env=env, log=ctx.work / "status" / "cli.log",
                               timeout=60).check())
    shown = json.loads(ours[-1].log.read_text())["search"]
    if shown["counts"]["total"] != runs or len(shown["running"]) != running_runs(runs) or shown["best"] is None:
        raise RuntimeError(f"status showed {shown['counts']} and {len(shown['running'])} running runs")
    best, baseline = min(run.wall for run in ours), min(run.wall for run in python)
    version = min(run.wall for run in cli)
    reads = []
    for _ in range(TRIES):
        began = time.perf_counter()
        search_document(SearchRef(folder, None))
        reads.append(time.perf_counter() - began)
    result.details = {"runs": runs, "tries": TRIES, "build_s": built, "status_wall_s": [r.wall for r in ours],
                      "python_wall_s": [r.wall for r in python], "version_wall_s": [r.wall for r in cli], "snapshot_s": reads}
    result.figures += [
        Figure("status_json_s", best, "s", "<", 0.5,
               f"hpsearch status DIR --json of {runs} runs, whole process, best of {TRIES}"),
        Figure("status_over_python_startup", best / baseline, "x",
               note=f"against python -c pass ({baseline * 1000:.0f} ms) in the same tries"),
        Figure("status_over_cli_startup", best / version, "x",
               note=f"against python -m hpsearch --version ({version * 1000:.0f} ms): the CLI's own imports"),
        Figure("snapshot_ms", 1000 * min(reads), "ms", note="the snapshot alone, in-process: store reads and JSON"),
    ]


def running_runs(runs: int) -> int:
    """How many of the search's runs are running: 8, fewer in a tiny search (the smoke test's)."""
    return min(RUNNING, runs - int(runs * 0.95))


def build_search(folder: Path, runs: int) -> None:
    """A search folder as a driver leaves it mid-way, written in one store transaction."""
    (folder / "search.json").write_text(json.dumps({"grid_module": "bench_grid", "performance_key": "acc",
                                                    "performance_sort_asc": False}))
    rng = random.Random(7)
    now = time.time()
    failed_from, running_from = int(runs * 0.9), int(runs * 0.95)
    records = []
    for index in range(runs):
        if index < failed_from:
            status = RunStatus.DONE
        elif index < running_from:
            status = RunStatus.FAILED
        elif index < running_from + running_runs(runs):
            status = RunStatus.RUNNING
        else:
            status = RunStatus.QUEUED
        ran = status != RunStatus.QUEUED
        records.append(RunRecord(
            key=f"{rng.getrandbits(64):016x}", index=index, config={"lr": 10 ** -rng.uniform(1, 5), "i": index},
            run_dir=f"sim_20260101000000_{index + 1:05d}", status=status, attempts=int(ran),
            backend="local" if ran else None, job_id=str(100_000 + index) if ran else None,
            where=f"gpu {index % 4}" if ran else None, extra={"create_time": now - 120} if ran else {},
            started=now - 120 if ran else None, ended=now - 60 if ran and status != RunStatus.RUNNING else None,
            exit_code=0 if status == RunStatus.DONE else (1 if status == RunStatus.FAILED else None),
            reason="exit code 1" if status == RunStatus.FAILED else None,
            summary={"acc": rng.random(), "loss": [rng.random() for _ in range(5)], "finished": 1}
            if status == RunStatus.DONE else None,
        ))
    with RunStore.open(folder) as store:
        store.restore(records, {"stamp": "20260101000000", "name_width": 5})
