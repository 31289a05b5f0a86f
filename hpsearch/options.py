"""Every command-line option of a search, written once.

Each :class:`Option` carries its flag, type, default, help, check, ``--help``
group and what ``--resume`` does with it. The argparse parser
(:mod:`hpsearch.cli`), the fields of :class:`~hpsearch.settings.SearchSettings`
and the executors' option dataclasses all derive from this table, so a new
Slurm option is one row here plus its use in ``executors/slurm.py``.
"""

from __future__ import annotations

import enum
import math
import shlex
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from hpsearch.errors import UsageError

LOCAL_NUM_JOBS = 1  # runs in parallel without GPUs when --num_jobs is not given
CLUSTER_NUM_JOBS = 8  # cluster jobs in flight when --num_jobs is not given


class Group(enum.Enum):
    """The ``--help`` sections, as a user thinks of the options."""

    SPACE = "search space"
    OUTPUT = "output"
    RUNS = "runs (local and cluster)"
    GPUS = "local GPUs"
    CLUSTER = "cluster"
    SLURM = "Slurm"
    LSF = "LSF"
    GENERAL = "general"


class Resume(enum.Enum):
    """What ``--resume`` does with an option saved in ``search.json``."""

    SESSION = "not saved: applies to this session only"
    RESTORED = "restored; a flag given with --resume overrides it for that session"
    FIXED = "restored; changing it is refused (it decides which configurations belong to the search)"


Check = Callable[[Any], "str | None"]  # the problem with a value, or None


@dataclass(frozen=True)
class Option:
    """One command-line option.

    Attributes:
        flag: The flag without its dashes.
        group: Its ``--help`` section; cluster groups also say which executor options it fills.
        default: The flag's value when it is not given.
        help: What it does, for ``--help``.
        kind: ``str``, ``int``, ``float`` or ``bool`` (a flag without value).
        check: Returns the problem with a value (checked before anything is created), or None.
        resume: What ``--resume`` does with it.
        dest: The ``SearchSettings`` field, if not ``flag``.
        inverted: A bool flag whose field is its negation (``--deterministic_search`` -> ``shuffle``).
        choices: Allowed values.
        executor_field: The field of the executor's options it sets, if any (see :func:`executor_values`).
        metavar: Shown in ``--help``.
        hidden: Left out of ``--help`` (options only the search service passes to its drivers).
    """

    flag: str
    group: Group
    default: Any
    help: str
    kind: type = str
    check: Check | None = None
    resume: Resume = Resume.RESTORED
    dest: str = ""
    inverted: bool = False
    choices: tuple = ()
    executor_field: str = ""
    metavar: str | None = None
    hidden: bool = False

    @property
    def field(self) -> str:
        return self.dest or self.flag

    def problem(self, value: Any) -> str | None:
        """The one-line refusal of ``value``, or None; one wording for every option."""
        if value is None or self.check is None:
            return None
        why = self.check(value)
        return None if why is None else f"--{self.flag} {why}, got {display(value)}"

    def flip(self, value: Any) -> Any:
        """Flag value -> field value, and back (``inverted`` negates)."""
        return (not value) if self.inverted else value


