"""The search driver: enumerate, launch, collect, record — and resume.

This is the one module that brings the search space, an executor, the run
store and the report together. It never learns which executor it drives: it
asks for capacity, submits launch specs, and turns outcomes into verdicts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Sequence

from hpsearch import space
from hpsearch.argstyle import StyleError
from hpsearch.atomic import write_text_atomic
from hpsearch.errors import GridModuleError, HpsearchError, SpaceError, SubmissionError, UsageError
from hpsearch.executors.base import Executor, Wakeup
from hpsearch.executors.factory import ExecutorFactory, choose_executor
from hpsearch.gpu.probe import GpuProbe
from hpsearch.gridmodule import GridSpec, load_grid_module
from hpsearch.options import saved_values
from hpsearch.progress import Progress
from hpsearch.report import ReportRow, row_from_record
from hpsearch.report_writer import LiveReport, ReportLayout
from hpsearch.rebuild import rebuild_store
from hpsearch.runfolders import run_folders
from hpsearch.runs import STDERR_FILE, JobHandle, LaunchSpec, Outcome, RunStatus, last_lines
from hpsearch.service.pausewatch import PauseWatch
from hpsearch.service.registry import ForegroundEntry
from hpsearch.searchdir import (
    RUN_RESULT_FILE,
    SearchFolder,
    archive_previous_attempt,
    prepare_run_folder,
    record_job,
    record_result,
    resolve_search_folder,
    resume_hint,
    run_name,
    run_number_width,
    save_settings,
    saved_settings,
    write_commands,
)
from hpsearch.settings import SearchSettings
from hpsearch.store import STORE_FILE, CorruptStoreError, RunRecord, RunStore, SearchLock, set_aside_damaged
from hpsearch.verdict import SummaryReader, judge

FAIL_FAST_LINES = 10
"""Lines of the failing run's stderr shown when the search fails fast."""
REPORT_INTERVAL = 1.0  # seconds between two writes of search_results.csv at most

# --------------------------------------------------------------------------- set-up


def load_and_check(settings: SearchSettings, *, need_script: bool = True) -> GridSpec:
    """Load the grid module and check everything that can be checked before a run starts."""
    run_cwd = Path(settings.run_cwd)
    if not run_cwd.is_dir():
        raise UsageError(f"--run_cwd {settings.run_cwd} is not a folder")
    spec = load_grid_module(
        settings.grid_module,
        grid_config=settings.grid_config,
        search_path=[run_cwd],
        strict_conditions=settings.strict_conditions,
    )
    script = run_cwd / spec.script_name
    if need_script and not script.is_file():
        raise GridModuleError(
            f"{spec.where}: attribute _SCRIPT_NAME {spec.script_name!r} does not exist under "
            f"--run_cwd {run_cwd.resolve()}"
        )
    if script.is_file():
        _check_flags(spec, script, strict=settings.strict_flags)
    return spec


def _check_flags(spec: GridSpec, script: Path, *, strict: bool) -> None:
    """Grid keys the script does not accept: a warning each, or with --strict_flags an error."""
    from hpsearch.flagcheck import unaccepted_keys  # deferred: reads the script's source only when it exists

    problems = unaccepted_keys(spec.grid_keys, spec.out_arg, spec.arg_style.name, script)
    if problems and strict:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise GridModuleError(f"{spec.where}: {problems[0]}{more} (refused because of --strict_flags)")
    spec.warnings += [f"{spec.where}: {problem}" for problem in problems]


def enumerate_configs(spec: GridSpec, settings: SearchSettings) -> list[dict[str, Any]]:
    try:  # every configuration, so that a bad derived value stops us before anything is created
        configs = list(
            space.configurations(
                spec.compiled,
                num_searches=settings.num_searches,
                random_search=settings.random_search,
                shuffle=settings.shuffle,
                seed=settings.seed,
            )
        )
    except SpaceError as exc:
        raise SpaceError(f"{spec.where}: {exc}") from None
    if not configs:
        raise GridModuleError(f"{spec.where}: the grid and conditions yield no configuration")
    try:  # a value the arg style cannot carry (a NaN for gin, say) stops us before anything is created
        for config in configs:
            spec.arg_style.check_config(config, spec.strip_outer_quotes)
    except StyleError as exc:
        raise GridModuleError(f"{spec.where}: attribute _ARG_STYLE {spec.arg_style.name!r}: {exc}") from None
    return configs


