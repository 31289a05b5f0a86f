"""Choose and configure the executor a search runs on.

GPU problems surface here, before any job starts: ``--visible_gpus`` given
without a working ``nvidia-smi`` is an error, none given falls back to the CPU.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Any, Callable

from hpsearch.errors import GpuQueryError, UsageError
from hpsearch.executors.base import Executor, Wakeup
from hpsearch.gpu.probe import GpuProbe, checked_gpu_ids
from hpsearch.options import CLUSTER_NUM_JOBS, LOCAL_NUM_JOBS, Group, check_value, executor_values
from hpsearch.settings import SearchSettings

ExecutorFactory = Callable[[Wakeup, Path], Executor]


def choose_executor(
    settings: SearchSettings, warn: Callable[[str], None], probe: GpuProbe | None = None
) -> ExecutorFactory:
    """Pick and configure the executor; GPU problems surface here, before any job starts.

    Args:
        settings: The search's settings.
        warn: Where the CPU fall-back warning goes.
        probe: The start-up GPU poll if it was begun earlier (:meth:`GpuProbe.start`).
    """
    if settings.run_cluster:
        return _cluster_factory(settings)
    from hpsearch.executors.local import LocalExecutor

    monitor = None
    probe_readings: list = []
    probed_at = time.monotonic()
    if settings.visible_gpus.strip() != "-1":
        visible = checked_gpu_ids(settings.visible_gpus)
        if probe is None or probe.monitor.visible != visible:
            probe = GpuProbe(visible)
        monitor, probed_at = probe.monitor, probe.started
        try:
            probe_readings = probe.readings()
        except GpuQueryError as exc:
            if visible is not None:
                raise GpuQueryError(f"--visible_gpus={settings.visible_gpus}: {exc}") from None
            warn(f"warning: no usable GPU ({exc}); running on the CPU with "
                 f"--num_jobs={settings.num_jobs or LOCAL_NUM_JOBS}")
            monitor = None
    check_value("max_num_jobs_per_gpu", settings.max_num_jobs_per_gpu)

    def make(wakeup: Wakeup, search_dir: Path) -> Executor:
        return LocalExecutor(
            wakeup,
            gpu_monitor=monitor,
            max_per_gpu=settings.max_num_jobs_per_gpu,
            allowed_memory=settings.allowed_memory,
            allowed_load=settings.allowed_load,
            startup_time=settings.sim_startup_time,
            num_jobs=settings.num_jobs or LOCAL_NUM_JOBS,
            gpu_poll_interval=settings.gpu_poll_interval,
            # the probe's answer serves the first round while it is fresh: one nvidia-smi call fewer
            first_readings=(probe_readings if monitor and time.monotonic() - probed_at < settings.gpu_poll_interval
                            else None),
            detached_runs=settings.detached_runs,
        )

    return make


def _cluster_factory(settings: SearchSettings) -> ExecutorFactory:
    """The chosen scheduler's executor, its options taken whole from the cluster group and the scheduler's group."""
    group = {"slurm": Group.SLURM, "lsf": Group.LSF}.get(settings.scheduler)
    if group is None:
        raise UsageError(f"--scheduler must be 'lsf' or 'slurm', got {settings.scheduler!r}")
    values: dict[str, Any] = {
        **executor_values(settings, Group.CLUSTER),
        **executor_values(settings, group),
        "num_jobs": settings.num_jobs or CLUSTER_NUM_JOBS,
    }
    check_value(f"{settings.scheduler}_extra", values["extra"])
    values["extra"] = shlex.split(values["extra"])
    values["setup"] = _setup_text(values["setup"], f"--{settings.scheduler}_setup")
    if group is Group.SLURM:
        from hpsearch.executors.slurm import SlurmExecutor, SlurmOptions

        slurm = SlurmOptions(**values)
        return lambda wakeup, search_dir: SlurmExecutor(wakeup, slurm, search_dir)
    from hpsearch.executors.lsf import LsfExecutor, LsfOptions

    lsf = LsfOptions(**values)
    return lambda wakeup, search_dir: LsfExecutor(wakeup, lsf, search_dir)


def _setup_text(setup: str, flag: str) -> str:
    """``--<scheduler>_setup`` names a file, or is the text itself."""
    try:
        is_file = bool(setup) and "\n" not in setup and Path(setup).is_file()
    except OSError:  # e.g. a line too long to be a file name
        is_file = False
    if not is_file:
        return setup
    try:
        return Path(setup).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{flag} {setup}: cannot be read: {exc}") from None
