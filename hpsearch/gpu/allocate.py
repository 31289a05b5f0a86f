"""Decide which GPUs take the next runs, from one snapshot of readings.

Pure functions, no I/O: the local executor passes in what it polled and what
it knows about its own runs, so every decision can be unit-tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from hpsearch.gpu.monitor import GpuReading


@dataclass(frozen=True)
class Reservation:
    """Memory set aside for a run that started on ``gpu`` but may not show in
    the readings yet (``--sim_startup_time``).

    Attributes:
        gpu: GPU id.
        until: Monotonic time at which the reservation lapses.
        baseline: The GPU's ``memory_used`` (MiB) when the run started.
    """

    gpu: int
    until: float
    baseline: float


def run_estimate(reading: GpuReading, *, allowed_memory: float, max_per_gpu: int) -> float:
    """MiB a starting run is assumed to need: an equal share of the memory
    this search may fill on the card."""
    return reading.memory_total * allowed_memory / max_per_gpu


def effective_used(
    reading: GpuReading, reserved: Sequence[Reservation], *, now: float, estimate: float
) -> float:
    """Memory in use on the GPU, counting runs still starting up.

    ``max(actual, baseline + n * estimate)`` where ``n`` is the number of
    unexpired reservations on the GPU and ``baseline`` is the reading when the
    oldest of them began. Once the runs' memory shows in the readings the
    reservations add nothing; after they lapse they are ignored.
    """
    active = [r for r in reserved if r.gpu == reading.id and r.until > now]
    if not active:
        return reading.memory_used
    baseline = min(active, key=lambda r: r.until).baseline
    return max(reading.memory_used, baseline + len(active) * estimate)


def plan_slots(
    readings: Sequence[GpuReading],
    *,
    running_per_gpu: Mapping[int, int],
    reservations: Sequence[Reservation],
    now: float,
    allowed_memory: float,
    allowed_load: float,
    max_per_gpu: int,
    startup_time: float = 1.0,
) -> list[int]:
    """GPU ids for the runs that may start now, one entry per run.

    A GPU takes one more run while all of these hold:

    * its load is below ``allowed_load``;
    * its effective memory fraction (:func:`effective_used` / total) is below
      ``allowed_memory``;
    * this search has fewer than ``max_per_gpu`` runs on it.

    Each planned run is counted as a new reservation before the next one is
    planned, so a single snapshot never over-fills a GPU. Runs are dealt out
    round-robin: always to the GPU with the fewest runs of this search (ties by
    id), so every GPU gets work. GPUs with invalid readings (NaN) get nothing.

    Args:
        readings: One poll of the GPUs the search may use.
        running_per_gpu: This search's runs in flight per GPU id.
        reservations: Reservations of recently started runs.
        now: Current monotonic time.
        allowed_memory: ``--allowed_memory``, a fraction.
        allowed_load: ``--allowed_load``, a fraction.
        max_per_gpu: ``--max_num_jobs_per_gpu``.
        startup_time: Lifetime given to the simulated reservations; only its
            sign matters here (0 disables reservations).
    """
    if max_per_gpu < 1:
        raise ValueError(f"max_per_gpu must be at least 1, got {max_per_gpu}")
    runs = {r.id: running_per_gpu.get(r.id, 0) for r in readings}
    held = [r for r in reservations if r.until > now]
    usable = [r for r in readings if r.is_valid and r.load < allowed_load]

    def can_take(reading: GpuReading) -> bool:
        if runs[reading.id] >= max_per_gpu:
            return False
        estimate = run_estimate(reading, allowed_memory=allowed_memory, max_per_gpu=max_per_gpu)
        used = effective_used(reading, held, now=now, estimate=estimate)
        return used / reading.memory_total < allowed_memory

    plan: list[int] = []
    while True:
        open_gpus = [r for r in usable if can_take(r)]
        if not open_gpus:
            return plan
        chosen = min(open_gpus, key=lambda r: (runs[r.id], r.id))
        plan.append(chosen.id)
        runs[chosen.id] += 1
        if startup_time > 0:
            held.append(Reservation(chosen.id, now + startup_time, chosen.memory_used))
