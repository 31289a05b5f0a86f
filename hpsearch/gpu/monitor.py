"""Read the GPUs' memory and load through GPUtil, one ``nvidia-smi`` call per poll.

GPUtil hides every failure of ``nvidia-smi`` behind an empty list, which looks
exactly like "this machine has no GPUs". We check for the executable first and
treat an empty answer as a broken driver, so a search never waits forever for
GPUs that will not appear.
"""

from __future__ import annotations

import math
import shutil
import sys
import threading
import types
from dataclasses import dataclass
from typing import Callable, Sequence

from hpsearch.errors import GpuQueryError

NVIDIA_SMI = "nvidia-smi"


@dataclass(frozen=True)
class GpuReading:
    """One GPU at the moment of a poll.

    Attributes:
        id: The index ``nvidia-smi`` shows (``CUDA_DEVICE_ORDER=PCI_BUS_ID``).
        memory_used: MiB in use.
        memory_total: MiB on the card.
        load: Utilisation in [0, 1].
        uuid: The GPU's UUID, if known (it names the GPU across processes).
    """

    id: int
    memory_used: float
    memory_total: float
    load: float
    uuid: str | None = None

    @property
    def memory_fraction(self) -> float:
        """Used / total memory; NaN when the card reports no total."""
        if not self.memory_total > 0:
            return math.nan
        return self.memory_used / self.memory_total

    @property
    def is_valid(self) -> bool:
        """False when the driver answered ``[N/A]`` or similar: such a GPU
        gets no run rather than crashing the search."""
        return all(math.isfinite(v) for v in (self.memory_used, self.memory_total, self.load)) and (
            self.memory_total > 0
        )


@dataclass(frozen=True)
class GpuSnapshot:
    """The readings of one poll, stamped like gpustat's ``query_time``, so a
    plan can tell how old the readings it uses are.

    Attributes:
        query_time: Monotonic seconds at which the poll began.
        readings: The GPUs it read.
    """

    query_time: float
    readings: tuple[GpuReading, ...]


def _spawn_shim() -> dict[str, types.ModuleType]:
    """Stand-ins for ``distutils`` and ``distutils.spawn`` while GPUtil imports.

    GPUtil 1.4.0 imports ``distutils.spawn`` only to call ``find_executable``
    on Windows. Python 3.12 removed distutils, and setuptools' replacement
    takes ~150 ms to import, which every search would pay at start-up.
    """
    spawn = types.ModuleType("distutils.spawn")
    spawn.find_executable = lambda name, path=None: shutil.which(name, path=path)  # type: ignore[attr-defined]
    package = types.ModuleType("distutils")
    package.spawn = spawn  # type: ignore[attr-defined]
    return {"distutils": package, "distutils.spawn": spawn}


def import_gputil():
    """GPUtil, imported once; later calls (from the background poll thread
    too) never touch ``sys.modules``."""
    loaded = sys.modules.get("GPUtil")
    if loaded is not None:
        return loaded
    shim = {} if "distutils" in sys.modules else _spawn_shim()
    sys.modules.update(shim)
    try:
        import GPUtil
    except ImportError as exc:
        raise GpuQueryError(
            f"cannot import GPUtil ({exc}); on Python 3.12 or newer GPUtil needs "
            "setuptools, install it with: pip install setuptools"
        ) from exc
    finally:
        for name in shim:  # the shim served GPUtil only; nobody else should see it
            sys.modules.pop(name, None)
    return GPUtil


