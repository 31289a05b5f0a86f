"""The timing rules of the GPU slot planner, on a fake clock.

No process, no thread, no ``nvidia-smi``: :class:`ScriptedPolls` stands in for
both the blocking poll and :class:`~hpsearch.gpu.monitor.BackgroundPoll`, and
the test decides when a background poll answers. The real planner makes every
decision. (The same rules through the real GPUtil, the fake ``nvidia-smi`` and
the poll thread: the GPU tests of ``test_local_executor.py``.)
"""

from __future__ import annotations

import pytest

from hpsearch.errors import GpuQueryError
from hpsearch.gpu.allocate import Reservation
from hpsearch.gpu.monitor import GpuReading, GpuSnapshot, PollAnswer
from hpsearch.gpu.planner import SlotLimits, SlotPlanner

ONE_PER_GPU = SlotLimits(max_per_gpu=1, allowed_memory=0.5, allowed_load=0.5, startup_time=0)
TWO_PER_GPU = SlotLimits(max_per_gpu=2, allowed_memory=0.5, allowed_load=0.5, startup_time=0)
FAILURE = GpuQueryError("nvidia-smi reported no GPUs (is the driver working?)")


def gpu(i: int, used: float = 0.0) -> GpuReading:
    return GpuReading(id=i, memory_used=used, memory_total=16000.0, load=0.0)


