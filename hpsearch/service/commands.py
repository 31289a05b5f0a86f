"""The command lines of ``hpsearch serve``, ``submit``, ``pause``, ``unpause``, ``cancel`` and ``priority``.

Each is ``NAME_main(argv) -> int``, dispatched by :mod:`hpsearch.subcommands`.
Bad input and a service that does not answer end as one line on stderr and
exit status 2, as a foreground search's mistakes do.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any, Sequence

from hpsearch.cli import build_parser, settings_from_args
from hpsearch.commandline import EXIT_USAGE, CommandParser
from hpsearch.errors import HpsearchError
from hpsearch.service import protocol
from hpsearch.service.paths import state_paths

START_HINT = "start one with: hpsearch serve --detach (or hpsearch serve in a terminal you keep, e.g. tmux)"
DETACH_PATIENCE = 60.0  # seconds a detached service may take to answer
STOP_PATIENCE = 120.0  # seconds serve --stop waits for the service to end


def _fail(command: str, message: str) -> int:
    print(f"hpsearch {command}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _parser(command: str, description: str) -> argparse.ArgumentParser:
    return CommandParser(prog=f"hpsearch {command}", description=description, allow_abbrev=False)


# --------------------------------------------------------------------------- serve


def serve_main(argv: Sequence[str]) -> int:
    parser = _parser("serve", "Run this user's search service on this machine: it shares the GPUs (or CPU "
                              "slots) among the searches given to it with hpsearch submit.")
    parser.add_argument("--visible_gpus", default="", help="Comma list of GPU ids of the pool; '' = every GPU "
                        "found; -1 = no GPUs (CPU slots).")
    parser.add_argument("--max_num_jobs_per_gpu", type=int, default=1, metavar="N",
                        help="Runs per GPU of all searches together at most (default 1).")
    parser.add_argument("--num_jobs", type=int, default=None, metavar="N",
                        help="CPU slots of the pool on a machine without GPUs (default 1).")
    parser.add_argument("--gpu_poll_interval", type=float, default=1.0, metavar="SECONDS",
                        help="Seconds between two nvidia-smi queries at most (default 1).")
    parser.add_argument("--http", default="", metavar="[HOST:]PORT", help="Serve the web page (needs hpsearch[web]).")
    parser.add_argument("--detach", action="store_true", help="Run in the background once the socket answers; "
                        "output goes to the service log in the state folder.")
    parser.add_argument("--stop", action="store_true", help="Stop the running service; its searches' runs keep "
                        "running and the next serve continues the searches.")
    parser.add_argument("--kill-runs", dest="kill_runs", action="store_true",
                        help="With --stop: stop the runs too and cancel the searches.")
    parser.add_argument("--quiet", action="store_true", help="Print only warnings and errors.")
    args = parser.parse_args(argv)
    if args.kill_runs and not args.stop:
        return _fail("serve", "--kill-runs goes with --stop")
    for flag, value in (("max_num_jobs_per_gpu", args.max_num_jobs_per_gpu), ("num_jobs", args.num_jobs)):
        if value is not None and value < 1:
            return _fail("serve", f"--{flag} must be at least 1, got {value}")
    if not args.gpu_poll_interval > 0:
        return _fail("serve", f"--gpu_poll_interval must be greater than 0, got {args.gpu_poll_interval}")
    try:
        if args.stop:
            return _stop(args.kill_runs)
        if args.detach:
            return _detach([word for word in argv if word != "--detach"])
        from hpsearch.service.daemon import ServeOptions, serve

        return serve(ServeOptions(visible_gpus=args.visible_gpus, max_num_jobs_per_gpu=args.max_num_jobs_per_gpu,
                                  num_jobs=args.num_jobs, gpu_poll_interval=args.gpu_poll_interval, http=args.http),
                     quiet=args.quiet)
    except HpsearchError as exc:
        return _fail("serve", str(exc))


def _stop(kill_runs: bool) -> int:
    paths = state_paths()
    try:
        answer = protocol.call(paths.socket, {"op": "stop", "kill_runs": kill_runs})
    except protocol.ServiceUnavailable:
        return _fail("serve", "no hpsearch service is running")
    deadline = time.monotonic() + STOP_PATIENCE
    while time.monotonic() < deadline:
        try:
            protocol.call(paths.socket, {"op": "ping"}, timeout=2.0)
        except protocol.ServiceUnavailable:
            what = "its searches are cancelled" if kill_runs else "the next hpsearch serve continues its searches"
            print(f"hpsearch service (pid {answer.get('pid')}) stopped; {what}")
            return 0
        time.sleep(0.1)
    return _fail("serve", f"the service (pid {answer.get('pid')}) has not stopped after {STOP_PATIENCE:g}s")


def _detach(argv: list[str]) -> int:
    """Start ``serve`` in a session of its own and return once its socket answers."""
    paths = state_paths()
    with open(paths.log_file, "ab") as log:
        os.chmod(paths.log_file, 0o600)
        proc = subprocess.Popen([sys.executable, "-m", "hpsearch", "serve", *argv], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log, start_new_session=True, close_fds=True)
    deadline = time.monotonic() + DETACH_PATIENCE
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return _fail("serve", _last_line(paths.log_file) or f"the service exited with {proc.returncode}")
        try:
            answer = protocol.call(paths.socket, {"op": "ping"}, timeout=2.0)
        except protocol.ServiceUnavailable:
            time.sleep(0.05)
            continue
        if answer.get("pid") == proc.pid:
            print(f"hpsearch service started (pid {proc.pid}); log: {paths.log_file}")
            return 0
        time.sleep(0.05)  # an older service still answers while ours waits for the lock
    return _fail("serve", f"the service (pid {proc.pid}) did not answer within {DETACH_PATIENCE:g}s; "
                          f"see {paths.log_file}")


def _last_line(path: os.PathLike) -> str:
    try:
        lines = [line for line in open(path, errors="replace").read().splitlines() if line.strip()]
    except OSError:
        return ""
    last = lines[-1] if lines else ""
    return last.split(": error: ", 1)[-1]


# --------------------------------------------------------------------------- submit


def submit_main(argv: Sequence[str]) -> int:
    """``hpsearch submit <flags of a foreground search>``: check, create the folder, queue it."""
    argv = list(argv)
    parser = build_parser()
    parser.prog = "hpsearch submit"
    given = vars(parser.parse_args(argv))
    if given.get("service_socket") or given.get("detached_runs"):
        return _fail("submit", "--service_socket and --detached_runs are set by the service itself")
    if given.get("list"):
        return _fail("submit", "--list prints the configurations; run it without submit")
    try:
        settings = settings_from_args(given, argv)
        from hpsearch.executors.factory import choose_executor
        from hpsearch.progress import Progress
        from hpsearch.runner import create_search_folder, enumerate_configs, load_and_check

        progress = Progress(None, False, quiet=True)
        spec = load_and_check(settings)
        for warning in spec.warnings:
            print(f"[hpsearch] warning: {warning}", file=sys.stderr)
        configs = enumerate_configs(spec, settings)
        if settings.run_cluster:  # its scheduler options are checked here; local ones by the service's pool
            choose_executor(settings, lambda _line: None)
        paths = state_paths()
        try:
            protocol.call(paths.socket, {"op": "ping"}, timeout=5.0)
        except protocol.ServiceUnavailable:
            return _fail("submit", f"no hpsearch service is running; {START_HINT}")
        folder = create_search_folder(settings, spec, configs, progress)
        from hpsearch.service.registry import SERVICE, Registry

        with Registry.open(paths) as registry:
            entry = registry.register(folder.path, kind=SERVICE, state="queued", argv=json.dumps(argv))
        try:
            protocol.call(paths.socket, {"op": "submit", "folder": str(folder.path)})
        except protocol.ServiceUnavailable:
            print(f"{entry.id} {folder.path}")
            return _fail("submit", f"the service stopped before taking search {entry.id}; it stays queued "
                                   f"and the next hpsearch serve runs it")
    except HpsearchError as exc:
        return _fail("submit", str(exc))
    except (PermissionError, FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
        return _fail("submit", f"{exc.filename or ''}: {exc.strerror or exc}")
    print(f"{entry.id} {folder.path}")
    return 0


# --------------------------------------------------------------------------- control


def _control(command: str, request: dict[str, Any]) -> int:
    try:
        answer = protocol.call(state_paths().socket, request)
    except protocol.ServiceUnavailable:
        return _fail(command, f"no hpsearch service is running; {START_HINT}")
    except HpsearchError as exc:
        return _fail(command, str(exc))
    details = ", ".join(f"{name} {value}" for name, value in answer.items() if name not in ("ok", "id"))
    print(f"search {answer.get('id')}: {details}")
    return 0


def _search_parser(command: str, description: str) -> argparse.ArgumentParser:
    parser = _parser(command, description)
    parser.add_argument("search", metavar="SEARCH", help="The search's id, a unique prefix of it, or its folder.")
    return parser


def _search_text(text: str) -> str:
    """A folder is passed on absolute, since the service has another working directory."""
    return os.path.abspath(text) if os.sep in text or os.path.isdir(text) else text


def pause_main(argv: Sequence[str]) -> int:
    args = _search_parser("pause", "Start no new runs of the search (its running runs go on).").parse_args(argv)
    return _control("pause", {"op": "pause", "search": _search_text(args.search)})


def unpause_main(argv: Sequence[str]) -> int:
    args = _search_parser("unpause", "Start runs of a paused or cancelled search again.").parse_args(argv)
    return _control("unpause", {"op": "unpause", "search": _search_text(args.search)})


def cancel_main(argv: Sequence[str]) -> int:
    parser = _search_parser("cancel", "Start no new runs and stop the running ones; they are recorded as "
                                      "interrupted, and a later unpause or --resume runs them again.")
    parser.add_argument("--kill", action="store_true", help="SIGKILL the runs at once instead of TERM, then KILL.")
    args = parser.parse_args(argv)
    return _control("cancel", {"op": "cancel", "search": _search_text(args.search), "kill": args.kill})


def priority_main(argv: Sequence[str]) -> int:
    parser = _search_parser("priority", "Set the search's weight in the share of free slots (default 1).")
    parser.add_argument("n", metavar="N", type=int, help="Weight, at least 1: a search of weight 3 gets three "
                                                          "times the slots of one of weight 1.")
    args = parser.parse_args(argv)
    if args.n < 1:
        return _fail("priority", f"N must be at least 1, got {args.n}")
    return _control("priority", {"op": "priority", "search": _search_text(args.search), "n": args.n})
