"""Search folders written by hypnettorch 0.0.4, read as they are (nothing is written or imported).

hypnettorch's folder holds a copy of the grid module, ``commands.pickle`` (the
list of configurations, each with its run folder under ``_OUT_ARG``),
``commands.sh`` (the same as command lines), ``search_results.csv``
(``;``-separated, columns in alphabetical order, a row for each run whose
summary it could parse, list values as quoted ``"0.1,0.2"`` cells) and one
``sim_<stamp>_<n>`` folder per run holding the summary file, and after
hypnettorch's postprocessor, runs set aside in ``TO_BE_DELETED/``.

The run folders are the ground truth here too: each planned run's summary is
read with hpsearch's parser (which reads ``1e-05`` and ``-3`` correctly, where
hypnettorch's CSV holds them mangled). The grid module's settings are read from
its copy without running it (``ast``: literal assignments only). hypnettorch
kept no exit codes, so a run is ``done`` (``finished 1``), ``unfinished`` (a
summary without it, or none) or ``missing`` (planned, no folder); it kept no
start times either, so ``start`` is empty and ``end`` is the summary file's
modification time.
"""

from __future__ import annotations

import ast
import os
import pickle
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpsearch.errors import SpaceError, SummaryError, UsageError
from hpsearch.folder_runs import MISSING, UNFINISHED, config_from_argv
from hpsearch.run_table import RunTable
from hpsearch.summary import finished_flag, parse_numbers, parse_summary, read_run_file

COMMANDS_PICKLE = "commands.pickle"
COMMANDS_SCRIPT = "commands.sh"
RESULTS_CSV = "search_results.csv"
RUN_COMMAND = "hpsearch_command.sh"
SET_ASIDE = "TO_BE_DELETED"
_SETTINGS = ("_SUMMARY_FILENAME", "_SUMMARY_KEYWORDS", "_PERFORMANCE_KEY", "_PERFORMANCE_SORT_ASC", "_OUT_ARG",
             "_SEED_KEYS")


@dataclass
class ModuleFacts:
    """What the grid module's copy says, as far as it says it with literals."""

    summary_filename: str | None = None
    summary_keywords: list[str] = field(default_factory=list)
    performance_key: str | None = None
    ascending: bool = False
    out_arg: str = "out_dir"
    seed_keys: list[str] | None = None


def is_hypnettorch_folder(folder: Path) -> bool:
    """The folder holds what hypnettorch's ``hpsearch`` writes."""
    return any((folder / name).is_file() for name in (COMMANDS_PICKLE, COMMANDS_SCRIPT, RESULTS_CSV)) or any(
        path.is_dir() for path in folder.glob("sim_*"))


def read_hypnettorch_folder(folder: Path) -> RunTable:
    """Every run hypnettorch planned (or, without its command list, every run folder or CSV row)."""
    facts = module_facts(folder)
    table = RunTable(search=str(folder), source="hypnettorch", grid_keys=[], summary_keys=facts.summary_keywords,
                     performance_key=facts.performance_key, ascending=facts.ascending, seed_keys=facts.seed_keys)
    commands = planned_commands(folder, facts.out_arg)
    if commands is None:
        commands = _commands_from_run_folders(folder, facts.out_arg)
    if not commands and (folder / RESULTS_CSV).is_file():
        _read_csv_rows(folder, facts, table)
    else:
        filename = facts.summary_filename
        for config, run_name in commands:
            run_dir = _run_folder(folder, run_name)
            if filename is None and run_dir is not None:
                filename = _guess_summary_filename(run_dir)
            _add_run(table, folder, config, run_name, run_dir, filename, facts.summary_keywords)
    table.grid_keys = _ordered_keys(table.configs)
    if table.performance_key is None:
        found = [key for key in _ordered_keys([s for s in table.summaries if s]) if key != "finished"]
        table.performance_key = found[0] if found else None
    return table


def module_facts(folder: Path) -> ModuleFacts:
    """Settings of the first ``.py`` in ``folder`` that assigns ``_SUMMARY_KEYWORDS`` (hypnettorch copies
    the grid module there); literal values only, the module is never run."""
    for path in sorted(folder.glob("*.py")):
        try:
            tree = ast.parse(read_run_file(path), filename=str(path))
        except (OSError, SyntaxError, ValueError):
            continue
        values = _literal_assignments(tree)
        if "_SUMMARY_KEYWORDS" not in values:
            continue
        keywords = values.get("_SUMMARY_KEYWORDS")
        keywords = [k for k in keywords if isinstance(k, str)] if isinstance(keywords, (list, tuple)) else []
        seeds = values.get("_SEED_KEYS")
        performance = values.get("_PERFORMANCE_KEY")
        return ModuleFacts(
            summary_filename=values.get("_SUMMARY_FILENAME") if isinstance(values.get("_SUMMARY_FILENAME"), str)
            else None,
            summary_keywords=keywords,
            performance_key=performance if isinstance(performance, str) and performance else
            (keywords[0] if keywords else None),
            ascending=values.get("_PERFORMANCE_SORT_ASC") is True,
            out_arg=values.get("_OUT_ARG") if isinstance(values.get("_OUT_ARG"), str) and values["_OUT_ARG"]
            else "out_dir",
            seed_keys=[k for k in seeds if isinstance(k, str)] if isinstance(seeds, (list, tuple)) else None,
        )
    return ModuleFacts()


def _literal_assignments(tree: ast.Module) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in _SETTINGS:
                try:
                    values[name] = ast.literal_eval(node.value)
                except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                    values[name] = None
    return values


