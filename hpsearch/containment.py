"""Keep hold of every process of a driver session's local runs.

A run may leave processes behind (a daemon that double-forked, a child that
called ``setsid``, one that ignores SIGTERM). :class:`Containment` makes sure
they can be found and stopped:

* the driver becomes a child subreaper, so orphans of a run are re-parented
  to it instead of to init and stay findable as its descendants;
* every run gets ``HPSEARCH_RUN=<token>:<key>`` in its environment;
* where cgroups v2 may be used, every run gets its own cgroup
  (:mod:`hpsearch.cgroup`), which holds it whatever it does;
* with ``guard``, one guardian process per session (:mod:`hpsearch.guardian`)
  stops them all if the driver dies.

Nothing here scans on the launch path: a start costs a ``mkdir`` and a write
to ``cgroup.procs``. One pass over ``/proc`` is made when a run ends (to find
its leftovers and reap orphans that died), when runs are stopped, and at the
end.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Sequence

import psutil

from hpsearch import cgroup, proctree
from hpsearch.guardian import Guardian
from hpsearch.runs import RUN_KEY_ENV

log = logging.getLogger(__name__)

RUN_MARKER_ENV = "HPSEARCH_RUN"
"""``<session token>:<key>`` in every run's environment: tells one driver
session's runs apart from any other's (a key repeats when two searches share a
grid)."""

GUARDIAN_GRACE = 2.0
"""Seconds the guardian gives a dead driver's runs between SIGTERM and SIGKILL."""

_REAP_INTERVAL = 2.0
"""Seconds between two looks for dead orphans when a run ends with nothing
left (they are rare, and one look costs a pass over ``/proc``)."""

_EXTRA_ROUNDS = 3
"""SIGKILL rounds after the first stop, for processes forked meanwhile."""


