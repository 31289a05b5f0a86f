"""A search's results as pandas frames: one row per run, and one row per configuration over its seeds.

``load_results(SEARCH)`` reads what the search folder holds, in this order:
the store (``hpsearch.db``, read-only, one short read transaction, so a
running driver is never disturbed), else the run folders (the ground truth,
read as the postprocessor reads them), else ``search_results.csv``; a folder
written by hypnettorch 0.0.4 is read from its ``commands.pickle`` /
``commands.sh``, run folders and summary files (:mod:`hpsearch.hypnettorch_folder`).

``group_seeds(frame)`` folds the runs that differ only in their seed
parameters into one row with n, mean, std, min and max of every numeric
summary key, ranked by the mean of the performance key. The column schema of
both is in docs/results.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from hpsearch.command import received_config
from hpsearch.errors import HpsearchError, UsageError
from hpsearch.run_table import ATTRS_KEY, RunTable, gpu_of
from hpsearch.runs import RunStatus
from hpsearch.searchdir import RESULTS_FILE, SETTINGS_FILE, saved_settings
from hpsearch.store import STORE_FILE, RunStore

if TYPE_CHECKING:
    import pandas

DEFAULT_SEED_KEYS = ("random_seed", "seed", "rand_seed")
"""Grid keys taken for seed parameters when the grid module sets no ``_SEED_KEYS``."""
STATS = ("n", "mean", "std", "min", "max")
GROUP_COLUMNS = ("group_key", "n_runs")
LIST_COLUMNS = ("seeds", "config_keys", "run_dirs")
# The canonical form of hpsearch.space.keys.canonical_json, as one reusable encoder.
_KEY_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True,
                             default=str).encode


# --------------------------------------------------------------------------- load_results


def load_results(search: str | os.PathLike) -> "pandas.DataFrame":
    """One row per run of the search folder ``search``, every grid and summary key a typed column.

    Columns: the grid keys (then keys only some configurations have), the
    summary keys (keywords first; lists of numbers as object columns holding
    lists), then ``status``, ``reason``, ``attempt``, ``run_dir``,
    ``config_key``, ``gpu``, ``start``, ``end`` (UTC datetimes). A summary key
    that clashes with a grid key or one of those gets a ``summary_`` prefix,
    one of those that clashes with a grid key an ``hpsearch_`` prefix.
    ``frame.attrs["hpsearch"]`` names the grid keys, summary keys, performance
    key and sort order, for :func:`group_seeds`.

    Raises:
        UsageError: ``search`` is no folder, or holds no search.
    """
    folder = Path(search).expanduser()
    if not folder.is_dir():
        raise UsageError(f"{search}: no such search folder")
    folder = folder.resolve()
    settings = saved_settings(folder)
    if (folder / STORE_FILE).is_file() and (folder / STORE_FILE).stat().st_size:
        return _from_store(folder, settings or {}).frame()
    if settings is not None or _has_run_folders(folder):
        table = _from_run_folders(folder, settings or {})
        if table.status or not (folder / RESULTS_FILE).is_file():
            return table.frame()
        return _from_csv(folder, settings or {}).frame()
    from hpsearch.hypnettorch_folder import is_hypnettorch_folder, read_hypnettorch_folder

    if is_hypnettorch_folder(folder):
        return read_hypnettorch_folder(folder).frame()
    raise UsageError(f"{search}: no search folder (no {STORE_FILE}, {SETTINGS_FILE}, run folder or "
                     f"{RESULTS_FILE} of hpsearch or hypnettorch there)")


def _has_run_folders(folder: Path) -> bool:
    from hpsearch.runfolders import run_folders

    return bool(run_folders(folder))


def _table(folder: Path, settings: dict[str, Any], source: str) -> RunTable:
    keywords = settings.get("summary_keywords")
    keywords = [k for k in keywords if isinstance(k, str)] if isinstance(keywords, list) else []
    grid_keys = settings.get("grid_keys")
    grid_keys = [k for k in grid_keys if isinstance(k, str)] if isinstance(grid_keys, list) else []
    performance = settings.get("performance_key")
    seed_keys = settings.get("seed_keys")
    return RunTable(
        search=str(folder),
        source=source,
        grid_keys=grid_keys,
        summary_keys=keywords,
        performance_key=performance if isinstance(performance, str) and performance else
        (keywords[0] if keywords else None),
        ascending=bool(settings.get("performance_sort_asc", False)),
        seed_keys=list(seed_keys) if isinstance(seed_keys, list) else None,
    )


def _from_store(folder: Path, settings: dict[str, Any]) -> RunTable:
    try:
        store = RunStore.open(folder, readonly=True)
    except HpsearchError as exc:
        raise UsageError(str(exc)) from None
    try:
        with store.reading():
            rows = store.result_rows() if store.schema_version() else []
    except HpsearchError as exc:
        raise UsageError(str(exc)) from None
    finally:
        store.close()
    table = _table(folder, settings, "store")
    if not rows:
        return table
    strip = bool(settings.get("strip_outer_quotes", True))
    _, keys, configs, run_dirs, statuses, attempts, wheres, started, ended, reasons, summaries = map(list, zip(*rows))
    # One json.loads of the whole column is several times faster than one per run.
    table.configs = json.loads("[" + ",".join(configs) + "]")
    if strip:  # only values stored with quotes change; their JSON text holds \" or '
        table.configs = [received_config(config, True) if '\\"' in text or "'" in text else config
                         for config, text in zip(table.configs, configs)]
    table.summaries = json.loads("[" + ",".join("null" if s is None else s for s in summaries) + "]")
    base = str(folder) + os.sep
    table.status, table.reason, table.attempt = statuses, reasons, attempts
    table.run_dir = [base + name for name in run_dirs]
    table.config_key, table.gpu = keys, [gpu_of(where) for where in wheres]
    table.start, table.end = started, ended
    return table


def _from_run_folders(folder: Path, settings: dict[str, Any]) -> RunTable:
    """The search as the postprocessor sees it: every run folder, and runs planned but without one.

    Summaries are read with the built-in parser (a grid module's own
    ``_SUMMARY_PARSER_HANDLE`` is user code and is not imported here).
    """
    from hpsearch.folder_runs import missing_runs, read_folder_run
    from hpsearch.metrics import saved_metrics_source
    from hpsearch.runfolders import run_folders
    from hpsearch.verdict import SummaryReader

    table = _table(folder, settings, "run_folders")
    strip = bool(settings.get("strip_outer_quotes", True))
    metrics = saved_metrics_source(folder / SETTINGS_FILE, settings.get("metrics"))
    reader = SummaryReader(str(settings.get("summary_filename") or "performance_overview.txt"),
                           table.summary_keys or ["finished"], None, metrics)
    folders = run_folders(folder)
    for path in folders:
        run = read_folder_run(path, reader, strip)
        if run is None:
            continue
        row = run.row
        table.add(row.config, row.summary, row.status, row.reason, run.attempt, row.run_dir, row.key,
                  gpu_of(run.where), run.started, run.ended)
    for row in missing_runs(folder, {path.name for path in folders}, str(settings.get("out_arg") or "out_dir"),
                            strip):
        table.add(row.config, None, row.status, row.reason, 0, row.run_dir, row.key, None, None, None)
    return table


def _from_csv(folder: Path, settings: dict[str, Any]) -> RunTable:
    """An hpsearch ``search_results.csv`` alone (its run folders gone): values typed as pandas reads them."""
    import pandas

    from hpsearch.summary import parse_numbers

    table = _table(folder, settings, "csv")
    path = folder / RESULTS_FILE
    try:
        csv = pandas.read_csv(path, sep=";", dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot be read: {exc}") from None
    out_arg = str(settings.get("out_arg") or "out_dir")
    grid = [k for k in table.grid_keys if k in csv.columns]
    own = {"status", "reason", out_arg, "config_key"}
    summary = [c for c in csv.columns if c not in grid and c not in own]
    typed = {column: _typed_texts(csv[column].tolist(), parse_numbers, column in summary) for column in
             (*grid, *summary)}
    for i in range(len(csv)):
        config = {k: typed[k][i] for k in grid if typed[k][i] is not None}
        values = {k: typed[k][i] for k in summary if typed[k][i] is not None}
        table.add(config, values or None, csv["status"][i] if "status" in csv else "done",
                  (csv["reason"][i] or None) if "reason" in csv else None, 1,
                  csv[out_arg][i] if out_arg in csv else "", csv["config_key"][i] if "config_key" in csv else "",
                  None, None, None)
    return table


def _typed_texts(texts: list[str], parse_numbers: Any, lists: bool) -> list[Any]:
    """Cell texts back to values: numbers, ``True``/``False``, lists of numbers (summary cells), else text."""
    values: list[Any] = []
    for text in texts:
        if text == "":
            values.append(None)
        elif text in ("True", "False"):
            values.append(text == "True")
        else:
            number = parse_numbers(text)
            if isinstance(number, list) and not lists:
                number = None
            values.append(text if number is None else number)
    return values


# --------------------------------------------------------------------------- group_seeds


def seed_keys_of(grid_keys: Sequence[str], declared: Iterable[str] | str | None) -> list[str]:
    """The seed parameters: ``declared`` (the grid module's ``_SEED_KEYS``), else the grid keys
    named ``random_seed``, ``seed`` or ``rand_seed``."""
    if declared is None:
        return [key for key in grid_keys if key in DEFAULT_SEED_KEYS]
    return [declared] if isinstance(declared, str) else list(declared)


def group_seeds(df: "pandas.DataFrame", seed_keys: Sequence[str] | str | None = None, *,
                grid_keys: Sequence[str] | None = None, summary_keys: Sequence[str] | None = None,
                performance_key: str | None = None, ascending: bool | None = None) -> "pandas.DataFrame":
    """One row per configuration: the runs of ``df`` that differ only in their seed parameters.

    ``df`` is a frame of :func:`load_results` (or a filtered part of one: its
    ``attrs`` name the grid and summary keys; a frame without them needs
    ``grid_keys`` and ``summary_keys``). ``seed_keys`` defaults to the grid
    module's ``_SEED_KEYS``, else the grid keys named ``random_seed``,
    ``seed`` or ``rand_seed``; with none, every run is its own group.

    Columns, in this order: the grid keys other than the seeds (values as in
    ``df``); ``group_key`` (a stable key of those values); ``n_runs`` and
    ``n_<status>`` for every status (``n_done``, ``n_failed``, ...); ``seeds``
    (the seed values of the group's runs, a tuple per run with several seed
    keys), ``config_keys`` and ``run_dirs`` (lists, run order); then for every
    numeric summary key K: ``K_n``, ``K_mean``, ``K_std`` (sample std, ddof 1:
    NaN for one run), ``K_min``, ``K_max``. Only done runs count in these.

    A list-valued key (per-epoch values) is aggregated element-wise: each of
    its five columns holds a list, element i over the done runs whose list
    has an element i, so with ragged lists ``K_n`` falls towards the end and
    the tail of ``K_mean`` is the mean of the longer runs only.

    Rows are ranked by the mean of the performance key (a list-valued one by
    the mean of its runs' last elements), ascending if the search says
    ``_PERFORMANCE_SORT_ASC``; groups without a value come last, in run order.
    """
    import numpy
    import pandas

    meta = dict(df.attrs.get(ATTRS_KEY) or {})
    if grid_keys is None and "grid_keys" not in meta or summary_keys is None and "summary_keys" not in meta:
        raise ValueError("group_seeds: the frame does not say which columns are grid and summary keys "
                         "(it lost load_results' attrs); pass grid_keys= and summary_keys=")
    grid = [k for k in (grid_keys if grid_keys is not None else meta["grid_keys"])]
    summary = [k for k in (summary_keys if summary_keys is not None else meta["summary_keys"])]
    own = {**{column: column for column in ("status", "config_key", "run_dir")}, **meta.get("columns", {})}
    seeds = seed_keys_of(grid, seed_keys if seed_keys is not None else meta.get("seed_keys"))
    for key in [*grid, *summary, *seeds, own["status"]]:
        if key not in df.columns:
            raise ValueError(f"group_seeds: {key!r} is not a column of the frame")
    if performance_key is None:
        performance_key = meta.get("performance_key")
    if performance_key is not None and performance_key not in df.columns:
        raise ValueError(f"group_seeds: performance key {performance_key!r} is not a column of the frame")
    ascending = bool(meta.get("ascending", False)) if ascending is None else bool(ascending)
    by = [key for key in grid if key not in seeds]

    codes = _group_codes(df, by)
    first = ~codes.duplicated()
    groups = int(codes.max()) + 1 if len(codes) else 0
    out = df.loc[first.to_numpy(), by].reset_index(drop=True)
    taken = set(by)

    def name(column: str) -> str:
        while column in taken:
            column = "hpsearch_" + column
        taken.add(column)
        return column

    out[name("group_key")] = [_group_key(row) for row in out.to_dict("records")]
    status = df[own["status"]].astype(str)
    code_array = codes.to_numpy()
    status_array = status.to_numpy()
    statuses = [s.value for s in RunStatus] + sorted(set(status) - {s.value for s in RunStatus})
    out[name("n_runs")] = numpy.bincount(code_array, minlength=groups).astype("int64")
    for value in statuses:
        out[name(f"n_{value}")] = numpy.bincount(code_array[status_array == value], minlength=groups).astype("int64")
    code_list = codes.tolist()
    seed_values = (list(zip(*(df[key].tolist() for key in seeds))) if len(seeds) > 1
                   else df[seeds[0]].tolist() if seeds else [None] * len(df))
    for column, values in (("seeds", seed_values), ("config_keys", df[own["config_key"]].tolist()),
                           ("run_dirs", df[own["run_dir"]].tolist())):
        lists: list[list] = [[] for _ in range(groups)]
        if column != "seeds" or seeds:
            for code, value in zip(code_list, values):
                lists[code].append(value)
        out[name(column)] = pandas.Series(lists, dtype=object)

    done = (status == RunStatus.DONE.value).to_numpy()
    done_codes = codes.to_numpy()[done]
    rank = None
    for key in summary:
        kind, values = _numeric_kind(df[key][done])
        if kind is None:
            continue
        if kind == "scalar":
            stats = _scalar_stats(values, done_codes, groups)
        else:
            stats = _list_stats(values, done_codes, groups)
        for stat in STATS:
            out[name(f"{key}_{stat}")] = stats[stat] if kind == "scalar" else pandas.Series(stats[stat], dtype=object)
        if key == performance_key:
            rank = (stats["mean"] if kind == "scalar"
                    else _scalar_stats(_last_elements(values), done_codes, groups)["mean"])
    if rank is not None and groups:
        order = pandas.Series(rank).sort_values(ascending=ascending, na_position="last", kind="stable").index
        out = out.loc[order].reset_index(drop=True)
    out.attrs[ATTRS_KEY] = {
        **{k: meta[k] for k in ("search", "source") if k in meta},
        "grid_keys": by, "seed_keys": seeds, "performance_key": performance_key, "ascending": ascending,
        "summary_keys": [key for key in summary if f"{key}_mean" in out.columns],
    }
    return out


def _group_codes(df: "pandas.DataFrame", by: list[str]) -> "pandas.Series":
    """Group number of every run, numbered in order of first appearance; NaN and None group too."""
    import pandas

    if not by or not len(df):
        return pandas.Series([0] * len(df), index=df.index, dtype="int64")
    keys = pandas.DataFrame({key: (df[key].map(_hashable) if df[key].dtype == object else df[key]) for key in by},
                            index=df.index)
    return keys.groupby(by, dropna=False, sort=False).ngroup()


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def _group_key(values: dict[str, Any]) -> str:
    """A stable key of a group's seed-free values, missing values left out, in the canonical form
    of :func:`hpsearch.space.keys.config_key`. A whole float counts as the int it equals: a column
    with gaps holds ints as floats, and 5 and 5.0 are one value (as hypnettorch compares them)."""
    from hpsearch.space.keys import KEY_LENGTH, to_plain

    config = {}
    for key, value in values.items():
        value = to_plain(value)
        if value is None or isinstance(value, float) and math.isnan(value):
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        config[key] = value
    text = _KEY_JSON(config)
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:KEY_LENGTH]


def _numeric_kind(column: "pandas.Series") -> tuple[str | None, Any]:
    """``scalar`` (numbers), ``list`` (lists of numbers, scalars read as one-element lists) or None."""
    import pandas

    if column.dtype != object:
        if pandas.api.types.is_bool_dtype(column) or not pandas.api.types.is_numeric_dtype(column):
            return None, None
        return "scalar", column.to_numpy(dtype="float64")
    values = column.tolist()
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not present:
        return None, None
    if any(isinstance(v, list) for v in present):
        if not all(_numbers(v if isinstance(v, list) else [v]) for v in present):
            return None, None
        return "list", [v if isinstance(v, list) or v is None else [v] for v in values]
    if _numbers(present):
        return "scalar", pandas.Series(values, dtype="float64").to_numpy()
    return None, None


def _numbers(values: list[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) or v is None for v in values)


def _scalar_stats(values: Any, codes: Any, groups: int) -> dict[str, list]:
    import pandas

    grouped = pandas.Series(values, dtype="float64").groupby(codes)
    frame = grouped.agg(["count", "mean", "std", "min", "max"]).reindex(range(groups))
    return {"n": frame["count"].fillna(0).astype("int64").to_numpy(), "mean": frame["mean"].to_numpy(),
            "std": frame["std"].to_numpy(), "min": frame["min"].to_numpy(), "max": frame["max"].to_numpy()}


def _list_stats(values: list[list | None], codes: Any, groups: int) -> dict[str, list]:
    """Element-wise n, mean, std, min, max per group: the lists padded with NaN into one array,
    grouped once; each group's lists are as long as its longest run's."""
    import numpy
    import pandas

    present = [(code, value) for code, value in zip(codes.tolist(), values) if value is not None]
    width = max((len(value) for _, value in present), default=0)
    grid = numpy.full((len(present), width), numpy.nan)
    for row, (_, value) in enumerate(present):
        grid[row, :len(value)] = [numpy.nan if v is None else v for v in value]
    grouped = pandas.DataFrame(grid).groupby(numpy.array([code for code, _ in present], dtype="int64"))
    frames = {"n": grouped.count(), "mean": grouped.mean(), "std": grouped.std(), "min": grouped.min(),
              "max": grouped.max()}
    lengths = [0] * groups
    for code, value in present:
        lengths[code] = max(lengths[code], len(value))
    stats: dict[str, list] = {}
    for stat, frame in frames.items():
        frame = frame.reindex(range(groups))
        rows = frame.to_numpy().tolist()
        if stat == "n":
            stats[stat] = [[int(v) for v in row[:length]] for row, length in zip(rows, lengths)]
        else:
            stats[stat] = [row[:length] for row, length in zip(rows, lengths)]
    return stats


def _last_elements(values: list[list | None]) -> list[float]:
    """Each run's ranking value of a list-valued key: its last element (as the CSV ranks it)."""
    return [float(v[-1]) if v and v[-1] is not None else math.nan for v in values]
