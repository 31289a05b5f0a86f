"""What the workloads share: sizes, scratch folders, our driver's command line,
and the arithmetic of utilisation and exit delay.

Every figure compares two things measured in the same run (ours against an
ideal or another launcher), because these machines are noisy. Run times come
from the runs' own stamps (``benchmarks/sleeper.py``), wall times from the
harness that started the process.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from benchmarks.harness import (
    GRID_MODULE,
    ProcessRun,
    RunStamp,
    hpsearch_argv,
    read_stamps,
    run_folders,
    run_process,
)

GPUS = 4
TRASH = "_trash"
SLOTS_PER_GPU = 2


@dataclass
class Context:
    """Sizes and places shared by the workloads.

    Attributes:
        work: Scratch folder (``benchmarks/_work``), git-ignored.
        quick: Smaller sizes, for the smoke test and a first look.
        scale_runs: Runs of the scale workload (20,000 by default).
        launch_runs: Runs of the launch-overhead workload.
        slot_runs: Runs of workload 1 (and of the hypnettorch comparison).
        idle_seconds: How long the GPUs stay busy in the polling workload.
        repeats: Interleaved repetitions of the launch workload (best counts).
        service_searches: Searches submitted to the service in its workload.
        service_runs: Runs of each of them.
    """

    work: Path
    quick: bool = False
    scale_runs: int = 20_000
    launch_runs: int = 400
    slot_runs: int = 40
    idle_seconds: float = 5.0
    repeats: int = 3
    service_searches: int = 10
    service_runs: int = 500

    def folder(self, *parts: str) -> Path:
        """A fresh, empty scratch folder."""
        path = self.work.joinpath(*parts)
        self.discard(path)
        path.mkdir(parents=True)
        return path

    def discard(self, path: Path) -> None:
        """Move an old scratch folder aside, to be deleted after the measurements.

        Deleting thousands of run folders right before a measurement skews
        it: on an ext4 without a journal (as on these machines), every new
        file is placed only after skipping the inodes freed in the last
        minutes, which made each file creation 5-50 times slower than on a
        fresh file system (0.02 ms, 0.2 ms or 0.9 ms per file, seen here).
        """
        if not path.exists():
            return
        trash = self.work / TRASH
        trash.mkdir(parents=True, exist_ok=True)
        path.rename(trash / f"{path.name}-{uuid.uuid4().hex[:12]}")

    def empty_trash(self) -> None:
        shutil.rmtree(self.work / TRASH, ignore_errors=True)


def search_args(project: Path, out: Path, *extra: str) -> list[str]:
    """Our driver's argv for a search of the project's grid module into ``out``."""
    return hpsearch_argv(f"--grid_module={GRID_MODULE}", f"--run_cwd={project}", f"--out_dir={out}",
                         "--force_out_dir", *extra)


def gpu_args(max_per_gpu: int = SLOTS_PER_GPU, startup: float = 0, gpus: int = GPUS) -> list[str]:
    return [f"--visible_gpus={','.join(map(str, range(gpus)))}", f"--max_num_jobs_per_gpu={max_per_gpu}",
            f"--sim_startup_time={startup}"]


def run_ours(ctx: Context, name: str, project: Path, args: Sequence[str], env: dict[str, str], *,
             timeout: float, rss_interval: float | None = None) -> tuple[ProcessRun, list[RunStamp]]:
    """Run a search to its end; its figures only count if every run finished."""
    out = ctx.work / name / "search"
    ctx.discard(out)
    run = run_process(search_args(project, out, *args), cwd=project, env=env, log=ctx.work / name / "driver.log",
                      timeout=timeout, rss_interval=rss_interval).check()
    return run, read_stamps(run_folders(out))


def expect_runs(stamps: Sequence[RunStamp], count: int, who: str) -> None:
    if len(stamps) != count:
        raise RuntimeError(f"{who}: {len(stamps)} of {count} runs wrote a summary")


def utilisation(stamps: Sequence[RunStamp], slots: int, wall: float) -> float:
    """Busy slot-seconds (as the runs measured them) over offered slot-seconds."""
    return sum(s.duration for s in stamps) / (slots * wall)


def steady_utilisation(stamps: Sequence[RunStamp], slots: int) -> float:
    """Utilisation between the first run's start and the last run's end: the
    driver's loop alone, without its own start-up and exit."""
    span = max(s.ended for s in stamps) - stamps[0].started
    return sum(s.duration for s in stamps) / (slots * span)


def tail_after_last_run(run: ProcessRun, stamps: Sequence[RunStamp]) -> float:
    """Seconds from the last run's own end stamp to the launcher's exit."""
    return run.ended - max(s.ended for s in stamps)


