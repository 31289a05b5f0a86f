"""Choosing the executor, and the start-up GPU probe begun before the driver is imported."""

from __future__ import annotations

import dataclasses

import pytest

from hpsearch.errors import GpuQueryError
from hpsearch.executors.base import Wakeup
from hpsearch.executors.factory import choose_executor
from hpsearch.gpu.probe import GpuProbe
from hpsearch.settings import SearchSettings


def settings(**values) -> SearchSettings:
    return dataclasses.replace(SearchSettings(grid_module="cfg"), **values)


def executor(factory, tmp_path):
    wakeup = Wakeup()
    made = factory(wakeup, tmp_path)
    return made, wakeup


@pytest.mark.parametrize("values", [{"visible_gpus": "-1"}, {"run_cluster": True, "visible_gpus": "0"},
                                    {"visible_gpus": "0,x"}])
def test_no_probe_for_cpu_cluster_or_malformed_flag(values, fake_gpus):
    assert GpuProbe.start(settings(**values)) is None
    assert fake_gpus.gpu_queries() == 0


def test_early_probe_serves_the_executor_without_a_second_call(fake_gpus, tmp_path):
    fake_gpus.configure(4)
    probe = GpuProbe.start(settings(visible_gpus="2,1"))
    made, wakeup = executor(choose_executor(settings(visible_gpus="2,1"), print, probe), tmp_path)
    try:
        assert made.capacity() == 2  # one slot on each of GPUs 1 and 2, from the probe's readings
        assert made.describe() == "GPUs 2,1 x 1 runs"
        assert fake_gpus.gpu_queries() == 1
    finally:
        made.shutdown(cancel=True)
        wakeup.close()


def test_probe_for_other_gpus_is_not_reused(fake_gpus):
    fake_gpus.configure(4)
    probe = GpuProbe.start(settings(visible_gpus="0"))
    probe.readings()  # its call is counted before the next one
    choose_executor(settings(visible_gpus="3"), print, probe)
    assert fake_gpus.gpu_queries() == 2


def test_failed_early_probe_is_the_same_error_as_before(fake_gpus):
    fake_gpus.set(fail=True)
    probe = GpuProbe.start(settings(visible_gpus="0"))
    with pytest.raises(GpuQueryError, match=r"--visible_gpus=0: .*nvidia-smi"):
        choose_executor(settings(visible_gpus="0"), print, probe)


def test_failed_probe_without_the_flag_falls_back_to_the_cpu(fake_gpus, tmp_path):
    fake_gpus.set(fail=True)
    warnings = []
    probe = GpuProbe.start(settings(visible_gpus=""))
    made, wakeup = executor(choose_executor(settings(visible_gpus="", num_jobs=3), warnings.append, probe), tmp_path)
    try:
        assert made.describe() == "CPU, 3 run(s) at a time"
        assert len(warnings) == 1 and "running on the CPU" in warnings[0]
    finally:
        wakeup.close()
