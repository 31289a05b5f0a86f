"""Drive the fake ``nvidia-smi`` next to this file.

The fake reads a JSON state file named by ``HPSEARCH_FAKE_GPU_STATE``::

    {"gpus": [{"memory_total": 16000, "memory_used": 0, "load": 0.0}, ...],
     "per_run_memory": 3000,   # MiB added per live run on the GPU
     "per_run_load": 0.0,      # load (0..1) added per live run on the GPU
     "fail": false,            # true: exit 9 like a broken driver
     "delay": 0.0,             # seconds each call takes before answering
     "calls_log": "/path/calls.log"}   # one line appended per call

A GPU value of ``null`` is reported as ``[N/A]``. :class:`FakeGpus` writes that
file atomically (the fake may read it at any moment) and counts the calls.
Also usable from benchmarks: ``python tests/fakes/fakegpu.py STATE --gpus 4``
writes a state file and prints the environment to export.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
from pathlib import Path

FAKES_DIR = Path(__file__).resolve().parent
STATE_ENV = "HPSEARCH_FAKE_GPU_STATE"


class FakeGpus:
    """The state of the fake GPUs, kept in ``state_path``.

    Args:
        state_path: JSON file the fake ``nvidia-smi`` reads.
        calls_log: File the fake appends one line to per call.
    """

    def __init__(self, state_path: Path, calls_log: Path) -> None:
        self.state_path = Path(state_path)
        self.calls_log = Path(calls_log)
        self.state: dict = {}

    def configure(
        self,
        count: int = 4,
        *,
        memory_total: float = 16000,
        memory_used: float = 0,
        load: float = 0.0,
        per_run_memory: float = 0,
        per_run_load: float = 0.0,
        fail: bool = False,
    ) -> "FakeGpus":
        """Replace the state by ``count`` identical GPUs."""
        gpu = {"memory_total": memory_total, "memory_used": memory_used, "load": load}
        self.state = {
            "gpus": [dict(gpu) for _ in range(count)],
            "per_run_memory": per_run_memory,
            "per_run_load": per_run_load,
            "fail": fail,
            "calls_log": str(self.calls_log),
        }
        return self.save()

    def set_gpu(self, index: int, **values: float | None) -> "FakeGpus":
        """Change ``memory_total``/``memory_used``/``load`` of one GPU."""
        self.state["gpus"][index].update(values)
        return self.save()

    def set(self, **values) -> "FakeGpus":
        """Change top-level keys, e.g. ``fail=True`` or ``per_run_memory=0``."""
        self.state.update(values)
        return self.save()

    def save(self) -> "FakeGpus":
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        tmp.write_text(json.dumps(self.state))
        os.replace(tmp, self.state_path)
        return self

    def calls(self) -> list[str]:
        """The argument strings of every call so far."""
        if not self.calls_log.exists():
            return []
        return [line.split(" ", 1)[1] for line in self.calls_log.read_text().splitlines()]

    def gpu_queries(self) -> int:
        """How many ``--query-gpu`` calls (GPUtil polls) were made."""
        return sum(call.startswith("--query-gpu") for call in self.calls())


def main() -> None:
    parser = argparse.ArgumentParser(description="Write a state file for the fake nvidia-smi.")
    parser.add_argument("state", type=Path)
    parser.add_argument("--gpus", type=int, default=4)
    parser.add_argument("--memory_total", type=float, default=16000)
    parser.add_argument("--per_run_memory", type=float, default=0)
    parser.add_argument("--calls_log", type=Path)
    args = parser.parse_args()
    state = args.state.resolve()
    calls_log = args.calls_log or state.with_suffix(".calls.log")
    FakeGpus(state, calls_log.resolve()).configure(
        args.gpus, memory_total=args.memory_total, per_run_memory=args.per_run_memory
    )
    print(f"export {STATE_ENV}={shlex.quote(str(state))} PATH={shlex.quote(str(FAKES_DIR))}:\"$PATH\"")


if __name__ == "__main__":
    main()
