"""Where one user's search service keeps its state on this machine.

Everything lives in one owner-only folder on local disk (``$XDG_STATE_HOME/hpsearch``,
default ``~/.local/state/hpsearch``): the registry of searches, the service's
socket, its pid file, its web token. Owner-only because the token and the socket
are the user's credentials on a shared box. ``HPSEARCH_STATE_DIR`` overrides the
folder (tests, or a user who wants it elsewhere).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from hpsearch.errors import UsageError

STATE_ENV = "HPSEARCH_STATE_DIR"


@dataclass(frozen=True)
class StatePaths:
    """The files of one user's service state folder."""

    root: Path

    @property
    def registry(self) -> Path:
        return self.root / "registry.db"

    @property
    def socket(self) -> Path:
        return self.root / "service.sock"

    @property
    def pid_file(self) -> Path:
        return self.root / "service.pid"

    @property
    def lock_file(self) -> Path:
        return self.root / "service.lock"

    @property
    def token_file(self) -> Path:
        return self.root / "web-token"

    @property
    def log_file(self) -> Path:
        return self.root / "service.log"


def state_root() -> Path:
    """The state folder named by the environment, not yet created."""
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV]).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base).expanduser() / "hpsearch"


def state_paths(create: bool = True) -> StatePaths:
    """This user's state folder, created owner-only (0700) when asked.

    Raises:
        UsageError: The folder exists but belongs to someone else or is open to
            others (another user could read the token or talk to the socket).
    """
    root = state_root()
    if create:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if root.exists():
        info = root.stat()
        if info.st_uid != os.getuid():
            raise UsageError(f"state folder {root} belongs to uid {info.st_uid}, not to you; set {STATE_ENV}")
        if stat.S_IMODE(info.st_mode) & 0o077:
            os.chmod(root, 0o700)
    return StatePaths(root)