def run_argv(settings: SearchSettings, spec: GridSpec, search_dir: Path, record: RunRecord) -> list[str]:
    """The argument list of one run; the output-folder flag names its run folder."""
    return spec.arg_style.argv(
        settings.python,
        spec.script_name,
        record.config,
        out_arg=spec.out_arg,
        run_dir=str(search_dir / record.run_dir),
        strip_quotes=spec.strip_outer_quotes,
    )


# --------------------------------------------------------------------------- the driver


class SearchDriver:
    """Runs one search to completion (or until stopped) against one executor.

    ``report_helper`` False writes the CSV in the driver itself instead of a
    helper process (tests of the driver's rules run without any subprocess).
    """

    def __init__(
        self,
        settings: SearchSettings,
        spec: GridSpec,
        folder: SearchFolder,
        store: RunStore,
        executor: Executor,
        wakeup: Wakeup,
        progress: Progress,
        *,
        report_helper: bool = True,
        pause_watch: Any = None,
    ) -> None:
        self.settings = settings
        self.pause_watch = pause_watch  # a cluster search's pause state in the service (PauseWatch)
        self.paused = False
        self.spec = spec
        self.folder = folder
        self.store = store
        self.executor = executor
        self.wakeup = wakeup
        self.progress = progress
        self.run_cwd = Path(settings.run_cwd).resolve()
        self.reader = SummaryReader(spec.summary_filename, spec.summary_keywords, spec.summary_parser, spec.metrics)
        layout = ReportLayout(
            path=str(folder.results_path),
            grid_keys=spec.grid_keys,
            summary_keys=list(spec.summary_keywords),
            out_arg=spec.out_arg,
            performance_key=spec.performance_key,
            sort_ascending=spec.performance_sort_asc,
        )
        self.report = LiveReport(layout, self._stored_rows, interval=REPORT_INTERVAL,
                                 warn=progress.message, use_helper=report_helper and not settings.generate_only)
        self.stop_signal: int | None = None
        self._signals_seen = 0
        self._counts: dict[RunStatus, int] = {}
        self._failures = 0  # runs that ended failed in this session
        self.failing_fast = False  # the first runs all failed: start no more

    # ---- signals

    def _on_signal(self, signum: int, _frame: Any) -> None:
        """First signal: stop gracefully. Second: kill the runs at once (no grace
        period) but still record them as interrupted and write the report; runs
        that outlive the driver keep going and are in the store already, so the
        driver exits at once. A third signal exits at once in any case."""
        self._signals_seen += 1
        if self._signals_seen == 1:
            self.stop_signal = signum
            self.wakeup.set()
            return
        self.executor.kill_now()
        if self._signals_seen > 2 or self.executor.runs_outlive_driver:
            os._exit(128 + (self.stop_signal or signum))
        self.wakeup.set()

    def _install_signal_handlers(self) -> dict[int, Any]:
        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    # ---- main loop

    def run(self) -> int:
        previous = self._install_signal_handlers()
        try:
            self._counts = self.store.counts()
            self._recover()
            for row in self._stored_rows():
                self.report.set_row(row)
            if self.settings.generate_only:
                return self._generate_only()
            self.progress.message(
                f"search folder {self.folder.path} ({'resumed' if self.folder.resuming else 'new'}); "
                f"executor: {self.executor.describe()}"
            )
            self._loop()
        finally:
            self._finish()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if self.stop_signal is not None:
            return 128 + self.stop_signal
        counts = self.store.counts()
        unfinished = sum(n for status, n in counts.items() if status != RunStatus.DONE)
        return 0 if unfinished == 0 else 1

    def _loop(self) -> None:
        while self.stop_signal is None:
            self._follow_pause()
            ended = self.executor.poll()
            if self._may_fail_fast():  # record first: a failure that stops the search must stop this launch
                self._collect(ended)
                self._launch()
            else:
                self._launch()  # first: the slots of ended runs are free now; recording those runs can wait
                self._collect(ended)
            if self.stop_signal is not None:
                break
            self._launch()  # runs that _collect put back in the queue (retries)
            if (self._queued() == 0 or self.failing_fast) and self.executor.in_flight() == 0:
                break
            self._refresh_outputs()
            timeout = self.executor.next_event_in()
            tick = 1.0 if self.progress.stream.isatty() else self.progress.log_interval
            timeout = tick if timeout is None else min(timeout, tick)
            timeout = min(timeout, max(0.0, self.report.due() - time.monotonic()))
            self.wakeup.wait(timeout)

    def _queued(self) -> int:
        return self._counts.get(RunStatus.QUEUED, 0)

    def _stored_rows(self) -> list[ReportRow]:
        """The row of every run started so far, from the store."""
        started = [status for status in RunStatus if status != RunStatus.QUEUED]
        return [row_from_record(record, self.folder.path, self.spec.strip_outer_quotes)
                for record in self.store.records(started)]

    def _refresh_outputs(self) -> None:
        self.report.refresh()
        self._show_progress()

    def _show_progress(self, force: bool = False) -> None:
        self.progress.set_counts(self._counts)
        self.progress.show(force=force)

    def _refresh_by_config(self) -> None:
        """``search_results_by_config.csv`` next to the final CSV, for a search with seed parameters
        (only then: it costs pandas' import and a read of the store)."""
        from hpsearch.by_config import BY_CONFIG_FILE, has_seed_keys, refresh_by_config

        if self.settings.generate_only or not has_seed_keys(self.spec.grid_keys, self.spec.seed_keys):
            return
        try:
            refresh_by_config(self.folder.path)
        except (HpsearchError, OSError, ValueError) as exc:
            self.progress.message(f"warning: {BY_CONFIG_FILE} not written: {exc}")

    def _finish(self) -> None:
        """Stop following runs, record what was cut short, write the report."""
        cancel = self.stop_signal is not None and self._should_cancel()
        try:
            outcomes = self.executor.shutdown(cancel=cancel)
        except HpsearchError as exc:
            self.progress.message(f"warning: stopping the runs failed: {exc}")
            outcomes = []
        self._collect(outcomes, stopping=True)
        self.report.close()
        self._refresh_by_config()
        self._show_progress(force=True)
        self.progress.close()
        if self.failing_fast and self.stop_signal is None:
            self.progress.message(
                f"stopped after {self._failures} failed runs, {self._queued()} not started; fix the cause, then "
                f"run them with: {resume_hint(self.folder.path)} --rerun_failed"
            )
        if self.stop_signal is not None:
            left = self.executor.in_flight()
            note = f"; {left} jobs keep running and will be adopted on resume" if left else ""
            self.progress.message(
                f"stopped by {signal.Signals(self.stop_signal).name}{note}; resume with: "
                f"{resume_hint(self.folder.path)}"
            )

    def _should_cancel(self) -> bool:
        if not self.executor.runs_outlive_driver or self.settings.cancel_on_exit:
            return True
        if self.executor.in_flight() == 0 or not sys.stdin.isatty():
            return False
        try:
            answer = input(f"\nCancel the {self.executor.in_flight()} jobs of this search? [y/N] ")
        except (EOFError, KeyboardInterrupt):
            return False
        return answer.strip().lower() in ("y", "yes")

    # ---- launching

    def _follow_pause(self) -> None:
        """A paused search submits nothing, and its scheduler holds its jobs still waiting."""
        if self.pause_watch is None or self.pause_watch.paused == self.paused:
            return
        self.paused = self.pause_watch.paused
        done = self.executor.hold(self.paused)
        word = "paused" if self.paused else "unpaused"
        self.progress.message(f"{word} by the service" + (f"; {done}" if done else ""))

    def _launch(self) -> None:
        queued = self._queued()
        if queued == 0 or self.stop_signal is not None or self.failing_fast or self.paused:
            return
        capacity = self.executor.capacity()
        if capacity <= 0:
            return
        records = self.store.queued(min(capacity, queued))
        specs = [self._prepare(record) for record in records]
        try:
            results: Sequence[JobHandle | SubmissionError] = self.executor.submit_many(specs)
        except SubmissionError as exc:
            results = [exc] * len(specs)
        now = time.time()
        for record, result in zip(records, results):
            if isinstance(result, SubmissionError):
                self._final(record, RunStatus.FAILED, f"submission failed: {result}", None, None, None, "")
                continue
            self.store.mark_running(record.key, result, now)
            record_job(self.folder.path / record.run_dir, _job_facts(result, record.attempts + 1, now))
            self._move(RunStatus.QUEUED, RunStatus.RUNNING)

    def _prepare(self, record: RunRecord) -> LaunchSpec:
        run_dir = self.folder.path / record.run_dir
        if record.attempts > 0:
            stale = [self.spec.summary_filename, *self.executor.attempt_files(), RUN_RESULT_FILE]
            archive_previous_attempt(run_dir, record.attempts, stale)
        argv = self._argv(record)
        prepare_run_folder(
            run_dir,
            {"key": record.key, "index": record.index, "config": record.config, "argv": argv, "cwd": str(self.run_cwd)},
        )
        self._write_config_file(run_dir, record)
        return LaunchSpec(
            key=record.key,
            name=record.run_dir,
            argv=tuple(argv),
            cwd=self.run_cwd,
            run_dir=run_dir,
            env={"HPSEARCH_SEARCH_DIR": str(self.folder.path)},
            timeout=self.settings.timeout,
            attempt=record.attempts + 1,
        )

    def _write_config_file(self, run_dir: Path, record: RunRecord) -> None:
        """The file of a file arg style (``config.json``, ``config.yaml``, ``config.gin``), in
        the run folder before the run (or its cluster job) starts."""
        name = self.spec.arg_style.config_file
        if name is not None:
            text = self.spec.arg_style.file_text(record.config, self.spec.strip_outer_quotes) or ""
            write_text_atomic(run_dir / name, text, durable=False)

    def _argv(self, record: RunRecord) -> list[str]:
        return run_argv(self.settings, self.spec, self.folder.path, record)

    def _generate_only(self) -> int:
        records = self.store.queued(self._queued())
        specs = [self._prepare(record) for record in records]
        results = self.executor.submit_many(specs)
        errors = [r for r in results if isinstance(r, SubmissionError)]
        if errors:
            raise errors[0]
        self.progress.message(
            f"{self.executor.generated(len(specs))}. After submitting, collect the results with: "
            f"{resume_hint(self.folder.path)} (or python -m postprocessing {self.folder.path})"
        )
        return 0

    # ---- collecting

    def _collect(self, outcomes: Iterable[Outcome], stopping: bool = False) -> None:
        for outcome in outcomes:
            record = self.store.get(outcome.key)
            if record is None:
                continue
            run_dir = self.folder.path / record.run_dir
            verdict = judge(outcome, run_dir, record.index, self.reader)
            status = verdict.status
            retry = status in (RunStatus.FAILED, RunStatus.TIMED_OUT) and record.attempts <= self.settings.max_retries
            if status == RunStatus.INTERRUPTED and not stopping and self.stop_signal is None:
                # cut off by the scheduler (time limit, preemption): again up to --max_retries times
                retry = not outcome.cut_off or record.attempts <= self.settings.max_retries
            if retry and not stopping and self.stop_signal is None:
                self.store.requeue(record.key, verdict.reason)
                self._move(record.status, RunStatus.QUEUED)
                self.progress.message(f"{record.run_dir}: {verdict.reason}; running it again")
                continue
            self._final(record, status, verdict.reason, outcome.exit_code, outcome.signal, verdict.summary,
                        outcome.backend_state, leftovers_killed=outcome.leftovers_killed)

    def _final(
        self,
        record: RunRecord,
        status: RunStatus,
        reason: str | None,
        exit_code: int | None,
        signum: int | None,
        summary: dict | None,
        backend_state: str,
        leftovers_killed: int = 0,
    ) -> None:
        ended = time.time()
        self.store.mark_final(
            record.key, status, reason=reason, exit_code=exit_code, signal=signum, summary=summary, ended=ended,
            backend_state=backend_state or None,
        )
        self._move(record.status, status)
        ended_record = dataclasses.replace(record, status=status, reason=reason, summary=summary)
        self.report.set_row(row_from_record(ended_record, self.folder.path, self.spec.strip_outer_quotes))
        record_result(
            self.folder.path / record.run_dir,
            {
                "status": status.value, "reason": reason, "exit_code": exit_code, "signal": signum,
                "attempt": record.attempts, "started": record.started, "ended": ended,
                "backend": record.backend, "job_id": record.job_id, "backend_state": backend_state,
                "leftovers_killed": leftovers_killed,
            },
        )
        self.progress.record_final(record.run_dir, summary, status == RunStatus.DONE)
        if status not in (RunStatus.DONE, RunStatus.INTERRUPTED):
            self.progress.message(f"{record.run_dir}: {status.value}: {reason}")
            self._note_failure(record)

    def _may_fail_fast(self) -> bool:
        """Whether the next failure could still stop the search (no run is done yet)."""
        return not (self.settings.keep_going or self.failing_fast or self._counts.get(RunStatus.DONE, 0))

    def _note_failure(self, record: RunRecord) -> None:
        """Fail fast: when the first ``max_failures`` runs to end have all failed,
        the cause is most likely shared (a typo in the training script), so no
        further run is started; the runs in flight are left to finish."""
        self._failures += 1
        if not self._may_fail_fast() or self._failures < self.settings.max_failures:
            return
        self.failing_fast = True
        stderr = self.folder.path / record.run_dir / STDERR_FILE
        lines = last_lines(stderr, FAIL_FAST_LINES) or ["(empty)"]
        in_flight = self.executor.in_flight()
        waiting = f"; waiting for the {in_flight} runs in flight" if in_flight else ""
        self.progress.message(
            f"the first {self._failures} runs to end have all failed: starting no more runs "
            f"(--keep_going starts them anyway){waiting}. The end of {stderr}:\n"
            + "\n".join(f"    {line}" for line in lines)
        )

    def _move(self, old: RunStatus, new: RunStatus) -> None:
        self._counts[old] = self._counts.get(old, 0) - 1
        self._counts[new] = self._counts.get(new, 0) + 1

    # ---- resume

    def _recover(self) -> None:
        """Bring a store left by an earlier driver back into a runnable state."""
        handles = self.store.running_handles()
        ours = [h for h in handles if self.executor.can_adopt(h)]
        foreign = [h for h in handles if not self.executor.can_adopt(h)]
        if ours:
            self.progress.message(f"re-attaching to {len(ours)} runs of the previous driver")
            self._collect(self.executor.adopt(ours))
        for handle in foreign:
            self._collect([Outcome(handle.key, None, interrupted=True, backend_state=f"left by a {handle.backend} driver")])
        self._reclaim()
        requeue = [RunStatus.INTERRUPTED]
        if self.settings.rerun_failed:
            requeue += [RunStatus.FAILED, RunStatus.TIMED_OUT]
        for record in self.store.records(requeue):
            self.store.requeue(record.key, record.reason)
            self._move(record.status, RunStatus.QUEUED)
        self._harvest()

    def _reclaim(self) -> None:
        """Adopt what an earlier driver submitted but had not recorded when it was killed."""
        if not self._queued():
            return
        queued = {record.key: record.attempts for record in self.store.records([RunStatus.QUEUED])}
        handles = self.executor.reclaim(queued)
        if not handles:
            return
        now = time.time()
        for handle in handles:
            record = self.store.get(handle.key)
            self.store.mark_running(handle.key, handle, now)
            record_job(self.folder.path / record.run_dir, _job_facts(handle, record.attempts + 1, now))
            self._move(RunStatus.QUEUED, RunStatus.RUNNING)
        self.progress.message(f"adopting {len(handles)} runs submitted by the previous driver just before it "
                              "stopped")
        self._collect(self.executor.adopt(handles))

    def _harvest(self) -> None:
        """Collect runs whose job scripts were submitted by hand (``--generate_only``),
        and adopt runs an earlier driver started but died before recording."""
        outcomes, adopted = [], 0
        for record in self.store.records([RunStatus.QUEUED]):
            run_dir = self.folder.path / record.run_dir
            harvested = self.executor.harvest(record.key, run_dir)
            if harvested is None:
                continue
            handle, outcome = harvested
            now = time.time()
            self.store.mark_running(record.key, handle, now)
            self._move(RunStatus.QUEUED, RunStatus.RUNNING)
            if outcome is None:  # still running: the executor follows it now
                record_job(run_dir, _job_facts(handle, record.attempts + 1, now))
                adopted += 1
            else:
                outcomes.append(outcome)
        if adopted:
            self.progress.message(f"re-attaching to {adopted} runs the previous driver started but had not recorded")
        self._collect(outcomes)


