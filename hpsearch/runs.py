"""The words every layer uses for one run: its status, how to start it, where
it lives, how it ended, and the exit-status file a job script leaves behind.

The store, the verdict, the progress line, the report and postprocessing all
speak of runs without knowing any executor; the executors and the driver
speak the same words. Keeping them here lets only the driver (and the
executors themselves) depend on the executor package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from hpsearch.summary import read_run_file

EXIT_CODE_FILE = "exit_code.txt"
"""Where a cluster job script records its run's exit status, in the run folder."""

CUT_OFF_FILE = "cut_off.txt"
"""Where a cluster job script records why it cut a run short or skipped it
(``time limit``, ``preempted``, ``not started: <reason>``), in the run folder."""

STDOUT_FILE = "stdout.txt"
STDERR_FILE = "stderr.txt"
"""Where every executor streams a run's output, in the run folder."""

TAIL_BYTES = 64 * 1024
"""How much of the end of a run's stderr is read to quote its last lines."""

RUN_KEY_ENV = "HPSEARCH_RUN_KEY"
"""Environment variable holding the run's configuration key, in every run's
processes: it lets executors recognise a run's processes (and a fake
``nvidia-smi`` attribute memory to runs)."""


class RunStatus(str, Enum):
    """Life cycle of one configuration in the run store."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class LaunchSpec:
    """Everything needed to start one run; built by the driver.

    Attributes:
        key: The configuration's stable content key (also the store's id).
        name: Run folder name, e.g. ``sim_20260101120000_0007``; usable as a
            job name.
        argv: The complete argument list, ``[python, script, --k=v, ...]``.
            Executors must pass it on without a shell (or ``shlex.quote`` each
            element in generated job scripts).
        cwd: Working directory of the run (``--run_cwd``).
        run_dir: The run folder; exists before the executor's ``submit``.
        env: Extra environment variables for the run.
        timeout: Wall-clock limit in seconds, or None.
        attempt: Which attempt of the run this is (1 for the first), so that a
            submission recorded before the store knew of it can be told from
            an earlier attempt's.
    """

    key: str
    name: str
    argv: tuple[str, ...]
    cwd: Path
    run_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None
    attempt: int = 1

    @property
    def stdout_path(self) -> Path:
        return self.run_dir / STDOUT_FILE

    @property
    def stderr_path(self) -> Path:
        return self.run_dir / STDERR_FILE

    @property
    def run_env(self) -> dict[str, str]:
        """The variables every executor adds to the run's environment."""
        return {RUN_KEY_ENV: self.key, **self.env}


@dataclass(frozen=True)
class JobHandle:
    """Where a started run lives; stored so that a later driver can adopt it.

    Attributes:
        key: Configuration key.
        backend: Executor name (``local``, ``slurm``, ``lsf``).
        job_id: Backend id: a pid, a Slurm id (``123`` or ``123_4``), an LSF id
            (``123`` or ``123[4]``).
        where: Human-readable placement, e.g. ``gpu 2`` or ``cpu``.
        extra: Backend-specific facts needed to adopt the run later (for the
            local executor the process start time, to tell a reused pid apart).
    """

    key: str
    backend: str
    job_id: str
    where: str = ""
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """How a run ended, as far as the executor can tell.

    Attributes:
        key: Configuration key.
        exit_code: The run's exit status, None if unknown (e.g. killed by a
            signal, or the scheduler forgot the job).
        signal: Signal number that killed the run, if any.
        timed_out: The run hit its time limit.
        interrupted: The run was stopped because the driver is shutting down
            (or was cancelled); it should be re-run on resume.
        backend_state: Free-form final state to keep in the store, e.g.
            ``COMPLETED`` or ``TIMEOUT after 1:00:00``.
        leftovers_killed: Processes of the run other than its main one that
            the executor had to stop (left behind, or stopped with it).
        cut_off: Why the scheduler cut the run short although it was not the
            run's fault (``time limit`` of a job that ran other runs first,
            ``preempted``): it runs again up to ``--max_retries`` times and
            is not a failure of its configuration.
    """

    key: str
    exit_code: int | None
    signal: int | None = None
    timed_out: bool = False
    interrupted: bool = False
    backend_state: str = ""
    leftovers_killed: int = 0
    cut_off: str = ""


def read_cut_off(run_dir: Path | None) -> str:
    """What a job script recorded in :data:`CUT_OFF_FILE` of ``run_dir``, or ''."""
    if run_dir is None:
        return ""
    try:
        return read_run_file(Path(run_dir) / CUT_OFF_FILE).strip()
    except (OSError, ValueError):
        return ""


def read_exit_code(run_dir: Path | None) -> int | None:
    """The exit status a job script recorded in ``run_dir``, or None if it recorded none.

    The one reader of :data:`EXIT_CODE_FILE`: the cluster executors and
    postprocessing both ask here.
    """
    if run_dir is None:
        return None
    try:
        return int(read_run_file(Path(run_dir) / EXIT_CODE_FILE).strip())
    except (OSError, ValueError):
        return None


def last_lines(path: Path, count: int) -> list[str] | None:
    """The last ``count`` non-empty lines of a text file (its last
    :data:`TAIL_BYTES` only, so a huge log costs nothing); None if it is unreadable."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - TAIL_BYTES))
            data = handle.read()
    except OSError:
        return None
    lines = [line.strip() for line in data.decode("utf-8", errors="replace").splitlines() if line.strip()]
    return lines[-count:] if count else []