class _PlainUnpickler(pickle.Unpickler):
    """Plain data only (and numpy scalars, which ``np.linspace`` grids leave): no code runs."""

    _ALLOWED = {("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not plain data")


def planned_commands(folder: Path, out_arg: str) -> list[tuple[dict, str]] | None:
    """(configuration, run folder name) of every planned run, in order; None without a command list."""
    path = folder / COMMANDS_PICKLE
    if path.is_file():
        try:
            with open(path, "rb") as handle:
                commands = _PlainUnpickler(handle).load()
        except Exception:  # a damaged or foreign pickle can raise nearly anything
            commands = None
        if isinstance(commands, list) and all(isinstance(c, dict) for c in commands):
            from hpsearch.space.keys import to_plain

            return [({k: to_plain(v) for k, v in c.items() if k != out_arg}, os.path.basename(str(c.get(out_arg, ""))))
                    for c in commands]
    path = folder / COMMANDS_SCRIPT
    if not path.is_file():
        return None
    try:
        lines = read_run_file(path).splitlines()
    except OSError:
        return None
    planned = []
    for line in lines:
        parsed = _command_line(line, out_arg)
        if parsed is not None:
            planned.append(parsed)
    return planned


def _command_line(line: str, out_arg: str) -> tuple[dict, str] | None:
    """``python3 train.py --out_dir=X --k=v ...`` -> ({k: v}, basename of X); values typed back from text."""
    try:
        argv = shlex.split(line, comments=True)
    except ValueError:
        return None
    if len(argv) < 2:
        return None
    flag = f"--{out_arg}="
    run_dir = next((arg[len(flag):] for arg in argv if arg.startswith(flag)), "")
    config = {key: _text_value(value) if isinstance(value, str) else value
              for key, value in config_from_argv(argv[2:], flag).items()}
    return config, os.path.basename(run_dir.rstrip("/"))


def _text_value(text: str) -> Any:
    """A value hypnettorch wrote with ``str()``: a number or True/False back, else the text."""
    if text in ("True", "False"):
        return text == "True"
    number = parse_numbers(text)
    return number if isinstance(number, (int, float)) and text.strip() == text and "," not in text else text


def _commands_from_run_folders(folder: Path, out_arg: str) -> list[tuple[dict, str]]:
    """Without a command list: every ``sim_*`` folder, its configuration from its ``hpsearch_command.sh``."""
    found = []
    for parent in (folder, folder / SET_ASIDE):
        for path in sorted(parent.glob("sim_*")) if parent.is_dir() else []:
            if not path.is_dir():
                continue
            config: dict = {}
            try:
                text = read_run_file(path / RUN_COMMAND)
            except OSError:
                text = ""
            for line in text.splitlines():
                parsed = _command_line(line, out_arg)
                if parsed is not None:
                    config = parsed[0]
            found.append((config, path.name))
    return sorted(found, key=lambda item: item[1])


def _run_folder(folder: Path, name: str) -> Path | None:
    for parent in (folder, folder / SET_ASIDE):
        if name and (parent / name).is_dir():
            return parent / name
    return None


def _guess_summary_filename(run_dir: Path) -> str | None:
    """Without the grid module: the text file of the run folder with a ``finished`` line."""
    for path in sorted(run_dir.glob("*.txt")):
        try:
            if any(line.split()[:1] == ["finished"] for line in read_run_file(path).splitlines()):
                return path.name
        except OSError:
            continue
    return None


def _add_run(table: RunTable, folder: Path, config: dict, run_name: str, run_dir: Path | None,
             filename: str | None, keywords: list[str]) -> None:
    from hpsearch.space.keys import config_key

    try:
        key = config_key(config)
    except SpaceError:
        key = ""
    if run_dir is None:
        table.add(config, None, MISSING, f"not started (no run folder {run_name})", 0, str(folder / run_name), key,
                  None, None, None)
        return
    summary, reason, ended = None, "no summary file", None
    if filename is not None:
        path = run_dir / filename
        try:
            summary = parse_summary(path, keywords or ["finished"])
            reason = None
        except SummaryError as exc:
            summary, reason = getattr(exc, "partial", None), str(exc)
        try:
            ended = path.stat().st_mtime
        except OSError:
            ended = None
    if summary is not None and reason is None and finished_flag(summary):
        status = "done"
    else:
        status = UNFINISHED
        reason = reason or f"not finished (finished {(summary or {}).get('finished')})"
    table.add(config, summary, status, reason, 1, str(run_dir), key, None, None, ended)


def _read_csv_rows(folder: Path, facts: ModuleFacts, table: RunTable) -> None:
    """Only hypnettorch's CSV is left: its rows, list cells (``"0.1,0.2"``) back to lists."""
    import pandas

    path = folder / RESULTS_CSV
    try:
        csv = pandas.read_csv(path, sep=";", dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot be read: {exc}") from None
    keywords = set(facts.summary_keywords or ["finished"])
    for record in csv.to_dict("records"):
        run_dir = record.pop(facts.out_arg, "")
        config = {k: _text_value(v) for k, v in record.items() if k not in keywords and v != ""}
        summary = {k: parse_numbers(v.strip('"')) for k, v in record.items() if k in keywords and v != ""}
        summary = {k: v for k, v in summary.items() if v is not None}
        done = finished_flag(summary) if "finished" in summary else False
        from hpsearch.space.keys import config_key

        table.add(config, summary or None, "done" if done else UNFINISHED,
                  None if done else "not finished (from search_results.csv)", 1, run_dir, config_key(config),
                  None, None, None)


def _ordered_keys(rows: list[dict]) -> list[str]:
    keys: dict[str, None] = {}
    for row in rows:
        for key in row:
            keys.setdefault(key, None)
    return list(keys)
