"""Command line of ``python -m hpsearch`` / ``hpsearch``.

Every flag of hypnettorch's ``hpsearch`` keeps its name, meaning and default;
the rest are ours. The flags come from the option table
(:mod:`hpsearch.options`). User mistakes end as one line on stderr and exit
status 2, a full disk as exit status 4; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import json
import logging
import os
import shutil
import sqlite3
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from hpsearch import __version__
from hpsearch.commandline import EXIT_USAGE, CommandParser, stdout_closed
from hpsearch.errors import HpsearchError, UsageError
from hpsearch.filesystem import folder_problem
from hpsearch.options import BY_FLAG, OPTIONS, Group, Option, Resume, display
from hpsearch.settings import SearchSettings

EXIT_DISK_FULL = 4
STORE_FILE = "hpsearch.db"  # hpsearch.store.STORE_FILE, without importing the store for --help
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
_SQLITE_FULL = 13




def _help(option: Option) -> str:
    text = option.help
    if option.kind is not bool and option.default not in ("", None):
        text += f" (default: {display(option.default)})"
    if option.resume is Resume.FIXED:
        text += " Cannot change on --resume."
    return text.replace("%", "%%")


def add_option(group: argparse._ArgumentGroup, option: Option) -> None:
    """One row of the option table as an argparse flag; `verify` builds its parser from a subset of the table."""
    kwargs: dict[str, Any] = {"help": argparse.SUPPRESS if option.hidden else _help(option),
                              "default": argparse.SUPPRESS}
    if option.kind is bool:
        # a restored switch can be turned off for one resumed session: --no-<flag>
        kwargs["action"] = argparse.BooleanOptionalAction if option.resume is Resume.RESTORED else "store_true"
    else:
        kwargs.update(type=option.kind, metavar=option.metavar)
        if option.choices:
            kwargs["choices"] = option.choices
    group.add_argument(f"--{option.flag}", **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """The parser of the option table; only flags given on the command line end up in its namespace."""
    parser = CommandParser(
        prog="hpsearch",
        description="Run a hyperparameter search described by a grid module on local GPUs/CPUs or a Slurm/LSF "
                    "cluster. Exit status: 0 all runs done, 1 some not done, 2 bad input, 4 disk full, "
                    "128+N stopped by signal N.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"hpsearch {__version__}")
    groups = {group: parser.add_argument_group(group.value) for group in Group}
    for option in OPTIONS:
        add_option(groups[option.group], option)
    return parser


# --------------------------------------------------------------------------- settings


def settings_from_args(given: dict[str, Any], argv: Sequence[str],
                       note: Callable[[str], None] = lambda line: print(f"[hpsearch] {line}", file=sys.stderr),
                       ) -> SearchSettings:
    """Defaults, then (on resume) the search's saved options, then the flags given.

    Raises:
        UsageError: A value is out of range, or a resume would change which
            configurations belong to the search.
    """
    given = _absolute_paths(given)
    values = {option.flag: option.default for option in OPTIONS}
    folder = _resume_folder(given)
    if folder is not None:
        values.update(_restored(folder, given, note))
        values["resume"] = str(folder)
    elif not given.get("grid_module"):
        raise UsageError("--grid_module is required (or --resume DIR to continue a search)")
    values.update(given)
    values["run_cwd"] = os.path.abspath(values["run_cwd"])
    if given.get("allow_unknown_condition_keys"):
        note("--allow_unknown_condition_keys is deprecated and has no effect: conditions naming unknown keys "
             "are dropped with a warning (--strict_conditions makes them errors)")
        values["allow_unknown_condition_keys"] = False
    for option in OPTIONS:
        problem = option.problem(values[option.flag])
        if problem:
            raise UsageError(problem)
    _check_python(values["python"], values["run_cwd"])
    if folder is None and not values["list"]:
        _check_out_dir(values["out_dir"])
    fields = {option.field: option.flip(values[option.flag]) for option in OPTIONS}
    return SearchSettings(**fields, driver_argv=list(argv))


def _absolute_paths(given: dict[str, Any]) -> dict[str, Any]:
    """Paths the search keeps (saved for a resume from anywhere) are made absolute."""
    given = dict(given)
    for flag in ("run_cwd", "grid_config"):
        if given.get(flag):
            given[flag] = os.path.abspath(given[flag])
    return given


def _resume_folder(given: dict[str, Any]) -> Path | None:
    """The search folder to continue: ``--resume DIR``, or hypnettorch's
    ``--out_dir=DIR --force_out_dir --dont_force_new_dir`` on a folder that holds a search
    (its store may be lost: the driver rebuilds it from the run folders)."""
    from hpsearch.searchdir import holds_search  # deferred, see main()

    if given.get("resume"):
        folder = Path(given["resume"]).resolve()
        if not holds_search(folder):
            raise UsageError(f"--resume {given['resume']}: no hpsearch search folder there "
                             f"(no {STORE_FILE}, search.json or run folder)")
        return folder
    if given.get("force_out_dir") and given.get("dont_force_new_dir") and given.get("out_dir"):
        folder = Path(given["out_dir"]).resolve()
        if holds_search(folder):
            return folder
    return None


def _restored(folder: Path, given: dict[str, Any], note: Callable[[str], None]) -> dict[str, Any]:
    """The options saved in the search folder; a differing flag given now is an override
    (one line each) or, for an option that decides the configurations, refused."""
    from hpsearch.searchdir import saved_settings  # deferred, see main()

    saved = saved_settings(folder) or {}
    options = saved.get("options") if isinstance(saved.get("options"), dict) else _first_argv_options(saved)
    restored = {flag: value for flag, value in options.items()
                if flag in BY_FLAG and BY_FLAG[flag].resume is not Resume.SESSION}
    if "run_cwd" not in restored and saved.get("run_cwd"):  # a folder of an older hpsearch
        restored["run_cwd"] = saved["run_cwd"]
    restored.pop("grid_module", None)
    if not given.get("grid_module"):
        copy = folder / saved.get("module_file", "")
        if not saved.get("module_file") or not copy.is_file():
            raise UsageError(f"--resume {folder}: no saved grid module there; pass --grid_module")
        restored["grid_module"] = str(copy)
    for flag, value in restored.items():
        if flag not in given or given[flag] == value or flag == "grid_module":
            continue
        if BY_FLAG[flag].resume is Resume.FIXED and not _extends(flag, value, given[flag]):
            raise UsageError(
                f"--{flag}={display(given[flag])}: this search in {folder} was started with "
                f"--{flag}={display(value)}, and changing it would change which configurations belong to it; "
                f"leave the flag out to continue the search, or start a new search with a new --out_dir"
            )
        if flag == "num_searches":
            note(f"--num_searches={given[flag]} extends the search (it was started with --num_searches={value})")
        else:
            note(f"--{flag}={display(given[flag])} overrides the search's --{flag}={display(value)} for this session")
    return restored


def _first_argv_options(saved: dict[str, Any]) -> dict[str, Any]:
    """A folder of an hpsearch that saved no options: the flags of its first driver's argv."""
    argv = saved.get("driver_argv")
    if not isinstance(argv, list) or not all(isinstance(word, str) for word in argv):
        return {}
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            flags = vars(build_parser().parse_known_args(argv)[0])
    except SystemExit:  # a value this version refuses: restore nothing
        return {}
    options = {**{o.flag: o.default for o in OPTIONS if o.resume is not Resume.SESSION}, **flags}
    options.pop("run_cwd")  # relative to a folder we do not know; search.json has it resolved
    return options


