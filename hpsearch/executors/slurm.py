"""Runs as Slurm jobs: ``sbatch`` scripts, states from ``squeue``/``sacct``/``scontrol``.

The job script and the parsers of the scheduler's text are pure functions, so
they are tested on captured output. Job states come from one ``squeue -t all``
call per poll; a job that has left the queue (after ``MinJobAge``) is looked
up with ``sacct`` (only where accounting is configured) and then
``scontrol show job``; a job none of them knows ended as its
``exit_code.txt`` says, or was lost. Only the ``-o``/``-P`` text formats are
read: Slurm 22.05's ``--json`` output has wrong exit codes.
"""

from __future__ import annotations

import logging
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from hpsearch.executors.cluster import (
    ClusterExecutor,
    Ending,
    JobState,
    Submission,
    ToolError,
    failure,
    id_order,
    run_tool,
)
from hpsearch.executors.jobscript import (
    ARRAY_LOG_DIR,
    ClusterOptions,
    Pack,
    as_pack,
    case_table,
    job_script,
    option_groups,
    pack_body,
    pack_name,
    pack_preamble,
)
from hpsearch.options import default_of
from hpsearch.runs import LaunchSpec

logger = logging.getLogger(__name__)

SQUEUE_FORMAT = "%i|%A|%T|%l|%r"
SACCT_FORMAT = "jobid,jobidraw,state,exitcode,timelimit"
INVALID_JOB_ID = "Invalid job id specified"
ACCOUNTING_DISABLED = "accounting storage is disabled"
DEFAULT_MAX_ARRAY_SIZE = 1001  # Slurm's default MaxArraySize

ENDINGS = {
    "COMPLETED": Ending.EXITED,
    "FAILED": Ending.EXITED,
    "CANCELLED": Ending.KILLED,
    "OUT_OF_MEMORY": Ending.KILLED,
    "TIMEOUT": Ending.TIMED_OUT,
    "DEADLINE": Ending.TIMED_OUT,
    "NODE_FAIL": Ending.INTERRUPTED,
    "PREEMPTED": Ending.INTERRUPTED,
    "BOOT_FAIL": Ending.INTERRUPTED,
}
WAITING = {
    "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "RESIZING", "SIGNALING",
    "STAGE_OUT", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SPECIAL_EXIT",
}


@dataclass
class SlurmOptions(ClusterOptions):
    """hypnettorch's Slurm flags plus ours (see :class:`ClusterOptions`).

    Empty ``mem``/``gres``/``partition``/``qos``/``constraint`` are left out
    of the job script.
    """

    mem: str = default_of("slurm_mem")
    gres: str = default_of("slurm_gres")
    partition: str = ""
    qos: str = ""
    constraint: str = ""

    extra_flag = "--slurm_extra"


# --------------------------------------------------------------------------- job scripts


def output_path(folder: Path, pattern: str) -> str:
    """``folder/pattern`` for ``--output``: Slurm expands ``%`` in the whole path, so the
    folder's own ``%`` signs are doubled (``%%`` is a literal ``%``) and only the
    pattern's (``%j``, ``%A``, ``%a``) are expanded."""
    return f"{str(folder).replace('%', '%%')}/{pattern}"


def directives(options: SlurmOptions, *, name: str, output: str, array: str = "") -> list[str]:
    """The ``#SBATCH`` lines, each one shell-quoted (sbatch reads them like a shell)."""
    groups = [[f"--job-name={name}"], [f"--output={output}"], [f"--error={output}"],
              [f"--time={options.num_hours}:00:00"]]
    warning = options.warning_within(limit_seconds(options))
    if warning is not None:
        groups.append([f"--signal=B:{warning[0]}@{warning[1]}"])
    for flag, value in (("--mem", options.mem), ("--gres", options.gres), ("--partition", options.partition),
                        ("--qos", options.qos), ("--constraint", options.constraint), ("--array", array)):
        if value:
            groups.append([f"{flag}={value}"])
    groups += option_groups(options.extra, options.extra_flag)
    return [f"#SBATCH {shlex.join(group)}" for group in groups]


