"""The local executor driven directly, with tiny Python child scripts.

GPU tests go through the fake ``nvidia-smi`` and the real GPUtil, so the real
monitor and planner decide where runs go.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from hpsearch.errors import GpuQueryError, SubmissionError, UsageError
from hpsearch.executors.base import Wakeup
from hpsearch.executors.local import LocalExecutor
from hpsearch.gpu.monitor import BackgroundPoll, GpuMonitor, GpuReading
from hpsearch.runs import JobHandle, LaunchSpec, Outcome

# Child that records where and when it ran: job.py RECORD SECONDS [BARRIER_DIR N].
# With a barrier it first waits (5 s at most) until N runs have started, so
# that slow interpreter start-ups on a busy machine cannot hide concurrency.
JOB = """
import json, os, sys, time
if len(sys.argv) > 3:
    barrier, n = sys.argv[3], int(sys.argv[4])
    open(os.path.join(barrier, str(os.getpid())), "w").close()
    deadline = time.monotonic() + 120
    while len(os.listdir(barrier)) < n and time.monotonic() < deadline:
        time.sleep(0.01)
start = time.monotonic()
time.sleep(float(sys.argv[2]))
record = {"start": start, "end": time.monotonic(),
          "gpu": os.environ.get("CUDA_VISIBLE_DEVICES"),
          "order": os.environ.get("CUDA_DEVICE_ORDER"),
          "key": os.environ.get("HPSEARCH_RUN_KEY")}
with open(sys.argv[1], "w") as f:
    json.dump(record, f)
