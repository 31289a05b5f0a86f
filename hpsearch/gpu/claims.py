"""Start-up reservations on GPUs, shared by every hpsearch process on the machine.

A new run's memory shows in ``nvidia-smi`` only seconds after it started
(``--sim_startup_time``). Within one process the planner holds that memory
back (:class:`~hpsearch.gpu.allocate.Reservation`); this module lets other
processes see it too -- a foreground search, a service's broker, another
user's service -- so two of them never start runs on the same GPU in that
window. Each reservation is a small JSON *claim* file in one shared sticky
folder (``<tmp>/hpsearch-gpu-claims``, mode 1777; ``HPSEARCH_CLAIMS_DIR``
overrides it, ``HPSEARCH_NO_GPU_CLAIMS=1`` turns claims off).

Anyone may write there, so nothing read from it is trusted: a claim counts
only if it is a regular file no larger than :data:`MAX_CLAIM_BYTES`, holds
every field with the right type, belongs to the uid it names, names a process
of that uid that is alive with the start time it names, was not written in
the future and has not expired; its expiry is capped at
:data:`MAX_CLAIM_SECONDS` after it was written. A stale or forged claim can
therefore delay a run, never block it. Files are opened relative to the
folder's descriptor with ``O_NOFOLLOW`` (and created with ``O_EXCL``), so a
planted symlink never redirects a write; a folder that is a symlink, not a
directory, or open to others without the sticky bit is not used.

Planning rounds that write claims hold an ``flock`` on the folder's lock file
(with bounded patience: a holder that never lets go only delays), so the
claims read and the claims written by one round are one step for every other
planner.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import secrets
import stat
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import psutil

log = logging.getLogger(__name__)

CLAIMS_ENV = "HPSEARCH_CLAIMS_DIR"
NO_CLAIMS_ENV = "HPSEARCH_NO_GPU_CLAIMS"
FOLDER_NAME = "hpsearch-gpu-claims"
MAX_CLAIM_SECONDS = 600.0
"""A claim counts at most this long after it was written, whatever expiry it names."""
FUTURE_SLACK = 5.0
"""Seconds a claim's write time may lie ahead of our clock (clock steps) and still count."""
MAX_CLAIM_BYTES = 4096
LOCK_FILE = ".lock"
LOCK_PATIENCE = 1.0
"""Seconds a planning round waits for the folder's lock before it goes on without it."""
SUFFIX = ".claim"
_START_TOLERANCE = 0.01  # seconds (psutil reports start times in clock ticks)
_VERSION = 1


class ClaimsUnavailable(OSError):
    """The claims folder cannot be used safely."""


@dataclass(frozen=True)
class Claim:
    """One start-up reservation of one process.

    Attributes:
        gpu: The GPU's index as ``nvidia-smi`` shows it.
        uuid: The GPU's UUID, if known (matched before the index).
        baseline: The GPU's used memory (MiB) when the run started.
        reserved: MiB set aside for the run.
        written: Wall-clock time the claim was written.
        expires: Wall-clock time it lapses.
        pid: The claiming process.
        pid_started: Its start time (psutil's ``create_time``).
        uid: Its owner.
    """

    gpu: int
    uuid: str | None
    baseline: float
    reserved: float
    written: float
    expires: float
    pid: int
    pid_started: float
    uid: int

    def until(self) -> float:
        """When it stops counting (wall clock): its expiry, capped."""
        return min(self.expires, self.written + MAX_CLAIM_SECONDS)


def default_folder() -> Path:
    return Path(os.environ.get(CLAIMS_ENV) or os.path.join(tempfile.gettempdir(), FOLDER_NAME))


