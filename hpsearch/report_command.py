"""``hpsearch report SEARCH``: the ranked table of a search in the terminal (text, CSV, JSON or Markdown).

Runs are ranked by ``_PERFORMANCE_KEY`` (``_PERFORMANCE_SORT_ASC`` says which
way); ``--by_config`` ranks configurations instead, their runs over the seed
parameters folded into n, mean ± std, min and max (:func:`hpsearch.results.group_seeds`),
and keeps ``search_results_by_config.csv`` next to ``search_results.csv``.
Below the table: the counts per status and the failures grouped by reason.
``--performance_criteria X`` marks the done runs the grid module's
``_PERFORMANCE_EVAL_HANDLE`` rejects as ``failed_criteria`` (as the
postprocessor lists them): they leave the ranking and the statistics.
It only reads the search (the store in one short read transaction), except for
``search_results_by_config.csv``. Bad input is one line and exit status 2.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from hpsearch.commandline import EXIT_USAGE, CommandParser, guarded as _guarded
from hpsearch.errors import UsageError

if TYPE_CHECKING:
    import pandas

FORMATS = ("text", "csv", "json", "markdown")
DEFAULT_TOP = 10
FAILED_CRITERIA = "failed_criteria"
JSON_VERSION = 1
RUNS_SHOWN_PER_REASON = 5




def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from hpsearch.criteria import parse_criteria

    parser = CommandParser(prog="hpsearch report", allow_abbrev=False,
                     description="The ranked results of a search: runs, or with --by_config configurations "
                                 "over their seeds (n, mean ± std, min, max); counts per status; failures by reason.")
    parser.add_argument("search", metavar="SEARCH", help="A search folder (also one of hypnettorch), or a search id.")
    parser.add_argument("--top", type=positive_int, default=None, metavar="K",
                        help=f"Show the K best (default {DEFAULT_TOP} for text and markdown, all for csv and json).")
    parser.add_argument("--format", choices=FORMATS, default="text")
    parser.add_argument("--by_config", action="store_true",
                        help="One row per configuration over its seed parameters (_SEED_KEYS, default the grid keys "
                             "random_seed, seed, rand_seed); also writes search_results_by_config.csv.")
    parser.add_argument("--performance_criteria", type=parse_criteria, default=None, metavar="X",
                        help="Leave out the done runs for which the grid module's _PERFORMANCE_EVAL_HANDLE"
                             "(summary_dict, X) is false (they count as failed_criteria).")
    parser.add_argument("--performance_key", default=None, metavar="KEY",
                        help="Rank by this summary key instead of the search's _PERFORMANCE_KEY.")
    order = parser.add_mutually_exclusive_group()
    order.add_argument("--ascending", dest="ascending", action="store_const", const=True, default=None,
                       help="Smaller is better (default: the search's _PERFORMANCE_SORT_ASC).")
    order.add_argument("--descending", dest="ascending", action="store_const", const=False,
                       help="Larger is better.")
    parser.add_argument("--seed_keys", default=None, metavar="K1,K2",
                        help="With --by_config: these grid keys are the seeds ('' for none).")
    parser.add_argument("--grid_module", default=None,
                        help="Grid module for --performance_criteria when the search folder has no copy.")
    return parser


def report_main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    return guarded("hpsearch report", lambda: report(args, sys.stdout))


def guarded(prog: str, body: Callable[[], int]) -> int:
    """Report and compare end every error of ours with exit 2: it is about the folders the user named."""
    return _guarded(prog, body, failure_exit=EXIT_USAGE)


# --------------------------------------------------------------------------- loading


def search_folder(text: str) -> Path:
    """SEARCH as a folder: a folder as given, else a search id (or unique prefix) the registry knows."""
    folder = Path(text).expanduser()
    if folder.is_dir():
        return folder.resolve()
    from hpsearch.service.snapshot import open_registry, resolve_search

    return resolve_search(text, open_registry()).folder


def load(text: str, performance_key: str | None, what: str = "--performance_key") -> "pandas.DataFrame":
    """The runs of SEARCH, with ``performance_key`` (checked; ``what`` names it in the error) as the key to rank by."""
    from hpsearch.results import load_results

    frame = load_results(search_folder(text))
    meta = frame.attrs["hpsearch"]
    if performance_key is not None:
        if performance_key not in meta["summary_keys"]:
            raise UsageError(f"{what} {performance_key}: no such summary key in {meta['search']} "
                             f"(summary keys: {', '.join(meta['summary_keys']) or 'none'})")
        meta["performance_key"] = performance_key
    return frame


def seed_keys_arg(text: str | None, frame: "pandas.DataFrame") -> list[str] | None:
    if text is None:
        return None
    keys = [key.strip() for key in text.split(",") if key.strip()]
    grid = frame.attrs["hpsearch"]["grid_keys"]
    for key in keys:
        if key not in grid:
            raise UsageError(f"--seed_keys {text}: {key!r} is not a grid key (grid keys: {', '.join(grid)})")
    return keys


def apply_criteria(frame: "pandas.DataFrame", criteria: Any, grid_module: str | None) -> int:
    """Mark the done runs the criterion rejects as ``failed_criteria``; returns how many."""
    from hpsearch.criteria import passes, require_handle

    handle, where = eval_handle(Path(frame.attrs["hpsearch"]["search"]), grid_module)
    handle = require_handle(handle, where)
    meta = frame.attrs["hpsearch"]
    names = meta.get("summary_names") or {key: key for key in meta["summary_keys"]}
    status = meta["columns"]["status"]
    failing = []
    for index, row in frame[frame[status] == "done"].iterrows():
        summary = {key: row[name] for name, key in names.items() if _present(row[name])}
        if not passes(handle, summary, criteria, where, str(row[meta["columns"]["run_dir"]])):
            failing.append(index)
    frame.loc[failing, status] = FAILED_CRITERIA
    frame.loc[failing, meta["columns"]["reason"]] = f"fails --performance_criteria {criteria}"
    return len(failing)


def eval_handle(folder: Path, grid_module: str | None) -> tuple[Callable | None, str]:
    """``_PERFORMANCE_EVAL_HANDLE`` of ``--grid_module``, else of the grid module's copy in the folder."""
    from hpsearch.criteria import EVAL_HANDLE, module_copy, module_handle
    from hpsearch.gridmodule import import_grid_module
    from hpsearch.searchdir import saved_settings

    settings = saved_settings(folder) or {}
    name = grid_module or module_copy(folder, settings) or _hypnettorch_copy(folder)
    if name is None:
        raise UsageError(f"--performance_criteria: {folder} holds no copy of its grid module; pass --grid_module")
    run_cwd = settings.get("run_cwd")
    search_path = [Path(run_cwd)] if isinstance(run_cwd, str) and Path(run_cwd).is_dir() else []
    module = import_grid_module(name, search_path)
    return module_handle(module, EVAL_HANDLE, name), f"grid module {name}"