"""

# Child that starts a grandchild (optionally in its own session), writes both
# pids and waits: tree.py PIDFILE NEW_SESSION IGNORE_TERM
TREE = """
import os, signal, subprocess, sys, time
if sys.argv[3] == "1":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
grandchild = subprocess.Popen(["sleep", "60"], start_new_session=sys.argv[2] == "1")
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(f"{os.getpid()} {grandchild.pid}")
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(60)
"""


@pytest.fixture
def wakeup():
    w = Wakeup()
    yield w
    w.close()


@pytest.fixture
def make_executor(wakeup):
    """Build executors that are always shut down, so no test leaks a process."""
    made: list[LocalExecutor] = []

    def make(**options) -> LocalExecutor:
        options.setdefault("gpu_monitor", None)
        options.setdefault("kill_grace", 2.0)
        executor = LocalExecutor(wakeup, **options)
        made.append(executor)
        return executor

    yield make
    for executor in made:
        executor.shutdown(cancel=True)


def spec_for(tmp_path: Path, name: str, argv, *, timeout: float | None = None, env=None) -> LaunchSpec:
    run_dir = tmp_path / name
    run_dir.mkdir(parents=True, exist_ok=True)
    return LaunchSpec(
        key=f"key-{name}", name=name, argv=tuple(str(a) for a in argv), cwd=tmp_path,
        run_dir=run_dir, env=dict(env or {}), timeout=timeout,
    )


def script(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def drive(executor: LocalExecutor, wakeup: Wakeup, specs, *, limit: float = 30.0) -> dict[str, Outcome]:
    """A minimal driver loop: submit while there is capacity, sleep on the wakeup."""
    pending = list(specs)
    outcomes: dict[str, Outcome] = {}
    deadline = time.monotonic() + limit
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"runs did not finish within {limit}s"
        for outcome in executor.poll():
            outcomes[outcome.key] = outcome
        if not pending and not executor.in_flight():
            return outcomes
        if pending:
            for _ in range(min(executor.capacity(), len(pending))):
                executor.submit(pending.pop(0))
        pause = executor.next_event_in()
        wakeup.wait(remaining if pause is None else min(pause, remaining))


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def join_gpu_polls(timeout: float = 10.0) -> None:
    """Wait until no background GPU poll is left running, so that the fake's
    call log holds every call that was started."""
    for thread in threading.enumerate():
        if thread.name == BackgroundPoll.THREAD_NAME:
            thread.join(timeout)
            assert not thread.is_alive(), "a GPU poll did not finish"


class GatedMonitor(GpuMonitor):
    """Answers ``readings`` only once the test opens ``gate``: a poll that is
    provably still in flight, with no timing involved."""

    def __init__(self, readings: list[GpuReading]) -> None:
        super().__init__(None)
        self.readings = readings
        self.gate = threading.Event()
        self.entered = threading.Event()

    def poll(self) -> list[GpuReading]:
        self.entered.set()
        assert self.gate.wait(30), "the test never opened the gate"
        return list(self.readings)


class BrokenMonitor(GpuMonitor):
    """A poll with a bug in it (not a driver failure)."""

    def poll(self) -> list[GpuReading]:
        raise RuntimeError("a bug in the poll")


IDLE_GPU = GpuReading(id=0, memory_used=0, memory_total=16000, load=0.0)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def read_pids(path: Path) -> list[int]:
    wait_until(path.exists)
    return [int(p) for p in path.read_text().split()]


def max_overlap(records, gpu=None) -> int:
    events = sorted(
        [(r["start"], 1) for r in records if gpu is None or r["gpu"] == gpu]
        + [(r["end"], -1) for r in records if gpu is None or r["gpu"] == gpu]
    )  # at equal times the end (-1) sorts first
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


# ---- CPU mode basics


def test_exit_codes_and_signals_are_reported(tmp_path, make_executor, wakeup):
    executor = make_executor(num_jobs=3)
    specs = [
        spec_for(tmp_path, "ok", [sys.executable, "-c", "pass"]),
        spec_for(tmp_path, "three", [sys.executable, "-c", "raise SystemExit(3)"]),
        spec_for(tmp_path, "killed", [sys.executable, "-c", "import os; os.kill(os.getpid(), 9)"]),
    ]

    outcomes = drive(executor, wakeup, specs)

    assert outcomes["key-ok"] == Outcome("key-ok", exit_code=0, backend_state=outcomes["key-ok"].backend_state)
    assert (outcomes["key-three"].exit_code, outcomes["key-three"].signal) == (3, None)
    assert (outcomes["key-killed"].exit_code, outcomes["key-killed"].signal) == (None, 9)
    assert "SIGKILL" in outcomes["key-killed"].backend_state
    assert not any(o.timed_out or o.interrupted for o in outcomes.values())
    assert executor.in_flight() == 0


def test_output_streams_into_the_run_folder(tmp_path, make_executor, wakeup, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    code = (
        "import os, sys; print('to stdout'); print('to stderr', file=sys.stderr);"
        "print(os.environ['HPSEARCH_RUN_KEY'], os.environ['EXTRA'], os.environ['CUDA_VISIBLE_DEVICES'])"
    )
    spec = spec_for(tmp_path, "out", [sys.executable, "-c", code], env={"EXTRA": "x y"})
    executor = make_executor()

    handle = executor.submit(spec)
    drive(executor, wakeup, [])

    assert (handle.backend, handle.where, handle.extra["gpu"]) == ("local", "cpu", None)
    assert spec.stdout_path.read_text() == "to stdout\nkey-out x y 7\n"
    assert spec.stderr_path.read_text() == "to stderr\n"


def test_missing_program_or_folder_is_a_submission_error(tmp_path, make_executor):
    executor = make_executor()

    with pytest.raises(SubmissionError, match="program '/no/such/program' not found"):
        executor.submit(spec_for(tmp_path, "missing", ["/no/such/program", "--x=1"]))
    gone = LaunchSpec(key="k", name="gone", argv=(sys.executable,), cwd=tmp_path / "nope", run_dir=tmp_path)
    with pytest.raises(SubmissionError, match="working directory .*nope does not exist"):
        executor.submit(gone)
    assert executor.in_flight() == 0
    assert executor.capacity() == 1


def test_cpu_mode_runs_num_jobs_at_a_time(tmp_path, make_executor, wakeup):
    job = script(tmp_path, "job.py", JOB)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    specs = [spec_for(tmp_path, f"r{i}", [sys.executable, job, tmp_path / f"rec{i}.json", 0.3, barrier, 3]) for i in range(6)]
    executor = make_executor(num_jobs=3)

    outcomes = drive(executor, wakeup, specs)

    assert all(o.exit_code == 0 for o in outcomes.values()) and len(outcomes) == 6
    records = [json.loads((tmp_path / f"rec{i}.json").read_text()) for i in range(6)]
    assert max_overlap(records) == 3
    assert {r["order"] for r in records} == {None}


def test_bad_limits_are_usage_errors(wakeup):
    with pytest.raises(UsageError, match="--max_num_jobs_per_gpu must be at least 1, got 0"):
        LocalExecutor(wakeup, gpu_monitor=None, max_per_gpu=0)
    with pytest.raises(UsageError, match="--sim_startup_time"):
        LocalExecutor(wakeup, gpu_monitor=None, startup_time=-1)
    with pytest.raises(UsageError, match="--allowed_memory"):
        LocalExecutor(wakeup, gpu_monitor=None, allowed_memory=0)


# ---- GPU mode


def test_four_gpus_two_slots_reach_concurrency_eight(tmp_path, fake_gpus, make_executor, wakeup):
    fake_gpus.configure(4, per_run_memory=3000)
    job = script(tmp_path, "job.py", JOB)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    specs = [
        spec_for(tmp_path, f"r{i:02d}", [sys.executable, job, tmp_path / f"rec{i}.json", 0.5, barrier, 8])
        for i in range(40)
    ]
    executor = make_executor(
        gpu_monitor=GpuMonitor(None), max_per_gpu=2, startup_time=30, gpu_poll_interval=0.05
    )

    outcomes = drive(executor, wakeup, specs, limit=300)

    assert len(outcomes) == 40 and all(o.exit_code == 0 for o in outcomes.values())
    records = [json.loads((tmp_path / f"rec{i}.json").read_text()) for i in range(40)]
    assert max_overlap(records) == 8
    assert {r["gpu"] for r in records} == {"0", "1", "2", "3"}
    assert all(max_overlap(records, gpu) <= 2 for gpu in "0123")
    assert {r["order"] for r in records} == {"PCI_BUS_ID"}
    assert sorted(r["key"] for r in records) == sorted(s.key for s in specs)


def test_gpu_over_allowed_memory_gets_no_run(tmp_path, fake_gpus, make_executor, wakeup):
    fake_gpus.configure(4)
    fake_gpus.set_gpu(2, memory_used=8000)  # exactly at --allowed_memory=0.5
    job = script(tmp_path, "job.py", JOB)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    specs = [
        spec_for(tmp_path, f"r{i:02d}", [sys.executable, job, tmp_path / f"rec{i}.json", 0.2, barrier, 6])
        for i in range(12)
    ]
    executor = make_executor(gpu_monitor=GpuMonitor(None), max_per_gpu=2, startup_time=0.5, gpu_poll_interval=0.05)

    outcomes = drive(executor, wakeup, specs)

    assert all(o.exit_code == 0 for o in outcomes.values())
    records = [json.loads((tmp_path / f"rec{i}.json").read_text()) for i in range(12)]
    assert {r["gpu"] for r in records} == {"0", "1", "3"}
    assert max_overlap(records) == 6


def test_one_gpu_poll_per_scheduling_round(tmp_path, fake_gpus, make_executor, wakeup):
    fake_gpus.configure(4)
    now = [100.0]
    executor = make_executor(
        gpu_monitor=GpuMonitor(None), max_per_gpu=2, gpu_poll_interval=1.0, clock=lambda: now[0]
    )
    sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]

    assert executor.capacity() == 8
    handles = [executor.submit(spec_for(tmp_path, f"r{i}", sleeper)) for i in range(7)]  # one slot left
    assert fake_gpus.gpu_queries() == 1
    assert executor.capacity() == 1  # within the poll interval: the snapshot is reused
    assert fake_gpus.gpu_queries() == 1
    now[0] += 1.0
    assert executor.capacity() == 1  # the readings are stale: a poll starts in the background
    assert wakeup.wait(10)  # its answer wakes the driver
    for _ in range(3):  # the answer is taken; the next poll is due only one interval later
        assert executor.capacity() == 1
    join_gpu_polls()
    assert fake_gpus.gpu_queries() == 2
    assert [h.where for h in handles] == ["gpu 0", "gpu 1", "gpu 2", "gpu 3", "gpu 0", "gpu 1", "gpu 2"]
    assert handles[0].extra == {"gpu": 0, "create_time": psutil.Process(int(handles[0].job_id)).create_time()}


def test_no_gpu_poll_while_every_slot_is_ours(tmp_path, fake_gpus, make_executor):
    fake_gpus.configure(2)
    now = [0.0]
    executor = make_executor(gpu_monitor=GpuMonitor(None), max_per_gpu=1, startup_time=0, gpu_poll_interval=1.0,
                             clock=lambda: now[0])
    assert executor.capacity() == 2
    for name in "ab":
        executor.submit(spec_for(tmp_path, name, [sys.executable, "-c", "import time; time.sleep(30)"]))

    for _ in range(5):  # the driver keeps asking (runs are queued), the readings are stale every time
        now[0] += 1.0
        assert executor.capacity() == 0
        assert executor.next_event_in() is None  # only a run's end can free a slot

    join_gpu_polls()
    assert fake_gpus.gpu_queries() == 1  # the first poll only: no reading could have freed a slot


def test_startup_reservation_holds_memory_until_it_expires_or_the_run_ends(tmp_path, fake_gpus, make_executor, wakeup):
    # 4500 MiB in use elsewhere; limit 8000 MiB; a starting run is assumed to take 4000.
    fake_gpus.configure(1, memory_used=4500)
    now = [0.0]
    executor = make_executor(
        gpu_monitor=GpuMonitor(None), max_per_gpu=2, startup_time=10, gpu_poll_interval=20, clock=lambda: now[0]
    )
    assert executor.capacity() == 1
    executor.submit(spec_for(tmp_path, "first", [sys.executable, "-c", "import time; time.sleep(30)"]))

    # The run never shows up in the readings, yet its reservation blocks the GPU ...
    assert executor.capacity() == 0
    assert executor.next_event_in() == 10  # wake up when the reservation lapses
    now[0] = 10.0  # ... until it expires.
    assert executor.capacity() == 1

    # A finished run takes its reservation with it.
    executor.submit(spec_for(tmp_path, "second", [sys.executable, "-c", "pass"]))
    assert executor.capacity() == 0
    outcomes = []
    wait_until(lambda: bool(outcomes.extend(executor.poll()) or outcomes))
    assert [o.key for o in outcomes] == ["key-second"]
    assert executor.capacity() == 1


def test_gpu_run_environment(tmp_path, fake_gpus, make_executor, wakeup):
    fake_gpus.configure(2)
    fake_gpus.set_gpu(0, load=0.9)
    job = script(tmp_path, "job.py", JOB)
    executor = make_executor(gpu_monitor=GpuMonitor([0, 1]), startup_time=0)

    assert executor.capacity() == 1
    handle = executor.submit(spec_for(tmp_path, "env", [sys.executable, job, tmp_path / "rec.json", 0]))
    drive(executor, wakeup, [])

    record = json.loads((tmp_path / "rec.json").read_text())
    assert (record["gpu"], record["order"], record["key"]) == ("1", "PCI_BUS_ID", "key-env")
    assert handle.where == "gpu 1" and handle.extra["gpu"] == 1
    assert executor.describe() == "GPUs 0,1 x 1 runs"


# ---- stopping runs


def test_timeout_kills_the_whole_tree(tmp_path, make_executor, wakeup):
    tree = script(tmp_path, "tree.py", TREE)
    spec = spec_for(tmp_path, "slow", [sys.executable, tree, tmp_path / "pids", 0, 0], timeout=0.5)
    executor = make_executor()

    started = time.monotonic()
    outcomes = drive(executor, wakeup, [spec])

    child, grandchild = read_pids(tmp_path / "pids")
    outcome = outcomes[spec.key]
    assert outcome.timed_out and not outcome.interrupted
    assert (outcome.exit_code, outcome.signal) == (None, signal.SIGTERM)
    assert "timed out after 0.5s" in outcome.backend_state
    assert not alive(child) and not alive(grandchild)
    assert time.monotonic() - started < 30  # the limit ended it, not the run's own 60 s


def test_timeout_escalates_to_sigkill(tmp_path, make_executor, wakeup):
    tree = script(tmp_path, "tree.py", TREE)
    spec = spec_for(tmp_path, "stubborn", [sys.executable, tree, tmp_path / "pids", 1, 1], timeout=0.3)
    executor = make_executor(kill_grace=0.3)

    outcome = drive(executor, wakeup, [spec])[spec.key]

    child, grandchild = read_pids(tmp_path / "pids")
    assert outcome.timed_out and outcome.signal == signal.SIGKILL
    assert not alive(child) and not alive(grandchild)


def test_shutdown_kills_every_tree(tmp_path, make_executor):
    tree = script(tmp_path, "tree.py", TREE)
    executor = make_executor(num_jobs=2)
    specs = [
        spec_for(tmp_path, "plain", [sys.executable, tree, tmp_path / "pids1", 0, 0]),
        spec_for(tmp_path, "own-session", [sys.executable, tree, tmp_path / "pids2", 1, 0]),
    ]
    for spec in specs:
        executor.submit(spec)
    pids = read_pids(tmp_path / "pids1") + read_pids(tmp_path / "pids2")
    assert all(alive(pid) for pid in pids)

    outcomes = executor.shutdown(cancel=False)

    assert sorted(o.key for o in outcomes) == sorted(s.key for s in specs)
    assert all(o.interrupted and not o.timed_out for o in outcomes)
    assert [pid for pid in pids if alive(pid)] == []
    assert executor.in_flight() == 0


def test_shutdown_reports_runs_that_already_ended_normally(tmp_path, make_executor, wakeup):
    executor = make_executor()
    executor.submit(spec_for(tmp_path, "quick", [sys.executable, "-c", "raise SystemExit(4)"]))
    assert wakeup.wait(10)  # the run has ended and is waiting to be polled

    (outcome,) = executor.shutdown(cancel=True)

    assert (outcome.exit_code, outcome.interrupted) == (4, False)


def test_kill_now_does_not_wait_for_sigterm(tmp_path, make_executor):
    tree = script(tmp_path, "tree.py", TREE)
    executor = make_executor(kill_grace=30)
    executor.submit(spec_for(tmp_path, "stubborn", [sys.executable, tree, tmp_path / "pids", 0, 1]))
    pids = read_pids(tmp_path / "pids")

    executor.kill_now()

    wait_until(lambda: not any(alive(pid) for pid in pids), timeout=30)
    (outcome,) = executor.shutdown(cancel=True)
    assert outcome.signal == signal.SIGKILL


def test_leftovers_of_a_finished_run_are_stopped(tmp_path, make_executor, wakeup):
    # The run exits at once but leaves a sleeping child in its session.
    code = "import subprocess; print(subprocess.Popen(['sleep', '60']).pid)"
    spec = spec_for(tmp_path, "leaky", [sys.executable, "-c", code])

    outcome = drive(make_executor(), wakeup, [spec])[spec.key]

    assert outcome.exit_code == 0
    assert not alive(int(spec.stdout_path.read_text()))


# ---- adopting runs of a dead driver


def start_orphan(tmp_path: Path, key: str, code: str) -> int:
    """Start ``code`` as a session leader whose parent exits at once, like a
    run whose driver died; returns its pid."""
    launcher = (
        "import subprocess, sys, os\n"
        "env = dict(os.environ, HPSEARCH_RUN_KEY=sys.argv[1])\n"
        "p = subprocess.Popen([sys.executable, '-c', sys.argv[2]], env=env, start_new_session=True,\n"
        "                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print(p.pid)\n"
    )
    out = subprocess.run([sys.executable, "-c", launcher, key, code], capture_output=True, text=True, check=True)
    return int(out.stdout)


def test_adopt_kills_orphans_and_spares_reused_pids(tmp_path, make_executor):
    sleeper = "import time; time.sleep(60)"
    orphan = start_orphan(tmp_path, "key-orphan", sleeper)
    wait_until(lambda: alive(orphan))
    # Its leader died already; only a child in its session is left.
    pidfile, go = tmp_path / "left", tmp_path / "go"
    leader_code = (
        "import os, subprocess, time; p = subprocess.Popen(['sleep', '60'])\n"
        f"open({str(pidfile)!r} + '.tmp', 'w').write(str(p.pid)); os.replace({str(pidfile)!r} + '.tmp', {str(pidfile)!r})\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.01)\n"
    )
    headless = start_orphan(tmp_path, "key-headless", leader_code)
    (left_behind,) = read_pids(pidfile)
    headless_created = psutil.Process(headless).create_time()
    go.touch()
    wait_until(lambda: not alive(headless))
    unrelated = subprocess.Popen([sys.executable, "-c", sleeper], start_new_session=True)
    created = {pid: psutil.Process(pid).create_time() for pid in (orphan, unrelated.pid)}
    handles = [
        JobHandle("key-orphan", "local", str(orphan), "gpu 0", {"create_time": created[orphan], "gpu": 0}),
        JobHandle("key-headless", "local", str(headless), "cpu", {"create_time": headless_created, "gpu": None}),
        JobHandle("key-reused", "local", str(unrelated.pid), "cpu", {"create_time": created[unrelated.pid] - 50}),
    ]
    try:
        outcomes = {o.key: o for o in make_executor().adopt(handles)}

        assert all(o.interrupted and o.exit_code is None for o in outcomes.values())
        assert outcomes["key-orphan"].backend_state == "orphaned run of a previous driver killed"
        assert outcomes["key-headless"].backend_state == "orphaned run of a previous driver killed"
        assert "left alone" in outcomes["key-reused"].backend_state
        assert not alive(orphan) and not alive(left_behind)
        assert alive(unrelated.pid)
    finally:
        unrelated.kill()
        unrelated.wait()


def test_runs_die_with_a_killed_driver(tmp_path):
    driver = script(tmp_path, "driver.py", f"""
        import sys, time
        from pathlib import Path
        from hpsearch.executors.base import Wakeup
        from hpsearch.runs import LaunchSpec
        from hpsearch.executors.local import LocalExecutor
        run_dir = Path({str(tmp_path)!r}) / "run"
        run_dir.mkdir()
        spec = LaunchSpec(key="k", name="run", argv=(sys.executable, "-c", "import time; time.sleep(60)"),
                          cwd=run_dir, run_dir=run_dir)
        handle = LocalExecutor(Wakeup(), gpu_monitor=None).submit(spec)
        # The parent-death signal is armed by setpriv just before it execs the run; a driver
        # killed in that millisecond leaves an orphan that only a resume cleans up.
        import psutil
        run = psutil.Process(int(handle.job_id))
        while "setpriv" in (run.cmdline() or ["setpriv"])[0]:  # empty for an instant during exec
            time.sleep(0.001)
        print(handle.job_id, flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, driver], stdout=subprocess.PIPE, text=True)
    try:
        run_pid = int(proc.stdout.readline())
        assert alive(run_pid)
        proc.kill()
        proc.wait()
        wait_until(lambda: not alive(run_pid), timeout=30)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


