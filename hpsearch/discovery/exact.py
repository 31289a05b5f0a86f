"""A script's flags exactly as its own parser defines them, by running it up to ``parse_args``.

The script runs in a subprocess under :mod:`hpsearch.discovery.capture`,
which stops it the moment it parses its arguments. Its output is discarded,
its stdin is empty, no GPU is visible to it, network connections are refused
and it gets ``timeout`` seconds. Any failure (a missing import, a crash, an
exit before parsing, the time limit) returns None with the reason, so the
caller falls back to reading the source.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from pathlib import Path

from hpsearch.discovery.flags import EXACT, Discovery, Flag

CAPTURE = Path(__file__).with_name("capture.py")
TIMEOUT = 30.0  # seconds: importing torch on a busy machine takes a while
_QUIET_ENV = {
    "CUDA_VISIBLE_DEVICES": "",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "WANDB_MODE": "disabled",
    "PYTHONDONTWRITEBYTECODE": "1",
}


def capture_flags(script: str | Path, python: str, *, cwd: str | Path | None = None,
                  timeout: float = TIMEOUT) -> tuple[Discovery | None, str]:
    """The script's flags from its parser, or ``(None, why not)``."""
    script = Path(script).resolve()
    with tempfile.TemporaryDirectory(prefix="hpsearch-init-") as folder:
        result = Path(folder) / "flags.json"
        try:
            process = subprocess.Popen(
                [python, str(CAPTURE), str(result), str(script)],
                cwd=str(cwd or Path.cwd()), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, env={**os.environ, **_QUIET_ENV}, start_new_session=True,
            )
        except OSError as exc:
            return None, f"cannot start {python}: {exc.strerror or exc}"
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            return None, f"it did not parse its arguments within {timeout:g} s"
        finally:
            _kill_group(process)  # anything it started in the background goes too
        try:
            data = json.loads(result.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None, f"it ended (exit status {process.returncode}) without parsing its arguments"
    if data.get("status") != "captured":
        return None, str(data.get("error", "unknown failure"))
    flags = [Flag.from_json(item) for item in data["flags"]]
    discovery = Discovery(script=str(script), method=EXACT, flags=flags, parser_found=True,
                          allow_abbrev=bool(data.get("allow_abbrev", True)),
                          subcommands=list(data.get("subcommands", [])))
    if discovery.subcommands:
        discovery.notes.append(f"subcommands {', '.join(discovery.subcommands)}: their flags are not listed "
                               "(hpsearch passes one command line per run)")
    return discovery, ""


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()