def _extends(flag: str, saved: Any, new: Any) -> bool:
    """A larger ``--num_searches`` (or -1, all) adds the next configurations in the same order."""
    return flag == "num_searches" and saved > 0 and (new == -1 or new > saved)


def _check_python(python: str, run_cwd: str) -> None:
    """``--python`` must start: a program on PATH, or an executable file (relative to ``--run_cwd``)."""
    if "/" not in python:
        found = shutil.which(python) is not None
    else:
        path = Path(run_cwd) / python
        if not Path(run_cwd).is_dir():
            return  # reported as a --run_cwd problem
        found = path.is_file() and os.access(path, os.X_OK)
    if not found:
        raise UsageError(f"--python must be an executable file or a program on PATH, got {python!r}")


def _check_out_dir(out_dir: str) -> None:
    """``--out_dir`` must be a folder, or creatable: its nearest existing ancestor a writable folder."""
    problem = folder_problem(Path(out_dir).resolve())
    if problem is not None:
        raise UsageError(f"--out_dir must be a writable folder, got {out_dir!r}: it {problem}")


# --------------------------------------------------------------------------- --list


def print_listing(settings: SearchSettings, fmt: str) -> None:
    from hpsearch.runner import list_configurations  # deferred, see main()

    from hpsearch.command import received_config

    spec, items = list_configurations(settings)
    for warning in spec.warnings:
        print(f"[hpsearch] warning: {warning}", file=sys.stderr)
    strip = spec.strip_outer_quotes
    if fmt == "json":
        json.dump({"grid_module": spec.module_name, "count": len(items),
                   "configurations": [{"key": key, "config": received_config(config, strip),
                                       "flags": spec.arg_style.words(config, strip)} for key, config in items]},
                  sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
        return
    for number, (key, config) in enumerate(items, 1):
        values = " ".join(f"{name}={value!r}" for name, value in received_config(config, strip).items())
        print(f"{number:>6}  {key}  {values}")
    print(f"{len(items)} configurations")
    sys.stdout.flush()




# --------------------------------------------------------------------------- main


def disk_full(exc: BaseException) -> bool:
    """ENOSPC/EDQUOT, or SQLite's "database or disk is full", anywhere in the exception's chain."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _DISK_FULL:
            return True
        if isinstance(seen, sqlite3.Error) and getattr(seen, "sqlite_errorcode", None) == _SQLITE_FULL:
            return True
        seen = seen.__cause__ or seen.__context__
    return False




def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from hpsearch.subcommands import subcommand  # a table of names, nothing heavy

    command = subcommand(argv[0]) if argv else None
    if command is not None:
        return command(argv[1:])
    given = vars(build_parser().parse_args(argv))
    debug = given.get("debug", False)
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="[hpsearch] %(levelname)s: %(message)s")
    try:
        settings = settings_from_args(given, argv)
        if settings.list:
            try:
                print_listing(settings, settings.format)
            except BrokenPipeError:
                stdout_closed()
            return 0
        # nvidia-smi answers while the search machinery is imported: only now, so that
        # --help, --version and a mistyped flag end in parse_args without paying for it.
        from hpsearch.gpu.probe import GpuProbe

        probe = GpuProbe.start(settings)
        from hpsearch.runner import run_search

        return run_search(settings, gpu_probe=probe)
    except Exception as exc:
        if debug:
            raise
        hint = getattr(exc, "resume_hint", "")
        if disk_full(exc):
            print(f"hpsearch: error: disk full (or over quota) while writing: {exc}; free some space, then "
                  f"continue with: {hint or 'hpsearch --resume <search folder>'}", file=sys.stderr)
            return EXIT_DISK_FULL
        if isinstance(exc, HpsearchError):
            print(f"hpsearch: error: {exc}" + (f"; continue with: {hint}" if hint else ""), file=sys.stderr)
            return EXIT_USAGE
        if isinstance(exc, (PermissionError, FileNotFoundError, NotADirectoryError, IsADirectoryError)):
            print(f"hpsearch: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
        raise
    except KeyboardInterrupt:
        print("hpsearch: interrupted", file=sys.stderr)
        return 130


def console_main() -> None:
    """Entry point of ``hpsearch`` and ``python -m hpsearch``.

    Everything is written and closed when :func:`main` returns; skipping the
    interpreter's teardown of pandas and numpy saves a tenth of a second or
    more at the end of every search.
    """
    code = main()
    logging.shutdown()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        stdout_closed()
    sys.stderr.flush()
    os._exit(code)