# ---- background GPU polls (the timing rules themselves: tests/test_gpu_planner.py)


def run_on_gpu_0_with_gpu_1_taken(tmp_path, fake_gpus, make_executor):
    """Two GPUs, one slot each, on a fake clock: our run holds GPU 0 and GPU 1
    is over --allowed_memory because of someone else, so the executor waits
    for GPU 1 by polling. The first poll is waited for: nothing to plan with before it."""
    fake_gpus.configure(2)
    fake_gpus.set_gpu(1, memory_used=15000)
    now = [0.0]
    executor = make_executor(gpu_monitor=GpuMonitor(None), max_per_gpu=1, startup_time=0, gpu_poll_interval=1.0,
                             clock=lambda: now[0])
    assert executor.capacity() == 1
    executor.submit(spec_for(tmp_path, "a", [sys.executable, "-c", "import time; time.sleep(30)"]))
    return executor, now


def test_a_slow_gpu_poll_never_holds_up_the_driver(tmp_path, fake_gpus, make_executor, wakeup):
    executor, now = run_on_gpu_0_with_gpu_1_taken(tmp_path, fake_gpus, make_executor)
    delay = 3.0
    fake_gpus.set(delay=delay)
    fake_gpus.set_gpu(1, memory_used=0)  # GPU 1 is freed; only the next poll can tell
    now[0] = 1.0
    wakeup.wait(0)

    started = time.monotonic()
    assert executor.capacity() == 0  # planned from the last readings at once ...
    assert executor.next_event_in() is None  # ... with no timer while the answer is pending: it wakes us
    assert executor.capacity() == 0  # one poll in flight, not two
    woken_early = wakeup.wait(0)
    assert time.monotonic() - started < delay / 3
    assert not woken_early

    assert wakeup.wait(10)  # the answer wakes the driver
    assert time.monotonic() - started >= delay
    assert executor.capacity() == 1  # and the freed GPU is seen
    join_gpu_polls()
    assert fake_gpus.gpu_queries() == 2


