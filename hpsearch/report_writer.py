"""Keep ``search_results.csv`` up to date without ever stalling the driver.

Rewriting a 20,000-row table takes a tenth of a second or more; done by the
driver now and then, it would hold back the runs waiting to start. So the
driver streams every changed row, one JSON line per batch (each row a dict of
:class:`~hpsearch.report.ReportRow`'s fields), to a helper process
(``python -m hpsearch.report_writer``) that runs at a lower CPU priority,
keeps the table and rewrites the file atomically at most every ``interval``
seconds. The helper imports no more than the ``csv`` module, so it is ready
at once.

The end of a search waits for nobody starved: on a machine whose cores are
all busy, a helper at nice +10 gets a sliver of a core, and waiting for its
last write once took the driver seconds. So :meth:`LiveReport.close` kills
the helper (a killed process needs no CPU time of its own to stop) and
writes the final table itself, from the run store, which holds every row.
Only when the driver is killed does the helper write last: its input ends,
it writes what it received and exits.

If the helper cannot start or dies, :class:`LiveReport` falls back to keeping
the table and writing it in the driver, throttled by the write's own cost, as
before; the run store holds every row, so nothing is lost on the way.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import IO, Callable, Iterable

from hpsearch.atomic import remove_temps, write_json_atomic
from hpsearch.report import ReportRow, ResultsReport

NICENESS = 10
"""How much lower the helper's CPU priority is: it should use idle cores, not
the ones runs are starting on."""

KILL_TIMEOUT = 10.0
"""Seconds the driver waits for the killed helper to be gone (it takes
milliseconds; the bound is for a process stuck in the kernel, e.g. on NFS)."""

_ROW_FIELDS = tuple(field.name for field in fields(ReportRow))

_BOOT = "import sys; sys.path.append(sys.argv[1]); from hpsearch.report_writer import run; run()"


@dataclass(frozen=True)
class ReportLayout:
    """What defines the table, sent to the helper as its first line."""

    path: str
    grid_keys: list[str]
    summary_keys: list[str]
    out_arg: str
    performance_key: str | None
    sort_ascending: bool

    def build(self) -> ResultsReport:
        return ResultsReport(
            Path(self.path),
            grid_keys=self.grid_keys,
            summary_keys=self.summary_keys,
            out_arg=self.out_arg,
            performance_key=self.performance_key,
            sort_ascending=self.sort_ascending,
        )


class _Pacer:
    """When the table may be written next: at most every ``interval``
    seconds, and rarer for large tables, so that writing stays under a tenth
    of the time."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.written: float | None = None  # monotonic() counts from boot: no number means "never"
        self.cost = 0.0

    def due(self) -> float:
        if self.written is None:
            return -float("inf")
        return self.written + max(self.interval, 10 * self.cost)

    def is_due(self) -> bool:
        return time.monotonic() >= self.due()

    def write(self, report: ResultsReport) -> None:
        """Write the table now (OSError passes through), and time it."""
        started = time.monotonic()
        try:
            report.write()
        finally:
            self.written = time.monotonic()
            self.cost = self.written - started


def _encode_rows(rows: Iterable[ReportRow]) -> bytes:
    """One line of JSON: a list of rows, each by field name (ASCII, so any text travels)."""
    items = [{name: getattr(row, name) for name in _ROW_FIELDS} for row in rows]
    return json.dumps(items).encode("ascii") + b"\n"


def _decode_rows(line: bytes) -> list[ReportRow]:
    return [ReportRow(**item) for item in json.loads(line)]


# --------------------------------------------------------------------------- driver side