def display(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


# --------------------------------------------------------------------------- checks


def at_least(low: int) -> Check:
    return lambda value: None if value >= low else f"must be at least {low}"


def positive(value: float) -> str | None:
    return None if value > 0 and not math.isnan(value) else "must be positive"


def not_negative(value: float) -> str | None:
    return None if value >= 0 and not math.isnan(value) else "must be a number >= 0"


def fraction(value: float) -> str | None:
    return None if 0 < value <= 1 else "must be in (0, 1]"


def num_searches(value: int) -> str | None:
    return None if value == -1 or value > 0 else "must be -1 (all) or positive"


def gpu_ids(value: str) -> str | None:
    try:
        parse_gpu_ids(value)
    except ValueError as exc:
        return str(exc)
    return None


def shell_words(value: str) -> str | None:
    try:
        shlex.split(value)
    except ValueError as exc:
        return f"cannot be split into words ({exc})"
    return None


def _warn_signal_problem(text: str) -> str | None:
    if not text.strip():
        return None
    word, at, seconds = text.strip().partition("@")
    if not at or not word or not word.replace("SIG", "", 1).isalnum() or not seconds.isdigit():
        return "must be SIGNAL@SECONDS such as USR1@120, or '' for none"
    return None


def parse_gpu_ids(text: str) -> list[int] | None:
    """``''`` -> None (every GPU), ``'-1'`` -> [-1] (none), ``'0,2'`` -> [0, 2].

    Raises:
        ValueError: Not a comma list of ids, or an id repeated.
    """
    text = text.strip()
    if not text:
        return None
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError("must be a comma-separated list of GPU ids") from None
    repeated = sorted({gpu for gpu in ids if ids.count(gpu) > 1})
    if repeated:
        raise ValueError(f"names GPU {repeated[0]} more than once")
    return ids


# --------------------------------------------------------------------------- the table

_S, _O, _R, _G, _C, _SL, _L, _GEN = (Group.SPACE, Group.OUTPUT, Group.RUNS, Group.GPUS, Group.CLUSTER,
                                     Group.SLURM, Group.LSF, Group.GENERAL)

OPTIONS: tuple[Option, ...] = (
    # the search space
    Option("grid_module", _S, "", "Importable name of the grid module (e.g. my_sim.hpsearch_config) or a path to "
           "its .py file (required, except with --resume: then the search folder's copy of it is used).",
           metavar="MODULE"),
    Option("grid_config", _S, "", "Pickle {'grid': ..., 'conditions': ...} overriding the module's grid/conditions.",
           resume=Resume.FIXED, metavar="PATH"),
    Option("num_searches", _S, -1, "Keep the first N configurations after shuffling (-1: all); required when the "
           "space holds distributions; with --dont_generate_full_grid the number of random picks. On resume a "
           "larger N extends the search with the next configurations in the same order.",
           int, num_searches, Resume.FIXED, metavar="N"),
    Option("dont_generate_full_grid", _S, False, "Random search: independent uniform picks of each parameter "
           "instead of the full grid.", bool, resume=Resume.FIXED, dest="random_search"),
    Option("deterministic_search", _S, False, "Do not shuffle the configurations.", bool, resume=Resume.FIXED,
           dest="shuffle", inverted=True),
    Option("random_seed", _S, 42, "Seed of the shuffle and of all sampling.", int, resume=Resume.FIXED, dest="seed"),
    Option("strict_conditions", _S, False, "Conditions naming keys missing from the grid are errors "
           "(otherwise they are dropped with a warning).", bool),
    Option("strict_flags", _S, False, "Grid keys the training script does not accept (read from its argparse/"
           "hpman flags) are errors (otherwise a warning each).", bool),
    Option("allow_unknown_condition_keys", _S, False, "Deprecated, no effect (conditions naming unknown keys are "
           "dropped with a warning unless --strict_conditions).", bool, resume=Resume.SESSION),
    Option("list", _S, False, "Dry run: print the configurations that would run, with their keys, and exit.", bool,
           resume=Resume.SESSION),
    Option("format", _S, "text", "Output format of --list.", choices=("text", "json"), resume=Resume.SESSION),
    # output
    Option("out_dir", _O, "./out/hyperparam_search", "Where search folders are made (a new search_<time> "
           "subfolder unless --force_out_dir).", resume=Resume.SESSION, metavar="DIR"),
    Option("force_out_dir", _O, False, "Use --out_dir itself as the search folder.", bool, resume=Resume.SESSION),
    Option("dont_force_new_dir", _O, False, "With --force_out_dir: accept an existing folder and resume the "
           "search in it (like --resume).", bool, resume=Resume.SESSION),
    Option("resume", _O, "", "Continue the search in DIR as it was started (its saved settings; flags given "
           "override them for this session): finished runs are kept, interrupted ones run again.",
           resume=Resume.SESSION, metavar="DIR"),
    Option("quiet", _O, False, "Print only warnings and failures.", bool, resume=Resume.SESSION),
    # the runs, wherever they run
    Option("num_jobs", _R, None, f"Runs in parallel without GPUs (default {LOCAL_NUM_JOBS}), or cluster jobs in "
           f"flight (default {CLUSTER_NUM_JOBS}).", int, at_least(1), metavar="N"),
    Option("timeout", _R, None, "Kill a run (its whole process tree) after this many seconds.", float, positive,
           metavar="SECONDS"),
    Option("max_retries", _R, 0, "Run a failed or timed-out run again up to this many times.", int, at_least(0),
           metavar="N"),
    Option("rerun_failed", _R, False, "On resume, run failed and timed-out runs again.", bool,
           resume=Resume.SESSION),
    Option("keep_going", _R, False, "Start every run even when the first ones all fail (no fail-fast).", bool),
    Option("max_failures", _R, 3, "Stop starting runs when the first N runs to finish all failed and none is done.",
           int, at_least(1), metavar="N"),
    Option("run_cwd", _R, ".", "Working directory of the runs; _SCRIPT_NAME is relative to it.", metavar="DIR"),
    Option("python", _R, sys.executable or "python3", "Python interpreter that runs _SCRIPT_NAME.", metavar="PATH"),
    # local GPUs
    Option("visible_gpus", _G, "", "Comma list of GPU ids to use; '' = every GPU found; -1 = no GPUs (CPU runs).",
           check=gpu_ids, metavar="IDS"),
    Option("allowed_load", _G, 0.5, "A GPU takes a run only while its load is below this.", float, fraction),
    Option("allowed_memory", _G, 0.5, "A GPU takes a run only while its used/total memory is below this.", float,
           fraction),
    Option("max_num_jobs_per_gpu", _G, 1, "This search's runs per GPU at most.", int, at_least(1), metavar="N"),
    Option("sim_startup_time", _G, 60.0, "Seconds a new run counts against its GPU's memory before its own use "
           "shows up.", float, not_negative, metavar="SECONDS"),
    Option("gpu_poll_interval", _G, 1.0, "Seconds between two nvidia-smi queries at most.", float, positive,
           metavar="SECONDS"),
    # clusters
    Option("run_cluster", _C, False, "Submit runs as cluster jobs.", bool, resume=Resume.FIXED),
    Option("scheduler", _C, "lsf", "The cluster's scheduler.", choices=("lsf", "slurm"), resume=Resume.FIXED),
    Option("num_hours", _C, 24, "Time limit of each job in hours.", int, at_least(1), executor_field="num_hours",
           metavar="N"),
    Option("runs_per_job", _C, None, "Configurations one cluster job runs one after another, each in its own run "
           "folder (default: from --time_per_run, else 1); a job cut off by its time limit keeps the runs it "
           "finished and the rest run again.", int, at_least(1), executor_field="runs_per_job", metavar="K"),
    Option("time_per_run", _C, None, "Minutes one run takes, about: without --runs_per_job, each job runs as many "
           "as fit in --num_hours.", float, positive, executor_field="time_per_run", metavar="MINUTES"),
    Option("cluster_poll_max", _C, 60.0, "Seconds between two job-state queries at most (they start a few seconds "
           "apart after a submission and back off to this).", float, positive, executor_field="poll_max",
           metavar="SECONDS"),
    Option("cluster_signal", _C, "USR1@120", "SIGNAL@SECONDS: the scheduler warns each job that long before its "
           "time limit (sbatch --signal=B:, bsub -wa/-wt); the run is cut off and runs again ('' for none).",
           check=lambda text: _warn_signal_problem(text), executor_field="warn_signal", metavar="SIG@SECONDS"),
    Option("cancel_on_exit", _C, False, "On Ctrl-C/SIGTERM cancel this search's jobs (default: they keep running "
           "and a resume adopts them).", bool),
    Option("generate_only", _C, False, "Write the job scripts and submit.sh without submitting anything "
           "(a resume then collects the results; --no-generate_only submits the rest).", bool,
           executor_field="generate_only"),
    Option("slurm_mem", _SL, "8G", "sbatch --mem of each job ('' to leave out).", executor_field="mem"),
    Option("slurm_gres", _SL, "gpu:1", "sbatch --gres of each job ('' to leave out).", executor_field="gres"),
    Option("slurm_partition", _SL, "", "sbatch --partition of each job.", executor_field="partition"),
    Option("slurm_qos", _SL, "", "sbatch --qos of each job.", executor_field="qos"),
    Option("slurm_constraint", _SL, "", "sbatch --constraint of each job.", executor_field="constraint"),
    Option("resources", _L, '"rusage[mem=8000, ngpus_excl_p=1]"', "bsub -R value (one outer pair of quotes is "
           "removed).", executor_field="resources"),
)

for _name, _group, _tool in (("slurm", _SL, "sbatch"), ("lsf", _L, "bsub")):
    OPTIONS += (
        Option(f"{_name}_extra", _group, "", f"Further {_tool} options, e.g. '--account=x --exclusive' "
               "(split like a shell would).", check=shell_words, executor_field="extra"),
        Option(f"{_name}_setup", _group, "", "A line, or a file whose text, goes at the top of each job script "
               "(module load, conda activate).", executor_field="setup"),
        Option(f"{_name}_array", _group, False, f"Submit runs as {_name.upper()} job arrays capped at --num_jobs.",
               bool, executor_field="array"),
    )

OPTIONS += (Option("debug", _GEN, False, "Show tracebacks of errors.", bool, resume=Resume.SESSION),)

OPTIONS += (  # what the search service passes to the driver it starts for a search (hpsearch/service/)
    Option("service_socket", _GEN, "", "The service's socket: runs get their slots from its broker.",
           resume=Resume.SESSION, metavar="PATH", hidden=True),
    Option("detached_runs", _GEN, False, "Runs outlive the driver and are adopted on resume.", bool,
           resume=Resume.SESSION, hidden=True),
)

BY_FLAG: dict[str, Option] = {option.flag: option for option in OPTIONS}
BY_FIELD: dict[str, Option] = {option.field: option for option in OPTIONS}


def option(flag: str) -> Option:
    return BY_FLAG[flag]


def default_of(flag: str) -> Any:
    """An option's default, for code (the executors' option dataclasses) that needs it without the CLI."""
    return BY_FLAG[flag].default


def in_group(group: Group) -> Iterable[Option]:
    return (o for o in OPTIONS if o.group is group)


def check_value(flag: str, value: Any) -> None:
    """Raise the option's one-line refusal of ``value``, if it has one.

    Raises:
        UsageError: The value is out of range or malformed.
    """
    problem = BY_FLAG[flag].problem(value)
    if problem:
        raise UsageError(problem)


def executor_values(settings: Any, group: Group) -> dict[str, Any]:
    """``{executor field: value}`` of a group's options, for the executor's options dataclass."""
    return {o.executor_field: getattr(settings, o.field) for o in in_group(group) if o.executor_field}


def saved_values(settings: Any) -> dict[str, Any]:
    """``{flag: value}`` of every option ``--resume`` restores, as the flags say them."""
    return {o.flag: o.flip(getattr(settings, o.field)) for o in OPTIONS if o.resume is not Resume.SESSION}