class Containment:
    """The processes of one driver session's runs: find, stop, reap.

    Args:
        grace: Seconds between SIGTERM and SIGKILL.
    """

    def __init__(self, grace: float = proctree.DEFAULT_GRACE) -> None:
        self.grace = grace
        self.token = uuid.uuid4().hex[:12]
        self.lock = threading.Lock()  # held while a run starts and is registered, and while reaping
        self._prepared = False
        self._subreaper = False
        self._cgroups: cgroup.SearchCgroups | None = None
        self._guardian: Guardian | None = None
        self._leaders: dict[int, str] = {}  # pid -> key, until the waiter has reaped it and cleaned up
        self._groups: dict[str, Path] = {}
        self._sealed: set[str] = set()  # runs moved into their cgroup before they could fork
        self._stopped: set[int] = set()  # pids we signalled, so their zombies are ours to reap
        self._reaped_at = -float("inf")

    def prepare(self, *, guard: bool, cgroups: bool = True) -> None:
        """Before the first run: subreaper, the session's cgroup, the guardian.

        Runs that must outlive the driver get neither ``guard`` nor
        ``cgroups``: the session's cgroup is killed when the session ends.
        """
        if self._prepared:
            return
        self._prepared = True
        self._subreaper = proctree.become_subreaper()
        self._cgroups = cgroup.SearchCgroups.create(self.token) if cgroups else None
        if not guard:
            return
        root = None if self._cgroups is None else self._cgroups.root
        try:
            self._guardian = Guardian(f"{RUN_MARKER_ENV}={self.token}:", root, min(self.grace, GUARDIAN_GRACE))
        except OSError as exc:
            log.warning("cannot start the guardian (runs may outlive a killed driver): %s", exc)

    def marker(self, key: str) -> str:
        return f"{self.token}:{key}"

    def _marker_bytes(self, key: str) -> bytes:
        return f"{RUN_MARKER_ENV}={self.marker(key)}".encode()

    def started(self, name: str, key: str, pid: int, *, wrapper: str | None = None) -> None:
        """Register a run's leader right after ``Popen`` (the caller holds :attr:`lock`).

        The run is *sealed* when it cannot have forked before it entered its
        cgroup: it still is ``wrapper`` (``setpriv``, which only execs the
        run), or no process at all was created after it. Then the cgroup
        alone holds everything it will start, and its end needs no scan.
        """
        self._leaders[pid] = key
        if self._cgroups is None:
            return
        group = self._cgroups.add(name, pid)
        if group is None:
            return
        self._groups[key] = group
        if _last_pid() == pid or (wrapper is not None and _executable(pid) == _real_path(wrapper)):
            self._sealed.add(key)

    def members(self, key: str, leader_pid: int, table: dict[int, proctree.ProcInfo] | None, *,
                leader: bool) -> list[psutil.Process]:
        """The live processes of run ``key`` (with or without its leader).

        They are its cgroup's and, from the process ``table`` (None: the
        cgroup alone), the leader's descendants and those of the driver's
        adopted children that carry the run's marker or session.
        """
        me = os.getpid()
        marker = self._marker_bytes(key)
        pids: set[int] = set()
        if table is not None:
            roots = [leader_pid] if leader else []
            for info in table.values():
                if info.ppid == me and not info.zombie and info.pid not in self._leaders:
                    if info.sid == leader_pid or proctree.has_marker(info.pid, marker):
                        roots.append(info.pid)
            pids = {pid for pid in proctree.descendants(table, roots) if not table[pid].zombie}
        group = self._groups.get(key)
        if group is not None:
            pids.update(cgroup.pids(group))
        if not self._subreaper:  # orphans went to init: only their session still tells
            pids.update(p.pid for p in proctree.session_members(leader_pid) if proctree.has_marker(p.pid, marker))
        pids.discard(me)
        if not leader:
            pids.discard(leader_pid)
        return proctree.as_processes(sorted(pids))

    def stop(self, runs: Sequence[tuple[str, psutil.Process]]) -> dict[str, set[int]]:
        """Stop runs (leader and all): SIGTERM, SIGKILL after the grace.
        Returns, per key, the other processes that were stopped."""
        table = proctree.scan()
        per_run = {key: [leader, *self.members(key, leader.pid, table, leader=True)] for key, leader in runs}
        unique = {proc.pid: proc for procs in per_run.values() for proc in procs}
        reached = {proc.pid for proc in proctree.terminate_processes(list(unique.values()), self.grace)}
        with self.lock:
            self._stopped |= reached
        leaders = {key: leader.pid for key, leader in runs}
        return {key: {p.pid for p in procs if p.pid in reached and p.pid != leaders[key]}
                for key, procs in per_run.items()}

    def stop_foreign(self, key: str, leader: psutil.Process, marker: str, *, with_leader: bool) -> set[int]:
        """Stop a run an earlier driver session started (adopted): its
        wrapper's descendants, the members of its session that carry its key,
        and every process with its ``marker``. Returns the pids stopped other
        than the leader (which is stopped only ``with_leader``)."""
        procs = foreign_members(key, leader.pid, marker, tree=with_leader)
        if with_leader:
            procs = [leader, *(p for p in procs if p.pid != leader.pid)]
        reached = {p.pid for p in proctree.terminate_processes(procs, self.grace)}
        reached.discard(leader.pid)
        return reached

    def finish(self, key: str, leader_pid: int) -> set[int]:
        """After the leader was reaped: stop what it left, remove its cgroup,
        reap orphans. Returns the pids stopped."""
        stopped: set[int] = set()
        table = None if key in self._sealed else proctree.scan()
        left = self.members(key, leader_pid, table, leader=False)
        if left:
            stopped |= {p.pid for p in proctree.terminate_processes(left, self.grace)}
            for _round in range(_EXTRA_ROUNDS):
                table = None if key in self._sealed else proctree.scan()
                left = self.members(key, leader_pid, table, leader=False)
                if not left:
                    break
                stopped |= {p.pid for p in proctree.signal_all(left, signal.SIGKILL)}
                proctree.wait_gone(left, 1.0)
        group = self._groups.pop(key, None)
        self._sealed.discard(key)
        if group is not None:
            if cgroup.pids(group):
                cgroup.kill(group)
            cgroup.remove(group, timeout=1.0)
        with self.lock:
            self._stopped |= stopped
        if stopped or time.monotonic() - self._reaped_at >= _REAP_INTERVAL:
            self.reap_orphans(None if stopped else table)
        with self.lock:
            self._leaders.pop(leader_pid, None)
        return stopped

    def reap_orphans(self, table: dict[int, proctree.ProcInfo] | None = None) -> None:
        """Collect the exit status of adopted processes of our runs that died,
        and of nothing else: other children of the driver belong to their ``Popen``.
        Costs one system call while no child of the driver is a zombie."""
        self._reaped_at = time.monotonic()
        if not proctree.zombie_child():
            return
        table = table if table is not None else proctree.scan()
        me = os.getpid()
        with self.lock:
            for info in table.values():
                if info.ppid == me and info.zombie and info.pid not in self._leaders and self._ours(info):
                    if proctree.reap(info.pid):
                        self._stopped.discard(info.pid)

    def _ours(self, info: proctree.ProcInfo) -> bool:
        if info.pid in self._stopped or info.sid in self._leaders:
            return True
        if self._cgroups is None:
            return False
        try:
            with open(f"/proc/{info.pid}/cgroup", encoding="utf-8") as handle:
                return f"/{self._cgroups.root.name}/" in handle.read()
        except OSError:
            return False

    def kill_all(self) -> None:
        """SIGKILL everything in the session's cgroups, at once (signal handlers may call it)."""
        if self._cgroups is not None:
            cgroup.kill(self._cgroups.root)

    def close(self) -> None:
        """At the end of the session: reap, remove the cgroups, release the guardian."""
        self.reap_orphans()
        if self._cgroups is not None:
            self._cgroups.close()
        if self._guardian is not None:
            self._guardian.close()


def foreign_members(key: str, leader_pid: int, marker: str, *, tree: bool) -> list[psutil.Process]:
    """The live processes of a run of another driver session, but its leader:
    with ``tree`` the leader's descendants (only while it lives: its pid may
    be reused once it is gone), its session's members with the run's key, and
    the processes whose environment holds ``HPSEARCH_RUN=<marker>``, with
    their descendants (one pass over ``/proc``)."""
    table = proctree.scan()
    marker_bytes = f"{RUN_MARKER_ENV}={marker}".encode()
    key_bytes = f"{RUN_KEY_ENV}={key}".encode()
    roots = [leader_pid] if tree else []
    for info in table.values():
        if info.zombie or info.pid == leader_pid:
            continue
        if proctree.has_marker(info.pid, marker_bytes) or (
                info.sid == leader_pid and proctree.has_marker(info.pid, key_bytes)):
            roots.append(info.pid)
    pids = {pid for pid in proctree.descendants(table, roots) if not table[pid].zombie}
    pids.discard(leader_pid)
    pids.discard(os.getpid())
    return proctree.as_processes(sorted(pids))


@functools.lru_cache(maxsize=8)
def _real_path(path: str) -> str:
    return os.path.realpath(path)


def _executable(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def _last_pid() -> int | None:
    """The pid the kernel handed out last (in our pid namespace)."""
    try:
        with open("/proc/sys/kernel/ns_last_pid", "rb") as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return None