class WriterProcess:
    """The driver's handle on the helper process."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc

    @classmethod
    def start(cls, layout: ReportLayout, interval: float) -> "WriterProcess":
        """Start the helper; raises OSError if it cannot be started."""
        if not sys.executable:
            raise OSError("no Python executable to start the report writer with")
        stop_orphan(Path(layout.path))
        package_parent = str(Path(__file__).resolve().parent.parent)
        proc = subprocess.Popen(
            [sys.executable, "-c", _BOOT, package_parent],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C meant for the driver must not cut the last write short
        )
        _lower_priority(proc.pid)
        _record_writer(Path(layout.path), proc.pid)
        writer = cls(proc)
        header = {"layout": asdict(layout), "interval": interval}
        if not writer.send(json.dumps(header).encode() + b"\n"):
            raise OSError("the report writer exited at once")
        return writer

    def send(self, line: bytes) -> bool:
        """Pass one line on; False once the helper is gone."""
        try:
            self.proc.stdin.write(line)
            self.proc.stdin.flush()
        except (OSError, ValueError):
            return False
        return True

    def stop(self, path: Path) -> None:
        """Kill the helper, whatever it is doing, and remove a write to ``path`` it left half done.

        SIGKILL takes effect without the helper being given CPU time to react,
        so this does not wait on a starved process; once it is reaped, no
        rename of an older table can land after the driver's final write.
        """
        try:
            self.proc.send_signal(signal.SIGKILL)
        except OSError:
            pass
        try:
            self.proc.wait(KILL_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        remove_temps(path, self.proc.pid)
        try:
            _writer_record(path).unlink()
        except OSError:
            pass


def _writer_record(path: Path) -> Path:
    return path.with_name(f".{path.name}.writer.json")


def _record_writer(path: Path, pid: int) -> None:
    """Note the helper's pid and start time beside the table, for :func:`stop_orphan` of a later driver."""
    import psutil

    try:
        started = psutil.Process(pid).create_time()
        write_json_atomic(_writer_record(path), {"pid": pid, "started": started}, durable=False)
    except (OSError, psutil.Error):
        pass  # without the note, a resumed driver cannot stop this helper early; it still ends within seconds


def stop_orphan(path: Path) -> None:
    """Kill the helper a killed driver of this search left behind, before a new driver writes the table.

    An orphaned helper makes its last write when it notices its input has
    ended; at nice +10 on a busy machine that can land after the resumed
    driver's final table and put an older one in its place. The new driver
    writes every row from the store, so the orphan's last write is not needed.
    """
    import psutil

    from hpsearch.proctree import process_alive  # here: the helper process imports no more than csv

    record = _writer_record(path)
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
        pid, started = int(data["pid"]), float(data["started"])
        if not process_alive(pid, started):
            return  # gone, or the pid was reused: not our helper
        proc = psutil.Process(pid)
        if not any("hpsearch.report_writer" in part for part in proc.cmdline()):
            return
        proc.kill()
        proc.wait(KILL_TIMEOUT)
        remove_temps(path, proc.pid)
    except (OSError, ValueError, TypeError, KeyError, psutil.Error):
        return