# --------------------------------------------------------------------------- entry points


def list_configurations(settings: SearchSettings) -> tuple[GridSpec, list[tuple[str, dict[str, Any]]]]:
    """The dry run behind ``--list``: what would run, with keys; starts nothing."""
    spec = load_and_check(settings, need_script=False)
    return spec, [(space.config_key(config), config) for config in enumerate_configs(spec, settings)]


def run_search(
    settings: SearchSettings,
    progress: Progress | None = None,
    gpu_probe: GpuProbe | None = None,
    *,
    executor_factory: ExecutorFactory | None = None,
    report_helper: bool = True,
) -> int:
    """Run (or resume) a search; returns the process exit status.

    ``gpu_probe`` is the start-up GPU poll if the caller began it already.
    ``executor_factory`` replaces the executor the settings choose (tests drive
    the driver's rules with an in-process fake); ``report_helper`` as in
    :class:`SearchDriver`.
    """
    spec = load_and_check(settings)
    progress = progress or Progress(spec.performance_key, spec.performance_sort_asc, quiet=settings.quiet)
    for warning in spec.warnings:
        progress.message(f"warning: {warning}")
    configs = enumerate_configs(spec, settings)
    factory = executor_factory or choose_executor(settings, progress.message, gpu_probe)
    folder = _search_folder(settings)
    entry = ForegroundEntry(folder.path, settings.driver_argv, progress.message)
    with SearchLock(folder.path), (contextlib.nullcontext(entry) if settings.service_socket else entry):
        store = _open_store(folder, spec, progress)
        try:
            _prepare_store(store, folder, spec, settings, configs)
            progress.seed(store.done_summaries())
            wakeup = Wakeup()
            watch = None
            try:
                executor = factory(wakeup, folder.path)
                if settings.service_socket and settings.run_cluster:  # the broker's pause does not reach it
                    watch = PauseWatch(settings.service_socket, str(folder.path), wakeup.set)
                driver = SearchDriver(settings, spec, folder, store, executor, wakeup, progress,
                                      report_helper=report_helper, pause_watch=watch)
                return entry.ended(driver.run())
            finally:
                if watch is not None:
                    watch.close()
                wakeup.close()
        except (HpsearchError, OSError) as exc:
            exc.resume_hint = resume_hint(folder.path)  # type: ignore[attr-defined]  # the CLI prints it
            raise
        finally:
            store.close()


