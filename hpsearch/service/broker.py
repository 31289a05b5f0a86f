"""The service's slot pool, shared fairly among the searches it drives.

The pool is the service's GPUs (one :class:`~hpsearch.gpu.planner.SlotPlanner`,
so one ``nvidia-smi`` poll per round serves every search) or ``num_jobs``
CPU slots. Each driver asks for slots with its own limits; which search gets
a free slot is decided by :func:`fair_shares`, a pure function: weighted
round-robin over the searches that are waiting for slots. A driver refused
now waits on :meth:`Broker.wait`, which returns as soon as a slot it would be
given frees, so a slot never sits idle until some driver happens to ask.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from hpsearch.gpu.allocate import Reservation
from hpsearch.gpu.claims import ClaimBoard
from hpsearch.gpu.monitor import BackgroundPoll, GpuMonitor, GpuReading
from hpsearch.gpu.planner import SlotLimits, SlotPlanner


DEMAND_TTL = 15.0
"""Seconds a refused request keeps its claim on the next free slots without a
wait request out; a driver still waiting has one out or asks again within it."""


def fair_shares(free: int, demands: Mapping[str, int], weights: Mapping[str, int],
                held: Mapping[str, int]) -> dict[str, int]:
    """How many of ``free`` slots each waiting search gets now.

    Weighted round-robin: one slot at a time goes to the search with the
    fewest slots per unit of weight (held plus given so far), so a search of
    weight 3 ends up with three times the slots of one of weight 1 while both
    want more. Ties go to the search listed first in ``demands`` (the caller
    lists the longest waiting first). A search never gets more than it asked.

    Args:
        free: Slots free in the pool.
        demands: Slots each waiting search still wants (searches with 0 are ignored).
        weights: Priority of each search (at least 1; missing means 1).
        held: Slots each search holds already.
    """
    given = {search: 0 for search, wanted in demands.items() if wanted > 0}
    order = list(given)
    for _ in range(max(0, free)):
        open_ = [s for s in order if given[s] < demands[s]]
        if not open_:
            break
        best = min(open_, key=lambda s: ((held.get(s, 0) + given[s]) / max(1, weights.get(s, 1)), order.index(s)))
        given[best] += 1
    return {search: n for search, n in given.items() if n}


@dataclass
class _Client:
    """What the broker knows of one search."""

    weight: int = 1
    paused: bool = False
    held: Counter = field(default_factory=Counter)  # slot -> runs holding it
    wanted: int = 0  # slots asked for and not given
    waiting_since: float = 0.0
    asked_at: float = 0.0
    limits: SlotLimits | None = None
    wake: threading.Event = field(default_factory=threading.Event)
    waits: int = 0  # wait requests out: the driver is waiting for slots now
    reservations: dict[str, list[Reservation]] = field(default_factory=dict)

    def total(self) -> int:
        return sum(self.held.values())


class Broker:
    """Grants and releases of the pool's slots; thread-safe (one lock).

    Args:
        monitor: The pool's GPUs; None for a CPU pool.
        max_per_gpu: Runs per GPU of all searches together (``serve --max_num_jobs_per_gpu``).
        num_jobs: CPU slots of a CPU pool.
        poll_interval: Seconds between two GPU polls at least.
        clock: Monotonic clock.
        first: Readings of the service's start-up poll.
        claims: The machine's shared GPU claims (:mod:`hpsearch.gpu.claims`): the
            pool then sees other processes' start-up reservations and shows its
            own, each handed to its run's process once the driver says it started.
    """

    def __init__(self, monitor: GpuMonitor | None, *, max_per_gpu: int = 1, num_jobs: int = 1,
                 poll_interval: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 first: Sequence[GpuReading] | None = None, claims: ClaimBoard | None = None) -> None:
        from hpsearch.gpu.monitor import GpuSnapshot

        self.monitor = monitor
        self.max_per_gpu = max_per_gpu
        self.num_jobs = num_jobs
        self.clock = clock
        self._lock = threading.RLock()
        self._clients: dict[str, _Client] = {}
        self.planner: SlotPlanner | None = None
        if monitor is not None:
            self.planner = SlotPlanner(
                monitor.poll, BackgroundPoll(monitor.poll, self._poll_answered), poll_interval=poll_interval,
                error_patience=60.0, clock=clock,
                first=None if first is None else GpuSnapshot(clock(), tuple(first)),
                claims=claims,
            )

    # ---- searches

    def client(self, search: str) -> _Client:
        with self._lock:
            return self._clients.setdefault(search, _Client())

    def set_weight(self, search: str, weight: int) -> None:
        with self._lock:
            self.client(search).weight = max(1, weight)
            self._wake_winners()

    def set_paused(self, search: str, paused: bool) -> None:
        with self._lock:
            client = self.client(search)
            client.paused = paused
            if paused:
                client.wanted = 0
            client.wake.set()  # a paused driver stops waiting; an unpaused one asks again
            self._wake_winners()

    def is_paused(self, search: str) -> bool:
        with self._lock:
            client = self._clients.get(search)
            return client is not None and client.paused

    def forget(self, search: str) -> list[Any]:
        """A driver is gone: release everything it held; returns the slots released."""
        with self._lock:
            client = self._clients.pop(search, None)
            if client is None:
                return []
            client.wake.set()
            self._wake_winners()
            return list(client.held.elements())

    # ---- grants

    def acquire(self, search: str, n: int, limits: SlotLimits, num_jobs: int | None = None,
                holding: Sequence[Any] | None = None) -> list[Any]:
        """Up to ``n`` slots for ``search`` now, within its limits and its fair share.

        ``holding``: the slots the search's runs in flight hold, as the driver
        knows them; it replaces the broker's count, so runs a resumed driver
        adopted (after a service restart) count, and no drift outlives a request.
        """
        with self._lock:
            client = self.client(search)
            now = self.clock()
            client.limits = limits
            if holding is not None:
                client.held = Counter(holding)
                for slot in list(client.reservations):
                    if slot not in client.held:
                        del client.reservations[slot]
            if num_jobs is not None:
                n = min(n, max(0, num_jobs - client.total()))
            if client.paused or n <= 0:
                client.wanted = 0
                client.wake.clear()  # a paused driver's wait then lasts until unpause (or its timeout)
                return []
            if client.wanted == 0:
                client.waiting_since = now
            client.wanted, client.asked_at = n, now
            client.wake.clear()
            candidates = self._candidates(client, limits)
            shares = fair_shares(self._free_units(), self._demands(now), self._weights(), self._held())
            grant = candidates[:min(shares.get(search, 0), n)]
            for slot in grant:
                client.held[slot] += 1
                if slot is not None and self.planner is not None:
                    reservation = self.planner.reservation(int(slot), limits)
                    if reservation is not None:
                        client.reservations.setdefault(slot, []).append(reservation)
            if self.planner is not None and self.planner.claims is not None:
                self.planner.withdraw_offers()  # what this search was offered and not given
            client.wanted = n - len(grant)
            if client.wanted == 0:
                client.waiting_since = 0.0
            return grant

    def release(self, search: str, slots: Sequence[Any], satisfied: bool = False) -> None:
        """Give slots back (a run ended, or a grant went unused); ``satisfied``: want no more for now."""
        with self._lock:
            client = self._clients.get(search)
            if client is None:
                return
            for slot in slots:
                if client.held[slot] > 0:
                    client.held[slot] -= 1
                    if client.held[slot] == 0:
                        del client.held[slot]
                    pending = client.reservations.get(slot)
                    if pending:
                        reservation = pending.pop(0)
                        if self.planner is not None:
                            self.planner.release(reservation)  # its claim goes
            if satisfied:
                client.wanted = 0
            self._wake_winners()

    def started(self, search: str, slot: Any, pid: int, pid_started: float) -> None:
        """A run of ``search`` started on ``slot`` as process ``pid``: the slot's
        start-up claim becomes that process's, so it outlives this service."""
        with self._lock:
            client = self._clients.get(search)
            if client is None or self.planner is None:
                return
            for reservation in client.reservations.get(slot, []):
                if self.planner.hand_over(reservation, pid, pid_started):  # the first not handed over yet
                    return

    def wait(self, search: str, timeout: float) -> bool:
        """Block until a slot the search would get may be free (or ``timeout``); True if woken."""
        with self._lock:
            client = self.client(search)
            client.waits += 1
        try:
            return client.wake.wait(timeout)
        finally:
            with self._lock:
                client.waits -= 1

    # ---- the pool

    def _candidates(self, client: _Client, limits: SlotLimits) -> list[Any]:
        """Slots this search may take now by the pool's and its own rules, best first."""
        if self.planner is None:
            return [None] * max(0, self.num_jobs - self._total())
        per_gpu = self._per_gpu()
        own = Counter({int(slot): count for slot, count in client.held.items()})
        gpus = self.planner.free_slots(limits, own, self._reservations())
        slots, taken = [], Counter()
        for gpu in gpus:
            if per_gpu[gpu] + taken[gpu] < self.max_per_gpu:
                taken[gpu] += 1
                slots.append(str(gpu))
        return slots

    def _free_units(self) -> int:
        if self.planner is None:
            return max(0, self.num_jobs - self._total())
        per_gpu = self._per_gpu()
        return sum(max(0, self.max_per_gpu - per_gpu[r.id]) for r in self.planner.readings)

    def _per_gpu(self) -> Counter:
        total: Counter = Counter()
        for client in self._clients.values():
            for slot, count in client.held.items():
                if slot is not None:
                    total[int(slot)] += count
        return total

    def _reservations(self) -> list[Reservation]:
        now = self.clock()
        return [r for c in self._clients.values() for rs in c.reservations.values() for r in rs if r.until > now]

    def _total(self) -> int:
        return sum(client.total() for client in self._clients.values())

    def _demands(self, now: float) -> dict[str, int]:
        """Searches waiting for slots, the longest waiting first."""
        waiting = [(c.waiting_since, s, c.wanted) for s, c in self._clients.items()
                   if c.wanted > 0 and not c.paused and (c.waits or now - c.asked_at <= DEMAND_TTL)]
        return {search: wanted for _since, search, wanted in sorted(waiting)}

    def _weights(self) -> dict[str, int]:
        return {search: client.weight for search, client in self._clients.items()}

    def _held(self) -> dict[str, int]:
        return {search: client.total() for search, client in self._clients.items()}

    def _wake_winners(self) -> None:
        """Wake the waiting drivers that the free slots would go to now."""
        shares = fair_shares(self._free_units(), self._demands(self.clock()), self._weights(), self._held())
        for search in shares:
            self._clients[search].wake.set()

    def _poll_answered(self) -> None:
        """New GPU readings may free slots: wake whoever would get them."""
        with self._lock:
            for client in self._clients.values():
                if client.wanted:
                    client.wake.set()

    # ---- status

    def describe(self) -> dict[str, Any]:
        """The pool for ``status``: GPUs with readings and holders, queue per search."""
        with self._lock:
            holders: dict[str, list[str]] = {}
            for search, client in self._clients.items():
                for slot, count in client.held.items():
                    holders.setdefault("cpu" if slot is None else str(slot), []).extend([search] * count)
            pool: dict[str, Any] = {"kind": "cpu" if self.planner is None else "gpu",
                                    "max_per_gpu": self.max_per_gpu, "num_jobs": self.num_jobs}
            if self.planner is not None:
                pool["gpus"] = [{"id": r.id, "memory_used": r.memory_used, "memory_total": r.memory_total,
                                 "load": r.load, "held_by": holders.get(str(r.id), [])}
                                for r in self.planner.readings]
            else:
                pool["cpu_held_by"] = holders.get("cpu", [])
            pool["searches"] = {search: {"held": client.total(), "wanted": client.wanted, "weight": client.weight,
                                         "paused": client.paused} for search, client in self._clients.items()}
            return pool