def limit_seconds(options: SlurmOptions) -> float:
    """The job's time limit: ``--num_hours``, or a ``--time``/``-t`` in the extra options (it wins)."""
    limit = options.num_hours * 3600.0
    for group in option_groups(options.extra, options.extra_flag):
        name, has_value, value = group[0].partition("=")
        if name in ("--time", "-t"):
            seconds = time_seconds(value if has_value else " ".join(group[1:2]))
            limit = seconds if seconds is not None else limit
    return limit


def time_seconds(text: str) -> float | None:
    """Slurm's time formats (``M``, ``M:S``, ``H:M:S``, ``D-H[:M[:S]]``) in seconds; None if unparsable."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not match:
        return None
    days, first, second, third = match.groups()
    numbers = [int(x) for x in (first, second, third) if x is not None]
    if days is not None:
        hours, minutes, seconds = (numbers + [0, 0])[:3]
    elif len(numbers) == 1:
        hours, minutes, seconds = 0, numbers[0], 0
    elif len(numbers) == 2:
        hours, minutes, seconds = 0, numbers[0], numbers[1]
    else:
        hours, minutes, seconds = numbers
    return ((int(days or 0) * 24 + hours) * 60 + minutes) * 60.0 + seconds


def sbatch_script(pack: LaunchSpec | Pack, options: SlurmOptions) -> str:
    """A job's script: its runs one after another; Slurm's own messages go to
    ``slurm-<id>.out`` in the first run's folder."""
    runs = as_pack(pack)
    lines = directives(options, name=pack_name(runs), output=output_path(runs[0].run_dir, "slurm-%j.out"))
    body = pack_preamble(limit_seconds(options), options.warning_within(limit_seconds(options))) + pack_body(runs)
    return job_script(lines, options.setup, body)


def sbatch_array_script(packs: Sequence[LaunchSpec | Pack], options: SlurmOptions, *, name: str,
                        log_dir: Path) -> str:
    """An array script: task ``i`` runs ``packs[i]`` (``SLURM_ARRAY_TASK_ID``), at most ``num_jobs`` at once."""
    lines = directives(
        options,
        name=name,
        output=output_path(log_dir, f"{name}-%A_%a.out"),
        array=f"0-{len(packs) - 1}%{options.num_jobs}",
    )
    body = pack_preamble(limit_seconds(options), options.warning_within(limit_seconds(options))) + case_table(
        "SLURM_ARRAY_TASK_ID", [as_pack(p) for p in packs], 0)
    return job_script(lines, options.setup, body)


# --------------------------------------------------------------------------- parsers


def parse_sbatch_id(stdout: str) -> str | None:
    """``sbatch --parsable`` prints ``id`` or ``id;cluster``."""
    for line in stdout.splitlines():
        job_id = line.strip().split(";")[0].strip()
        if job_id:
            return job_id if job_id.isdigit() else None
    return None


def parse_exit_code(text: str) -> tuple[int | None, int | None]:
    """``3:0`` -> (3, None); ``0:15`` (killed by signal 15) -> (None, 15); junk -> (None, None)."""
    match = re.fullmatch(r"\s*(\d+):(\d+)\s*", text or "")
    if not match:
        return None, None
    code, signal = int(match.group(1)), int(match.group(2))
    return (None, signal) if signal else (code, None)


