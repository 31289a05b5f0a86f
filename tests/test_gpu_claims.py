"""GPU start-up reservations shared across processes (hpsearch/gpu/claims.py).

Two real foreground searches on the same fake GPUs (the real GPUtil, the fake
``nvidia-smi``) never start runs on the same GPU within the reservation
window when they share a claims folder, and do when they do not. Claims that
are stale, expired, forged, garbage or that name a huge expiry are ignored or
capped; an unsafe folder is not used.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from hpsearch.gpu import claims as claims_module
from hpsearch.gpu.claims import MAX_CLAIM_SECONDS, ClaimBoard, open_folder
from hpsearch.gpu.monitor import GpuReading, GpuSnapshot
from hpsearch.gpu.planner import SlotLimits, SlotPlanner
from tests.helpers import hpsearch_cmd, run_folders, write_project, wait_until

DEADLINE = 90.0


# --------------------------------------------------------------------------- two searches on the same GPUs


def start_search(tmp_path: Path, name: str, claims_dir: Path) -> tuple[subprocess.Popen, Path, Path]:
    release = tmp_path / f"release_{name}"
    project = write_project(tmp_path / f"p_{name}", {"mode": ["ok"], "wait_for": [str(release)], "i": [1, 2]})
    out = tmp_path / f"search_{name}"
    env = dict(os.environ, HPSEARCH_CLAIMS_DIR=str(claims_dir))
    args = ["--grid_module=grid_cfg", f"--out_dir={out}", "--force_out_dir", "--visible_gpus=0,1,2,3",
            "--max_num_jobs_per_gpu=1", "--allowed_memory=0.5", "--sim_startup_time=60", "--gpu_poll_interval=0.2"]
    driver = subprocess.Popen(hpsearch_cmd(*args), cwd=project, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    return driver, out, release


def started(out: Path) -> int:
    return len(list(out.glob("sim_*/argv.json"))) if out.is_dir() else 0


def gpus_used(out: Path) -> list[str]:
    return sorted(json.loads((folder / "trace.json").read_text())["gpu"] for folder in run_folders(out))


def two_searches(tmp_path: Path, claims_a: Path, claims_b: Path) -> tuple[list[str], list[str]]:
    """Search A starts its two runs; B starts while A's are still within their
    start-up window (their memory never shows: per_run_memory is 0)."""
    a, out_a, release_a = start_search(tmp_path, "a", claims_a)
    b = None
    try:
        wait_until(lambda: started(out_a) == 2, "A's runs started")
        b, out_b, release_b = start_search(tmp_path, "b", claims_b)
        wait_until(lambda: started(out_b) == 2, "B's runs started")
        release_a.touch()
        release_b.touch()
        for driver in (a, b):
            _, stderr = driver.communicate(timeout=DEADLINE)
            assert driver.returncode == 0, stderr
    finally:
        for driver in (a, b):
            if driver is not None and driver.poll() is None:
                driver.kill()
    return gpus_used(out_a), gpus_used(out_b)


def test_two_searches_sharing_claims_never_start_on_the_same_gpu(tmp_path, fake_gpus):
    shared = tmp_path / "claims"
    gpus_a, gpus_b = two_searches(tmp_path, shared, shared)
    assert len(gpus_a) == len(gpus_b) == 2
    assert not set(gpus_a) & set(gpus_b), (gpus_a, gpus_b)
    assert [p.name for p in shared.iterdir() if p.name.endswith(".claim")] == []  # each removed its claims


def test_without_shared_claims_the_same_two_searches_collide(tmp_path, fake_gpus):
    gpus_a, gpus_b = two_searches(tmp_path, tmp_path / "claims_a", tmp_path / "claims_b")
    assert set(gpus_a) & set(gpus_b), (gpus_a, gpus_b)


def test_the_claim_of_a_detached_run_outlives_its_killed_driver_until_the_run_ends(tmp_path, fake_gpus):
    """A detached run (a service driver's kind) takes the only GPU; its driver is killed -9 within the
    start-up window (the run's memory never shows: per_run_memory is 0). Another search, planning with the
    same claims folder through the real GPUtil, gets that GPU only after the run has ended: the claim belongs
    to the run's wrapper process, not to the dead driver."""
    fake_gpus.configure(1)
    shared = tmp_path / "claims"
    gate = tmp_path / "release_a"
    common = ["--force_out_dir", "--visible_gpus=0", "--max_num_jobs_per_gpu=1", "--allowed_memory=0.5",
              "--sim_startup_time=120", "--gpu_poll_interval=0.2"]
    env = dict(os.environ, HPSEARCH_CLAIMS_DIR=str(shared))
    project_a = write_project(tmp_path / "p_a", {"mode": ["ok"], "wait_for": [str(gate)], "i": [1]})
    project_b = write_project(tmp_path / "p_b", {"mode": ["ok"], "i": [2]})
    out_a, out_b = tmp_path / "search_a", tmp_path / "search_b"
    a = subprocess.Popen(hpsearch_cmd("--grid_module=grid_cfg", f"--out_dir={out_a}", "--detached_runs", *common),
                         cwd=project_a, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    b = None
    wrapper = None
    try:
        wait_until(lambda: started(out_a) == 1, "A's run started")
        wrapper = psutil.Process(int(json.loads(wait_until(lambda: _job_file(out_a)))["job_id"]))
        claims = wait_until(lambda: [json.loads(p.read_text()) for p in shared.glob("*.claim")], "A's claim")
        assert [(c["pid"], c["gpu"]) for c in claims] == [(wrapper.pid, 0)]
        a.kill()  # kill -9 of the driver; its run goes on
        a.wait(timeout=30)
        assert wrapper.is_running() and wrapper.status() != psutil.STATUS_ZOMBIE
        calls = len(fake_gpus.calls_log.read_text().splitlines())
        b = subprocess.Popen(hpsearch_cmd("--grid_module=grid_cfg", f"--out_dir={out_b}", *common), cwd=project_b,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # B polls the GPU again and again and is refused each time (a condition, not a sleep)
        wait_until(lambda: len(fake_gpus.calls_log.read_text().splitlines()) >= calls + 8, "B to plan a few rounds")
        assert started(out_b) == 0, "B got the GPU of A's live run"
        gate.touch()
        _, stderr = b.communicate(timeout=DEADLINE)
        assert b.returncode == 0, stderr
    finally:
        gate.touch()
        for driver in (a, b):
            if driver is not None and driver.poll() is None:
                driver.kill()
    run_a = json.loads(next(out_a.glob("sim_*/trace.json")).read_text())
    run_b = json.loads(next(out_b.glob("sim_*/trace.json")).read_text())
    assert run_a["gpu"] == run_b["gpu"] == "0"
    assert run_b["start"] >= run_a["end"], (run_a, run_b)
    assert not list(shared.glob("*.claim"))  # B removed the lapsed claim of A's ended run, and its own


def _job_file(out: Path) -> str | None:
    found = list(out.glob("sim_*/hpsearch_job.json"))
    return found[0].read_text() if found else None


# --------------------------------------------------------------------------- which claims count


@pytest.fixture
def board(tmp_path):
    found = ClaimBoard(open_folder(tmp_path / "claims"))
    yield found
    found.close()


@pytest.fixture
def other_process():
    """A live process of ours standing for another hpsearch process."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield psutil.Process(proc.pid)
    proc.kill()
    proc.wait()


def plant(folder: Path, name: str, process: psutil.Process | None = None, **fields) -> Path:
    now = time.time()
    claim = {"version": 1, "gpu": 0, "uuid": None, "baseline": 0.0, "reserved": 8000.0, "written": now,
             "expires": now + 60, "pid": process.pid if process else 1,
             "pid_started": process.create_time() if process else 0.0, "uid": os.getuid(), **fields}
    path = folder / name
    path.write_text(json.dumps(claim))
    return path


def dead_process() -> psutil.Process:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    process = psutil.Process(proc.pid)
    process.create_time()  # cached before it is gone
    proc.wait()
    return process


def test_only_valid_claims_of_live_processes_count(tmp_path, board, other_process):
    folder = tmp_path / "claims"
    plant(folder, "valid.claim", other_process, gpu=1)
    plant(folder, "stale.claim", dead_process(), gpu=2)
    plant(folder, "expired.claim", other_process, gpu=2, expires=time.time() - 1)
    plant(folder, "reused-pid.claim", other_process, gpu=2, pid_started=other_process.create_time() - 100)
    plant(folder, "other-uid.claim", other_process, gpu=2, uid=os.getuid() + 4242)
    plant(folder, "future.claim", other_process, gpu=2, written=time.time() + 10**6, expires=time.time() + 10**7)
    plant(folder, "bad-type.claim", other_process, gpu="2")
    plant(folder, "nan.claim", other_process, gpu=2).write_text(
        (folder / "nan.claim").read_text().replace('"baseline": 0.0', '"baseline": NaN'))
    (folder / "garbage.claim").write_bytes(b"\x00\xff not json")
    (folder / "huge.claim").write_bytes(b" " * 10**6)
    os.symlink(plant(tmp_path, "elsewhere.json", other_process, gpu=3), folder / "symlink.claim")
    os.mkfifo(folder / "fifo.claim")  # opening it must not block the reader
    found = board.others()
    assert [(c.gpu, c.pid) for c in found] == [(1, other_process.pid)]


def test_a_huge_expiry_is_capped(tmp_path, board, other_process):
    now = time.time()
    plant(tmp_path / "claims", "forever.claim", other_process, written=now, expires=now + 10**9)
    (claim,) = board.others()
    assert claim.until() <= now + MAX_CLAIM_SECONDS
    clock = FakeClock()
    planner = planner_with(board, clock)
    assert planner.free_slots(LIMITS, {}, []) == [1]  # GPU 0 is claimed by the other process
    clock.now += MAX_CLAIM_SECONDS + 1
    with_wall(board, now + MAX_CLAIM_SECONDS + 1)
    assert planner.free_slots(LIMITS, {}, []) == [0, 1]  # the claim no longer counts: it delayed, never blocked


def test_a_round_claims_what_it_offers_and_a_taken_slot_until_its_run_ends(tmp_path, board):
    folder = tmp_path / "claims"
    clock = FakeClock()
    planner = planner_with(board, clock)
    assert planner.free_slots(LIMITS, {}, []) == [0, 1]
    assert len(claim_files(folder)) == 2  # offered
    reservation = planner.reservation(0, LIMITS)
    planner.withdraw_offers()
    (name,) = claim_files(folder)
    data = json.loads((folder / name).read_text())
    assert data["gpu"] == 0 and data["uuid"] == "GPU-fake-0" and data["pid"] == os.getpid()
    assert data["expires"] - data["written"] == pytest.approx(LIMITS.startup_time)
    other = ClaimBoard(open_folder(folder))  # another process's view: the claim counts for it ...
    try:
        other.pid = -1  # (it is not this process)
        assert [c.gpu for c in other.others()] == [0]
    finally:
        other._mine.clear()
    planner.release(reservation)
    assert claim_files(folder) == []  # ... until the run ended


def test_an_unsafe_claims_folder_is_not_used(tmp_path, monkeypatch):
    target = tmp_path / "target"
    target.mkdir()
    os.symlink(target, tmp_path / "link")
    warnings = []
    monkeypatch.setenv(claims_module.CLAIMS_ENV, str(tmp_path / "link"))
    assert ClaimBoard.from_environment(warnings.append) is None
    open_to_all = tmp_path / "open"
    open_to_all.mkdir()
    os.chmod(open_to_all, 0o777)  # writable by all, not sticky: anyone could delete our claims
    monkeypatch.setenv(claims_module.CLAIMS_ENV, str(open_to_all))
    assert ClaimBoard.from_environment(warnings.append) is None
    assert len(warnings) == 2 and all("GPU claims" in w for w in warnings)
    made = tmp_path / "made"
    monkeypatch.setenv(claims_module.CLAIMS_ENV, str(made))
    board = ClaimBoard.from_environment(warnings.append)
    assert board is not None and stat.S_IMODE(made.stat().st_mode) == 0o1777
    board.close()
    monkeypatch.setenv(claims_module.NO_CLAIMS_ENV, "1")
    assert ClaimBoard.from_environment(warnings.append) is None


# --------------------------------------------------------------------------- helpers


LIMITS = SlotLimits(max_per_gpu=1, allowed_memory=0.5, allowed_load=0.5, startup_time=30.0)
READINGS = (GpuReading(0, 0.0, 16000.0, 0.0, "GPU-fake-0"), GpuReading(1, 0.0, 16000.0, 0.0, "GPU-fake-1"))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class NoPoll:
    in_flight = False

    def start(self, stamp: float) -> bool:
        return False

    def take(self):
        return None


def planner_with(board: ClaimBoard, clock: FakeClock) -> SlotPlanner:
    return SlotPlanner(lambda: list(READINGS), NoPoll(), poll_interval=1e9, error_patience=60.0, clock=clock,
                       first=GpuSnapshot(clock(), READINGS), claims=board)


def with_wall(board: ClaimBoard, wall: float) -> None:
    board.wall = lambda: wall


def claim_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".claim"))
