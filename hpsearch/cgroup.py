"""One cgroup (v2) per local run, where the machine lets us make them.

A cgroup holds every process a run starts, whatever it does (double fork,
``setsid``, a cleared environment), and ``cgroup.kill`` stops them all at
once. The driver makes ``hpsearch-<token>/`` below its own cgroup in the
unified hierarchy (``/sys/fs/cgroup`` on cgroup2-only machines,
``/sys/fs/cgroup/unified`` on hybrid ones) and one folder per run in it. That
needs write access there (root, or a delegated subtree); elsewhere
:meth:`SearchCgroups.create` answers None and runs are found through the
subreaper and their environment marker instead (:mod:`hpsearch.proctree`).

A run is moved into its cgroup right after ``Popen`` returns, before the
program it execs has started (so before it can fork): no ``preexec_fn`` and
no wrapper, which keeps a start at about a millisecond.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path

NO_CGROUPS_ENV = "HPSEARCH_NO_CGROUPS"
"""Set (non-empty) to run without cgroups even where they could be used."""

_PROCS = "cgroup.procs"
_KILL = "cgroup.kill"


def unified_mount() -> Path | None:
    """Where the cgroup2 hierarchy is mounted, from ``/proc/self/mountinfo``."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as handle:
            lines = handle.readlines()
    except OSError:
        return None
    for line in lines:
        head, sep, tail = line.partition(" - ")
        if sep and tail.split()[:1] == ["cgroup2"]:
            return Path(head.split()[4])
    return None


def own_cgroup(mount: Path) -> Path | None:
    """This process's cgroup folder in the unified hierarchy."""
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("0::"):
                    path = mount / line[3:].strip().lstrip("/")
                    return path if path.is_dir() else None
    except OSError:
        pass
    return None


def pids(group: Path) -> list[int]:
    """Live processes in ``group`` and the groups below it."""
    found: list[int] = []
    for folder, _subdirs, _files in os.walk(group):
        try:
            with open(os.path.join(folder, _PROCS), encoding="ascii") as handle:
                found.extend(int(line) for line in handle if line.strip())
        except (OSError, ValueError):
            continue
    return found


def kill(group: Path) -> None:
    """SIGKILL everything in ``group`` (and below): with ``cgroup.kill``
    (Linux 5.14+) in one step that no fork escapes, else pid by pid."""
    try:
        Path(group, _KILL).write_text("1")
        return
    except OSError:
        pass
    for pid in pids(group):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def remove(group: Path, timeout: float = 0.0) -> bool:
    """Remove ``group`` and the empty groups below it; a group still holding
    a process (or its exit in progress) is retried until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            for folder, _subdirs, _files in os.walk(group, topdown=False):
                os.rmdir(folder)
            return True
        except FileNotFoundError:
            return True
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() >= deadline:
                return False
            time.sleep(0.01)


class SearchCgroups:
    """The cgroup folder of one driver session, with one sub-folder per run."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def create(cls, token: str) -> "SearchCgroups | None":
        """Make ``hpsearch-<token>`` below our own cgroup, or None where we may
        not (or where ``HPSEARCH_NO_CGROUPS`` is set, to use the fallback)."""
        if os.environ.get(NO_CGROUPS_ENV):
            return None
        mount = unified_mount()
        parent = None if mount is None else own_cgroup(mount)
        if parent is None or not os.access(parent / _PROCS, os.W_OK):
            return None
        root = parent / f"hpsearch-{token}"
        try:
            root.mkdir()
        except OSError:
            return None
        return cls(root)

    def add(self, name: str, pid: int) -> Path | None:
        """Put process ``pid`` into a new group ``name``; None if that failed
        (the run is then found without its cgroup)."""
        group = self.root / name
        try:
            group.mkdir(exist_ok=True)
        except OSError:
            return None
        try:
            fd = os.open(group / _PROCS, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, str(pid).encode())
            finally:
                os.close(fd)
        except OSError:  # gone already, or not ours to move
            remove(group)
            return None
        return group

    def close(self) -> None:
        """Kill what is left in any run's group and remove every group."""
        if pids(self.root):
            kill(self.root)
        remove(self.root, timeout=1.0)
