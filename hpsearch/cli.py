"""Command line of ``python -m hpsearch`` / ``hpsearch``.

Every flag of hypnettorch's ``hpsearch`` keeps its name, meaning and default;
the rest are ours. User mistakes end as one line on stderr and exit status 2;
``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Sequence

from hpsearch import __version__
from hpsearch.errors import HpsearchError, UsageError
from hpsearch.settings import SearchSettings

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hpsearch",
        description="Run a hyperparameter search described by a grid module on local GPUs/CPUs or a Slurm/LSF cluster.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hpsearch {__version__}")
    shape = parser.add_argument_group("search space")
    shape.add_argument("--grid_module", default="",
                       help="Importable name of the grid module (e.g. my_sim.hpsearch_config) or a path to its .py file "
                            "(required, except with --resume: then the search folder's copy of it is used).")
    shape.add_argument("--grid_config", default="",
                       help="Pickle {'grid': ..., 'conditions': ...} overriding the module's grid/conditions.")
    shape.add_argument("--num_searches", type=int, default=-1,
                       help="Keep the first N configurations after shuffling (-1: all); required when the space "
                            "holds distributions; with --dont_generate_full_grid the number of random picks.")
    shape.add_argument("--dont_generate_full_grid", action="store_true",
                       help="Random search: independent uniform picks of each parameter instead of the full grid.")
    shape.add_argument("--deterministic_search", action="store_true", help="Do not shuffle the configurations.")
    shape.add_argument("--random_seed", type=int, default=42, help="Seed of the shuffle and of all sampling.")
    shape.add_argument("--allow_unknown_condition_keys", action="store_true",
                       help="Drop conditions that name parameters missing from the grid (with a warning), "
                            "as hypnettorch did, instead of refusing the grid module.")
    shape.add_argument("--list", action="store_true",
                       help="Dry run: print the configurations that would run, with their keys, and exit.")
    shape.add_argument("--format", choices=("text", "json"), default="text", help="Output format of --list.")

    out = parser.add_argument_group("output")
    out.add_argument("--out_dir", default="./out/hyperparam_search",
                     help="Where search folders are made (a new search_<time> subfolder unless --force_out_dir).")
    out.add_argument("--force_out_dir", action="store_true", help="Use --out_dir itself as the search folder.")
    out.add_argument("--dont_force_new_dir", action="store_true",
                     help="With --force_out_dir: accept an existing folder and resume the search in it.")
    out.add_argument("--resume", default="", metavar="DIR",
                     help="Resume the search in DIR: finished runs are kept, interrupted ones run again.")
    out.add_argument("--run_cwd", default=".", help="Working directory of the runs; _SCRIPT_NAME is relative to it.")
    out.add_argument("--python", default=sys.executable or "python3",
                     help="Python interpreter that runs _SCRIPT_NAME.")
    out.add_argument("--quiet", action="store_true", help="Print only warnings and failures.")
    out.add_argument("--debug", action="store_true", help="Show tracebacks of errors.")

    local = parser.add_argument_group("local execution")
    local.add_argument("--visible_gpus", default="",
                       help="Comma list of GPU ids to use; '' = every GPU found; -1 = no GPUs (CPU runs).")
    local.add_argument("--allowed_load", type=float, default=0.5, help="A GPU takes a run only while its load is below this.")
    local.add_argument("--allowed_memory", type=float, default=0.5,
                       help="A GPU takes a run only while its used/total memory is below this.")
    local.add_argument("--max_num_jobs_per_gpu", type=int, default=1, help="This search's runs per GPU at most.")
    local.add_argument("--sim_startup_time", type=float, default=60.0,
                       help="Seconds a new run counts against its GPU's memory before its own use shows up.")
    local.add_argument("--num_jobs", type=int, default=None,
                       help="Runs in parallel without GPUs (default 1), or cluster jobs in flight (default 8).")
    local.add_argument("--timeout", type=float, default=None, help="Kill a run (its whole process tree) after this many seconds.")
    local.add_argument("--max_retries", type=int, default=0, help="Run a failed or timed-out run again up to this many times.")
    local.add_argument("--rerun_failed", action="store_true", help="On resume, run failed and timed-out runs again.")
    local.add_argument("--keep_going", action="store_true",
                       help="Start every run even when the first --max_failures runs to end have all failed.")
    local.add_argument("--max_failures", type=int, default=3,
                       help="Stop starting runs when this many have failed and none is done (see --keep_going).")
    local.add_argument("--gpu_poll_interval", type=float, default=1.0, help="Seconds between two nvidia-smi queries at most.")

    cluster = parser.add_argument_group("cluster execution")
    cluster.add_argument("--run_cluster", action="store_true", help="Submit runs as cluster jobs.")
    cluster.add_argument("--scheduler", choices=("lsf", "slurm"), default="lsf", help="The cluster's scheduler.")
    cluster.add_argument("--num_hours", type=int, default=24, help="Time limit of each job in hours.")
    cluster.add_argument("--resources", default='"rusage[mem=8000, ngpus_excl_p=1]"', help="LSF: bsub -R value.")
    cluster.add_argument("--slurm_mem", default="8G", help="Slurm: --mem of each job ('' to leave out).")
    cluster.add_argument("--slurm_gres", default="gpu:1", help="Slurm: --gres of each job ('' to leave out).")
    cluster.add_argument("--slurm_partition", default="", help="Slurm: --partition.")
    cluster.add_argument("--slurm_qos", default="", help="Slurm: --qos.")
    cluster.add_argument("--slurm_constraint", default="", help="Slurm: --constraint.")
    for name in ("slurm", "lsf"):
        tool = "sbatch" if name == "slurm" else "bsub"
        cluster.add_argument(f"--{name}_extra", default="",
                             help=f"Further {tool} options, e.g. '--account=x --exclusive' (split like a shell would).")
        cluster.add_argument(f"--{name}_setup", default="",
                             help="A line, or a file whose text, goes at the top of each job script "
                                  "(module load, conda activate).")
        cluster.add_argument(f"--{name}_array", action="store_true",
                             help=f"Submit runs as {name.upper()} job arrays capped at --num_jobs.")
    cluster.add_argument("--cancel_on_exit", action="store_true",
                         help="On Ctrl-C/SIGTERM cancel this search's jobs (default: they keep running and a "
                              "resume adopts them).")
    cluster.add_argument("--generate_only", action="store_true",
                         help="Write the job scripts and submit.sh without submitting anything.")
    return parser


def _resume_defaults(args: argparse.Namespace) -> None:
    """``--resume DIR`` alone: take the grid module (its copy in DIR) and the
    run folder's working directory from the search itself."""
    if args.grid_module:
        return
    if not args.resume:
        raise UsageError("--grid_module is required (or --resume DIR to continue a search)")
    from hpsearch.searchdir import saved_settings  # deferred, see main()

    saved = saved_settings(Path(args.resume)) or {}
    copy = Path(args.resume) / saved.get("module_file", "")
    if not saved.get("module_file") or not copy.is_file():
        raise UsageError(f"--resume {args.resume}: no saved grid module there; pass --grid_module")
    args.grid_module = str(copy)
    if args.run_cwd == "." and saved.get("run_cwd"):
        args.run_cwd = saved["run_cwd"]


