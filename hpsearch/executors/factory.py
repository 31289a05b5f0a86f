"""Choose and configure the executor a search runs on.

GPU problems surface here, before any job starts: ``--visible_gpus`` given
without a working ``nvidia-smi`` is an error, none given falls back to the CPU.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from hpsearch.errors import GpuQueryError, UsageError
from hpsearch.executors.base import Executor, Wakeup
from hpsearch.gpu.probe import GpuProbe, parse_gpu_ids
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
        visible = parse_gpu_ids(settings.visible_gpus)
        if probe is None or probe.monitor.visible != visible:
            probe = GpuProbe(visible)
        monitor, probed_at = probe.monitor, probe.started
        try:
            probe_readings = probe.readings()
        except GpuQueryError as exc:
            if visible is not None:
                raise GpuQueryError(f"--visible_gpus={settings.visible_gpus}: {exc}") from None
            warn(f"warning: no usable GPU ({exc}); running on the CPU with --num_jobs={settings.num_jobs or 1}")
            monitor = None
    if settings.max_num_jobs_per_gpu < 1:
        raise UsageError(f"--max_num_jobs_per_gpu must be at least 1, got {settings.max_num_jobs_per_gpu}")

    def make(wakeup: Wakeup, search_dir: Path) -> Executor:
        return LocalExecutor(
            wakeup,
            gpu_monitor=monitor,
            max_per_gpu=settings.max_num_jobs_per_gpu,
            allowed_memory=settings.allowed_memory,
            allowed_load=settings.allowed_load,
            startup_time=settings.sim_startup_time,
            num_jobs=settings.num_jobs or 1,
            gpu_poll_interval=settings.gpu_poll_interval,
            # the probe's answer serves the first round while it is fresh: one nvidia-smi call fewer
            first_readings=(probe_readings if monitor and time.monotonic() - probed_at < settings.gpu_poll_interval
                            else None),
        )

    return make


def _cluster_factory(settings: SearchSettings) -> ExecutorFactory:
    common: dict[str, Any] = dict(
        num_jobs=settings.num_jobs or 8,
        num_hours=settings.num_hours,
        extra=list(settings.cluster_extra),
        setup=settings.cluster_setup,
        array=settings.cluster_array,
        generate_only=settings.generate_only,
    )
    if settings.scheduler == "slurm":
        from hpsearch.executors.slurm import SlurmExecutor, SlurmOptions

        slurm = SlurmOptions(
            mem=settings.slurm_mem,
            gres=settings.slurm_gres,
            partition=settings.slurm_partition,
            qos=settings.slurm_qos,
            constraint=settings.slurm_constraint,
            **common,
        )
        return lambda wakeup, search_dir: SlurmExecutor(wakeup, slurm, search_dir)
    if settings.scheduler == "lsf":
        from hpsearch.executors.lsf import LsfExecutor, LsfOptions

        lsf = LsfOptions(resources=settings.resources, **common)
        return lambda wakeup, search_dir: LsfExecutor(wakeup, lsf, search_dir)
    raise UsageError(f"--scheduler must be 'lsf' or 'slurm', got {settings.scheduler!r}")