def _hypnettorch_copy(folder: Path) -> str | None:
    for path in sorted(folder.glob("*.py")):
        try:
            if "_SUMMARY_KEYWORDS" in path.read_text(encoding="utf-8", errors="replace"):
                return str(path)
        except OSError:
            continue
    return None


def _present(value: Any) -> bool:
    return isinstance(value, list) or not (value is None or isinstance(value, float) and math.isnan(value))


# --------------------------------------------------------------------------- the document


def ranked_runs(frame: "pandas.DataFrame") -> "pandas.DataFrame":
    """The done runs by the performance key (a list by its last element), best first; ties in run order."""
    from hpsearch.report import ranking_value

    meta = frame.attrs["hpsearch"]
    done = frame[frame[meta["columns"]["status"]] == "done"]
    key = meta.get("performance_key")
    if key is None or not len(done):
        return done
    values = done[key].map(ranking_value).astype("float64")
    order = values.sort_values(ascending=bool(meta["ascending"]), na_position="last", kind="stable").index
    return done.loc[order]


def failures(frame: "pandas.DataFrame") -> list[dict[str, Any]]:
    """Runs that failed or timed out, grouped by reason (the run's own folder in it read as ``<run>``)."""
    meta = frame.attrs["hpsearch"]
    cols = meta["columns"]
    bad = frame[frame[cols["status"]].isin(["failed", "timed_out", FAILED_CRITERIA, "unfinished"])]
    groups: dict[str, list[str]] = {}
    for reason, run_dir, status in zip(bad[cols["reason"]], bad[cols["run_dir"]], bad[cols["status"]]):
        text = str(reason or status).replace(str(run_dir), "<run>").replace(Path(str(run_dir)).name, "<run>")
        groups.setdefault(re.sub(r"\s+", " ", text), []).append(Path(str(run_dir)).name)
    ranked = sorted(groups.items(), key=lambda item: -len(item[1]))
    return [{"reason": reason, "count": len(runs), "runs": runs} for reason, runs in ranked]


def counts(frame: "pandas.DataFrame") -> dict[str, int]:
    from hpsearch.runs import RunStatus

    status = frame[frame.attrs["hpsearch"]["columns"]["status"]].astype(str)
    found = status.value_counts().to_dict()
    order = [s.value for s in RunStatus] + sorted(set(found) - {s.value for s in RunStatus})
    return {**{name: int(found.get(name, 0)) for name in order}, "total": int(len(frame))}


