"""GPU readings through the real GPUtil and the fake nvidia-smi, and slot planning."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from hpsearch.errors import GpuQueryError
from hpsearch.gpu.allocate import Reservation, effective_used, plan_slots
from hpsearch.gpu.monitor import BackgroundPoll, GpuMonitor, GpuReading
from tests.fakes.fakegpu import STATE_ENV

# ---- monitor (real GPUtil, fake nvidia-smi on PATH)


def test_poll_parses_the_fake_readings(fake_gpus):
    fake_gpus.configure(2, memory_total=16000)
    fake_gpus.set_gpu(1, memory_used=4000, load=0.75)

    readings = GpuMonitor(None).poll()

    assert readings == [
        GpuReading(id=0, memory_used=0.0, memory_total=16000.0, load=0.0, uuid="GPU-fake-0"),
        GpuReading(id=1, memory_used=4000.0, memory_total=16000.0, load=0.75, uuid="GPU-fake-1"),
    ]
    assert readings[1].memory_fraction == 0.25
    assert fake_gpus.gpu_queries() == 1


def test_poll_keeps_only_visible_gpus(fake_gpus):
    fake_gpus.configure(4)

    assert [r.id for r in GpuMonitor([3, 1]).poll()] == [1, 3]


def test_visible_gpu_that_does_not_exist_is_named(fake_gpus):
    fake_gpus.configure(2)

    with pytest.raises(GpuQueryError, match=r"GPU 5.*GPUs 0,1"):
        GpuMonitor([0, 5]).poll()


def test_broken_driver_is_an_error_not_an_empty_machine(fake_gpus):
    fake_gpus.set(fail=True)

    with pytest.raises(GpuQueryError, match=r"^nvidia-smi reported no GPUs \(is the driver working\?\)$"):
        GpuMonitor(None).poll()
    assert fake_gpus.gpu_queries() == 1


def test_missing_nvidia_smi_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(GpuQueryError, match="nvidia-smi not found"):
        GpuMonitor([0]).poll()


def test_unreadable_values_make_a_gpu_invalid_not_a_crash(fake_gpus):
    fake_gpus.configure(2)
    fake_gpus.set_gpu(0, memory_used=None)

    readings = GpuMonitor(None).poll()

    assert math.isnan(readings[0].memory_used)
    assert [r.is_valid for r in readings] == [False, True]
    plan = plan_slots(readings, **_limits(max_per_gpu=2))
    assert plan == [1, 1]


def test_runs_show_up_in_the_fake_readings(fake_gpus, tmp_path):
    fake_gpus.configure(2, per_run_memory=3000, per_run_load=0.25)
    script = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import time; time.sleep(30)'])"
    env = {"HPSEARCH_RUN_KEY": "k1", "CUDA_VISIBLE_DEVICES": "1", "PATH": "/usr/bin:/bin",
           STATE_ENV: str(fake_gpus.state_path)}  # the fake counts only the runs of its own state file
    # The run's own child carries the same key and must not be counted twice.
    run = subprocess.Popen([sys.executable, "-c", script], env=env, start_new_session=True)
    try:
        _wait_for(lambda: GpuMonitor([1]).poll()[0].memory_used == 3000)
        other = GpuMonitor(None).poll()
        assert [(r.memory_used, r.load) for r in other] == [(0, 0.0), (3000, 0.25)]
        apps = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory,gpu_uuid", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, check=True,
        ).stdout
        assert apps == f"{run.pid}, 3000, GPU-fake-1\n"
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    _wait_for(lambda: GpuMonitor([1]).poll()[0].memory_used == 0)


def test_fake_lists_gpus(fake_gpus):
    fake_gpus.configure(2)

    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=True).stdout

    assert out == "GPU 0: Fake GPU (UUID: GPU-fake-0)\nGPU 1: Fake GPU (UUID: GPU-fake-1)\n"


def test_fake_fails_like_a_broken_driver(fake_gpus):
    fake_gpus.set(fail=True)

    done = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)

    assert done.returncode == 9
    assert "couldn't communicate with the NVIDIA driver" in done.stderr
    assert done.stdout == ""


class _GatedMonitor(GpuMonitor):
    """Asks the fake ``nvidia-smi`` only once the test opens ``gate``."""

    def __init__(self) -> None:
        super().__init__(None)
        self.gate = threading.Event()

    def poll(self) -> list[GpuReading]:
        assert self.gate.wait(30), "the test never opened the gate"
        return super().poll()


def test_background_poll_runs_one_poll_at_a_time(fake_gpus):
    fake_gpus.configure(2)
    monitor, answered = _GatedMonitor(), threading.Event()
    poll = BackgroundPoll(monitor.poll, answered.set)
    assert poll.take() is None and not poll.in_flight

    assert poll.start(1.0)
    assert poll.in_flight
    assert not poll.start(2.0)  # one at a time
    assert poll.take() is None  # not answered yet
    monitor.gate.set()
    assert answered.wait(10)
    assert not poll.start(3.0)  # answered but not taken: still in flight
    stamp, readings = poll.take()

    assert stamp == 1.0 and [r.id for r in readings] == [0, 1]
    assert poll.take() is None and not poll.in_flight
    assert fake_gpus.gpu_queries() == 1
    answered.clear()
    assert poll.start(4.0)  # the next poll may begin
    assert answered.wait(10)
    assert poll.take()[0] == 4.0


def test_background_poll_hands_every_error_to_the_caller(fake_gpus):
    class Buggy(GpuMonitor):
        def poll(self) -> list[GpuReading]:
            raise KeyError("bug")

    fake_gpus.set(fail=True)
    for monitor, error in ((GpuMonitor(None), GpuQueryError), (Buggy(None), KeyError)):
        answered = threading.Event()
        poll = BackgroundPoll(monitor.poll, answered.set)
        assert poll.start(0.0)
        assert answered.wait(10)  # a thread that died with the error would never answer
        _, answer = poll.take()
        assert isinstance(answer, error)
        assert not poll.in_flight


def _wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


# ---- plan_slots (pure)


def _gpu(i: int, used: float = 0.0, load: float = 0.0, total: float = 16000.0) -> GpuReading:
    return GpuReading(id=i, memory_used=used, memory_total=total, load=load)


def _limits(**overrides):
    limits = dict(
        running_per_gpu={},
        reservations=[],
        now=100.0,
        allowed_memory=0.5,
        allowed_load=0.5,
        max_per_gpu=1,
    )
    limits.update(overrides)
    return limits


def test_idle_gpus_fill_every_slot_at_once_round_robin():
    plan = plan_slots([_gpu(i) for i in range(4)], **_limits(max_per_gpu=2))

    assert plan == [0, 1, 2, 3, 0, 1, 2, 3]


def test_memory_over_the_limit_gets_no_slot():
    readings = [_gpu(0), _gpu(1, used=8000), _gpu(2, used=7999)]

    assert plan_slots(readings, **_limits(max_per_gpu=2)) == [0, 2, 0]


def test_load_over_the_limit_gets_no_slot():
    readings = [_gpu(0, load=0.5), _gpu(1, load=0.49)]

    assert plan_slots(readings, **_limits()) == [1]


def test_max_per_gpu_counts_runs_already_in_flight():
    readings = [_gpu(0), _gpu(1)]

    plan = plan_slots(readings, **_limits(max_per_gpu=3, running_per_gpu={0: 3, 1: 1}))

    assert plan == [1, 1]


def test_least_busy_gpu_goes_first():
    readings = [_gpu(0), _gpu(1), _gpu(2)]

    plan = plan_slots(readings, **_limits(max_per_gpu=3, running_per_gpu={0: 2, 1: 0, 2: 1}))

    assert plan == [1, 1, 2, 0, 1, 2]


def test_reservation_counts_as_memory_until_it_shows_up():
    # 16000 MiB, 50 % allowed, 2 per GPU: a starting run is assumed to take 4000 MiB.
    reading = _gpu(0, used=3000)
    started = Reservation(gpu=0, until=130.0, baseline=3000)
    limits = _limits(max_per_gpu=2, running_per_gpu={0: 1}, reservations=[started])

    # 3000 + 4000 reserved = 7000 < 8000: one more fits.
    assert plan_slots([reading], **limits) == [0]
    # The run's first 1500 MiB show up: max(4500, 3000 + 4000) = 7000, still one more.
    assert plan_slots([_gpu(0, used=4500)], **limits) == [0]
    # Foreign memory beyond the reservation blocks the GPU.
    assert plan_slots([_gpu(0, used=8200)], **limits) == []


def test_reservation_blocks_until_memory_shows_or_it_expires():
    reservations = [Reservation(0, until=130.0, baseline=2000), Reservation(0, until=140.0, baseline=2000)]
    limits = _limits(max_per_gpu=3, running_per_gpu={0: 2}, reservations=reservations)
    # allowed 8000, estimate 16000*0.5/3 = 2666.7: 2000 + 2*2666.7 = 7333 < 8000 -> one more.
    assert plan_slots([_gpu(0, used=2000)], **limits) == [0]
    # With 3 reservations the GPU is full although the readings show nothing new.
    reservations.append(Reservation(0, until=150.0, baseline=2000))
    limits["running_per_gpu"] = {0: 2}
    assert plan_slots([_gpu(0, used=2000)], **limits) == []
    # Once all of them expired only the readings count.
    assert plan_slots([_gpu(0, used=2000)], **{**limits, "now": 150.0}) == [0]


def test_effective_used_uses_oldest_baseline_and_ignores_expired():
    reading = _gpu(0, used=5000)
    reservations = [
        Reservation(0, until=50.0, baseline=0),  # expired
        Reservation(0, until=120.0, baseline=1000),
        Reservation(0, until=110.0, baseline=500),  # oldest live
        Reservation(1, until=120.0, baseline=0),  # other GPU
    ]

    assert effective_used(reading, reservations, now=100.0, estimate=4000) == 8500
    assert effective_used(_gpu(0, used=9000), reservations, now=100.0, estimate=4000) == 9000
    assert effective_used(reading, reservations, now=130.0, estimate=4000) == 5000


def test_planned_slots_reserve_memory_within_one_round():
    # Limit 8000 MiB, estimate 4000 MiB per starting run.
    assert plan_slots([_gpu(0, used=3999)], **_limits(max_per_gpu=2)) == [0, 0]
    assert plan_slots([_gpu(0, used=4000)], **_limits(max_per_gpu=2)) == [0]


def test_no_reservations_when_startup_time_is_zero():
    plan = plan_slots([_gpu(0, used=4000)], **_limits(max_per_gpu=2), startup_time=0)

    assert plan == [0, 0]


def test_max_per_gpu_below_one_is_rejected():
    with pytest.raises(ValueError):
        plan_slots([_gpu(0)], **_limits(max_per_gpu=0))


def test_gputil_import_failure_explains_setuptools(fake_gpus, monkeypatch):
    monkeypatch.setitem(sys.modules, "GPUtil", None)  # makes `import GPUtil` fail

    with pytest.raises(GpuQueryError, match="pip install setuptools"):
        GpuMonitor(None).poll()