def _lower_priority(pid: int) -> None:
    """Make the helper yield the CPU to runs and driver.

    It is a session leader, and Linux gives each session its own scheduling
    group (``CONFIG_SCHED_AUTOGROUP``), within which alone a process's nice
    value counts; so the group's nice value is set as well.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, pid, min(19, os.getpriority(os.PRIO_PROCESS, 0) + NICENESS))
    except OSError:  # not allowed here: the helper competes as an equal
        pass
    try:
        with open(f"/proc/{pid}/autogroup", "w") as group:
            group.write(str(NICENESS))
    except OSError:  # no autogroups here: the process's nice value is all there is
        pass


class LiveReport:
    """The driver's side of the results table.

    Rows given to :meth:`set_row` are passed to the helper process at the next
    :meth:`refresh`; without a helper, the table lives here and is written
    when due.

    Args:
        layout: The table's file and columns.
        all_rows: Every row known so far (from the run store), for taking
            over when the helper is gone.
        interval: Minimum seconds between two writes.
        warn: Where a warning about the helper goes.
        use_helper: False writes in the driver from the start.
    """

    def __init__(
        self,
        layout: ReportLayout,
        all_rows: Callable[[], Iterable[ReportRow]],
        *,
        interval: float,
        warn: Callable[[str], None],
        use_helper: bool = True,
    ) -> None:
        self.layout = layout
        self.all_rows = all_rows
        self.warn = warn
        self._pending: list[ReportRow] = []
        self._writer: WriterProcess | None = None
        self._local: ResultsReport | None = None
        self._dirty = False
        self._pacer = _Pacer(interval)
        self._warned: set[str] = set()
        if use_helper:
            try:
                self._writer = WriterProcess.start(layout, interval)
            except OSError as exc:
                self._take_over(f"cannot start the report writer ({exc})")
        else:
            self._local = layout.build()

    def set_row(self, row: ReportRow) -> None:
        """Add or replace one configuration's row."""
        if self._local is not None:
            self._local.set_row(row)
            self._dirty = True
        else:
            self._pending.append(row)

    def refresh(self, force: bool = False) -> None:
        """Hand new rows to the helper, or write the table here if it is due."""
        if self._writer is not None:
            if self._pending and not self._writer.send(_encode_rows(self._pending)):
                self._take_over("the report writer exited")
            self._pending.clear()
        if self._local is not None and self._dirty and (force or self._pacer.is_due()):
            try:
                self._pacer.write(self._local)
            except OSError as exc:  # the runs matter more than the table, which the store can rebuild
                self._warn_once(f"warning: cannot write {self.layout.path}: {exc.strerror or exc}; "
                                "the run store keeps every result (python -m postprocessing rebuilds the table)")
                return
            self._dirty = False

    def _warn_once(self, text: str) -> None:
        if text not in self._warned:
            self._warned.add(text)
            self.warn(text)

    def due(self) -> float:
        """When the driver has a write to make (never while the helper writes)."""
        if self._local is None or not self._dirty:
            return float("inf")
        return self._pacer.due()

    def close(self) -> None:
        """Write the final table here, after stopping the helper (see the module docstring)."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.stop(Path(self.layout.path))
            self._load_all()
            for row in self._pending:
                self._local.set_row(row)
            self._pending.clear()
        self._dirty = True
        self.refresh(force=True)

    def _take_over(self, why: str) -> None:
        self.warn(f"warning: {why}; writing {self.layout.path} from the driver instead")
        self._writer = None
        self._pending.clear()
        self._load_all()
        self._dirty = True

    def _load_all(self) -> None:
        self._local = self.layout.build()
        for row in self.all_rows():
            self._local.set_row(row)


# --------------------------------------------------------------------------- the helper process


def _read_lines(stream: IO[bytes], inbox: "queue.Queue[bytes | None]") -> None:
    """Drain the pipe as fast as lines come, so the driver never blocks on
    it while a slow write is under way; None marks the end of input."""
    for line in stream:
        inbox.put(line)
    inbox.put(None)


def _write(report: ResultsReport, pacer: _Pacer) -> str | None:
    """Write the table; the problem, if it could not be written."""
    try:
        pacer.write(report)
    except OSError as exc:
        return f"hpsearch: cannot write {report.path}: {exc.strerror or exc}"
    return None


def main() -> int:
    """The helper: read rows until the input ends, writing the table when due."""
    header = json.loads(sys.stdin.buffer.readline() or b"null")
    if header is None:
        return 0
    report = ReportLayout(**header["layout"]).build()
    pacer = _Pacer(float(header["interval"]))
    inbox: queue.Queue[bytes | None] = queue.Queue()
    threading.Thread(target=_read_lines, args=(sys.stdin.buffer, inbox), daemon=True).start()
    dirty, error = False, None
    while True:
        try:
            line = inbox.get(timeout=max(0.0, pacer.due() - time.monotonic()) if dirty else None)
        except queue.Empty:
            line = b""
        if line is None:
            break
        if line:
            try:
                for row in _decode_rows(line):
                    report.set_row(row)
                dirty = True
            except (ValueError, TypeError):
                continue  # a line cut short by the driver's death
        if dirty and pacer.is_due():
            error, dirty = _write(report, pacer), False
    if dirty or pacer.written is None:
        error = _write(report, pacer)
    if error:
        print(error, file=sys.stderr)
    return 1 if error else 0


def run() -> None:
    """Entry point: exits without the interpreter's teardown, which nobody needs."""
    code = main()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