def plain(value: Any) -> Any:
    """A value for JSON: numpy scalars as Python numbers, NaN and NaT as null, tuples as lists."""
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else value
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    try:
        import pandas

        if pandas.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def run_document(frame: "pandas.DataFrame", row: Any, rank: int) -> dict[str, Any]:
    meta = frame.attrs["hpsearch"]
    cols = meta["columns"]
    config = {key: plain(row[key]) for key in meta["grid_keys"] if _present(row[key])}
    summary = {key: plain(row[key]) for key in meta["summary_keys"] if _present(row[key])}
    return {"rank": rank, "config": config, "summary": summary, "status": row[cols["status"]],
            "run_dir": row[cols["run_dir"]], "config_key": row[cols["config_key"]]}


def config_document(grouped: "pandas.DataFrame", row: Any, rank: int | None) -> dict[str, Any]:
    meta = grouped.attrs["hpsearch"]
    from hpsearch.results import STATS

    status_columns = [c for c in grouped.columns if c.startswith("n_") and c != "n_runs"]
    return {
        "rank": rank,
        "config": {key: plain(row[key]) for key in meta["grid_keys"] if _present(row[key])},
        "group_key": row["group_key"],
        "n_runs": int(row["n_runs"]),
        "counts": {c[2:]: int(row[c]) for c in status_columns},
        "seeds": plain(row["seeds"]),
        "config_keys": list(row["config_keys"]),
        "stats": {key: {stat: plain(row[f"{key}_{stat}"]) for stat in STATS} for key in meta["summary_keys"]},
    }


def document(frame: "pandas.DataFrame", args: argparse.Namespace, top: int | None,
             grouped: "pandas.DataFrame | None", failing: int | None) -> dict[str, Any]:
    meta = frame.attrs["hpsearch"]
    doc: dict[str, Any] = {
        "version": JSON_VERSION,
        "search": meta["search"],
        "source": meta["source"],
        "performance_key": meta.get("performance_key"),
        "ascending": bool(meta["ascending"]),
        "counts": counts(frame),
        "failures": failures(frame),
        "criteria": None if failing is None else {"value": args.performance_criteria, "failing": failing},
    }
    if grouped is None:
        runs = ranked_runs(frame)
        doc["runs"] = [run_document(frame, row, rank) for rank, (_, row) in
                       enumerate(runs.head(top if top else len(runs)).iterrows(), start=1)]
        return doc
    doc["seed_keys"] = grouped.attrs["hpsearch"]["seed_keys"]
    with_runs = grouped[grouped["n_done"] > 0]
    without = grouped[grouped["n_done"] == 0]
    doc["configs"] = [config_document(grouped, row, rank) for rank, (_, row) in
                      enumerate(with_runs.head(top if top else len(with_runs)).iterrows(), start=1)]
    doc["configs_without_done_runs"] = [config_document(grouped, row, None) for _, row in without.iterrows()]
    return doc


# --------------------------------------------------------------------------- rendering


