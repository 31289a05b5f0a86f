"""A training script that leaves processes behind, as real ones do by accident.

``--mode`` says what it starts before it goes on:
  daemon  double-forks a daemon (new session) that ignores SIGTERM;
  setsid  starts a child that calls ``os.setsid()`` and sleeps;
  ignore  starts a child that ignores SIGTERM and sleeps;
  huge    starts nothing, but writes a sparse 1 GB summary file.
Each started process creates ``up_<pid>`` in the run folder once it is set up,
and the script waits for that. Then with ``--then=exit`` it writes a complete
summary and exits 0; with ``--then=sleep`` it sleeps (to be timed out, or
stopped). Every process keeps the script's argv (fork without exec), so a
test finds them by the ``--tag`` value.
"""

import argparse
import os
import signal
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--out_dir", required=True)
parser.add_argument("--mode", required=True)
parser.add_argument("--then", default="exit")
parser.add_argument("--tag", required=True)
args = parser.parse_args()
os.makedirs(args.out_dir, exist_ok=True)


def announce_and_sleep() -> None:
    open(os.path.join(args.out_dir, f"up_{os.getpid()}"), "w").close()
    while True:
        time.sleep(1)


def start_child(setup) -> None:
    if os.fork() == 0:
        try:
            setup()
        finally:
            os._exit(0)


def daemon() -> None:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        announce_and_sleep()


def new_session() -> None:
    os.setsid()
    announce_and_sleep()


def ignorer() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    announce_and_sleep()


if args.mode == "huge":
    with open(os.path.join(args.out_dir, "performance_overview.txt"), "wb") as handle:
        handle.write(b"acc 0.5\nfinished 1\n")
        handle.truncate(2**30)
    sys.exit(0)

start_child({"daemon": daemon, "setsid": new_session, "ignore": ignorer}[args.mode])
deadline = time.monotonic() + 60
while not any(name.startswith("up_") for name in os.listdir(args.out_dir)):
    if time.monotonic() > deadline:
        sys.exit(5)
    time.sleep(0.01)
if args.then == "sleep":
    while True:
        time.sleep(1)
with open(os.path.join(args.out_dir, "performance_overview.txt"), "w") as handle:
    handle.write("acc 0.5\nfinished 1\n")
sys.exit(0)
