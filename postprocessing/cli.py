"""Command line of ``python -m postprocessing OUT_DIR`` / ``hpsearch_postprocessing``.

Rebuilds ``search_results.csv`` from the run folders of a search, also after
the search was killed or its store deleted; lists finished, unfinished and
missing runs; and with ``--performance_criteria`` finds (and with
``--set_aside`` moves away) the runs that fail the grid module's criterion.
A search folder that cannot be written (read-only, someone else's) is only
read: the table goes to ``--output`` or, without it, to stdout.
User mistakes end as one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import errno
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Sequence, TextIO

from hpsearch.criteria import parse_criteria
from hpsearch.errors import HpsearchError, UsageError
from hpsearch.runs import RunStatus
from hpsearch.report import ReportRow, ResultsReport
from hpsearch.runfolders import SET_ASIDE_FOLDER, run_folders
from hpsearch.searchdir import RESULTS_FILE
from hpsearch.store import lock_holder
from hpsearch.verdict import SummaryReader
from postprocessing.criteria import failing_runs, set_aside
from postprocessing.scan import MISSING, missing_runs, read_run
from postprocessing.settings import SearchInfo, load_search_info

EXIT_USAGE = 2
LIST_LIMIT = 50


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hpsearch_postprocessing",
        description="Rebuild the results table of an hpsearch search folder from its run folders.",
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", help="The search folder.")
    parser.add_argument("--performance_criteria", type=parse_criteria, default=None, metavar="X",
                        help="List the done runs for which the grid module's _PERFORMANCE_EVAL_HANDLE"
                             "(summary_dict, X) is false (X is passed as a number if it is one).")
    parser.add_argument("--set_aside", action="store_true",
                        help=f"With --performance_criteria: move those runs into OUT_DIR/{SET_ASIDE_FOLDER}/.")
    parser.add_argument("--grid_module", default=None,
                        help="Grid module (importable name or .py path) to read settings and functions from; "
                             "needed when OUT_DIR has no search.json (e.g. a hypnettorch search).")
    parser.add_argument("--run_cwd", default=None,
                        help="Folder to import the grid module from (as given to the search).")
    parser.add_argument("--output", default=None, metavar="CSV",
                        help=f"Where to write the table (default: OUT_DIR/{RESULTS_FILE}; "
                             "printed to stdout if OUT_DIR cannot be written).")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return postprocess(args)
    except HpsearchError as exc:
        print(f"hpsearch_postprocessing: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def postprocess(args: argparse.Namespace) -> int:
    out_dir = Path(args.out_dir).resolve()
    if not out_dir.is_dir():
        raise UsageError(f"{args.out_dir}: no such folder")
    if args.set_aside and args.performance_criteria is None:
        raise UsageError("--set_aside needs --performance_criteria")
    holder = lock_holder(out_dir)
    if holder:
        print(f"warning: a driver ({holder}) is still running on {out_dir}; "
              f"its next write of {RESULTS_FILE} replaces this table", file=sys.stderr)
    search_path = [Path.cwd(), *([Path(args.run_cwd)] if args.run_cwd else [])]
    info = load_search_info(out_dir, args.grid_module, search_path)
    rows = collect_rows(out_dir, info)
    failing: list[ReportRow] = []
    if args.performance_criteria is not None:
        failing = failing_runs(rows, info.performance_eval, args.performance_criteria, info.module_where)
        if args.set_aside:
            try:
                set_aside(failing, out_dir)
            except OSError as exc:
                raise UsageError(f"--set_aside: cannot move runs into {out_dir / SET_ASIDE_FOLDER}: "
                                 f"{exc.strerror or exc}") from None
    if args.output:
        output = Path(args.output)
        try:
            build_report(output, info, rows).write()
        except OSError as exc:
            raise UsageError(f"--output {args.output}: cannot write: {exc.strerror or exc}") from None
    else:
        output = out_dir / RESULTS_FILE
        try:
            build_report(output, info, rows).write()
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise UsageError(f"{output}: cannot write: {exc.strerror or exc}") from None
            print(f"warning: {out_dir} cannot be written ({exc.strerror}); the table follows on stdout "
                  f"(--output PATH writes it elsewhere)", file=sys.stderr)
            print_table(info, rows, sys.stdout)
            print_overview(out_dir, rows, failing, args, sys.stderr)
            return 0
    print_overview(out_dir, rows, failing, args)
    print(f"results: {output}")
    return 0


def print_table(info: SearchInfo, rows: Sequence[ReportRow], stream: TextIO) -> None:
    """The table exactly as it would be written to the search folder."""
    with tempfile.TemporaryDirectory(prefix="hpsearch-table-") as scratch:
        path = Path(scratch) / RESULTS_FILE
        build_report(path, info, rows).write()
        stream.write(path.read_text(encoding="utf-8"))
    stream.flush()


def collect_rows(out_dir: Path, info: SearchInfo) -> list[ReportRow]:
    """One row per run folder, plus one per planned run whose folder is missing."""
    reader = SummaryReader(info.summary_filename, info.summary_keywords, info.summary_parser, info.metrics)
    folders = run_folders(out_dir)
    rows = [row for row in (read_run(folder, reader, info.strip_quotes) for folder in folders) if row is not None]
    return rows + missing_runs(out_dir, {folder.name for folder in folders}, info.out_arg, info.strip_quotes)


def build_report(path: Path, info: SearchInfo, rows: Sequence[ReportRow]) -> ResultsReport:
    report = ResultsReport(
        path,
        grid_keys=info.grid_keys,
        summary_keys=info.summary_keywords,
        out_arg=info.out_arg,
        performance_key=info.performance_key,
        sort_ascending=info.sort_ascending,
    )
    for row in rows:
        report.set_row(row)
    return report


def print_overview(out_dir: Path, rows: Sequence[ReportRow], failing: Sequence[ReportRow],
                   args: argparse.Namespace, stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout
    done = [row for row in rows if row.status == RunStatus.DONE.value]
    missing = [row for row in rows if row.status == MISSING]
    unfinished = [row for row in rows if row.status not in (RunStatus.DONE.value, MISSING)]
    print(f"search folder: {out_dir}", file=stream)
    print(f"finished: {len(done)}", file=stream)
    print(f"unfinished: {len(unfinished)}{_by_status(unfinished)}", file=stream)
    _print_rows(unfinished, stream)
    print(f"missing: {len(missing)}", file=stream)
    _print_rows(missing, stream)
    if args.performance_criteria is not None:
        verb = "set aside in " + str(out_dir / SET_ASIDE_FOLDER) if args.set_aside else "failing"
        print(f"performance criteria {args.performance_criteria}: {len(failing)} runs {verb}", file=stream)
        _print_rows(failing, stream, with_reason=False)


def _by_status(rows: Sequence[ReportRow]) -> str:
    """`` (failed 2, unfinished 1)``; each run's reason is listed below it."""
    if not rows:
        return ""
    counts = Counter(row.status for row in rows)
    return " (" + ", ".join(f"{status} {n}" for status, n in counts.most_common()) + ")"


def _print_rows(rows: Sequence[ReportRow], stream: TextIO, with_reason: bool = True) -> None:
    for row in rows[:LIST_LIMIT]:
        name = Path(row.run_dir).name
        print(f"  {name}  {row.status}: {row.reason}" if with_reason and row.reason else f"  {name}", file=stream)
    if len(rows) > LIST_LIMIT:
        print(f"  ... and {len(rows) - LIST_LIMIT} more (see the table)", file=stream)
