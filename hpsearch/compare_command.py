"""``hpsearch compare SEARCH_A SEARCH_B``: the configurations two searches share, side by side.

Each search's runs are grouped over its seed parameters
(:func:`hpsearch.results.group_seeds`); a configuration of A and one of B are
the same when their grid values apart from the seeds are equal (the
``group_key``: same keys, equal values), whatever their run
folders are called. For each shared configuration it shows n and mean ± std of
the performance key in A and in B and the difference B − A of the means, in
A's ranking order; then the best configuration of each search.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, Sequence

from hpsearch.errors import UsageError
from hpsearch.commandline import CommandParser
from hpsearch.report_command import (
    DEFAULT_TOP, _aligned, _markdown, guarded, load, mean_std, number, plain, positive_int,
)

if TYPE_CHECKING:
    import pandas

JSON_VERSION = 1


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="hpsearch compare", allow_abbrev=False,
                     description="The configurations two searches share (same grid values apart from the seeds), "
                                 "side by side with the difference of the performance key, then the best of each.")
    parser.add_argument("search_a", metavar="SEARCH_A", help="A search folder or id (the reference).")
    parser.add_argument("search_b", metavar="SEARCH_B", help="A search folder or id (compared with A).")
    parser.add_argument("--top", type=positive_int, default=None, metavar="K",
                        help=f"Show the K best shared configurations of A (default {DEFAULT_TOP}; all with json).")
    parser.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    parser.add_argument("--performance_key", default=None, metavar="KEY",
                        help="Compare this summary key instead of A's _PERFORMANCE_KEY.")
    return parser


def compare_main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    return guarded("hpsearch compare", lambda: compare(args, sys.stdout))


def grouped_search(text: str, key: str | None, what: str = "--performance_key") -> "pandas.DataFrame":
    from hpsearch.results import group_seeds

    return group_seeds(load(text, key, what))


def comparison(a: "pandas.DataFrame", b: "pandas.DataFrame", top: int | None) -> dict[str, Any]:
    """The document both renderings show (and ``--format json`` prints)."""
    meta_a, meta_b = a.attrs["hpsearch"], b.attrs["hpsearch"]
    key, ascending = meta_a["performance_key"], bool(meta_a["ascending"])
    if key is None:
        raise UsageError(f"{meta_a.get('search')}: no performance key to compare (pass --performance_key)")
    for meta, frame in ((meta_a, a), (meta_b, b)):
        if f"{key}_mean" not in frame.columns:
            raise UsageError(f"{meta.get('search')}: no numeric summary key {key!r} (pass --performance_key)")
    index_b = {group_key: position for position, group_key in enumerate(b["group_key"])}
    shared = []
    for position, row in enumerate(a.itertuples(index=False)):
        other = index_b.get(row.group_key)
        if other is None:
            continue
        row_a, row_b = a.iloc[position], b.iloc[other]
        stats_a, stats_b = _stats(row_a, key), _stats(row_b, key)
        difference = None
        if _scalar(stats_a["mean"]) is not None and _scalar(stats_b["mean"]) is not None:
            difference = _scalar(stats_b["mean"]) - _scalar(stats_a["mean"])
        shared.append({"config": _config(row_a, meta_a["grid_keys"]), "group_key": row.group_key,
                       "a": stats_a, "b": stats_b, "difference": difference})
    return {
        "version": JSON_VERSION,
        "performance_key": key,
        "ascending": ascending,
        "a": _side(a, key), "b": _side(b, key),
        "shared": shared[:top] if top else shared,
        "shared_total": len(shared),
        "only_in_a": len(a) - len(shared),
        "only_in_b": len(b) - len(shared),
    }


def _stats(row: Any, key: str) -> dict[str, Any]:
    return {"n": plain(row[f"{key}_n"]), "mean": plain(row[f"{key}_mean"]), "std": plain(row[f"{key}_std"]),
            "min": plain(row[f"{key}_min"]), "max": plain(row[f"{key}_max"]), "n_runs": int(row["n_runs"])}


def _scalar(value: Any) -> float | None:
    """A list-valued key is compared by its last element."""
    if isinstance(value, list):
        value = value[-1] if value else None
    return value


def _config(row: Any, grid_keys: list[str]) -> dict[str, Any]:
    import pandas

    return {k: plain(row[k]) for k in grid_keys if isinstance(row[k], list) or not pandas.isna(row[k])}


def _side(frame: "pandas.DataFrame", key: str) -> dict[str, Any]:
    meta = frame.attrs["hpsearch"]
    with_runs = frame[frame[f"{key}_mean"].notna()] if frame[f"{key}_mean"].dtype != object else \
        frame[frame[f"{key}_n"].map(lambda n: bool(n))]
    best = None
    if len(with_runs):
        row = with_runs.iloc[0]
        best = {"config": _config(row, meta["grid_keys"]), "group_key": row["group_key"], **_stats(row, key)}
    return {"search": meta.get("search"), "source": meta.get("source"), "seed_keys": meta.get("seed_keys"),
            "configs": len(frame), "best": best}


def render(doc: dict[str, Any], markdown: bool) -> str:
    key = doc["performance_key"]
    a, b = doc["a"], doc["b"]
    grid: dict[str, None] = {}
    for entry in doc["shared"]:
        grid.update(dict.fromkeys(entry["config"]))
    header = [*grid, "n A", f"{key} A", "n B", f"{key} B", "B − A"]
    rows = [[*(number(entry["config"].get(k)) for k in grid), number(_scalar(entry["a"]["n"])),
             mean_std(entry["a"]), number(_scalar(entry["b"]["n"])), mean_std(entry["b"]),
             "" if entry["difference"] is None else f"{entry['difference']:+.4g}"] for entry in doc["shared"]]
    order = "lower is better" if doc["ascending"] else "higher is better"
    lines = [f"A: {a['search']} ({a['configs']} configurations)", f"B: {b['search']} ({b['configs']} configurations)",
             f"{doc['shared_total']} configurations in both (grid values apart from the seeds), "
             f"{doc['only_in_a']} only in A, {doc['only_in_b']} only in B; {key} ({order}), A's order", ""]
    lines += (_markdown(header, rows) if markdown else _aligned(header, rows)) if rows else ["(none shared)"]
    lines.append("")
    for name, side in (("A", a), ("B", b)):
        best = side["best"]
        if best is None:
            lines.append(f"best of {name}: no done run")
            continue
        config = ", ".join(f"{k}={number(v)}" for k, v in best["config"].items())
        lines.append(f"best of {name}: {config or '(one configuration)'}: {key} {mean_std(best)} "
                     f"(n={number(_scalar(best['n']))})")
    return "\n".join(lines) + "\n"


def compare(args: argparse.Namespace, out: Any) -> int:
    a = grouped_search(args.search_a, args.performance_key)
    b = grouped_search(args.search_b, args.performance_key or a.attrs["hpsearch"]["performance_key"],
                       "--performance_key" if args.performance_key else "SEARCH_A's performance key")
    top = args.top if args.top is not None else (None if args.format == "json" else DEFAULT_TOP)
    doc = comparison(a, b, top)
    if args.format == "json":
        out.write(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    else:
        out.write(render(doc, markdown=args.format == "markdown"))
    out.flush()
    return 0