def test_only_a_search_refused_a_slot_is_woken_for_the_gpus(tmp_path, fake_gpus, make_executor):
    fake_gpus.configure(2)
    fake_gpus.set_gpu(1, memory_used=15000)
    now = [0.0]
    executor = make_executor(gpu_monitor=GpuMonitor(None), max_per_gpu=1, startup_time=0, gpu_poll_interval=1.0,
                             clock=lambda: now[0])

    assert executor.capacity() == 1
    assert executor.next_event_in() is None  # offered a slot: nothing to wait for from the GPUs
    executor.submit(spec_for(tmp_path, "a", [sys.executable, "-c", "import time; time.sleep(30)"]))
    assert executor.capacity() == 0
    assert executor.next_event_in() == 1.0  # refused, with GPU 1 held by someone else: ask at the next poll


def test_a_slot_freed_after_a_quiet_spell_waits_for_fresh_readings(tmp_path, fake_gpus, make_executor, wakeup):
    fake_gpus.configure(1)
    now = [0.0]
    executor = make_executor(gpu_monitor=GpuMonitor(None), max_per_gpu=1, startup_time=0, gpu_poll_interval=1.0,
                             clock=lambda: now[0])
    go = tmp_path / "go"
    waits = f"import os, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.01)\n"
    assert executor.capacity() == 1
    executor.submit(spec_for(tmp_path, "a", [sys.executable, "-c", waits]))
    fake_gpus.set_gpu(0, memory_used=15000)  # meanwhile someone else fills the GPU
    now[0] = 10.0  # our only slot was busy for 10 s, so nothing was polled
    assert executor.capacity() == 0
    go.touch()
    assert wakeup.wait(10)
    assert [o.exit_code for o in executor.poll()] == [0]

    assert executor.capacity() == 0  # the 10 s old readings show a free GPU; the refresh they need is awaited
    assert executor.next_event_in() is None  # its answer wakes the driver
    assert wakeup.wait(10)
    assert executor.capacity() == 0  # the fresh readings: the GPU is full
    assert fake_gpus.gpu_queries() == 2

    fake_gpus.set_gpu(0, memory_used=0)
    now[0] = 11.0  # polled one interval ago: those readings are planned with while the next poll runs
    assert executor.capacity() == 0
    assert wakeup.wait(10)
    assert executor.capacity() == 1


