"""Find and stop every process a run started, wherever it went.

A training script may start data-loader workers, shells, or daemons that
double-fork, call ``setsid`` or ignore SIGTERM; stopping only the top process
would leave them holding a GPU. Three facts make them findable:

* the driver is a *child subreaper* (:func:`become_subreaper`): a process
  whose parent dies is handed to the driver instead of to init, so every
  process a run started stays a descendant of the driver;
* every run's environment carries a marker (:func:`has_marker`), inherited by
  whatever it starts unless that clears its environment;
* a process table read once (:func:`scan`) gives parents, sessions and states
  of every process, so a run's leftovers cost one pass over ``/proc``.

Waiting never reaps a process it did not find as an orphan: the root is
often a ``subprocess.Popen`` child whose exit status belongs to whoever calls
``Popen.wait``. A zombie therefore counts as gone.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import psutil

DEFAULT_GRACE = 5.0
"""Seconds between SIGTERM and SIGKILL."""

_PR_SET_CHILD_SUBREAPER = 36
_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess)


@functools.lru_cache(maxsize=None)
def prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, or None where there is none (not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


@functools.lru_cache(maxsize=None)
def become_subreaper() -> bool:
    """Make this process adopt its orphaned descendants (Linux 3.4+).

    Returns whether it worked; without it, processes that left their parent
    are found only through their session or a cgroup.
    """
    call = prctl()
    return call is not None and call(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    sid: int
    zombie: bool


def scan() -> dict[int, ProcInfo]:
    """Every process's parent, session and zombie state, from one pass over ``/proc``."""
    table: dict[int, ProcInfo] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return {p.pid: _info_from_psutil(p) for p in psutil.process_iter() if _alive_info(p)}
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        # pid (comm) state ppid pgrp session ...; comm may hold spaces and parentheses
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) < 4:
            continue
        pid = int(name)
        table[pid] = ProcInfo(pid, int(fields[1]), int(fields[3]), fields[0] == b"Z")
    return table


def _alive_info(proc: psutil.Process) -> bool:
    try:
        proc.ppid()
        return True
    except psutil.Error:
        return False


def _info_from_psutil(proc: psutil.Process) -> ProcInfo:
    try:
        sid = os.getsid(proc.pid)
    except OSError:
        sid = -1
    return ProcInfo(proc.pid, proc.ppid(), sid, proc.status() == psutil.STATUS_ZOMBIE)


def descendants(table: dict[int, ProcInfo], roots: Iterable[int]) -> set[int]:
    """The roots (those in the table) and every process below them."""
    children: dict[int, list[int]] = {}
    for info in table.values():
        children.setdefault(info.ppid, []).append(info.pid)
    found: set[int] = set()
    todo = [pid for pid in roots if pid in table]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


def has_marker(pid: int, marker: bytes) -> bool:
    """Whether the process started with ``marker`` (``NAME=value``) in its
    environment; False if it is gone or not ours to read."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            environ = handle.read()
    except OSError:
        return False
    return environ.startswith(marker + b"\0") or (b"\0" + marker + b"\0") in environ


def session_members(sid: int) -> list[psutil.Process]:
    """Live processes whose session id is ``sid``.

    While any process is in a session the kernel does not hand out the session
    id as a new pid, so this cannot pick up an unrelated process.
    """
    members = []
    for pid in psutil.pids():
        try:
            if os.getsid(pid) == sid:
                members.append(psutil.Process(pid))
        except (OSError, *_GONE):
            continue
    return members


def as_processes(pids: Iterable[int]) -> list[psutil.Process]:
    """psutil handles (which guard later signals against pid reuse) for the live ones."""
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.Error:
            continue
    return procs


def collect_tree(root: psutil.Process) -> list[psutil.Process]:
    """The root (if it still exists) and its descendants; root first."""
    found = {root.pid: root}
    try:
        for child in root.children(recursive=True):
            found.setdefault(child.pid, child)
    except _GONE:
        pass
    return list(found.values())


def signal_all(procs: Iterable[psutil.Process], sig: int) -> list[psutil.Process]:
    """Send ``sig`` to each; the ones that were there to receive it."""
    reached = []
    for proc in procs:
        try:
            proc.send_signal(sig)
            reached.append(proc)
        except (*_GONE, psutil.AccessDenied):
            pass
    return reached


def _is_gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except _GONE:
        return True


def wait_gone(procs: Iterable[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until every process has exited (or is a zombie), at most
    ``timeout`` seconds; return the ones still alive."""
    alive = [p for p in procs if not _is_gone(p)]
    deadline = time.monotonic() + timeout
    delay = 0.005
    while alive and time.monotonic() < deadline:
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 0.1)
        alive = [p for p in alive if not _is_gone(p)]
    return alive


def terminate_processes(procs: list[psutil.Process], grace: float = DEFAULT_GRACE) -> list[psutil.Process]:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL the survivors;
    returns the processes that were alive to be signalled."""
    reached = signal_all(procs, signal.SIGTERM)
    survivors = wait_gone(reached, grace)
    if survivors:
        signal_all(survivors, signal.SIGKILL)
        wait_gone(survivors, 1.0)
    return reached


def zombie_child() -> bool:
    """Whether some child of this process has exited and awaits its reaping (nothing is reaped)."""
    try:
        return os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except (ChildProcessError, AttributeError):
        return False


def reap(pid: int) -> bool:
    """Collect the exit status of a zombie child we adopted; True if it was ours."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return False


def process_alive(pid: int | None, started: float | None) -> bool:
    """True if ``pid`` runs and was started at ``started`` (psutil's create_time, 10 ms slack)."""
    if not pid:
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(process.create_time() - started) < 0.01
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
