#!/usr/bin/env python3
"""Benchmark hpsearch against the ideal launcher, ``xargs -P 2`` and hypnettorch.

    python benchmarks/run.py [--quick] [--only NAME[,NAME...]]

Prints a table (one line per figure, PASS/MISS where issue 5 sets a goal) and
writes the same figures to ``benchmarks/results.json``. Scratch files go to
``benchmarks/_work/`` (git-ignored). See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import shlex
import subprocess
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # started as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(REPO))

from benchmarks.common import Context  # noqa: E402
from benchmarks.figures import WorkloadResult, render_table, tally  # noqa: E402
from benchmarks.cluster_scale import cluster_scale  # noqa: E402
from benchmarks.launch import launch_overhead  # noqa: E402
from benchmarks.loaded import loaded_exit  # noqa: E402
from benchmarks.polling import gpu_polling  # noqa: E402
from benchmarks.results_load import results_load  # noqa: E402
from benchmarks.scale import scale  # noqa: E402
from benchmarks.status import status_json  # noqa: E402
from benchmarks.service import service_overhead  # noqa: E402
from benchmarks.utilisation import slot_utilisation  # noqa: E402
from benchmarks.versus_hypnettorch import versus_hypnettorch  # noqa: E402

Workload = Callable[[Context, WorkloadResult], None]
WORKLOADS: dict[str, tuple[str, Workload]] = {
    "utilisation": ("1. slot utilisation on 4 fake GPUs x 2 slots", slot_utilisation),
    "launch": ("2. launch overhead against xargs -P 2", launch_overhead),
    "polling": ("3. nvidia-smi calls", gpu_polling),
    "scale": ("4. enumeration, 20,000-run search, postprocessing", scale),
    "hypnettorch": ("5. workload 1 under hypnettorch 0.0.4", versus_hypnettorch),
    "loaded": ("6. end of a search beside CPU hogs", loaded_exit),
    "status": ("7. status --json of a 20,000-run search", status_json),
    "service": ("8. searches through the service against one foreground search", service_overhead),
    "results": ("9. load_results and group_seeds of a 20,000-run search", results_load),
    "cluster": ("10. 2,000 runs as Slurm arrays of packed jobs on the local Slurm", cluster_scale),
}
LEFT_OUT_BY_QUICK = {"hypnettorch": "left out by --quick (about a minute); name it with --only to run it",
                     "cluster": "left out by --quick (needs the local Slurm, minutes); name it with --only"}
RESULTS = REPO / "benchmarks" / "results.json"
WORK = REPO / "benchmarks" / "_work"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="Small sizes (a minute or less); the hypnettorch comparison only with --only.")
    parser.add_argument("--only", action="append", default=[], metavar="NAME[,NAME]",
                        help=f"Run only these workloads: {', '.join(WORKLOADS)}.")
    parser.add_argument("--scale_runs", type=int, default=None,
                        help="Runs of the scale workload's search (default 20000; 1000 with --quick).")
    parser.add_argument("--service_runs", type=int, default=None,
                        help="Runs of each of the service workload's 10 searches (default 500; 20 with --quick).")
    parser.add_argument("--output", type=Path, default=RESULTS, help="Where the JSON goes.")
    parser.add_argument("--work", type=Path, default=WORK, help="Scratch folder.")
    args = parser.parse_args(argv)
    args.only = [name.strip() for item in args.only for name in item.split(",") if name.strip()]
    unknown = [name for name in args.only if name not in WORKLOADS]
    if unknown:
        parser.error(f"--only: unknown workload {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    if args.scale_runs is not None and args.scale_runs < 20:
        parser.error(f"--scale_runs must be at least 20, got {args.scale_runs}")
    return args


def make_context(args: argparse.Namespace) -> Context:
    if args.quick:
        return Context(args.work.resolve(), quick=True, scale_runs=args.scale_runs or 1000, launch_runs=100,
                       slot_runs=16, idle_seconds=2.5, repeats=1, service_runs=args.service_runs or 20)
    return Context(args.work.resolve(), scale_runs=args.scale_runs or 20_000, service_runs=args.service_runs or 500)


def run_workload(name: str, ctx: Context, chosen: bool) -> WorkloadResult:
    """One workload; a crash becomes the result's error, keeping the figures
    measured before it, so one broken part never hides the others."""
    title, workload = WORKLOADS[name]
    result = WorkloadResult(name, title)
    if ctx.quick and name in LEFT_OUT_BY_QUICK and not chosen:
        result.skipped = LEFT_OUT_BY_QUICK[name]
        return result
    print(f"[bench] {title} ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    try:
        workload(ctx, result)
    except Exception as exc:  # report and go on with the other workloads
        result.error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc(file=sys.stderr)
    result.seconds = time.monotonic() - started
    return result


def compile_packages() -> None:
    """Byte-compile hpsearch as an installation would.

    An editable install under ``PYTHONDONTWRITEBYTECODE=1`` (as on these
    machines) never caches bytecode, so every driver would recompile
    hpsearch's source at start-up (25-35 ms) -- a cost no installed copy has.
    """
    for package in ("hpsearch", "postprocessing"):
        compileall.compile_dir(REPO / package, quiet=1)


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def document(args: argparse.Namespace, ctx: Context, results: list[WorkloadResult], argv: list[str]) -> dict:
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "benchmarks/run.py", *argv]),
        "commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "quick": ctx.quick,
        "sizes": {"slot_runs": ctx.slot_runs, "launch_runs": ctx.launch_runs, "scale_runs": ctx.scale_runs,
                  "idle_seconds": ctx.idle_seconds, "repeats": ctx.repeats},
        "verdicts": tally(results),
        "workloads": {r.name: r.as_json() for r in results},
    }


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    ctx = make_context(args)
    ctx.work.mkdir(parents=True, exist_ok=True)
    compile_packages()
    names = args.only or list(WORKLOADS)
    results = [run_workload(name, ctx, chosen=bool(args.only)) for name in names]
    ctx.empty_trash()  # only now: deleting thousands of run folders would skew the measurements
    data = document(args, ctx, results, argv)
    write_json(args.output, data)
    print(render_table(results))
    verdicts = data["verdicts"]
    print(f"\n{verdicts['PASS']} PASS, {verdicts['MISS']} MISS; {data['date']}; written to {args.output}")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
