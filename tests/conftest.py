"""Shared fixtures."""

from __future__ import annotations

import os
import sys

import pytest

from tests.fakes.fakegpu import FAKES_DIR, STATE_ENV, FakeGpus

pytest_plugins = ["tests.cluster_fixtures"]  # the fake_lsf and fake_slurm fixtures


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