def test_gpu_poll_failures_pause_runs_until_the_patience_runs_out(tmp_path, fake_gpus, make_executor, wakeup):
    fake_gpus.configure(1)
    now = [0.0]
    executor = make_executor(gpu_monitor=GpuMonitor(None), max_per_gpu=1, startup_time=0, gpu_poll_interval=1.0,
                             gpu_error_patience=5.0, clock=lambda: now[0])
    assert executor.capacity() == 1
    fake_gpus.set(fail=True)
    now[0] = 1.0
    assert executor.capacity() == 1  # starts the failing poll; plans with the last readings meanwhile
    assert wakeup.wait(10)
    assert executor.capacity() == 0  # no new runs while the GPUs cannot be read
    assert executor.next_event_in() == 1.0  # ... and the next poll comes one interval after the failed one
    now[0] = 7.0  # past the patience since the last good poll (at 0)
    assert executor.capacity() == 0
    assert wakeup.wait(10)
    with pytest.raises(GpuQueryError, match="nvidia-smi"):
        executor.capacity()  # raised in the caller's thread
    assert fake_gpus.gpu_queries() == 3


def test_a_bug_in_the_background_poll_is_raised_by_capacity(make_executor, wakeup):
    now = [0.0]
    executor = make_executor(gpu_monitor=BrokenMonitor(None), first_readings=[IDLE_GPU], gpu_poll_interval=1.0,
                             clock=lambda: now[0])
    now[0] = 1.0
    assert executor.capacity() == 1
    assert wakeup.wait(10)  # a poll that died with its thread would never wake the driver
    with pytest.raises(RuntimeError, match="a bug in the poll"):
        executor.capacity()


def test_shutdown_does_not_wait_for_a_gpu_poll(tmp_path, make_executor, wakeup):
    monitor = GatedMonitor([IDLE_GPU])
    now = [0.0]
    executor = make_executor(gpu_monitor=monitor, first_readings=[IDLE_GPU], max_per_gpu=2, startup_time=0,
                             gpu_poll_interval=1.0, clock=lambda: now[0])
    executor.submit(spec_for(tmp_path, "a", [sys.executable, "-c", "import time; time.sleep(30)"]))
    now[0] = 1.0
    assert executor.capacity() == 1
    assert monitor.entered.wait(10)  # a poll is in flight, held by the gate for up to 30 s

    started = time.monotonic()
    (outcome,) = executor.shutdown(cancel=True)
    assert time.monotonic() - started < 10  # the run's stop, not the poll
    assert outcome.interrupted
    wakeup.wait(0)  # the run's end may have woken it before the shutdown began

    monitor.gate.set()
    join_gpu_polls()
    assert not wakeup.wait(0)  # a late answer does not touch the wakeup the driver may have closed
