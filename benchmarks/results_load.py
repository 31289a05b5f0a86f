"""Workload 9: ``hpsearch.load_results`` and ``group_seeds`` of a 20,000-run search (issue 13: load under 2 s).

The search folder is the one workload 7 builds through the store API (18,000
done runs with a scalar and a list-valued summary key, failed, running and
queued runs). Each try reads it in-process, best of a few, against a plain
``pandas.read_sql("SELECT * FROM runs")`` of the same store in the same tries
(the baseline: no JSON decoded, no typed columns).
"""

from __future__ import annotations

import sqlite3
import time

from benchmarks.common import Context
from benchmarks.figures import Figure, WorkloadResult
from benchmarks.status import RUNS, build_search

TRIES = 3


def results_load(ctx: Context, result: WorkloadResult) -> None:
    import pandas

    from hpsearch.results import group_seeds, load_results

    runs = RUNS if not ctx.quick else min(RUNS, ctx.scale_runs)
    folder = ctx.folder("results", "search")
    build_search(folder, runs)
    loads, groups, baseline = [], [], []
    for _ in range(TRIES):  # interleaved, so a burst of load hits all three
        began = time.perf_counter()
        frame = load_results(folder)
        loads.append(time.perf_counter() - began)
        began = time.perf_counter()
        grouped = group_seeds(frame, seed_keys=[])
        groups.append(time.perf_counter() - began)
        began = time.perf_counter()
        with sqlite3.connect(folder / "hpsearch.db") as db:
            plain = pandas.read_sql("SELECT * FROM runs", db)
        baseline.append(time.perf_counter() - began)
    if len(frame) != runs or len(plain) != runs or len(grouped) != runs:
        raise RuntimeError(f"read {len(frame)} runs, {len(grouped)} groups and {len(plain)} rows of {runs}")
    best, base = min(loads), min(baseline)
    result.details = {"runs": runs, "tries": TRIES, "load_s": loads, "group_s": groups, "read_sql_s": baseline}
    result.figures += [
        Figure("load_results_s", best, "s", "<", 2.0, f"hpsearch.load_results of {runs} runs, best of {TRIES}"),
        Figure("load_over_read_sql", best / base, "x",
               note=f"against pandas.read_sql of the runs table ({base * 1000:.0f} ms), same tries"),
        Figure("group_seeds_s", min(groups), "s", note=f"group_seeds of those {runs} runs (one per group)"),
    ]