def format_limit(text: str) -> str:
    """Slurm time (``1:00`` is one minute, ``1-02:00:00`` a day and 2 h) as ``H:MM:SS``."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not match:
        return text.strip()
    days, first, second, third = match.groups()
    parts = [int(first)] + [int(p) for p in (second, third) if p is not None]
    hours, minutes, seconds = ([0] * (3 - len(parts)) + parts) if len(parts) > 1 else (0, parts[0], 0)
    hours += 24 * int(days or 0)
    return f"{hours}:{minutes:02d}:{seconds:02d}"


def slurm_state(state: str, exit_code: str = "", limit: str = "") -> JobState:
    """Classify a Slurm state such as ``CANCELLED by 0``; unknown words count as waiting."""
    word = (state.split() or [""])[0].rstrip("+")
    ending = ENDINGS.get(word)
    if ending is None:
        if word not in WAITING:
            logger.debug("unknown Slurm job state %r: treated as not ended", state)
        return JobState(state.strip())
    code, signal = parse_exit_code(exit_code)
    label = state.strip()
    if word == "TIMEOUT" and limit and limit.strip() not in ("UNLIMITED", "INFINITE", "Partition_Limit"):
        label = f"TIMEOUT after {format_limit(limit)}"
    return JobState(label, ending, code, signal)


def expand_ids(job_id: str) -> list[str]:
    """``123_[5-7,9%2]`` -> ``['123_5', '123_6', '123_7', '123_9']``; other ids unchanged."""
    match = re.fullmatch(r"(\d+)_\[([^\]]+)\]", job_id.strip())
    if not match:
        return [job_id.strip()]
    base, spec = match.groups()
    ids = []
    for part in spec.split("%")[0].split(","):
        low, _, high = part.partition("-")
        step = 1
        if ":" in high:
            high, step_text = high.split(":", 1)
            step = int(step_text)
        if low.isdigit() and (not high or high.isdigit()):
            ids += [f"{base}_{i}" for i in range(int(low), int(high or low) + 1, step)]
    return ids


def _rows(text: str, columns: int) -> Iterable[list[str]]:
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) >= columns and fields[0]:
            yield fields


def parse_squeue(text: str) -> dict[str, JobState]:
    """Lines of ``squeue -h -t all -r -o '%i|%A|%T|%l|%r'``, keyed by ``%i``."""
    states = {}
    for job_id, _raw, state, limit, *_ in _rows(text, 4):
        for one in expand_ids(job_id):
            states[one] = slurm_state(state, limit=limit)
    return states


def parse_sacct(text: str) -> dict[str, JobState]:
    """Lines of ``sacct -X -P -n -o jobid,jobidraw,state,exitcode,timelimit``."""
    states = {}
    for job_id, _raw, state, exit_code, limit, *_ in _rows(text, 5):
        for one in expand_ids(job_id):
            states[one] = slurm_state(state, exit_code, limit)
    return states


def parse_scontrol(text: str) -> dict[str, JobState]:
    """Records of ``scontrol -o show job`` (one line each), keyed like ``squeue``'s ``%i``."""
    states = {}
    for line in text.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if "JobId" not in fields or "JobState" not in fields:
            continue
        job_id = fields["JobId"]
        if fields.get("ArrayJobId") and fields.get("ArrayTaskId", "").isdigit():
            job_id = f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}"
        states[job_id] = slurm_state(fields["JobState"], fields.get("ExitCode", ""), fields.get("TimeLimit", ""))
    return states


def parse_max_array_size(text: str) -> int | None:
    """``MaxArraySize = 1001`` from ``scontrol show config``."""
    match = re.search(r"^\s*MaxArraySize\s*=\s*(\d+)", text, re.MULTILINE)
    return int(match.group(1)) if match else None


# --------------------------------------------------------------------------- the executor