def settings_from_args(args: argparse.Namespace, argv: Sequence[str]) -> SearchSettings:
    _resume_defaults(args)
    scheduler = args.scheduler
    extra = getattr(args, f"{scheduler}_extra")
    try:
        extra_tokens = shlex.split(extra)
    except ValueError as exc:
        raise UsageError(f"--{scheduler}_extra {extra!r}: {exc}") from None
    setup = getattr(args, f"{scheduler}_setup")
    if setup and Path(setup).is_file():
        setup = Path(setup).read_text()
    if args.num_jobs is not None and args.num_jobs < 1:
        raise UsageError(f"--num_jobs must be at least 1, got {args.num_jobs}")
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError(f"--timeout must be positive, got {args.timeout}")
    if args.max_failures < 1:
        raise UsageError(f"--max_failures must be at least 1, got {args.max_failures}")
    if args.sim_startup_time < 0:
        raise UsageError(f"--sim_startup_time must not be negative, got {args.sim_startup_time}")
    return SearchSettings(
        grid_module=args.grid_module,
        grid_config=args.grid_config,
        num_searches=args.num_searches,
        random_search=args.dont_generate_full_grid,
        shuffle=not args.deterministic_search,
        seed=args.random_seed,
        out_dir=args.out_dir,
        force_out_dir=args.force_out_dir,
        dont_force_new_dir=args.dont_force_new_dir,
        resume=args.resume,
        run_cwd=args.run_cwd,
        python=args.python,
        visible_gpus=args.visible_gpus,
        allowed_load=args.allowed_load,
        allowed_memory=args.allowed_memory,
        max_num_jobs_per_gpu=args.max_num_jobs_per_gpu,
        sim_startup_time=args.sim_startup_time,
        num_jobs=args.num_jobs,
        timeout=args.timeout,
        max_retries=max(0, args.max_retries),
        rerun_failed=args.rerun_failed,
        keep_going=args.keep_going,
        max_failures=args.max_failures,
        allow_unknown_condition_keys=args.allow_unknown_condition_keys,
        gpu_poll_interval=args.gpu_poll_interval,
        run_cluster=args.run_cluster,
        scheduler=scheduler,
        num_hours=args.num_hours,
        resources=args.resources,
        slurm_mem=args.slurm_mem,
        slurm_gres=args.slurm_gres,
        slurm_partition=args.slurm_partition,
        slurm_qos=args.slurm_qos,
        slurm_constraint=args.slurm_constraint,
        cluster_extra=extra_tokens,
        cluster_setup=setup,
        cluster_array=getattr(args, f"{scheduler}_array"),
        cancel_on_exit=args.cancel_on_exit,
        generate_only=args.generate_only,
        quiet=args.quiet,
        driver_argv=list(argv),
    )