def _search_folder(settings: SearchSettings) -> SearchFolder:
    """The search folder the settings name (a new ``search_<time>`` one unless forced), created."""
    folder = resolve_search_folder(
        settings.out_dir,
        force_out_dir=settings.force_out_dir,
        dont_force_new_dir=settings.dont_force_new_dir,
        resume=settings.resume,
        now=datetime.now(),
    )
    folder.path.mkdir(parents=True, exist_ok=True)
    return folder


def create_search_folder(settings: SearchSettings, spec: GridSpec, configs: list[dict[str, Any]],
                         progress: Progress) -> SearchFolder:
    """Make (or take up) the search folder exactly as :func:`run_search` does, without running
    anything: ``hpsearch submit`` then hands it to the service, whose driver resumes it."""
    folder = _search_folder(settings)
    with SearchLock(folder.path):
        store = _open_store(folder, spec, progress)
        try:
            _prepare_store(store, folder, spec, settings, configs)
        finally:
            store.close()
    return folder


def _prepare_store(
    store: RunStore, folder: SearchFolder, spec: GridSpec, settings: SearchSettings, configs: list[dict[str, Any]]
) -> None:
    stamp = store.get_meta("stamp")
    new = stamp is None
    if new:
        stamp = datetime.now().strftime("%Y%m%d%H%M%S")
    # first, so that a session failing below (a full disk) is continued by --resume DIR alone
    save_settings(folder.path, {**spec.settings(), "stamp": stamp, "driver_argv": settings.driver_argv,
                                "run_cwd": str(Path(settings.run_cwd).resolve()), "options": saved_values(settings)},
                  spec.module_file)
    if new:
        store.set_meta("stamp", stamp)
        store.set_meta("created", time.time())
    width = run_number_width(len(configs), int(store.get_meta("name_width", 0) or 0))
    store.set_meta("name_width", width)
    store.add_configs(((space.config_key(c), c) for c in configs), lambda i: run_name(stamp, i, width))
    argvs = (run_argv(settings, spec, folder.path, record) for record in store.records())
    write_commands(folder.path, argvs, Path(settings.run_cwd).resolve())


