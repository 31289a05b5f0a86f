"""Which GPUs can take a run now, and when to ask again.

:class:`SlotPlanner` owns the timing of the GPU polls: when a poll is due,
which readings may be planned with, how long failing polls are tolerated. It
keeps no runs of its own: each question brings the asking search's limits,
its runs per GPU and the reservations of its starting runs, so one planner
(one poll every interval) can serve several searches on the same GPUs. It
reads time only from its clock and the GPUs only through the callables it is
given, so every rule can be tested with a fake clock, without processes or
threads.

With a :class:`~hpsearch.gpu.claims.ClaimBoard` it also sees the start-up
reservations of other processes on the machine, and shows them its own: every
slot a round offers is claimed at once (under the board's lock), the claim of a
slot taken (:meth:`SlotPlanner.reservation`) lasts until its reservation ends
(:meth:`SlotPlanner.release`, or its expiry), the others are withdrawn when
the next round begins or by :meth:`SlotPlanner.withdraw_offers`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Protocol, Sequence

from hpsearch.errors import GpuQueryError
from hpsearch.gpu.allocate import Reservation, plan_slots, run_estimate
from hpsearch.gpu.claims import ClaimBoard
from hpsearch.gpu.monitor import GpuReading, GpuSnapshot, PollAnswer

log = logging.getLogger(__name__)

QUIET_POLL_INTERVALS = 2.0
"""A poll begun this many intervals after the last answer was taken follows
a quiet spell (every slot was busy, nothing was queued): the readings from
before it are too old to start runs with, so the plan waits for its answer."""


class Poller(Protocol):
    """Runs one poll at a time off the caller's thread, as
    :class:`~hpsearch.gpu.monitor.BackgroundPoll` does."""

    @property
    def in_flight(self) -> bool:
        """From :meth:`start` until :meth:`take` has returned the answer."""

    def start(self, stamp: float) -> bool:
        """Begin a poll unless one is in flight; ``stamp`` comes back with the answer."""

    def take(self) -> PollAnswer | None:
        """The finished poll's ``(stamp, readings or exception)``, once."""


@dataclass(frozen=True)
class SlotLimits:
    """One search's rules for placing its runs on a GPU.

    Attributes:
        max_per_gpu: ``--max_num_jobs_per_gpu``.
        allowed_memory: ``--allowed_memory``, a fraction of the card.
        allowed_load: ``--allowed_load``, a fraction.
        startup_time: ``--sim_startup_time`` in seconds (0: no reservations).
    """

    max_per_gpu: int
    allowed_memory: float
    allowed_load: float
    startup_time: float


