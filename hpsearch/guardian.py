"""A small process per foreground search that stops its runs when the driver dies.

``kill -9`` of the driver gives it no chance to stop anything. Its direct
children die with it (``PR_SET_PDEATHSIG``), but what they started -- and
everything that left them -- would live on. The guardian is started once per
driver session, in a session of its own (a Ctrl-C meant for the driver does
not reach it). It holds the read end of a pipe whose only write end is in the
driver, so it sleeps in ``read`` until the driver is gone, however it went.
Then it stops every process in the session's cgroup and every process whose
environment carries the session's marker (SIGTERM, and SIGKILL after a short
grace), removes the cgroups, and exits. After a normal end the driver has
stopped everything already and the sweep finds nothing.

It imports nothing of hpsearch's but :mod:`hpsearch.cgroup` and needs only
the standard library (no site-packages, no psutil), so it starts quickly and
does not depend on the driver's state.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable

from hpsearch import cgroup


class Guardian:
    """The driver's side: the write end of the pipe. Closing it (or dying)
    tells the guardian to sweep and exit."""

    def __init__(self, marker: str, cgroup_root: Path | None, grace: float) -> None:
        read_end, self._write_end = os.pipe()
        # -S: no site-packages to import; this module needs only the standard library
        argv = [sys.executable, "-S", "-m", "hpsearch.guardian", str(read_end), marker, str(grace),
                "" if cgroup_root is None else str(cgroup_root)]
        try:
            self.proc = subprocess.Popen(
                # no output: a pipe the driver writes to must end with the driver, not with the guardian
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                pass_fds=(read_end,), start_new_session=True, cwd="/",
                env={**os.environ, "PYTHONPATH": _package_parent()},
            )
        finally:
            os.close(read_end)

    def close(self) -> None:
        """Let the guardian sweep and exit; does not wait for it."""
        if self._write_end >= 0:
            os.close(self._write_end)
            self._write_end = -1
        self.proc.poll()


def _package_parent() -> str:
    here = str(Path(__file__).resolve().parent.parent)
    rest = os.environ.get("PYTHONPATH")
    return here if not rest else here + os.pathsep + rest


# ---- the guardian process


def marked_pids(marker: bytes) -> list[int]:
    """Processes whose environment holds ``marker`` (a ``NAME=prefix`` start of an entry)."""
    found = []
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as handle:
                environ = handle.read()
        except OSError:
            continue
        if environ.startswith(marker) or b"\0" + marker in environ:
            found.append(int(name))
    return found


def cgroup_pids(root: Path | None) -> list[int]:
    return [] if root is None else cgroup.pids(root)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :][:1] not in (b"Z", b"X")


def _signal(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def sweep(marker: bytes, cgroup_root: Path | None, grace: float) -> int:
    """Stop the session's runs: SIGTERM, then SIGKILL until none is left
    (a process may fork while it is being stopped). Returns how many were found."""
    pids = set(cgroup_pids(cgroup_root)) | set(marked_pids(marker))
    _signal(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    for _round in range(50):
        if cgroup_root is not None:
            cgroup.kill(cgroup_root)
        left = [pid for pid in set(cgroup_pids(cgroup_root)) | set(marked_pids(marker)) if _alive(pid)]
        if not left:
            break
        pids.update(left)
        _signal(left, signal.SIGKILL)
        time.sleep(0.02)
    if cgroup_root is not None:
        cgroup.remove(cgroup_root, timeout=2.0)
    return len(pids)


def main(argv: list[str]) -> int:
    """``python -m hpsearch.guardian FD MARKER GRACE CGROUP`` (CGROUP may be empty)."""
    fd, marker, grace, root = int(argv[0]), argv[1].encode(), float(argv[2]), argv[3]
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_IGN)
    while True:
        try:
            if not os.read(fd, 4096):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    sweep(marker, Path(root) if root else None, grace)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
