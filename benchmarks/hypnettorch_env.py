"""A throwaway virtual environment with hypnettorch 0.0.4, for the comparison.

hypnettorch's ``hpsearch`` imports ``hypnettorch.utils.misc``, which imports
torch (and matplotlib) at module level but uses torch only inside two helpers
the search never calls. A stub package named ``torch`` on that environment's
PYTHONPATH is therefore enough. Nothing here is a dependency of the project:
it all lives under ``benchmarks/_work/`` (git-ignored).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

HYPNETTORCH = "hypnettorch==0.0.4"
# numpy/pandas: the search itself; GPUtil: its GPU poll (needs setuptools for
# distutils on Python 3.12+); matplotlib: imported by hypnettorch.utils.misc.
SUPPORT = ("numpy", "pandas", "GPUtil", "setuptools", "matplotlib")
TORCH_STUB = '''"""Stand-in for torch, written by benchmarks/hypnettorch_env.py.

hypnettorch.utils.misc imports torch at module level; the hpsearch code path
never calls into it.
"""
from . import nn  # noqa: F401
'''


@dataclass(frozen=True)
class HypnettorchEnv:
    """Where the environment is and how to start things in it."""

    root: Path

    @property
    def bin_dir(self) -> Path:
        return self.root / ("Scripts" if os.name == "nt" else "bin")

    @property
    def python(self) -> Path:
        return self.bin_dir / "python"

    @property
    def stubs(self) -> Path:
        return self.root / "stubs"

    @property
    def ready_marker(self) -> Path:
        return self.root / "ready"

    def pythonpath(self) -> str:
        return str(self.stubs)


class EnvUnavailable(Exception):
    """hypnettorch cannot be installed here; the message says why."""


def ensure_env(root: Path, log: Path) -> HypnettorchEnv:
    """Build the environment once (later calls reuse it).

    Raises:
        EnvUnavailable: creating the venv, installing, or importing failed.
    """
    env = HypnettorchEnv(root)
    if env.ready_marker.is_file():
        return env
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(root)
    except Exception as exc:  # ensurepip missing, disk full, ...
        raise EnvUnavailable(f"cannot create a virtualenv in {root}: {exc}") from exc
    _write_torch_stub(env.stubs)
    with open(log, "wb") as out:
        _step(out, [str(env.python), "-m", "pip", "install", "--disable-pip-version-check", "-q", HYPNETTORCH,
                    *SUPPORT], f"pip install {HYPNETTORCH}")
        _step(out, [str(env.python), "-c", "import hypnettorch.hpsearch.hpsearch"], "importing hypnettorch's hpsearch",
              env={**os.environ, "PYTHONPATH": env.pythonpath(), "MPLBACKEND": "Agg"})
    env.ready_marker.write_text(f"{HYPNETTORCH} for Python {sys.version.split()[0]}\n")
    return env


def _write_torch_stub(folder: Path) -> None:
    package = folder / "torch"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(TORCH_STUB)
    (package / "nn.py").write_text('"""Stand-in for torch.nn (see torch/__init__.py)."""\n')


def _step(out, argv: list[str], what: str, env: dict[str, str] | None = None) -> None:
    out.write(f"$ {' '.join(argv)}\n".encode())
    out.flush()
    result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=900)
    if result.returncode != 0:
        raise EnvUnavailable(f"{what} failed (exit {result.returncode}); see {out.name}")
