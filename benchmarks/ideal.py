"""The best wall time any launcher could reach on a workload.

Used as the yardstick of workload 1: with ``startup_gap`` 0 it is the plain
packing bound (runs / slots, rounded up to whole waves); with a gap it is the
bound of hypnettorch's rule "after a start, a GPU takes no run for
``startup_gap`` seconds".
"""

from __future__ import annotations

import heapq


def ideal_wall_time(runs: int, gpus: int, slots_per_gpu: int, duration: float, startup_gap: float = 0.0) -> float:
    """Wall time of ``runs`` equal runs of ``duration`` s when every GPU has
    ``slots_per_gpu`` slots and starts at most one run per ``startup_gap`` s.

    All runs are equal, so starting each one as early as possible is optimal:
    the next run goes wherever it can start first.
    """
    if runs <= 0:
        return 0.0
    next_start = [0.0] * gpus
    slots = [[0.0] * slots_per_gpu for _ in range(gpus)]
    end = 0.0
    for _ in range(runs):
        gpu = min(range(gpus), key=lambda g: max(next_start[g], slots[g][0]))
        start = max(next_start[gpu], slots[gpu][0])
        finish = start + duration
        heapq.heapreplace(slots[gpu], finish)
        next_start[gpu] = start + startup_gap
        end = max(end, finish)
    return end
