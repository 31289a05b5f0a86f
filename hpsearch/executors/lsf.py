"""Runs as LSF jobs: ``bsub`` with the job script on stdin, states from ``bjobs``.

Options go on ``bsub``'s command line as separate argv elements and the
script is spooled from stdin, so no path or value ever passes through the
command string LSF hands to a shell. ``-R`` takes ``--resources`` as
hypnettorch users write it: its default carries literal double quotes
(``"rusage[mem=8000, ngpus_excl_p=1]"``) meant for a shell, so one outer pair
of matching quotes is removed.

States come from one ``bjobs -a -noheader -o "jobid jobindex stat exit_code
exit_reason delimiter='|'"`` call per poll. ``Job <N> is not found`` means the
job has been cleaned from the system (``CLEAN_PERIOD``), not a failed query;
such a job ended as its ``exit_code.txt`` says, or was lost.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from hpsearch.command import strip_shell_quotes
from hpsearch.executors.cluster import (
    ClusterExecutor,
    Ending,
    JobState,
    Submission,
    ToolError,
    failure,
    run_tool,
)
from hpsearch.executors.jobscript import (
    ARRAY_LOG_DIR,
    ClusterOptions,
    Pack,
    as_pack,
    case_table,
    job_name,
    job_script,
    option_groups,
    pack_body,
    pack_preamble,
)
from hpsearch.options import default_of
from hpsearch.runs import LaunchSpec

logger = logging.getLogger(__name__)

BJOBS_FORMAT = "jobid jobindex stat exit_code exit_reason delimiter='|'"
_SUBMITTED = re.compile(r"Job <(\d+)> is submitted")
_HARMLESS = re.compile(r"is not found|^No (unfinished )?job found")

WAITING = {"PEND", "PROV", "PSUSP", "RUN", "USUSP", "SSUSP", "WAIT", "UNKWN", "ZOMBI"}
TIMEOUT_REASONS = {"TERM_RUNLIMIT", "TERM_DEADLINE"}
# Not the run's fault: LSF stopped it to make room or lost its host; it is run again.
INTERRUPT_REASONS = {
    "TERM_PREEMPT", "TERM_LOAD", "TERM_WINDOW", "TERM_REQUEUE_OWNER", "TERM_REQUEUE_ADMIN", "TERM_MC_RECALL",
    "TERM_ORPHAN_SYSTEM", "TERM_REMOVE_HUNG_JOB", "TERM_ZOMBIE",
}


@dataclass
class LsfOptions(ClusterOptions):
    """hypnettorch's LSF flags plus ours (see :class:`ClusterOptions`).

    Attributes:
        resources: ``bsub -R`` value; one outer pair of quotes is removed.
        max_array_size: LSF's ``MAX_JOB_ARRAY_SIZE`` (1000 unless the
            cluster's ``lsb.params`` says otherwise).
    """

    resources: str = default_of("resources")
    max_array_size: int = 1000

    extra_flag = "--lsf_extra"


# --------------------------------------------------------------------------- submission


def bsub_argv(options: LsfOptions, *, name: str, output: Path, depends_on: Sequence[str] = ()) -> list[str]:
    """``bsub`` with every option as its own argv element; the script follows on stdin."""
    argv = ["bsub", "-J", name, "-o", str(output), "-e", str(output), "-W", f"{options.num_hours}:00", "-n", "1"]
    resources = strip_shell_quotes(options.resources.strip())
    if resources:
        argv += ["-R", resources]
    for group in option_groups(options.extra, options.extra_flag):
        argv += group
    warning = warning_seconds(options)
    if warning is not None:  # LSF's warning time is in minutes
        argv += ["-wa", warning[0], "-wt", str(warning[1] // 60)]
    if depends_on:
        argv += ["-w", " && ".join(f"ended({job_id})" for job_id in depends_on)]
    return argv


def limit_seconds(options: LsfOptions) -> float:
    """The job's run limit: ``--num_hours``, or a ``-W [hours:]minutes`` in the extra options (it wins)."""
    limit = options.num_hours * 3600.0
    for group in option_groups(options.extra, options.extra_flag):
        if group[0] == "-W" and len(group) > 1:
            hours, _, minutes = group[1].rpartition(":")
            if minutes.isdigit() and (not hours or hours.isdigit()):
                limit = (int(hours or 0) * 60 + int(minutes)) * 60.0
    return limit