def number(value: Any) -> str:
    value = plain(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(number(v) for v in value) + "]"
    return str(value)


def mean_std(stats: dict[str, Any]) -> str:
    mean, std = stats.get("mean"), stats.get("std")
    if isinstance(mean, list):
        mean, std = (mean[-1] if mean else None), (std[-1] if std else None)
    if mean is None:
        return ""
    return number(mean) if std is None else f"{number(mean)} ± {number(std)}"


def last(value: Any) -> Any:
    return value[-1] if isinstance(value, list) and value else (None if isinstance(value, list) else value)


def table_rows(doc: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The ranked table as header and cell texts (shared by text and markdown)."""
    key = doc["performance_key"]
    if "configs" in doc:
        entries = doc["configs"]
        grid = _keys(entry["config"] for entry in entries)
        others = [k for k in _keys(entry["stats"] for entry in entries) if k not in (key, "finished")]
        header = ["rank", *grid, "n", *([f"{key} mean ± std", "min", "max"] if key else []),
                  *[f"{k} mean ± std" for k in others]]
        rows = []
        for entry in entries:
            stats = entry["stats"].get(key, {}) if key else {}
            rows.append([str(entry["rank"]), *(number(entry["config"].get(k)) for k in grid),
                         f"{entry['counts'].get('done', 0)}/{entry['n_runs']}",
                         *([mean_std(stats), number(last(stats.get("min"))), number(last(stats.get("max")))]
                           if key else []),
                         *(mean_std(entry["stats"].get(k, {})) for k in others)])
        return header, rows
    entries = doc["runs"]
    grid = _keys(entry["config"] for entry in entries)
    summary = [k for k in _keys(entry["summary"] for entry in entries) if k != "finished"]
    summary = ([key] if key in summary else []) + [k for k in summary if k != key]
    header = ["rank", *grid, *summary, "run"]
    rows = [[str(entry["rank"]), *(number(entry["config"].get(k)) for k in grid),
             *(number(last(entry["summary"].get(k))) for k in summary), Path(entry["run_dir"]).name]
            for entry in entries]
    return header, rows


def _keys(dicts: Any) -> list[str]:
    keys: dict[str, None] = {}
    for item in dicts:
        for key in item:
            keys.setdefault(key, None)
    return list(keys)


def render_text(doc: dict[str, Any], markdown: bool = False) -> str:
    header, rows = table_rows(doc)
    counts_line = ", ".join(f"{name} {n}" for name, n in doc["counts"].items() if n and name != "total")
    order = "lower is better" if doc["ascending"] else "higher is better"
    lines = [f"search {doc['search']} ({doc['source']}): {doc['counts']['total']} runs: {counts_line or 'none'}"]
    what = "configurations over seeds " + (", ".join(doc.get("seed_keys") or []) or "(none)") \
        if "configs" in doc else "runs"
    lines.append(f"{what}, ranked by {doc['performance_key'] or '(no performance key)'} ({order})")
    if doc["criteria"] is not None:
        lines.append(f"--performance_criteria {doc['criteria']['value']}: {doc['criteria']['failing']} done runs "
                     f"fail it and are left out")
    lines.append("")
    lines.extend(_markdown(header, rows) if markdown else _aligned(header, rows))
    if not rows:
        lines.append("(no done runs)")
    if doc.get("configs_without_done_runs"):
        lines.append(f"configurations without a done run: {len(doc['configs_without_done_runs'])}")
    if doc["failures"]:
        lines += ["", "failures by reason:"]
        for failure in doc["failures"]:
            runs = ", ".join(failure["runs"][:RUNS_SHOWN_PER_REASON])
            more = f", ... ({failure['count'] - RUNS_SHOWN_PER_REASON} more)" \
                if failure["count"] > RUNS_SHOWN_PER_REASON else ""
            lines.append(f"  {failure['count']:>4}  {failure['reason']}  ({runs}{more})")
    return "\n".join(lines) + "\n"


def _aligned(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]


def _markdown(header: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return [line(header), "|" + "|".join(" --- " for _ in header) + "|", *(line(row) for row in rows)]


def render_csv(frame: "pandas.DataFrame", grouped: "pandas.DataFrame | None", top: int | None) -> str:
    from hpsearch.by_config import cell, table_of
    from hpsearch.report import table_text

    if grouped is not None:
        columns, rows = table_of(grouped.head(top) if top else grouped)
        return table_text(columns, rows)
    runs = ranked_runs(frame)
    runs = runs.head(top) if top else runs
    columns = [str(c) for c in runs.columns]
    return table_text(columns, [[cell(v) for v in row] for row in runs.itertuples(index=False, name=None)])


# --------------------------------------------------------------------------- the command


def report(args: argparse.Namespace, out: Any) -> int:
    from hpsearch.by_config import write_by_config
    from hpsearch.results import group_seeds

    frame = load(args.search, args.performance_key)
    if args.ascending is not None:
        frame.attrs["hpsearch"]["ascending"] = args.ascending
    seeds = seed_keys_arg(args.seed_keys, frame)
    plain_grouped = group_seeds(frame, seeds) if args.by_config else None
    failing = None
    if args.performance_criteria is not None:
        failing = apply_criteria(frame, args.performance_criteria, args.grid_module)
    grouped = group_seeds(frame, seeds) if args.by_config and failing is not None else plain_grouped
    top = args.top if args.top is not None else (DEFAULT_TOP if args.format in ("text", "markdown") else None)
    if args.format == "csv":
        out.write(render_csv(frame, grouped, top))
    else:
        doc = document(frame, args, top, grouped, failing)
        if args.format == "json":
            out.write(json.dumps(doc, indent=1, allow_nan=False) + "\n")
        else:
            out.write(render_text(doc, markdown=args.format == "markdown"))
    out.flush()
    if plain_grouped is not None:
        folder = Path(frame.attrs["hpsearch"]["search"])
        try:
            write_by_config(folder, plain_grouped)
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise UsageError(f"{folder}: cannot write search_results_by_config.csv: {exc.strerror or exc}")
            print(f"hpsearch report: warning: {folder} cannot be written ({exc.strerror}); "
                  "search_results_by_config.csv not updated", file=sys.stderr)
    return 0
