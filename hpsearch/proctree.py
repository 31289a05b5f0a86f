"""Stop a run together with every process it started.

A training script may start data-loader workers, shells or its own helper
sessions; stopping only the top process would leave them holding a GPU. The
helpers here collect a process tree *before* signalling anything (once a parent
dies its children are re-parented and can no longer be found through it) and
optionally sweep the root's session, which still finds re-parented members when
the root was started as a session leader (``start_new_session=True``).

Waiting never reaps: the root is often a ``subprocess.Popen`` child whose exit
status belongs to whoever calls ``Popen.wait``. A zombie therefore counts as
gone.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Iterable, Union

import psutil

ProcessLike = Union[int, psutil.Process]

DEFAULT_GRACE = 5.0
"""Seconds between SIGTERM and SIGKILL."""

_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess)


def _as_process(root: ProcessLike) -> psutil.Process | None:
    if isinstance(root, psutil.Process):
        return root
    try:
        return psutil.Process(root)
    except _GONE:
        return None


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


def collect_tree(root: ProcessLike, *, session: int | None = None) -> list[psutil.Process]:
    """The root (if it still exists), its descendants and, with ``session``,
    every member of that session; each process once, root first."""
    found: dict[int, psutil.Process] = {}
    proc = _as_process(root)
    if proc is not None:
        found[proc.pid] = proc
        try:
            for child in proc.children(recursive=True):
                found.setdefault(child.pid, child)
        except _GONE:
            pass
    if session is not None:
        for member in session_members(session):
            found.setdefault(member.pid, member)
    return list(found.values())


def _signal(procs: Iterable[psutil.Process], sig: int) -> None:
    for proc in procs:
        try:
            proc.send_signal(sig)
        except (*_GONE, psutil.AccessDenied):
            pass


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


def terminate_processes(procs: list[psutil.Process], grace: float = DEFAULT_GRACE) -> None:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL the survivors."""
    _signal(procs, signal.SIGTERM)
    survivors = wait_gone(procs, grace)
    if survivors:
        _signal(survivors, signal.SIGKILL)
        wait_gone(survivors, 1.0)


def terminate_tree(
    root: ProcessLike, grace: float = DEFAULT_GRACE, *, session: int | None = None
) -> None:
    """Stop ``root`` and everything it started, politely first.

    Args:
        root: A pid or a ``psutil.Process`` (which guards against pid reuse).
        grace: Seconds the processes get to exit after SIGTERM.
        session: Also stop every member of this session (pass the root's pid
            when the root was started as a session leader).
    """
    terminate_processes(collect_tree(root, session=session), grace)


def kill_tree(root: ProcessLike, *, session: int | None = None) -> None:
    """SIGKILL ``root`` and everything it started at once, without waiting."""
    _signal(collect_tree(root, session=session), signal.SIGKILL)
