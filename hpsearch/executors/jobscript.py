"""The job scripts the Slurm and LSF executors generate, and their options.

Each configuration runs through a generated bash script that ``cd``s into the
run's working directory, runs its argv with every word ``shlex.quote``d,
appends its output to ``stdout.txt``/``stderr.txt`` in the run folder and
records its exit status in ``exit_code.txt`` there (written to a temporary
name, then renamed, so a reader never sees half a number). That file is the
ground truth of how a run ended; the scheduler's own account only fills in
what the script could not write (time limits, cancellation, lost nodes).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from hpsearch.errors import SubmissionError, UsageError
from hpsearch.options import CLUSTER_NUM_JOBS, check_value, default_of
from hpsearch.runs import EXIT_CODE_FILE, LaunchSpec

JOB_SCRIPT = "job.sh"
SUBMIT_SCRIPT = "submit.sh"
ARRAY_LOG_DIR = "job_logs"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


# --------------------------------------------------------------------------- options


@dataclass
class ClusterOptions:
    """Choices both schedulers understand (hypnettorch's flags plus ours).

    Attributes:
        num_jobs: Jobs of this search in the queue at once (per-job mode), or
            the array's concurrency cap (array mode).
        num_hours: Time limit of each job.
        extra: Further scheduler options, as shell words: each option, with
            the values that follow it, is passed on unchanged.
        setup: Shell text put at the top of each job script, verbatim (the
            user's own ``module load``/``conda activate`` lines).
        array: Submit runs as job arrays.
        generate_only: Write the scripts and ``submit.sh``; submit nothing.
    """

    num_jobs: int = CLUSTER_NUM_JOBS
    num_hours: int = default_of("num_hours")
    extra: list[str] = field(default_factory=list)
    setup: str = ""
    array: bool = False
    generate_only: bool = False

    extra_flag = "--cluster_extra"

    def __post_init__(self) -> None:
        check_value("num_jobs", self.num_jobs)
        check_value("num_hours", self.num_hours)
        self.extra = list(self.extra)
        option_groups(self.extra, self.extra_flag)


def option_groups(tokens: Sequence[str], flag: str) -> list[list[str]]:
    """Split extra scheduler options into one group per option with its values.

    ``['--account=x', '-p', 'gpu', '--exclusive']`` becomes
    ``[['--account=x'], ['-p', 'gpu'], ['--exclusive']]``, so each group can be
    one ``#SBATCH`` line. The first word must be an option, and no word may
    hold a line break (it would end a directive line).
    """
    groups: list[list[str]] = []
    for token in tokens:
        if "\n" in token or "\r" in token:
            raise UsageError(f"{flag}: {token!r} contains a line break")
        if token.startswith("-"):
            groups.append([token])
        elif groups:
            groups[-1].append(token)
        else:
            raise UsageError(f"{flag}: {token!r} is not an option (options start with '-')")
    return groups


def job_name(text: str) -> str:
    """A job name every scheduler takes as one word (no spaces, brackets, quotes)."""
    return _UNSAFE_NAME_CHARS.sub("_", text) or "hpsearch"


# --------------------------------------------------------------------------- script text


def q(value: object) -> str:
    return shlex.quote(str(value))


def run_lines(spec: LaunchSpec) -> list[str]:
    """The script lines that run one configuration and record its exit status.

    The ``cd`` sits inside the redirected group so that a missing working
    directory is reported in the run's own ``stderr.txt``.
    """
    env = spec.run_env
    lines = []
    for name, value in env.items():
        if not _ENV_NAME.match(name):
            raise SubmissionError(f"{spec.name}: environment variable name {name!r} is not valid in a shell")
        lines.append(f"export {name}={q(value)}")
    exit_file = spec.run_dir / EXIT_CODE_FILE
    temp_file = spec.run_dir / f".{EXIT_CODE_FILE}.tmp"
    lines += [
        f"{{ cd -- {q(spec.cwd)} && {shlex.join(spec.argv)}; }} </dev/null >>{q(spec.stdout_path)} "
        f"2>>{q(spec.stderr_path)}",
        "status=$?",
        f"printf '%d\\n' \"$status\" >{q(temp_file)} && mv -f -- {q(temp_file)} {q(exit_file)}",
    ]
    return lines


def case_table(index_var: str, specs: Sequence[LaunchSpec], first_index: int) -> list[str]:
    """A ``case`` over the array index: branch ``first_index + i`` runs ``specs[i]``."""
    lines = [f'case "${{{index_var}:-}}" in']
    for number, spec in enumerate(specs, first_index):
        lines.append(f"  {number})  # {job_name(spec.name)}")
        lines += [f"    {line}" for line in run_lines(spec)]
        lines.append("    ;;")
    lines += [
        "  *)",
        f'    echo "hpsearch: no run for array index ${{{index_var}:-unset}}" >&2',
        "    status=2",
        "    ;;",
        "esac",
    ]
    return lines


def job_script(directives: Sequence[str], setup: str, body: Sequence[str], comment: str = "") -> str:
    """``#!/bin/bash``, scheduler directives, the user's set-up, then the body."""
    parts = ["#!/bin/bash", *directives]
    if comment:
        parts.append(f"# {comment}")
    if setup.strip():
        parts += ["", "# --- set-up (the user's own shell code) ---", setup.rstrip("\n"), "# --- end of set-up ---"]
    parts += ["", *body, 'exit "$status"']
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------- submit.sh

SUBMIT_POLL_SECONDS = 10  # how often submit.sh looks at the queue while --num_jobs of its jobs are in it


def submit_script(jobs: Sequence[tuple[str, str]], *, num_jobs: int, array: bool,
                  queue_names_argv: Sequence[str]) -> str:
    """``submit.sh`` of ``--generate_only``: the submission lines of ``(job name, line)``.

    One job per run: before each submission it waits while ``num_jobs`` of
    this search's jobs (by name, from ``queue_names_argv``) are queued or
    running, so the cap holds as when hpsearch submits; while the scheduler
    cannot be asked it waits too. Arrays cap themselves (``%num_jobs``).
    """
    lines = ["#!/bin/bash", "# Written by hpsearch --generate_only: submits the job scripts of this search."]
    if array:
        lines.append(f"# Each array runs at most {num_jobs} of its tasks at once (--num_jobs); "
                     "two arrays do not wait for each other.")
    else:
        lines += [
            f"# It keeps at most {num_jobs} of them queued or running at once (--num_jobs): before each submission",
            "# it waits while that many are in the queue, so it runs until the last job is submitted.",
        ]
    lines += ["# Afterwards, collect the results with: hpsearch --resume <this folder>", "set -e"]
    if not array:
        lines += [
            f"max_jobs={num_jobs}",
            f"poll=${{HPSEARCH_SUBMIT_POLL:-{SUBMIT_POLL_SECONDS}}}",
            f"jobs_of_this_search=({' '.join(q(name) for name, _ in jobs)})",
            "in_queue() {  # this search's jobs in the queue; fails if the scheduler cannot say",
            "  local listing status=0",
            f"  listing=$({shlex.join(queue_names_argv)} 2>&1) || status=$?",
            "  if [ \"$status\" -ne 0 ] && ! grep -q 'No unfinished job found' <<<\"$listing\"; then return 1; fi",
            "  grep -c -F -x -f <(printf '%s\\n' \"${jobs_of_this_search[@]}\") <<<\"$listing\" || true",
            "}",
            "wait_for_a_slot() {",
            "  local count",
            "  while ! count=$(in_queue) || [ \"$count\" -ge \"$max_jobs\" ]; do sleep \"$poll\"; done",
            "}",
        ]
    for _name, line in jobs:
        if not array:
            lines.append("wait_for_a_slot")
        lines.append(line)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the exit-code file


def clear_exit_code(run_dir: Path) -> None:
    """Remove a status left by an earlier attempt, so it cannot be mistaken for this one's."""
    (run_dir / EXIT_CODE_FILE).unlink(missing_ok=True)
