#!/usr/bin/env python3
"""A training-script stand-in for the tests: its behaviour is chosen by flags.

It records its argv, start/end times and CUDA_VISIBLE_DEVICES in its run
folder, so tests can check what the driver really did.
"""

import argparse
import json
import os
import subprocess
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", default="ok")
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--value", default="")
    parser.add_argument("--score", type=float, default=0.5)
    parser.add_argument("--i", type=int, default=0)
    parser.add_argument("--wait_for", default="", help="Wait until this file exists (a test's release).")
    parser.add_argument("--out_dir", required=True)
    args, _unknown = parser.parse_known_args()
    os.makedirs(args.out_dir, exist_ok=True)
    start = time.time()
    with open(os.path.join(args.out_dir, "argv.json"), "w") as handle:
        json.dump(sys.argv, handle)
    log = os.environ.get("HPSEARCH_TEST_LOG")
    if log:
        with open(log, "a") as handle:
            handle.write(json.dumps({"event": "start", "out_dir": args.out_dir, "i": args.i, "pid": os.getpid()}) + "\n")
    if args.mode == "spawn":
        # A grandchild that would outlive us if nobody killed the whole tree.
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "hpsearch-test-grandchild"])
        time.sleep(300)
    if args.mode == "stubborn":
        import signal

        def note(event):
            if log:
                with open(log, "a") as handle:
                    handle.write(json.dumps({"event": event, "out_dir": args.out_dir, "i": args.i}) + "\n")

        signal.signal(signal.SIGTERM, lambda *_: note("ignored SIGTERM"))  # only SIGKILL stops it
        note("stubborn")  # a test may signal the driver now
        time.sleep(300)
    if args.mode == "hang":
        time.sleep(300)
    deadline = time.monotonic() + 300
    while args.wait_for and not os.path.exists(args.wait_for) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(args.sleep)
    trace = {"start": start, "end": time.time(), "gpu": os.environ.get("CUDA_VISIBLE_DEVICES"),
             "order": os.environ.get("CUDA_DEVICE_ORDER"), "key": os.environ.get("HPSEARCH_RUN_KEY")}
    with open(os.path.join(args.out_dir, "trace.json"), "w") as handle:
        json.dump(trace, handle)
    if args.mode == "crash":
        raise RuntimeError("deliberate crash")
    if args.mode == "exit3":
        return 3
    if args.mode == "nosummary":
        return 0
    with open(os.path.join(args.out_dir, "performance_overview.txt"), "w") as handle:
        if args.mode == "malformed":
            handle.write("acc 0.5\nfinished yes\n")
            return 0
        handle.write(f"acc {args.score}\n")
        handle.write(f"finished {0 if args.mode == 'unfinished' else 1}\n")
    if log:
        with open(log, "a") as handle:
            handle.write(json.dumps({"event": "done", "out_dir": args.out_dir, "i": args.i}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