def warning_seconds(options: LsfOptions) -> tuple[str, int] | None:
    """The warning as LSF sends it: its lead time rounded up to whole minutes."""
    warning = options.warning_within(limit_seconds(options))
    if warning is None:
        return None
    signal_name, lead = warning
    return signal_name, max(1, -(-lead // 60)) * 60


def bsub_script(pack: LaunchSpec | Pack, options: LsfOptions) -> str:
    """A job's script: its runs one after another (LSF's own messages go to ``lsf-<id>.out`` in
    the first run's folder)."""
    runs = as_pack(pack)
    body = pack_preamble(limit_seconds(options), warning_seconds(options)) + pack_body(runs)
    return job_script([], options.setup, body, comment=f"hpsearch job script of {job_name(runs[0].name)}"
                      + (f" and {len(runs) - 1} more" if len(runs) > 1 else ""))


def bsub_array_script(packs: Sequence[LaunchSpec | Pack], options: LsfOptions) -> str:
    """An array script: element ``i`` (``LSB_JOBINDEX``, from 1) runs ``packs[i - 1]``."""
    body = pack_preamble(limit_seconds(options), warning_seconds(options)) + case_table(
        "LSB_JOBINDEX", [as_pack(p) for p in packs], 1)
    return job_script([], options.setup, body, comment=f"hpsearch array script of {len(packs)} jobs")


# --------------------------------------------------------------------------- parsers


def parse_bsub_id(stdout: str) -> str | None:
    """``Job <123> is submitted to queue <normal>.`` -> ``123``."""
    match = _SUBMITTED.search(stdout)
    return match.group(1) if match else None


def lsf_state(stat: str, exit_code: str = "-", reason: str = "-") -> JobState:
    """Classify a ``bjobs`` line's ``stat``/``exit_code``/``exit_reason``."""
    stat = stat.strip()
    if stat == "DONE":
        return JobState("DONE", Ending.EXITED, 0)
    if stat != "EXIT":
        return JobState(stat)
    code = int(exit_code) if exit_code.strip().isdigit() else None
    reason = "" if reason.strip() in ("", "-") else reason.strip()
    word = reason.split(":")[0].strip()
    if word in TIMEOUT_REASONS:
        ending = Ending.TIMED_OUT
    elif word in INTERRUPT_REASONS:
        ending = Ending.INTERRUPTED
    elif word.startswith("TERM_"):
        ending = Ending.KILLED
    else:
        ending = Ending.EXITED
    signal = code - 128 if ending is not Ending.EXITED and code is not None and code > 128 else None
    label = " ".join(part for part in ("EXIT", "" if code is None else str(code), f"({reason})" if reason else "")
                     if part)
    return JobState(label, ending, code, signal)


def parse_bjobs(text: str) -> dict[str, JobState]:
    """Lines of ``bjobs -o "jobid jobindex stat exit_code exit_reason delimiter='|'"``.

    An array element is keyed ``123[4]``, a plain job (index 0) ``123``.
    """
    states = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) < 3 or not fields[0]:
            continue
        job_id, index, stat = (f.strip() for f in fields[:3])
        exit_code = fields[3] if len(fields) > 3 else "-"
        reason = "|".join(fields[4:]) if len(fields) > 4 else "-"
        if index not in ("", "0", "-") and "[" not in job_id:
            job_id = f"{job_id}[{index}]"
        states[job_id] = lsf_state(stat, exit_code, reason)
    return states


def unexplained_errors(stderr: str) -> list[str]:
    """stderr lines of ``bjobs`` other than the harmless ``Job <N> is not found``."""
    return [line.strip() for line in stderr.splitlines() if line.strip() and not _HARMLESS.search(line)]


# --------------------------------------------------------------------------- the executor


class LsfExecutor(ClusterExecutor):
    """LSF jobs, one per run or as arrays (see :class:`ClusterExecutor`)."""

    name = "lsf"
    submit_tool = "bsub"
    cancel_tool = "bkill"
    task_format = "{array}[{index}]"
    queue_names_argv = ("bjobs", "-noheader", "-o", "job_name")
    first_index = 1
    pending_states = ("PEND",)
    held_states = ("PSUSP",)  # bstop of a pending job suspends it (PSUSP); bresume makes it PEND again
    options: LsfOptions

    def job_script(self, pack: Pack) -> str:
        return bsub_script(pack, self.options)

    def array_script(self, packs: Sequence[Pack], name: str) -> str:
        return bsub_array_script(packs, self.options)

    def submission(self, script: Path, *, name: str, array_size: int, depends_on: Sequence[str]) -> Submission:
        if array_size:
            output = self.search_dir / ARRAY_LOG_DIR / f"{name}-%J_%I.out"
            name = f"{name}[1-{array_size}]%{self.options.num_jobs}"
        else:
            output = script.parent / "lsf-%J.out"
        return Submission(bsub_argv(self.options, name=name, output=output, depends_on=depends_on), script,
                          script_on_stdin=True)

    def parse_job_id(self, stdout: str) -> str | None:
        return parse_bsub_id(stdout)

    def hold_argv(self, job_ids: Sequence[str], paused: bool) -> list[str]:
        """``bstop``/``bresume`` with each job (or element ``12[4]``) as its own argument."""
        return ["bstop" if paused else "bresume", *job_ids]

    def after_hold(self, job_ids: Sequence[str]) -> None:
        """``bstop`` also suspends a job that started since the query (USUSP): resume those."""
        try:
            states = self.query(list(job_ids))
            started = [job_id for job_id in job_ids if states.get(job_id, JobState("")).state == "USUSP"]
            if started:
                run_tool(["bresume", *started])
        except ToolError as exc:
            logger.warning("could not check the jobs just held: %s", exc)

    def read_max_array_size(self) -> int:
        return self.options.max_array_size

    def jobs_named(self, names: Sequence[str]) -> dict[str, str]:
        """``bjobs -a -o "jobid job_name"`` of every job of the user (array elements show ``name[i]``)."""
        result = run_tool(["bjobs", "-a", "-noheader", "-o", "jobid job_name delimiter='|'"])
        if result.returncode != 0 and (unexplained_errors(result.stderr) or not result.stderr.strip()):
            raise ToolError(failure(result))
        wanted, found = set(names), {}
        for line in result.stdout.splitlines():
            job_id, _, name = line.strip().partition("|")
            name = re.sub(r"\[\d+\]$", "", name)
            if name in wanted:
                found[name] = job_id
        return found

    def query(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        result = run_tool(["bjobs", "-a", "-noheader", "-o", BJOBS_FORMAT, *self.query_ids(job_ids)])
        if result.returncode != 0 and (unexplained_errors(result.stderr) or not result.stderr.strip()):
            raise ToolError(failure(result))
        return parse_bjobs(result.stdout)