def query_gpus() -> list[GpuReading]:
    """Every GPU ``nvidia-smi`` reports, from exactly one call of it.

    Raises:
        GpuQueryError: ``nvidia-smi`` is missing, fails or reports nothing.
    """
    if shutil.which(NVIDIA_SMI) is None:
        raise GpuQueryError(f"{NVIDIA_SMI} not found on PATH (no NVIDIA driver installed?)")
    gputil = import_gputil()
    try:
        gpus = gputil.getGPUs()
    except Exception as exc:  # GPUtil parses free text; odd output raises anything
        raise GpuQueryError(f"cannot read the output of {NVIDIA_SMI}: {exc!r}") from exc
    if not gpus:
        raise GpuQueryError(f"{NVIDIA_SMI} reported no GPUs (is the driver working?)")
    return [
        GpuReading(
            id=int(gpu.id),
            memory_used=float(gpu.memoryUsed),
            memory_total=float(gpu.memoryTotal),
            load=float(gpu.load),
            uuid=str(gpu.uuid) if getattr(gpu, "uuid", None) else None,
        )
        for gpu in gpus
    ]


class GpuMonitor:
    """Polls the GPUs a search may use.

    Args:
        visible: GPU ids the search may use (``--visible_gpus``); None means
            every GPU found.
    """

    def __init__(self, visible: Sequence[int] | None = None) -> None:
        self.visible = None if visible is None else list(visible)

    def poll(self) -> list[GpuReading]:
        """Readings of the visible GPUs, ordered by id; one ``nvidia-smi`` call.

        Raises:
            GpuQueryError: the query failed, or a visible id does not exist.
        """
        readings = query_gpus()
        if self.visible is None:
            return sorted(readings, key=lambda r: r.id)
        by_id = {r.id: r for r in readings}
        missing = [i for i in self.visible if i not in by_id]
        if missing:
            found = ",".join(str(i) for i in sorted(by_id))
            raise GpuQueryError(
                f"--visible_gpus names GPU {','.join(map(str, missing))}, "
                f"but {NVIDIA_SMI} only reports GPUs {found}"
            )
        return [by_id[i] for i in sorted(set(self.visible))]


PollAnswer = tuple[float, list[GpuReading] | Exception]
"""A finished background poll: the stamp it was started with, and its
readings or the exception it raised."""


class BackgroundPoll:
    """At most one poll (e.g. :meth:`GpuMonitor.poll`) at a time, in a daemon thread.

    ``nvidia-smi`` takes from 50 ms to over a second on a big machine; the
    caller keeps planning with the readings it has and is told through
    ``on_answer`` (called from the thread) when new ones can be taken.

    Args:
        poll: Reads the GPUs once.
        on_answer: Called from the thread once the answer can be taken.
    """

    THREAD_NAME = "hpsearch-gpu-poll"

    def __init__(self, poll: Callable[[], list[GpuReading]], on_answer: Callable[[], None]) -> None:
        self._poll = poll
        self.on_answer = on_answer
        self._lock = threading.Lock()
        self._busy = False  # started, and its answer not taken yet
        self._answer: PollAnswer | None = None

    @property
    def in_flight(self) -> bool:
        """True from :meth:`start` until :meth:`take` has returned the answer,
        so no second poll can start while one has not been used."""
        return self._busy

    def start(self, stamp: float) -> bool:
        """Begin a poll, unless one is in flight; ``stamp`` comes back with
        its answer. Returns whether a poll began."""
        with self._lock:
            if self._busy:
                return False
            self._busy = True
        thread = threading.Thread(target=self._run, args=(stamp,), name=self.THREAD_NAME, daemon=True)
        try:
            thread.start()
        except BaseException:  # no thread: a poll that never answers must not block all later ones
            self._busy = False
            raise
        return True

    def take(self) -> PollAnswer | None:
        """The finished poll's answer, once; None while it runs or when none
        was started."""
        with self._lock:
            answer, self._answer = self._answer, None
            if answer is not None:
                self._busy = False
        return answer

    def _run(self, stamp: float) -> None:
        try:
            answer: list[GpuReading] | Exception = self._poll()
        except Exception as exc:  # noqa: BLE001  (handed to the caller: a silent death would end polling)
            answer = exc
        with self._lock:
            self._answer = (stamp, answer)
        self.on_answer()