def open_folder(path: Path) -> int:
    """The claims folder's descriptor, made (mode 1777) if missing.

    Raises:
        ClaimsUnavailable: It is a symlink or not a directory, or others may
            write there without the sticky bit (they could delete our claims).
    """
    try:
        os.mkdir(path, 0o700)
        os.chmod(path, 0o1777)  # after mkdir: the umask would take bits away
    except FileExistsError:
        pass
    except OSError as exc:
        raise ClaimsUnavailable(exc.errno, f"cannot make {path}: {exc.strerror}") from None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise ClaimsUnavailable(exc.errno, f"{path} is not a folder we can use: {exc.strerror}") from None
    info = os.fstat(fd)
    mode = stat.S_IMODE(info.st_mode)
    shared = mode & 0o022
    if info.st_uid not in (os.getuid(), 0) and not (mode & stat.S_ISVTX):
        os.close(fd)
        raise ClaimsUnavailable(errno.EPERM, f"{path} belongs to uid {info.st_uid} and is not sticky")
    if shared and not mode & stat.S_ISVTX:
        os.close(fd)
        raise ClaimsUnavailable(errno.EPERM, f"{path} is writable by others but not sticky")
    return fd


class ClaimBoard:
    """This process's view of the claims folder: read the others' claims,
    write and remove its own.

    Args:
        folder_fd: From :func:`open_folder`.
        wall: Wall clock (claims carry wall-clock times: other processes read them).
    """

    def __init__(self, folder_fd: int, *, wall: Callable[[], float] = time.time) -> None:
        self._fd = folder_fd
        self.wall = wall
        self.pid = os.getpid()
        self.pid_started = psutil.Process(self.pid).create_time()
        self.uid = os.getuid()
        self._mine: dict[str, Claim] = {}
        self._handed: set[str] = set()  # claims rewritten under a run's own pid (see hand_over)
        self._lock_fd: int | None = None
        self._warned = False

    @classmethod
    def from_environment(cls, warn: Callable[[str], None] = log.warning) -> "ClaimBoard | None":
        """The board of the folder the environment names; None (with one
        warning) where claims are off or the folder is unusable."""
        if os.environ.get(NO_CLAIMS_ENV):
            return None
        folder = default_folder()
        try:
            return cls(open_folder(folder))
        except OSError as exc:
            warn(f"GPU claims shared with other processes are off: {exc}")
            return None

    # ---- reading

    def others(self) -> list[Claim]:
        """Every valid claim of another process: one scan of the folder."""
        now = self.wall()
        found = []
        alive: dict[tuple[int, float, int], bool] = {}
        try:
            entries = list(os.scandir(self._fd))
        except OSError as exc:
            self._warn(f"cannot read the GPU claims folder: {exc}")
            return []
        for entry in entries:
            if not entry.name.endswith(SUFFIX) or entry.name in self._mine or entry.name in self._handed:
                continue
            claim = self._read(entry.name)
            if claim is None or claim.pid == self.pid or claim.written > now + FUTURE_SLACK:
                continue
            who = (claim.pid, claim.pid_started, claim.uid)
            if claim.until() > now and who not in alive:
                alive[who] = _process_of(*who)
            if claim.until() > now and alive[who]:
                found.append(claim)
            elif claim.uid == self.uid:  # a lapsed claim of ours, e.g. of a detached run that ended unfollowed
                with contextlib.suppress(OSError):
                    os.unlink(entry.name, dir_fd=self._fd)
        return found

    def _read(self, name: str) -> Claim | None:
        """A claim file's content if it is well-formed and its owner is the uid it names."""
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=self._fd)
        except OSError:
            return None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_CLAIM_BYTES:
                return None
            data = os.read(fd, MAX_CLAIM_BYTES + 1)
        except OSError:
            return None
        finally:
            os.close(fd)
        claim = parse_claim(data)
        if claim is None or claim.uid != info.st_uid:
            return None
        return claim

    # ---- writing

    def write(self, *, gpu: int, uuid: str | None, baseline: float, reserved: float, seconds: float) -> str | None:
        """Write a claim of this process; its file name, or None if it could not be written (warned once)."""
        now = self.wall()
        claim = Claim(gpu=gpu, uuid=uuid, baseline=float(baseline), reserved=float(reserved), written=now,
                      expires=now + min(seconds, MAX_CLAIM_SECONDS), pid=self.pid, pid_started=self.pid_started,
                      uid=self.uid)
        name = f"{self.pid}-{secrets.token_hex(6)}{SUFFIX}"
        if not self._store(name, claim):
            return None
        self._mine[name] = claim
        return name

    def hand_over(self, name: str | None, pid: int, pid_started: float) -> bool:
        """Make our claim ``name`` the claim of process ``pid`` (a run that
        outlives this process, see :mod:`hpsearch.runwrap`): it then counts
        while that process lives, also after we died, until its expiry. We
        still remove it when the run ends while we follow it, and
        :meth:`close` leaves it. False if ``name`` is no claim of ours (any more)."""
        claim = self._mine.get(name) if name is not None else None
        if claim is None:  # not ours, or handed over already
            return False
        if self._store(name, replace(claim, pid=pid, pid_started=pid_started)):
            del self._mine[name]
            self._handed.add(name)
        return True

    def _store(self, name: str, claim: Claim) -> bool:
        """Write ``claim`` as file ``name`` (temporary file, then rename); False (warned once) if it failed."""
        temp = f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                         dir_fd=self._fd)
            try:
                os.write(fd, json.dumps({"version": _VERSION, **asdict(claim)}).encode())
            finally:
                os.close(fd)
            os.replace(temp, name, src_dir_fd=self._fd, dst_dir_fd=self._fd)
        except OSError as exc:
            self._warn(f"cannot write a GPU claim: {exc}")
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=self._fd)
            return False
        return True

    def remove(self, name: str | None) -> None:
        if name is None or (name not in self._mine and name not in self._handed):
            return
        self._mine.pop(name, None)
        self._handed.discard(name)
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=self._fd)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder's lock for one planning round, if it comes within
        :data:`LOCK_PATIENCE`; otherwise go on without it."""
        fd = self._lock()
        held = False
        if fd is not None:
            deadline = time.monotonic() + LOCK_PATIENCE
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    held = True
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        self._warn("the GPU claims lock is held too long by another process; planning without it")
                        break
                    time.sleep(0.005)
                except OSError:
                    break
        try:
            yield
        finally:
            if held:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _lock(self) -> int | None:
        if self._lock_fd is None:
            try:
                fd = os.open(LOCK_FILE, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                             0o644, dir_fd=self._fd)
            except OSError as exc:
                self._warn(f"cannot open the GPU claims lock: {exc}")
                self._lock_fd = -1
                return None
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                self._lock_fd = -1
                return None
            self._lock_fd = fd
        return self._lock_fd if self._lock_fd >= 0 else None

    def close(self) -> None:
        """Remove every claim of ours and let go of the folder; claims handed
        over to runs that outlive us stay (they lapse with those runs)."""
        for name in list(self._mine):
            self.remove(name)
        for fd in (self._lock_fd, self._fd):
            if fd is not None and fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._lock_fd = self._fd = -1

    def _warn(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning(message)


def parse_claim(data: bytes) -> Claim | None:
    """A claim from a file's bytes; None unless every field is there with the right type."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(raw, dict) or raw.get("version") != _VERSION:
        return None
    ints = ("gpu", "pid", "uid")
    numbers = ("baseline", "reserved", "written", "expires", "pid_started")
    if not all(type(raw.get(name)) is int for name in ints):
        return None
    if not all(type(raw.get(name)) in (int, float) and raw[name] == raw[name] for name in numbers):
        return None  # (NaN is not equal to itself)
    uuid = raw.get("uuid")
    if uuid is not None and not (isinstance(uuid, str) and len(uuid) <= 128):
        return None
    if raw["pid"] <= 0 or raw["gpu"] < 0 or raw["reserved"] < 0 or raw["baseline"] < 0:
        return None
    return Claim(gpu=raw["gpu"], uuid=uuid, baseline=float(raw["baseline"]), reserved=float(raw["reserved"]),
                 written=float(raw["written"]), expires=float(raw["expires"]), pid=raw["pid"],
                 pid_started=float(raw["pid_started"]), uid=raw["uid"])


def _process_of(pid: int, started: float, uid: int) -> bool:
    """Whether ``pid`` is alive, started at ``started`` and belongs to ``uid``."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return abs(process.create_time() - started) <= _START_TOLERANCE and process.uids().real == uid
    except (psutil.Error, OSError):
        return False
