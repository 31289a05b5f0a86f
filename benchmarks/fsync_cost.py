"""What making run-folder JSON files durable costs: 1000 atomic writes with
and without ``fsync`` of the file and its folder (hpsearch/atomic.py).

    python benchmarks/fsync_cost.py [--dir FOLDER] [--count 1000]

The folder should be on the disk the search folders live on (default:
benchmarks/_work/, which git ignores). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hpsearch.atomic import write_json_atomic  # noqa: E402

RESULT = {"status": "done", "reason": None, "exit_code": 0, "signal": None, "attempt": 1,
          "started": 1.0, "ended": 2.0, "backend": "local", "job_id": "123", "backend_state": "exited"}


def time_writes(folder: Path, count: int, durable: bool) -> float:
    """Seconds per write of one small result file, each into its own run folder."""
    folders = [folder / f"sim_{i:04d}" for i in range(count)]
    for run_dir in folders:
        run_dir.mkdir(parents=True)
    start = time.perf_counter()
    for run_dir in folders:
        write_json_atomic(run_dir / "hpsearch_result.json", RESULT, durable=durable)
    return (time.perf_counter() - start) / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=str(Path(__file__).resolve().parent / "_work" / "fsync"))
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    base = Path(args.dir)
    shutil.rmtree(base, ignore_errors=True)
    figures = {}
    for durable in (False, True, False, True):  # interleaved: the disk's mood changes
        label = "fsync" if durable else "no fsync"
        target = base / f"{label.replace(' ', '_')}_{len(figures)}"
        figures.setdefault(label, []).append(time_writes(target, args.count, durable))
    shutil.rmtree(base, ignore_errors=True)
    for label, values in figures.items():
        print(f"{label:9s}: {min(values) * 1e3:.3f} ms per write (best of {len(values)} x {args.count})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
