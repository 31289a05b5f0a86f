"""``hpsearch plot SEARCH``: the figures of :mod:`hpsearch.plots`, written as files.

The search is read with :func:`hpsearch.results.load_results` (any search
folder, also one of hypnettorch 0.0.4); the figures go into its ``plots/``
folder or ``--out DIR``, one path per line on stdout. Each file is written
atomically (a reader never sees half an image). Bad input is one line and exit
status 2 before any folder or file is made; so is a missing matplotlib.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from hpsearch.commandline import CommandParser, guarded
from hpsearch.errors import UsageError
from hpsearch.filesystem import folder_problem

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from hpsearch.plots import SearchFacts

PROG = "hpsearch plot"
FORMATS = ("png", "svg", "pdf")
DEFAULT_FOLDER = "plots"
PROGRESS_RUNS = 2000  # above this many runs drawing takes long enough for a progress bar




def _parser() -> CommandParser:
    parser = CommandParser(prog=PROG, allow_abbrev=False, description=(
        "Write figures of a search's results: the performance key against each hyperparameter, the best value "
        "so far over time, parallel coordinates, and the per-epoch curves of the best configurations. "
        "Needs matplotlib: pip install 'hpsearch[plot]'."))
    parser.add_argument("search", metavar="SEARCH", help="a search folder, a search id or a unique prefix of one")
    parser.add_argument("--out", metavar="DIR", help=f"where the figures go (default: SEARCH/{DEFAULT_FOLDER})")
    parser.add_argument("--format", choices=FORMATS, default="png", help="image format (default: png)")
    parser.add_argument("--top", type=int, default=5, metavar="K",
                        help="configurations drawn in the curve figures (default: 5)")
    return parser


def plot_main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    return guarded(PROG, lambda: _plot(args))


def _plot(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise UsageError(f"--top must be 1 or more, got {args.top}")
    try:
        import matplotlib  # noqa: F401  (the figures import the rest when they are drawn)
    except ImportError:
        raise UsageError("matplotlib is not installed: pip install 'hpsearch[plot]'") from None
    folder, runs, facts = _load(args.search)
    out = Path(args.out).expanduser() if args.out else folder / DEFAULT_FOLDER
    _check_out(out, args.out)
    from hpsearch import plots

    configs = plots.configurations(runs, facts)
    if configs.empty:
        print(f"{PROG}: nothing to plot: no run in {folder} is done with a value of {facts.performance_key}",
              file=sys.stderr)
        return 1
    notes: list[str] = []
    figures = list(_figures(runs, facts, configs, args.top, notes))
    out.mkdir(parents=True, exist_ok=True)
    with _progress(len(figures), len(runs)) as bar:
        for name, build in figures:
            figure = build()
            if figure is not None:
                path = out / f"{_file_name(name)}.{args.format}"
                _save(figure, path, args.format)
                print(path, flush=True)
            bar.update(1)
    for note in notes:
        print(f"{PROG}: note: {note}", file=sys.stderr)
    return 0


def _figures(runs: pd.DataFrame, facts: SearchFacts, configs: pd.DataFrame, top: int, notes: list[str]
             ) -> Iterator[tuple[str, Callable[[], Figure | None]]]:
    """The figures of this search, by file name, each drawn only when it is written;
    a figure the search cannot have adds a line to ``notes``."""
    from hpsearch import plots

    key = facts.performance_key
    varying = plots.varying_params(configs, facts)
    for param in varying:
        yield f"{key}_by_{param}", lambda param=param: plots.performance_against(runs, facts, param, configs=configs)
    scored = plots.scored_runs(runs, facts)
    if "end" in scored.columns and scored["end"].notna().any():
        yield "best_so_far", lambda: plots.best_so_far(runs, facts)
    else:
        notes.append("no run has an end time (a search_results.csv alone records none): no best-so-far figure")
    if varying:
        yield "parallel_coordinates", lambda: plots.parallel_coordinates(runs, facts, configs=configs)
    else:
        notes.append("no hyperparameter takes two values among the runs done: no figure against them")
    for list_key in plots.list_keys(configs, facts, runs):
        yield f"curves_{list_key}", lambda list_key=list_key: plots.curves(runs, facts, list_key, top,
                                                                          configs=configs)


def _load(text: str) -> tuple[Path, pd.DataFrame, SearchFacts]:
    """The search's folder, its results frame and what the figures need to know of it.

    Raises:
        UsageError: No search by that name or in that folder, or one whose
            summary keys (and so its performance key) are unknown.
    """
    from hpsearch.plots import SearchFacts
    from hpsearch.results import load_results

    folder = Path(text).expanduser()
    if not folder.is_dir():  # an id or a prefix of one, as `hpsearch status` takes it
        from hpsearch.service.snapshot import open_registry, resolve_search

        folder = resolve_search(text, open_registry()).folder
    runs = load_results(folder)
    try:
        facts = SearchFacts.of(runs)
    except ValueError:
        raise UsageError(f"{folder}: no performance key known (search.json names no summary keywords)") from None
    return folder.resolve(), runs, facts


def _check_out(out: Path, given: str | None) -> None:
    """The figures' folder must be a folder, or creatable: its nearest existing ancestor a writable folder."""
    what = f"--out {given}" if given is not None else f"{out} (give --out DIR to write elsewhere)"
    problem = folder_problem(out)
    if problem is not None:
        raise UsageError(f"{what}: {problem}")


def _file_name(name: str) -> str:
    """A figure's name as a portable file name (a key may hold any character)."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name).strip("._") or "figure"


def _save(figure: Figure, path: Path, fmt: str) -> None:
    from hpsearch.atomic import write_bytes_atomic

    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt)
    write_bytes_atomic(path, buffer.getvalue(), durable=False)


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, count: int) -> None:
        return None


def _progress(total: int, runs: int):  # type: ignore[no-untyped-def]
    """A progress bar on stderr for a large search, shown only after a second; none without tqdm."""
    if runs <= PROGRESS_RUNS:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=f"{PROG}: {runs} runs", unit="figure", file=sys.stderr, delay=1.0,
                leave=False)