def print_listing(settings: SearchSettings, fmt: str) -> None:
    from hpsearch.runner import list_configurations  # deferred, see main()

    spec, items = list_configurations(settings)
    for warning in spec.warnings:
        print(f"[hpsearch] warning: {warning}", file=sys.stderr)
    if fmt == "json":
        json.dump({"grid_module": spec.module_name, "count": len(items),
                   "configurations": [{"key": key, "config": config} for key, config in items]},
                  sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
        return
    for number, (key, config) in enumerate(items, 1):
        values = " ".join(f"{name}={value!r}" for name, value in config.items())
        print(f"{number:>6}  {key}  {values}")
    print(f"{len(items)} configurations")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="[hpsearch] %(levelname)s: %(message)s")
    try:
        settings = settings_from_args(args, argv)
        if args.list:
            print_listing(settings, args.format)
            return 0
        # nvidia-smi answers while the search machinery is imported: only now, so that
        # --help, --version and a mistyped flag end in parse_args without paying for it.
        from hpsearch.gpu.probe import GpuProbe

        probe = GpuProbe.start(settings)
        from hpsearch.runner import run_search

        return run_search(settings, gpu_probe=probe)
    except HpsearchError as exc:
        if args.debug:
            raise
        print(f"hpsearch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("hpsearch: interrupted", file=sys.stderr)
        return 130


def console_main() -> None:
    """Entry point of ``hpsearch`` and ``python -m hpsearch``.

    Everything is written and closed when :func:`main` returns; skipping the
    interpreter's teardown of pandas and numpy saves a tenth of a second or
    more at the end of every search.
    """
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
