"""Which file system a folder lives on, for the choices that depend on it.

SQLite's WAL mode keeps its index in shared memory (the ``-shm`` file,
mmap'ed by every connection), which only works when all connections run on
one host; on a network file system it can corrupt the database. The type is
read from ``/proc/self/mountinfo``: unlike ``statfs`` magic numbers it names
FUSE file systems (``fuse.sshfs``) and needs no table of numbers. Where the
file cannot be read (not Linux), the folder counts as local.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")

NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "lustre", "gpfs", "cifs", "smb", "smb2", "smb3", "smbfs", "ceph", "fuse.ceph-fuse",
    "glusterfs", "fuse.glusterfs", "beegfs", "panfs", "wekafs", "afs", "9p", "ocfs2", "gfs2",
    "fuse.sshfs", "sshfs", "fuse.s3fs", "fuse.gcsfuse", "davfs", "fuse.davfs2",
})
"""File system types where SQLite's WAL mode must not be used (shared by several hosts)."""

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def mount_type(mountinfo: str, path: str) -> str | None:
    """The type of the file system holding the absolute ``path``, from mountinfo text.

    The mount point that is the longest prefix of ``path`` wins; of several
    mounts on one point the last (the one on top) wins. None if no line matches.
    """
    best: tuple[int, str] | None = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        separator = fields.index("-", 6)
        if len(fields) <= separator + 1:
            continue
        mount_point = _unescape(fields[4])
        if _is_under(path, mount_point) and (best is None or len(mount_point) >= best[0]):
            best = (len(mount_point), fields[separator + 1])
    return None if best is None else best[1]


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as ``\\040`` etc."""
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def _is_under(path: str, mount_point: str) -> bool:
    return mount_point == "/" or path == mount_point or path.startswith(mount_point.rstrip("/") + "/")


def is_network_filesystem(fstype: str | None) -> bool:
    return fstype is not None and fstype.lower() in NETWORK_FILESYSTEMS


def filesystem_type(folder: Path) -> str | None:
    """The type of the file system ``folder`` is on; None where it cannot be told."""
    try:
        text = MOUNTINFO.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return None
    return mount_type(text, os.path.realpath(folder))


def journal_mode_for(folder: Path) -> str:
    """``WAL`` on a local file system, ``DELETE`` (a rollback journal) on a network one."""
    return "DELETE" if is_network_filesystem(filesystem_type(folder)) else "WAL"


def folder_problem(path: Path) -> str | None:
    """Why ``path`` cannot be, or be made, a writable folder; None when it can.

    Checked before anything is created, so a search or a command fails at
    once and not after its first runs: the nearest existing ancestor decides.
    """
    if path.exists() and not path.is_dir():
        return "is a file, not a folder"
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"lies under the file {existing}"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None