def full(i: int) -> GpuReading:
    """Over --allowed_memory because of someone else."""
    return gpu(i, used=15000.0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ScriptedPolls:
    """The GPUs as the planner sees them. Every poll answers ``self.answer``
    (readings, or an exception to raise): a blocking poll at once, a
    background poll only when the test calls :meth:`finish`."""

    def __init__(self, answer: list[GpuReading] | Exception) -> None:
        self.answer = answer
        self.blocking = 0  # polls the planner waited for
        self.started: list[float] = []  # stamps of the background polls begun
        self._stamp: float | None = None
        self._done: PollAnswer | None = None

    def __call__(self) -> list[GpuReading]:
        self.blocking += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return list(self.answer)

    @property
    def in_flight(self) -> bool:
        return self._stamp is not None

    def start(self, stamp: float) -> bool:
        if self._stamp is not None:
            return False
        self._stamp = stamp
        self.started.append(stamp)
        return True

    def finish(self) -> None:
        """The background poll in flight answers now."""
        assert self._stamp is not None and self._done is None, "no poll is in flight"
        self._done = (self._stamp, self.answer if isinstance(self.answer, Exception) else list(self.answer))

    def take(self) -> PollAnswer | None:
        if self._done is None:
            return None
        answer, self._done, self._stamp = self._done, None, None
        return answer


def make_planner(polls: ScriptedPolls, clock: Clock, *, patience: float = 60.0, first=None) -> SlotPlanner:
    return SlotPlanner(polls, polls, poll_interval=1.0, error_patience=patience, clock=clock, first=first)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_only_the_first_question_waits_and_its_readings_serve_an_interval(clock):
    polls = ScriptedPolls([gpu(0), gpu(1)])
    planner = make_planner(polls, clock)
    assert planner.wake_at(TWO_PER_GPU, {}, []) is None  # nothing read yet

    assert planner.free_slots(TWO_PER_GPU, {}, []) == [0, 1, 0, 1]
    assert polls.blocking == 1
    clock.now = 0.9
    assert planner.free_slots(TWO_PER_GPU, {0: 2, 1: 1}, []) == [1]
    assert polls.started == []  # within the interval the readings are reused
    clock.now = 1.0
    assert planner.free_slots(TWO_PER_GPU, {0: 2, 1: 1}, []) == [1]  # planned from the last readings ...
    assert polls.started == [1.0]  # ... while the next poll runs in the background
    assert polls.blocking == 1


def test_the_plan_uses_the_last_readings_while_a_poll_is_in_flight(clock):
    polls = ScriptedPolls([gpu(0)])  # the GPU is freed; only the poll in flight can tell
    planner = make_planner(polls, clock, first=GpuSnapshot(0.0, (full(0),)))
    assert planner.free_slots(ONE_PER_GPU, {}, []) == []
    clock.now = 1.0

    assert planner.free_slots(ONE_PER_GPU, {}, []) == []  # answered from the last readings
    assert polls.started == [1.0] and polls.blocking == 0
    assert planner.wake_at(ONE_PER_GPU, {}, []) is None  # no timer: the answer wakes the owner
    assert planner.free_slots(ONE_PER_GPU, {}, []) == []
    polls.finish()
    assert planner.free_slots(ONE_PER_GPU, {}, []) == [0]


def test_at_most_one_poll_in_flight(clock):
    polls = ScriptedPolls([gpu(0), full(1)])  # our run holds GPU 0; GPU 1 is someone else's
    planner = make_planner(polls, clock)
    assert planner.free_slots(ONE_PER_GPU, {}, []) == [0]

    for _ in range(10):  # ten intervals pass while the first background poll is in flight
        clock.now += 1.0
        assert planner.free_slots(ONE_PER_GPU, {0: 1}, []) == []
        assert planner.wake_at(ONE_PER_GPU, {0: 1}, []) is None
    assert polls.started == [1.0]
    polls.finish()

    assert planner.free_slots(ONE_PER_GPU, {0: 1}, []) == []  # takes the answer; it began 9 s ago ...
    assert polls.started == [1.0, 10.0]  # ... so the next poll begins at once


def test_polls_come_one_interval_apart(clock):
    polls = ScriptedPolls([gpu(0), full(1)])
    planner = make_planner(polls, clock)
    assert planner.free_slots(ONE_PER_GPU, {}, []) == [0]

    for step in range(1, 13):  # an owner woken every quarter interval
        clock.now = step * 0.25
        assert planner.free_slots(ONE_PER_GPU, {0: 1}, []) == []
        wake = planner.wake_at(ONE_PER_GPU, {0: 1}, [])
        if polls.in_flight:  # begun just now; its answer wakes the owner
            assert clock.now == int(clock.now) and wake is None
            polls.finish()
        else:  # none in flight: wake up when the next one is due
            assert wake == int(clock.now) + 1.0
    assert polls.started == [1.0, 2.0, 3.0]


def test_no_poll_while_every_gpu_holds_our_runs(clock):
    polls = ScriptedPolls([gpu(0), gpu(1)])
    planner = make_planner(polls, clock)
    assert planner.free_slots(ONE_PER_GPU, {}, []) == [0, 1]

    for _ in range(5):  # the owner keeps asking, the readings are stale every time
        clock.now += 1.0
        assert planner.free_slots(ONE_PER_GPU, {0: 1, 1: 1}, []) == []
        assert planner.wake_at(ONE_PER_GPU, {0: 1, 1: 1}, []) is None  # only a run's end can free a slot
    assert polls.started == [] and polls.blocking == 1


def test_readings_from_before_a_quiet_spell_plan_nothing_until_the_fresh_answer(clock):
    polls = ScriptedPolls([gpu(0), gpu(1)])
    planner = make_planner(polls, clock)
    assert planner.free_slots(ONE_PER_GPU, {}, []) == [0, 1]
    polls.answer = [gpu(0), full(1)]  # someone else takes GPU 1 while nothing is polled
    clock.now = 600.0  # ten minutes without a poll

    assert planner.free_slots(ONE_PER_GPU, {}, []) == []  # too old to plan with, and not waited for
    assert polls.started == [600.0] and polls.blocking == 1
    assert planner.wake_at(ONE_PER_GPU, {}, []) is None  # the answer wakes the owner
    polls.finish()
    assert planner.free_slots(ONE_PER_GPU, {}, []) == [0]  # the fresh readings: GPU 1 is not offered


def test_a_quiet_spell_is_more_than_two_intervals_without_an_answer(clock):
    polls = ScriptedPolls([gpu(0)])
    planner = make_planner(polls, clock)
    assert planner.free_slots(ONE_PER_GPU, {}, []) == [0]
    clock.now = 2.0  # exactly two intervals after the answer: still planned with
    assert planner.free_slots(ONE_PER_GPU, {}, []) == [0]
    polls.finish()
    assert planner.free_slots(ONE_PER_GPU, {}, []) == [0]  # answer taken at 2.0
    clock.now = 4.0  # the spell counts from the latest answer taken, not from the first poll
    assert planner.free_slots(ONE_PER_GPU, {}, []) == [0]
    polls.finish()
    assert planner.free_slots(ONE_PER_GPU, {}, []) == [0]  # answer taken at 4.0
    clock.now = 6.5
    assert planner.free_slots(ONE_PER_GPU, {}, []) == []
    assert polls.started == [2.0, 4.0, 6.5]


def test_a_slot_freed_after_a_quiet_spell_waits_for_fresh_readings(clock):
    polls = ScriptedPolls([gpu(0)])
    planner = make_planner(polls, clock)
    assert planner.free_slots(ONE_PER_GPU, {}, []) == [0]
    polls.answer = [full(0)]  # meanwhile someone else fills the GPU
    clock.now = 10.0  # our only slot was busy for 10 s, so nothing was polled
    assert planner.free_slots(ONE_PER_GPU, {0: 1}, []) == []
    assert polls.started == []

    # Our run ends: the 10 s old readings show a free GPU, but the refresh they need is awaited.
    assert planner.free_slots(ONE_PER_GPU, {}, []) == []
    assert planner.wake_at(ONE_PER_GPU, {}, []) is None
    polls.finish()
    assert planner.free_slots(ONE_PER_GPU, {}, []) == []  # the fresh readings: the GPU is full

    polls.answer = [gpu(0)]
    clock.now = 11.0  # polled one interval ago: those readings are planned with while the next poll runs
    assert planner.free_slots(ONE_PER_GPU, {}, []) == []
    polls.finish()
    assert planner.free_slots(ONE_PER_GPU, {}, []) == [0]
    assert polls.started == [10.0, 11.0]


def test_failing_polls_pause_new_runs_and_raise_after_the_patience(clock):
    polls = ScriptedPolls([gpu(0)])
    planner = make_planner(polls, clock, patience=5.0)
    assert planner.free_slots(ONE_PER_GPU, {}, []) == [0]  # the last good poll, at 0
    polls.answer = FAILURE

    clock.now = 1.0
    assert planner.free_slots(ONE_PER_GPU, {}, []) == [0]  # starts the failing poll; plans with the last readings
    polls.finish()
    assert planner.free_slots(ONE_PER_GPU, {}, []) == []  # no new runs while the GPUs cannot be read
    assert planner.readings == ()
    assert planner.wake_at(ONE_PER_GPU, {}, []) == 2.0  # the next poll, one interval after the failed one
    clock.now = 5.0  # a poll exactly the patience after the last good one is still forgiven
    assert planner.free_slots(ONE_PER_GPU, {}, []) == []
    polls.finish()
    assert planner.free_slots(ONE_PER_GPU, {}, []) == []
    clock.now = 6.0
    assert planner.free_slots(ONE_PER_GPU, {}, []) == []
    polls.finish()
    with pytest.raises(GpuQueryError, match="reported no GPUs"):
        planner.free_slots(ONE_PER_GPU, {}, [])
    assert polls.started == [1.0, 5.0, 6.0]


def test_a_good_poll_after_failures_resumes_planning(clock):
    polls = ScriptedPolls([gpu(0)])
    planner = make_planner(polls, clock, patience=5.0)
    assert planner.free_slots(ONE_PER_GPU, {}, []) == [0]
    polls.answer = FAILURE
    clock.now = 1.0
    planner.free_slots(ONE_PER_GPU, {}, [])
    polls.finish()
    assert planner.free_slots(ONE_PER_GPU, {}, []) == []

    polls.answer = [gpu(0)]
    clock.now = 2.0
    planner.free_slots(ONE_PER_GPU, {}, [])
    polls.finish()
    assert planner.free_slots(ONE_PER_GPU, {}, []) == [0]
    polls.answer = FAILURE  # the patience now counts from the good poll at 2
    clock.now = 7.0
    planner.free_slots(ONE_PER_GPU, {}, [])
    polls.finish()
    assert planner.free_slots(ONE_PER_GPU, {}, []) == []


def test_the_start_up_probe_counts_as_a_good_poll(clock):
    polls = ScriptedPolls(FAILURE)
    planner = make_planner(polls, clock, patience=5.0, first=GpuSnapshot(0.0, (gpu(0),)))
    clock.now = 1.0
    assert planner.free_slots(ONE_PER_GPU, {}, []) == [0]  # the probe's readings, not a blocking poll
    polls.finish()
    assert planner.free_slots(ONE_PER_GPU, {}, []) == []  # the failure right after the probe is forgiven
    clock.now = 7.0
    planner.free_slots(ONE_PER_GPU, {}, [])
    polls.finish()
    with pytest.raises(GpuQueryError):
        planner.free_slots(ONE_PER_GPU, {}, [])
    assert polls.blocking == 0


def test_without_a_good_poll_a_failure_is_raised_at_once(clock):
    planner = make_planner(ScriptedPolls(FAILURE), clock)

    with pytest.raises(GpuQueryError, match="reported no GPUs"):
        planner.free_slots(ONE_PER_GPU, {}, [])


def test_a_bug_in_a_background_poll_is_raised_by_the_next_question(clock):
    polls = ScriptedPolls([gpu(0)])
    planner = make_planner(polls, clock)
    planner.free_slots(ONE_PER_GPU, {}, [])
    polls.answer = RuntimeError("a bug in the poll")
    clock.now = 1.0
    planner.free_slots(ONE_PER_GPU, {}, [])
    polls.finish()

    with pytest.raises(RuntimeError, match="a bug in the poll"):
        planner.free_slots(ONE_PER_GPU, {}, [])


def test_a_starting_run_holds_memory_until_its_time_passes(clock):
    # 4500 MiB in use elsewhere; limit 8000 MiB; a starting run is assumed to take 16000 * 0.5 / 2 = 4000.
    limits = SlotLimits(max_per_gpu=2, allowed_memory=0.5, allowed_load=0.5, startup_time=10)
    polls = ScriptedPolls([gpu(0, used=4500)])
    planner = SlotPlanner(polls, polls, poll_interval=20.0, error_patience=60.0, clock=clock)
    assert planner.free_slots(limits, {}, []) == [0]
    clock.now = 0.5
    started = planner.reservation(0, limits)
    assert started == Reservation(gpu=0, until=10.5, baseline=4500)

    assert planner.free_slots(limits, {0: 1}, [started]) == []  # the run does not show in the readings yet
    assert planner.wake_at(limits, {0: 1}, [started]) == 10.5  # when it lapses, before the next poll (at 20)
    clock.now = 10.5
    assert planner.free_slots(limits, {0: 1}, [started]) == [0]
    assert planner.wake_at(limits, {0: 1}, [started]) == 20.0
    assert planner.reservation(0, ONE_PER_GPU) is None  # --sim_startup_time=0: nothing is held


def test_one_planner_serves_two_searches_with_one_poll(clock):
    polls = ScriptedPolls([gpu(0), gpu(1)])
    planner = make_planner(polls, clock)
    assert planner.free_slots(ONE_PER_GPU, {}, []) == [0, 1]  # search A fills both GPUs

    clock.now = 1.0
    assert planner.free_slots(ONE_PER_GPU, {0: 1, 1: 1}, []) == []  # A: every slot is its own, no poll
    assert polls.started == []
    assert planner.free_slots(TWO_PER_GPU, {0: 1}, []) == [1, 0, 1]  # B counts only its own runs, and polls
    assert planner.free_slots(TWO_PER_GPU, {0: 1}, []) == [1, 0, 1]
    assert polls.started == [1.0]  # one poll in flight for both
    polls.answer = [full(0), gpu(1)]
    polls.finish()
    assert planner.free_slots(ONE_PER_GPU, {0: 1, 1: 1}, []) == []  # A takes the answer ...
    assert planner.free_slots(TWO_PER_GPU, {0: 1}, []) == [1, 1]  # ... and B plans with it
    assert polls.started == [1.0]