class SlotPlanner:
    """Answers "which GPUs can take a run now" and "when should I be woken".

    Only the very first readings are waited for. Later polls run through
    ``background``, begun by :meth:`free_slots` once the readings are
    ``poll_interval`` old and some GPU has a slot the asking search does not
    fill itself; meanwhile the last readings are planned with, and the
    poller tells its owner when the answer can be taken. The planner is used
    from one thread.

    Args:
        poll: Reads the GPUs once (:meth:`~hpsearch.gpu.monitor.GpuMonitor.poll`);
            called directly for the first readings only.
        background: Runs the same poll in the background.
        poll_interval: Minimum seconds between the starts of two polls.
        error_patience: Seconds polls may keep failing after the last good
            one (no new runs meanwhile) before :meth:`free_slots` raises.
        clock: Monotonic seconds.
        first: A poll made just before (the start-up probe); it serves the
            first round and counts as a good poll.
        claims: The machine's shared claims folder; None to plan with this
            process's reservations alone.
    """

    def __init__(
        self,
        poll: Callable[[], list[GpuReading]],
        background: Poller,
        *,
        poll_interval: float,
        error_patience: float,
        clock: Callable[[], float] = time.monotonic,
        first: GpuSnapshot | None = None,
        claims: ClaimBoard | None = None,
    ) -> None:
        self._poll = poll
        self._background = background
        self.poll_interval = poll_interval
        self.error_patience = error_patience
        self.clock = clock
        self._snapshot = first  # the latest good poll
        self._poll_failed = False  # the latest answer was a failure: plan nothing
        self._last_poll = -math.inf if first is None else first.query_time  # start of the latest poll
        self._answered_at = self._last_poll  # when the latest answer was taken
        self._distrust = False  # the poll in flight follows a quiet spell: plan nothing until it answers
        self.claims = claims
        self._offered: list[tuple[int, str | None]] = []  # (GPU, claim) of slots offered, not taken yet
        self._held: list[tuple[Reservation, str | None]] = []  # claims of slots taken, until they end

    @property
    def readings(self) -> tuple[GpuReading, ...]:
        """The readings plans are made with; none before the first poll or
        while polls fail."""
        if self._snapshot is None or self._poll_failed:
            return ()
        return self._snapshot.readings

    def free_slots(
        self, limits: SlotLimits, running: Mapping[int, int], reservations: Sequence[Reservation]
    ) -> list[int]:
        """GPU ids for the runs the asking search may start now, one per run.

        Takes a finished background poll's answer and begins the next poll
        when one is due. Blocks only for the very first readings.

        Args:
            limits: The search's limits.
            running: The search's runs in flight per GPU id.
            reservations: Reservations of runs still starting up (expired
                ones are ignored).

        Raises:
            GpuQueryError: The GPUs could not be read for longer than the
                patience (or at all, the first time).
            Exception: Whatever else a background poll raised (a bug).
        """
        now = self.clock()
        self._take_answer(now)
        if self._snapshot is None:  # nothing to plan with yet: wait for the first answer
            self._last_poll = self._answered_at = now
            self._apply(now, self._poll())
        elif self._poll_due(now, limits, running):
            self._start_poll(now)
        if self._distrust:
            return []
        if self.claims is None:
            return self._plan(now, limits, running, reservations)
        self.withdraw_offers()
        self._drop_lapsed(now)
        writes = limits.startup_time > 0
        with self.claims.locked() if writes else contextlib.nullcontext():
            plan = self._plan(now, limits, running, [*reservations, *self._claimed_by_others(now)])
            if writes:
                self._offer(plan, limits)
        return plan

    def _plan(self, now: float, limits: SlotLimits, running: Mapping[int, int],
              reservations: Sequence[Reservation]) -> list[int]:
        return plan_slots(
            self.readings,
            running_per_gpu=running,
            reservations=reservations,
            now=now,
            allowed_memory=limits.allowed_memory,
            allowed_load=limits.allowed_load,
            max_per_gpu=limits.max_per_gpu,
            startup_time=limits.startup_time,
        )

    # ---- claims shared with other processes

    def _claimed_by_others(self, now: float) -> list[Reservation]:
        """Other processes' valid claims on our GPUs, as reservations (matched by UUID, else index)."""
        readings = self.readings
        by_uuid = {r.uuid: r.id for r in readings if r.uuid}
        ids = {r.id for r in readings}
        wall = self.claims.wall()
        found = []
        for claim in self.claims.others():
            gpu = by_uuid.get(claim.uuid) if claim.uuid and by_uuid else claim.gpu
            if gpu in ids:
                found.append(Reservation(gpu, now + (claim.until() - wall), claim.baseline))
        return found

    def _offer(self, plan: Sequence[int], limits: SlotLimits) -> None:
        readings = {r.id: r for r in self.readings}
        for gpu in plan:
            reading = readings[gpu]
            name = self.claims.write(
                gpu=gpu, uuid=reading.uuid, baseline=reading.memory_used,
                reserved=run_estimate(reading, allowed_memory=limits.allowed_memory, max_per_gpu=limits.max_per_gpu),
                seconds=limits.startup_time)
            self._offered.append((gpu, name))

    def withdraw_offers(self) -> None:
        """Remove the claims of slots the last round offered that were not taken."""
        for _gpu, name in self._offered:
            self.claims.remove(name)
        self._offered = []

    def release(self, reservation: Reservation | None) -> None:
        """The run holding ``reservation`` ended: its claim goes."""
        if reservation is None or self.claims is None:
            return
        for index, (held, name) in enumerate(self._held):
            if held is reservation:
                self.claims.remove(name)
                del self._held[index]
                return

    def hand_over(self, reservation: Reservation | None, pid: int, pid_started: float) -> bool:
        """The run holding ``reservation`` is process ``pid``, which may outlive
        us: its claim becomes that process's (:meth:`ClaimBoard.hand_over`).
        False if it has no claim of ours that is not handed over yet."""
        if reservation is None or self.claims is None:
            return False
        for held, name in self._held:
            if held is reservation:
                return self.claims.hand_over(name, pid, pid_started)
        return False

    def _drop_lapsed(self, now: float) -> None:
        for held, name in [item for item in self._held if item[0].until <= now]:
            self.claims.remove(name)
        self._held = [item for item in self._held if item[0].until > now]

    def close(self) -> None:
        """Remove every claim of this planner."""
        if self.claims is not None:
            self.claims.close()
            self._offered, self._held = [], []

    def wake_at(
        self, limits: SlotLimits, running: Mapping[int, int], reservations: Sequence[Reservation]
    ) -> float | None:
        """When a search that :meth:`free_slots` just gave nothing should ask
        again (monotonic seconds), or None if only the end of one of its runs
        (or a poll in flight, which wakes the owner itself) can change that.

        The readings or the reservations hold it back while polls fail or
        some GPU has a slot the search does not fill itself: the next poll is
        due one interval after the last one began, and a reservation frees
        memory when it lapses.
        """
        if self._snapshot is None:
            return None
        if not (self._poll_failed or any(running.get(r.id, 0) < limits.max_per_gpu for r in self.readings)):
            return None
        now = self.clock()
        times = [r.until for r in reservations if r.until > now]
        if not self._background.in_flight:  # one in flight wakes the owner when it answers
            times.append(self._last_poll + self.poll_interval)
        return min(times, default=None)

    def reservation(self, gpu: int, limits: SlotLimits) -> Reservation | None:
        """Memory to hold for a run that starts on ``gpu`` now, from the
        readings it was planned with; None when ``startup_time`` is 0."""
        if limits.startup_time <= 0:
            return None
        baseline = next(r.memory_used for r in self.readings if r.id == gpu)
        reservation = Reservation(gpu, self.clock() + limits.startup_time, baseline)
        if self.claims is not None:
            offered = next((item for item in self._offered if item[0] == gpu), None)
            if offered is not None:
                self._offered.remove(offered)
                self._held.append((reservation, offered[1]))
        return reservation

    def _poll_due(self, now: float, limits: SlotLimits, running: Mapping[int, int]) -> bool:
        """The readings are an interval old, no poll is in flight, and a
        reading could free a slot at all: when every GPU holds
        ``max_per_gpu`` of the search's runs, ``nvidia-smi`` is asked nothing."""
        readings = self.readings
        all_ours = bool(readings) and all(running.get(r.id, 0) >= limits.max_per_gpu for r in readings)
        return now - self._last_poll >= self.poll_interval and not self._background.in_flight and not all_ours

    def _start_poll(self, now: float) -> None:
        """Poll in the background: ``nvidia-smi`` can take a second on a big
        machine, and runs that ended meanwhile should not wait for it. The
        plan uses the last readings until the answer comes, unless they
        predate a quiet spell (see :data:`QUIET_POLL_INTERVALS`)."""
        self._last_poll = now
        self._distrust = now - self._answered_at > QUIET_POLL_INTERVALS * self.poll_interval
        self._background.start(now)

    def _take_answer(self, now: float) -> None:
        answer = self._background.take()
        if answer is None:
            return
        self._answered_at = now
        self._distrust = False
        self._apply(*answer)

    def _apply(self, started: float, answer: list[GpuReading] | Exception) -> None:
        """Take a poll's answer; a failure mid-search pauses new runs until
        the patience runs out, since a driver hiccup should not end the search.
        Any other exception is a bug, raised at once in the caller's thread."""
        if isinstance(answer, GpuQueryError):
            self._poll_failed = True
            if self._snapshot is None or started - self._snapshot.query_time > self.error_patience:
                raise answer
            log.warning("GPU poll failed, starting no runs for now: %s", answer)
            return
        if isinstance(answer, Exception):
            raise answer
        self._snapshot = GpuSnapshot(started, tuple(answer))
        self._poll_failed = False
