"""The benchmarks' training script: sleep, then write a summary.

It stamps its own start and end with the wall clock, so every workload can
measure the time runs really ran, independent of what a launcher reports.
Standard library only and nothing imported before the first stamp, so the
stamps sit as close to the process's life as Python allows.
"""

import time

STARTED = time.time()

import argparse  # noqa: E402  (after the start stamp on purpose)
import os  # noqa: E402

SUMMARY_FILENAME = "performance_overview.txt"
SUMMARY_KEYWORDS = ("run_time", "started", "ended", "finished")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sleep", type=float, default=0.0, help="Seconds to sleep.")
    parser.add_argument("--out_dir", required=True, help="Folder that receives the summary.")
    # The benchmark grids' other parameters, declared so that the search's flag check knows them; unused.
    parser.add_argument("--i", type=int, help="Number of the configuration.")
    parser.add_argument("--p0", type=int, help="A parameter of the 10^9-point grid.")
    parser.add_argument("--p1", type=int, help="A parameter of the 10^9-point grid.")
    parser.add_argument("--p2", type=int, help="A parameter of the 10^9-point grid.")
    parser.add_argument("--p3", type=int, help="A parameter of the 10^9-point grid.")
    parser.add_argument("--p4", type=int, help="A parameter of the 10^9-point grid.")
    parser.add_argument("--p5", type=int, help="A parameter of the 10^9-point grid.")
    parser.add_argument("--p6", type=int, help="A parameter of the 10^9-point grid.")
    parser.add_argument("--p7", type=int, help="A parameter of the 10^9-point grid.")
    parser.add_argument("--p8", type=int, help="A parameter of the 10^9-point grid.")
    args, _grid_values = parser.parse_known_args()
    time.sleep(args.sleep)
    os.makedirs(args.out_dir, exist_ok=True)
    ended = time.time()
    with open(os.path.join(args.out_dir, SUMMARY_FILENAME), "w") as summary:
        summary.write(f"run_time {ended - STARTED:.6f}\n")
        summary.write(f"started {STARTED:.6f}\n")
        summary.write(f"ended {ended:.6f}\n")
        summary.write("finished 1\n")


if __name__ == "__main__":
    main()
