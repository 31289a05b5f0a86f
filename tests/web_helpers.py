"""Real search folders for the web page's tests: a short CPU search with a fake training script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from hpsearch.service.paths import StatePaths
from hpsearch.service.registry import FOREGROUND, Registry, own_process
from hpsearch.store import RunStore
from tests.helpers import env_without_gpus, fake_gpu_env, wait_until

TRAIN = '''\
import argparse, math, os, sys, time
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--hidden", type=int, default=64)
p.add_argument("--optimizer", default="adam")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--wait_for", default="")
p.add_argument("--out_dir", required=True)
a, _ = p.parse_known_args()
os.makedirs(a.out_dir, exist_ok=True)
print(f"training lr={a.lr} hidden={a.hidden} seed={a.seed}", flush=True)
deadline = time.monotonic() + 300
while a.wait_for and not os.path.exists(a.wait_for) and time.monotonic() < deadline:
    time.sleep(0.05)
if a.lr == 0.1 and a.hidden == 64:
    print("diverged: loss is nan", file=sys.stderr)
    sys.exit(3)
acc = 0.9 - 0.05 * (math.log10(a.lr) + 3) ** 2 + 0.0004 * a.hidden + 0.003 * a.seed
with open(os.path.join(a.out_dir, "performance_overview.txt"), "w") as f:
    f.write(f"acc {acc}\\nfinished 1\\n")
'''
MODULE = '''\
grid = {grid!r}
conditions = []
_SCRIPT_NAME = 'train.py'
_SUMMARY_FILENAME = 'performance_overview.txt'
_SUMMARY_KEYWORDS = ['acc', 'finished']
_OUT_ARG = 'out_dir'
'''
IDLE_GPU = {"memory_total": 16000, "memory_used": 0, "load": 0.0}
FINISHED_GRID = {"lr": [0.001, 0.01, 0.1], "hidden": [32, 64], "optimizer": ["adam"], "seed": [1, 2]}
"""12 runs, of which the two with lr=0.1 and hidden=64 fail (exit 3)."""


def search_command(project: Path, out: Path, grid: dict[str, Any], *extra: str) -> list[str]:
    project.mkdir(parents=True, exist_ok=True)
    (project / "train.py").write_text(TRAIN)
    (project / "grid_web.py").write_text(MODULE.format(grid=grid))
    return [sys.executable, "-m", "hpsearch", "--grid_module=grid_web", f"--out_dir={out}", "--force_out_dir",
            "--dont_force_new_dir", "--keep_going", *extra]


def finished_search(base: Path) -> Path:
    """A real finished search folder: 10 runs done, 2 failed."""
    out = base / "finished"
    command = search_command(base / "project", out, FINISHED_GRID, "--visible_gpus=-1", "--num_jobs=2")
    done = subprocess.run(command, cwd=base / "project", env=own_state(base, env_without_gpus()),
                          capture_output=True, text=True, timeout=240)
    assert counts(out).get("done") == 10, done.stdout + done.stderr
    return out


def running_search(base: Path) -> tuple[subprocess.Popen, Path, Path]:
    """A search in flight on two fake GPUs: 2 runs running (waiting for the release file), 2 queued.

    The driver, its folder, the release file.
    """
    release = base / "release"
    out = base / "running"
    grid = {"lr": [0.001, 0.01], "hidden": [32, 128], "wait_for": [str(release)]}
    command = search_command(base / "project_running", out, grid, "--visible_gpus=0,1", "--max_num_jobs_per_gpu=1")
    env = own_state(base, fake_gpu_env(base, [IDLE_GPU, IDLE_GPU]))
    driver = subprocess.Popen(command, cwd=base / "project_running", env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: counts(out).get("running") == 2, 120, lambda: f"store of {out}: {counts(out)}")
    return driver, out, release


def own_state(base: Path, env: dict[str, str]) -> dict[str, str]:
    """The search's registry and GPU claims in ``base`` (these module-scoped searches start before the
    per-test state folders of conftest exist): never the user's own."""
    return {**env, "HPSEARCH_STATE_DIR": str(base / "state"), "HPSEARCH_CLAIMS_DIR": str(base / "claims")}


def counts(folder: Path) -> dict[str, int]:
    """Runs per status in the folder's store, read-only; empty while there is no store."""
    try:
        with RunStore.open(folder, readonly=True) as store:
            return {status.value: n for status, n in store.counts().items() if n}
    except Exception:  # noqa: BLE001 - not created yet
        return {}


def records(folder: Path) -> list:
    with RunStore.open(folder, readonly=True) as store:
        return store.records()


def register(paths: StatePaths, folder: Path, state: str, pid: int | None = None) -> str:
    """Enter a search in the registry as a foreground driver would; its id."""
    pid_started = None
    if pid == os.getpid():
        pid, pid_started = own_process()
    with Registry.open(paths) as registry:
        return registry.register(folder, kind=FOREGROUND, state=state, pid=pid, pid_started=pid_started).id


def wait_for(predicate, timeout: float, describe=lambda: "", interval: float = 0.05):
    """:func:`tests.helpers.wait_until`, naming what was seen when it fails."""
    try:
        return wait_until(predicate, "condition not met", timeout, interval)
    except AssertionError as exc:
        raise AssertionError(f"{exc} {describe()}") from None


class RecordingActions:
    """The actions object the service would give; records each call, or fails with ``error``."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.error: str | None = None

    def _record(self, *call: Any) -> dict:
        self.calls.append(call)
        if self.error:
            raise RuntimeError(self.error)
        return {"ok": True}

    def pause(self, search_id: str) -> dict:
        return self._record("pause", search_id)

    def unpause(self, search_id: str) -> dict:
        return self._record("unpause", search_id)

    def cancel(self, search_id: str) -> dict:
        return self._record("cancel", search_id)

    def priority(self, search_id: str, n: int) -> dict:
        return self._record("priority", search_id, n)

