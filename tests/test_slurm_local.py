"""scripts/slurm-local.sh tells its own controller from another one on the same port.

These tests change nothing: they judge captured ``scontrol show config``
texts and let the script choose ports beside sockets the test holds, so they
run beside a Slurm that other tests use.
"""

from __future__ import annotations

import os
import socket
import subprocess
from contextlib import ExitStack
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "slurm-local.sh"
FOREIGN = 4


def show_config(cluster: str, conf: str, arrays: int) -> str:
    return (f"Configuration data as of 2026-12-01T09:00:00\nAccountingStorageType   = (null)\n"
            f"ClusterName             = {cluster}\nMaxArraySize            = {arrays}\n"
            f"SlurmctldPort           = 6817\nSLURM_CONF              = {conf}\nSLURM_VERSION           = 22.05.8\n")


def script(*args: str, base: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "SLURM_LOCAL_BASE": str(base), **env}
    if "SLURM_LOCAL_PORT" not in env:
        environment.pop("SLURM_LOCAL_PORT", None)
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=environment, timeout=120)


@pytest.mark.parametrize("cluster, conf, arrays, ours", [
    ("ci", "{base}/slurm.conf", 5, True),
    ("ci", "/etc/slurm/slurm.conf", 5, False),  # the machine's own Slurm
    ("prod", "{base}/slurm.conf", 5, False),
    ("ci", "{base}/slurm.conf", 1001, False),  # an older configuration: other limits
])
def test_check_compares_the_answering_controller_with_ours(tmp_path, cluster, conf, arrays, ours):
    base = tmp_path / "slurm"
    shown = tmp_path / "shown.txt"
    shown.write_text(show_config(cluster, conf.format(base=base), arrays))
    result = script("check", str(shown), base=base)
    assert result.returncode == (0 if ours else FOREIGN), result.stderr
    if not ours:
        assert f"ClusterName={cluster} SLURM_CONF={conf.format(base=base)} MaxArraySize={arrays}" in result.stderr
        assert f"ours: ClusterName=ci SLURM_CONF={base}/slurm.conf MaxArraySize=5" in result.stderr
    assert not base.exists()  # a check creates nothing


def test_captured_config_of_another_cluster_is_not_ours(tmp_path):
    result = script("check", str(ROOT / "tests" / "data" / "scontrol_show_config.txt"),
                    base=Path("/tmp/hpsearch-slurm"))
    assert result.returncode == FOREIGN and "MaxArraySize=1001" in result.stderr


def hold(stack: ExitStack, port: int) -> bool:
    """Listen on ``port`` for the rest of the test; False if something else has it already."""
    sock = stack.enter_context(socket.socket())
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        return False
    sock.listen()
    return True


def test_start_would_take_ports_of_its_own_beside_another_listener(tmp_path):
    base = tmp_path / "slurm"  # not the base of any running controller: whatever answers is not ours
    with ExitStack() as stack:
        for port in (6817, 6918):  # 6817 itself, and the slurmd port of the next pair
            hold(stack, port)
        result = script("port", base=base)
        assert result.returncode == 0, result.stderr
        port = int(result.stdout)
        assert port >= 7017 and (port - 6817) % 100 == 0
        with ExitStack() as probe:  # the pair it chose is free
            assert hold(probe, port) and hold(probe, port + 1)
    assert not base.exists()


def test_a_taken_port_given_by_the_user_is_refused(tmp_path):
    with ExitStack() as stack:
        listener = stack.enter_context(socket.socket())
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        result = script("port", base=tmp_path / "slurm", SLURM_LOCAL_PORT=str(taken))
    assert result.returncode == 1
    assert f"port {taken} (SLURM_LOCAL_PORT) is taken by another program" in result.stderr
    bad = script("port", base=tmp_path / "slurm", SLURM_LOCAL_PORT="http")
    assert bad.returncode == 1 and "must be a port number" in bad.stderr
