"""Shared fixtures, and the rules that let the suite run in parallel processes.

scripts/test.sh runs the suite with pytest-xdist (``-n 4 --dist loadgroup``): the
tests of one worker run one after another, the workers side by side. Every test
must therefore be safe beside any other test:

* files only below its own ``tmp_path`` (or ``tmp_path_factory``); nothing fixed
  under /tmp or $HOME. The autouse fixture below gives each test its own GPU
  claims folder and service state folder; the ``fake_gpus`` fixture its own fake
  nvidia-smi state.
* no fixed ports (bind port 0 and read the port back);
* find its own processes by a unique tag (uuid) or by its own folders, never by
  a name other tests may use; never count the machine's processes or cgroups;
* environment changes only through ``monkeypatch``.

Tests that use the one shared Slurm (marked ``slurm``) all run in one worker,
one after another (``xdist_group("slurm")``, added below), since its 8 CPUs
and 4 GPUs are shared and some tests count what runs at once. A module whose
module-scoped fixture is expensive (a browser, a finished search) can keep its
tests together with ``pytestmark = pytest.mark.xdist_group("<name>")``.
"""

from __future__ import annotations

import os
import sys

import pytest

from tests.fakes.fakegpu import FAKES_DIR, STATE_ENV, FakeGpus

pytest_plugins = ["tests.cluster_fixtures"]  # the fake_lsf and fake_slurm fixtures

SLURM_GROUP = "slurm"


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items) -> None:
    """Put every test that uses the shared local Slurm into one xdist group (one worker, in turn)."""
    for item in items:
        if item.get_closest_marker("slurm") is not None:
            item.add_marker(pytest.mark.xdist_group(SLURM_GROUP))


@pytest.fixture
def fake_gpus(tmp_path, monkeypatch) -> FakeGpus:
    """Four idle 16000 MiB fake GPUs answering on PATH; reconfigure with
    ``fake_gpus.configure(...)``/``set_gpu(...)``.

    The directory of the running interpreter comes second on PATH so that the
    fake's ``#!/usr/bin/env python3`` starts a plain interpreter instead of a
    slow version-manager shim.
    """
    fakes = FakeGpus(tmp_path / "fake_gpus.json", tmp_path / "nvidia-smi-calls.log")
    fakes.configure()
    path = os.pathsep.join([str(FAKES_DIR), os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    monkeypatch.setenv("PATH", path)
    monkeypatch.setenv(STATE_ENV, str(fakes.state_path))
    return fakes


@pytest.fixture(autouse=True)
def _own_machine_state(tmp_path, monkeypatch) -> None:
    """Every test gets its own GPU claims folder and service state folder, so searches of
    other tests (and of other people on this machine) neither see nor delay its runs."""
    monkeypatch.setenv("HPSEARCH_CLAIMS_DIR", str(tmp_path / "gpu-claims"))
    monkeypatch.setenv("HPSEARCH_STATE_DIR", str(tmp_path / "hpsearch-state"))