class SlurmExecutor(ClusterExecutor):
    """Slurm jobs, one per run or as arrays (see :class:`ClusterExecutor`)."""

    name = "slurm"
    submit_tool = "sbatch"
    cancel_tool = "scancel"
    task_format = "{array}_{index}"
    queue_names_argv = ("squeue", "--me", "-h", "-o", "%j")
    first_index = 0
    pending_states = ("PENDING",)
    held_states = ("PENDING",)  # a held job is PENDING (reason JobHeldUser); releasing others does nothing
    options: SlurmOptions
    _sacct_usable = True  # until sacct says accounting is disabled

    def job_script(self, pack: Pack) -> str:
        return sbatch_script(pack, self.options)

    def array_script(self, packs: Sequence[Pack], name: str) -> str:
        return sbatch_array_script(packs, self.options, name=name, log_dir=self.search_dir / ARRAY_LOG_DIR)

    def submission(self, script: Path, *, name: str, array_size: int, depends_on: Sequence[str]) -> Submission:
        argv = ["sbatch", "--parsable"]
        if depends_on:
            argv.append(f"--dependency=afterany:{':'.join(depends_on)}")
        return Submission(argv + [str(script)], script)

    def parse_job_id(self, stdout: str) -> str | None:
        return parse_sbatch_id(stdout)

    def hold_argv(self, job_ids: Sequence[str], paused: bool) -> list[str]:
        """``scontrol hold|release 12,13_4``: a held job keeps its place but is
        not started (priority 0) until released; hold on a running job fails for that job only."""
        return ["scontrol", "hold" if paused else "release", ",".join(job_ids)]

    def read_max_array_size(self) -> int:
        try:
            result = run_tool(["scontrol", "show", "config"])
        except ToolError as exc:
            logger.warning("MaxArraySize unknown (%s); assuming %d", exc, DEFAULT_MAX_ARRAY_SIZE)
            return DEFAULT_MAX_ARRAY_SIZE
        size = parse_max_array_size(result.stdout) if result.returncode == 0 else None
        if size is None:
            logger.warning("MaxArraySize not in scontrol show config; assuming %d", DEFAULT_MAX_ARRAY_SIZE)
            return DEFAULT_MAX_ARRAY_SIZE
        return size

    def jobs_named(self, names: Sequence[str]) -> dict[str, str]:
        """``squeue --me -t all -o '%F|%j' -n NAMES``: one line per job (arrays folded)."""
        result = run_tool(["squeue", "--me", "-h", "-t", "all", "-o", "%F|%j", "-n", ",".join(names)])
        if result.returncode != 0:
            raise ToolError(failure(result))
        found = {}
        for line in result.stdout.splitlines():
            job_id, _, name = line.strip().partition("|")
            if job_id.isdigit() and name in names:
                found[name] = job_id
        return found

    def query(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        """One ``squeue`` call for every job (an array's id covers its tasks)."""
        return self._squeue(self.query_ids(job_ids))

    def details(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        """``sacct`` (where accounting is configured), then ``scontrol`` per array for the rest:
        the exit codes and signals ``squeue`` does not show."""
        wanted = set(job_ids)
        found = self._sacct(sorted(wanted, key=id_order)) if self._sacct_usable else {}
        final = {j for j in wanted if j in found and found[j].ending is not None}
        for base in self.query_ids(wanted - final):
            found.update(self._scontrol(base))
        return {job_id: state for job_id, state in found.items() if job_id in wanted}

    def _squeue(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        result = run_tool(["squeue", "-h", "-t", "all", "-r", "-o", SQUEUE_FORMAT, "-j", ",".join(job_ids)])
        if result.returncode != 0:
            if INVALID_JOB_ID in result.stderr:  # a single id the controller has forgotten
                return {}
            raise ToolError(failure(result))
        return parse_squeue(result.stdout)

    def _sacct(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        """States from accounting; its failure is not fatal (``scontrol`` is asked next)."""
        try:
            result = run_tool(["sacct", "-X", "-P", "-n", "-o", SACCT_FORMAT, "-j", ",".join(job_ids)])
        except ToolError as exc:
            logger.debug("sacct: %s", exc)
            return {}
        if result.returncode != 0:
            if ACCOUNTING_DISABLED in result.stderr + result.stdout:
                self._sacct_usable = False
            logger.debug("%s", failure(result))
            return {}
        return parse_sacct(result.stdout)

    def _scontrol(self, job_id: str) -> dict[str, JobState]:
        result = run_tool(["scontrol", "-o", "show", "job", job_id])
        if result.returncode != 0:
            if INVALID_JOB_ID in result.stderr:
                return {}
            raise ToolError(failure(result))
        return parse_scontrol(result.stdout)
