"""The job scripts the Slurm and LSF executors generate, and their options.

A job (or an array task) runs one or more configurations (``--runs_per_job``),
one after another, through a generated bash script. For each run it ``cd``s
into the run's working directory, runs its argv with every word
``shlex.quote``d in a process group of its own, appends its output to
``stdout.txt``/``stderr.txt`` in the run folder and records its exit status in
``exit_code.txt`` there (written to a temporary name, then renamed, so a reader
never sees half a number). That file is the ground truth of how a run ended;
the scheduler's own account only fills in what the script could not write
(time limits, cancellation, lost nodes).

The scheduler's warning signal (``--cluster_signal``, ``USR1@120``: Slurm's
``--signal=B:USR1@120``, LSF's ``-wa``/``-wt``) is forwarded to the running
run's process group; the script then writes ``cut_off.txt`` (``time limit``
when the job's end is near, else ``preempted``) into that run's folder, and
``not started: <reason>`` into the folders of the runs it skips. SIGTERM
(cancellation, or the time limit itself) is forwarded too; the script then
ends without recording anything, so the scheduler's account decides.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from hpsearch.errors import SubmissionError, UsageError
from hpsearch.options import CLUSTER_NUM_JOBS, check_value, default_of
from hpsearch.runs import CUT_OFF_FILE, EXIT_CODE_FILE, LaunchSpec

JOB_SCRIPT = "job.sh"
SUBMIT_SCRIPT = "submit.sh"
ARRAY_LOG_DIR = "job_logs"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
_WARN_SIGNAL = re.compile(r"(?:SIG)?([A-Z][A-Z0-9]*)@(\d+)\Z")
TIME_LIMIT_MARGIN = 60
"""A warning signal this close (seconds) to the job's expected end, beyond its
lead time, means the time limit; earlier it means preemption."""


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
        runs_per_job: Configurations one job runs one after another; None
            chooses it from ``time_per_run`` (1 without it).
        time_per_run: Minutes one run is expected to take (a hint for
            ``runs_per_job``).
        poll_max: Seconds between two state queries at most.
        warn_signal: ``SIGNAL@SECONDS``: the scheduler sends SIGNAL that long
            before the time limit; '' for none.
    """

    num_jobs: int = CLUSTER_NUM_JOBS
    num_hours: int = default_of("num_hours")
    extra: list[str] = field(default_factory=list)
    setup: str = ""
    array: bool = False
    generate_only: bool = False
    runs_per_job: int | None = None
    time_per_run: float | None = None
    poll_max: float = default_of("cluster_poll_max")
    warn_signal: str = default_of("cluster_signal")

    extra_flag = "--cluster_extra"

    def __post_init__(self) -> None:
        check_value("num_jobs", self.num_jobs)
        check_value("num_hours", self.num_hours)
        check_value("runs_per_job", self.runs_per_job)
        check_value("time_per_run", self.time_per_run)
        check_value("cluster_poll_max", self.poll_max)
        check_value("cluster_signal", self.warn_signal)
        self.extra = list(self.extra)
        option_groups(self.extra, self.extra_flag)

    @property
    def warning(self) -> tuple[str, int] | None:
        """(signal name, seconds before the time limit), or None."""
        return parse_warn_signal(self.warn_signal)

    def warning_within(self, limit_seconds: float) -> tuple[str, int] | None:
        """The warning, unless its lead time is half the job's time limit or more: then it
        would cut every run short at its start (a one-minute test job and a 120 s lead)."""
        warning = self.warning
        return warning if warning is not None and warning[1] < limit_seconds / 2 else None

    def pack_size(self) -> int:
        """Runs per job: ``runs_per_job``, or as many of ``time_per_run`` minutes as fit in
        ``num_hours`` minus the warning's lead time."""
        if self.runs_per_job is not None:
            return self.runs_per_job
        if self.time_per_run is None:
            return 1
        lead = (self.warning or ("", 0))[1] / 60
        return max(1, int((self.num_hours * 60 - lead) // self.time_per_run))


def parse_warn_signal(text: str) -> tuple[str, int] | None:
    """``USR1@120`` -> ``('USR1', 120)``; ``''`` -> None.

    Raises:
        ValueError: Not ``SIGNAL@SECONDS``.
    """
    if not text.strip():
        return None
    match = _WARN_SIGNAL.match(text.strip().upper())
    if not match:
        raise ValueError("must be SIGNAL@SECONDS such as USR1@120, or '' for none")
    return match.group(1), int(match.group(2))


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


Pack = Sequence[LaunchSpec]


def as_pack(item: "LaunchSpec | Pack") -> list[LaunchSpec]:
    """One run, or the runs of one job, as a list."""
    return [item] if isinstance(item, LaunchSpec) else list(item)


def pack_name(pack: Pack) -> str:
    """A job's name: its run's folder, or the first one's and how many follow."""
    return job_name(pack[0].name if len(pack) == 1 else f"{pack[0].name}_and_{len(pack) - 1}_more")


def job_name(text: str) -> str:
    """A job name every scheduler takes as one word (no spaces, brackets, quotes)."""
    return _UNSAFE_NAME_CHARS.sub("_", text) or "hpsearch"


# --------------------------------------------------------------------------- script text


def q(value: object) -> str:
    return shlex.quote(str(value))


def pack_preamble(limit_seconds: float, warning: tuple[str, int] | None) -> list[str]:
    """Shell functions and traps every job script starts with (see the module docstring).

    ``limit_seconds`` is the job's time limit, from which the script tells a
    warning before the limit (``time limit``) from one at preemption.
    """
    lines = [
        "# --- hpsearch: the runs of this job, one after another ---",
        "set -m  # each run gets a process group of its own, so a signal reaches all of it",
        'status=0 hpsearch_pid="" hpsearch_dir="" hpsearch_woken="" hpsearch_cut="" hpsearch_stop=""',
        "hpsearch_record() {  # FOLDER NAME TEXT: the file appears whole or not at all",
        '  printf \'%s\\n\' "$3" >"$1/.$2.tmp" && mv -f -- "$1/.$2.tmp" "$1/$2"',
        "}",
        "hpsearch_stopped() {  # SIGTERM: cancelled, or killed at the time limit",
        '  hpsearch_woken=1 hpsearch_stop=1',
        '  [ -n "$hpsearch_pid" ] && kill -s TERM -- "-$hpsearch_pid" 2>/dev/null',
        "}",
        "trap hpsearch_stopped TERM",
    ]
    if warning is not None:
        name, lead = warning
        lines += [
            f"hpsearch_deadline=$((SECONDS + {int(limit_seconds)}))",
            f"hpsearch_warned() {{  # SIG{name}: the scheduler's warning before the time limit, or preemption",
            "  hpsearch_woken=1",
            '  [ -n "$hpsearch_cut" ] && return',
            f"  if [ $((hpsearch_deadline - SECONDS)) -le {lead + TIME_LIMIT_MARGIN} ]; then "
            'hpsearch_cut="time limit"; else hpsearch_cut="preempted"; fi',
            '  if [ -n "$hpsearch_pid" ]; then',
            f'    hpsearch_record "$hpsearch_dir" {CUT_OFF_FILE} "$hpsearch_cut"',
            f'    kill -s {name} -- "-$hpsearch_pid" 2>/dev/null',
            "  fi",
            "}",
            f"trap hpsearch_warned {name}",
        ]
    lines += [
        "hpsearch_wait() {  # PID: wait for the run through any signal, then record its exit status",
        '  hpsearch_pid=$1',
        '  wait "$1"; status=$?',
        '  while [ -n "$hpsearch_woken" ]; do',
        '    hpsearch_woken=""',
        '    wait "$1" 2>/dev/null; local again=$?',
        '    if [ "$again" -eq 127 ] || [ "$again" -lt 0 ]; then break; fi  # reaped already: $status stands',
        '    status=$again',
        "  done",
        '  hpsearch_pid=""',
        '  if [ -n "$hpsearch_stop" ] && { [ "$status" -gt 128 ] || [ "$status" -lt 0 ]; }; then',
        '    trap - TERM; kill -s TERM $$; exit 143  # end by the signal, as the scheduler expects',
        '  fi',
        f'  hpsearch_record "$hpsearch_dir" {EXIT_CODE_FILE} "$status"',
        "}",
    ]
    return lines


def run_lines(spec: LaunchSpec) -> list[str]:
    """The script lines that run one configuration of a job and record its exit status.

    The ``cd`` sits inside the redirected group so that a missing working
    directory is reported in the run's own ``stderr.txt``; the exports sit
    inside it so that they do not reach the job's next run. A run is skipped
    (and marked ``not started``) once the warning signal came.
    """
    exports = []
    for name, value in spec.run_env.items():
        if not _ENV_NAME.match(name):
            raise SubmissionError(f"{spec.name}: environment variable name {name!r} is not valid in a shell")
        exports.append(f"export {name}={q(value)};")
    group = " ".join([*exports, f"cd -- {q(spec.cwd)} && exec {shlex.join(spec.argv)};"])
    return [
        f"if [ -z \"$hpsearch_cut\" ]; then  # {job_name(spec.name)}",
        f"  hpsearch_dir={q(spec.run_dir)}",
        f"  {{ {group} }} </dev/null >>{q(spec.stdout_path)} 2>>{q(spec.stderr_path)} &",
        "  hpsearch_wait $!",
        "else",
        f'  hpsearch_record {q(spec.run_dir)} {CUT_OFF_FILE} "not started: $hpsearch_cut"',
        "fi",
    ]


def pack_body(pack: Sequence[LaunchSpec]) -> list[str]:
    """The lines that run a job's configurations one after another."""
    return [line for spec in pack for line in run_lines(spec)]


def case_table(index_var: str, packs: Sequence[Sequence[LaunchSpec]], first_index: int) -> list[str]:
    """A ``case`` over the array index: branch ``first_index + i`` runs ``packs[i]``."""
    lines = [f'case "${{{index_var}:-}}" in']
    for number, pack in enumerate(packs, first_index):
        lines.append(f"  {number})")
        lines += [f"    {line}" for line in pack_body(pack)]
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
    (run_dir / CUT_OFF_FILE).unlink(missing_ok=True)
