"""The start-up poll of the GPUs, begun as soon as the flags are known.

It lives apart from the executors so that the command line can start it
before the search machinery (and pandas) is imported, without importing the
executor layer itself.
"""

from __future__ import annotations

import threading
import time

from hpsearch.errors import GpuQueryError, UsageError
from hpsearch.options import check_value, parse_gpu_ids
from hpsearch.settings import SearchSettings


class GpuProbe:
    """The start-up poll of the GPUs, begun as early as the flags are known.

    ``nvidia-smi`` takes tens to hundreds of milliseconds; run in a thread, the
    call overlaps the driver's imports and set-up instead of delaying the
    first run by as much. Its answer (or error) is taken by
    the executor factory's ``choose_executor``, at the same point as a poll made there would be.
    """

    def __init__(self, visible: list[int] | None) -> None:
        from hpsearch.gpu.monitor import GpuMonitor, import_gputil

        import_gputil()  # here, not in the thread: it briefly puts a stand-in into sys.modules
        self.monitor = GpuMonitor(visible)
        self.started = time.monotonic()
        self._readings: list = []
        self._error: GpuQueryError | None = None
        self._thread = threading.Thread(target=self._poll, name="hpsearch-gpu-probe", daemon=True)
        self._thread.start()

    @classmethod
    def start(cls, settings: SearchSettings) -> GpuProbe | None:
        """A probe for a local search on GPUs; None otherwise (or if the flag
        is malformed, which ``choose_executor`` then reports)."""
        if settings.run_cluster or settings.visible_gpus.strip() == "-1":
            return None
        try:
            return cls(checked_gpu_ids(settings.visible_gpus))
        except UsageError:
            return None

    def _poll(self) -> None:
        try:
            self._readings = self.monitor.poll()
        except GpuQueryError as exc:
            self._error = exc

    def readings(self) -> list:
        """The probe's readings, once the call has returned.

        Raises:
            GpuQueryError: The poll failed.
        """
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._readings


def checked_gpu_ids(text: str) -> list[int] | None:
    """``--visible_gpus`` as GPU ids (None: every GPU found), after the option table's check.

    Raises:
        UsageError: The flag is malformed.
    """
    check_value("visible_gpus", text)
    return parse_gpu_ids(text)