def _open_store(folder: SearchFolder, spec: GridSpec, progress: Progress) -> RunStore:
    """Open the store; if it is damaged or lost, set it aside and rebuild it from the run folders.

    A store with no runs while run folders exist was lost (deleted, emptied,
    or damaged beyond reading): the folders are the ground truth, so nothing
    they record as ended runs again and no configuration gets a second folder.
    """
    why = f"{STORE_FILE} was missing" if not (folder.path / STORE_FILE).exists() else f"{STORE_FILE} held no runs"
    damaged = False
    try:
        store = RunStore.open(folder.path, check=True)
    except CorruptStoreError as exc:
        aside = set_aside_damaged(folder.path, datetime.now().strftime("%Y%m%d-%H%M%S"))
        why, damaged = f"{exc} (moved to {aside.name})", True
        store = RunStore.open(folder.path, check=True)
    try:
        if sum(store.counts().values()) == 0 and run_folders(folder.path):
            reader = SummaryReader(spec.summary_filename, spec.summary_keywords, spec.summary_parser, spec.metrics)
            rebuilt = rebuild_store(store, folder.path, reader, _saved_stamp(folder.path))
            progress.message(f"run store rebuilt from {rebuilt.describe()}, because {why}; "
                             "ended runs are kept, the others run again in their folders")
        elif damaged:
            progress.message(f"warning: {why}; no run folders to rebuild it from, so the store starts empty")
    except BaseException:
        store.close()
        raise
    return store


def _saved_stamp(search_dir: Path) -> str | None:
    try:
        stamp = (saved_settings(search_dir) or {}).get("stamp")
    except UsageError:
        return None
    return stamp if isinstance(stamp, str) else None


def _job_facts(handle: JobHandle, attempt: int, started: float) -> dict[str, Any]:
    """What ``hpsearch_job.json`` keeps of a started attempt (see :func:`hpsearch.rebuild.record_of`)."""
    return {"attempt": attempt, "backend": handle.backend, "job_id": handle.job_id, "where": handle.where,
            "extra": handle.extra, "started": started}
