"""Shared helpers of the end-to-end tests: a project folder with a grid module,
the fake GPUs, and running the real CLI as a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

TESTS = Path(__file__).resolve().parent
FAKES = TESTS / "fakes"
JOB_SCRIPT = TESTS / "scripts" / "job.py"


def write_project(folder: Path, grid: Any, *, conditions: Sequence = (), module: str = "grid_cfg",
                  keywords: Sequence[str] = ("acc", "finished"), extra: str = "", raw_grid: str | None = None) -> Path:
    """A project folder: the test job script as train.py and a grid module next to it."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(JOB_SCRIPT, folder / "train.py")
    grid_source = raw_grid if raw_grid is not None else repr(grid)
    (folder / f"{module}.py").write_text(
        f"grid = {grid_source}\n"
        f"conditions = {list(conditions)!r}\n"
        "_SCRIPT_NAME = 'train.py'\n"
        "_SUMMARY_FILENAME = 'performance_overview.txt'\n"
        f"_SUMMARY_KEYWORDS = {list(keywords)!r}\n"
        "_OUT_ARG = 'out_dir'\n"
        f"{extra}\n"
    )
    return folder


def fake_gpu_env(tmp_path: Path, gpus: Sequence[dict], **state: Any) -> dict[str, str]:
    """Environment whose PATH finds the fake nvidia-smi answering from a state file."""
    state_file = tmp_path / "gpu_state.json"
    state_file.write_text(json.dumps({"gpus": list(gpus), **state}))
    env = dict(os.environ)
    env["PATH"] = f"{FAKES}{os.pathsep}{env.get('PATH', '')}"
    env["HPSEARCH_FAKE_GPU_STATE"] = str(state_file)
    return env


def env_without_gpus() -> dict[str, str]:
    """An environment whose PATH has no nvidia-smi at all."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and not (Path(p) / "nvidia-smi").exists())
    env.pop("HPSEARCH_FAKE_GPU_STATE", None)
    return env


def hpsearch_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "hpsearch", *args]


def run_hpsearch(args: Sequence[str], cwd: Path, env: dict[str, str] | None = None,
                 timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(hpsearch_cmd(*args), cwd=cwd, env=env or dict(os.environ), capture_output=True,
                          text=True, timeout=timeout)


def read_results(search_dir: Path) -> pd.DataFrame:
    return pd.read_csv(search_dir / "search_results.csv", sep=";")


def run_folders(search_dir: Path) -> list[Path]:
    return sorted(p for p in search_dir.iterdir() if p.is_dir() and (p / "hpsearch_run.json").is_file())


def wait_until(predicate: Callable[[], Any], what: str = "the condition", timeout: float = 90.0,
               interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something true (returned), failing after ``timeout`` s.

    Tests wait on conditions, never on fixed sleeps; the deadline is generous for a busy machine.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout} s")
