"""``hpsearch verify SEARCH --top K --seeds S``: the best configurations again, with new seeds.

A verification is an ordinary search: the original's copy of its grid module
with ``--grid_config`` naming the explicit list of (configuration, new seed)
runs, in ``<search>/verify_<K>x<S>/``. So the same driver, executors, store,
report and resume run it, the grid module's settings (script, ``_OUT_ARG``,
summary, performance key) are the original's, and a seed reaches the script as
``--<seed_key>=<value>`` like any grid key. ``search.json`` there records the
origin and the command (``verification``); repeating the command finds the
folder and resumes it, so finished runs never run again.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from hpsearch import space
from hpsearch.atomic import write_json_atomic
from hpsearch.command import received_config
from hpsearch.cli import add_option, settings_from_args
from hpsearch.commandline import EXIT_USAGE, CommandParser
from hpsearch.errors import HpsearchError, UsageError
from hpsearch.gridmodule import GridSpec, load_grid_module
from hpsearch.options import OPTIONS, Group, Option, Resume
from hpsearch.report import ranking_value
from hpsearch.runs import RunStatus
from hpsearch.searchdir import SETTINGS_FILE, saved_settings
from hpsearch.seeds import new_seeds
from hpsearch.space.keys import check_parameter_name
from hpsearch.store import STORE_FILE, RunStore

PROG = "hpsearch verify"
_OWN = ("search", "top", "seeds", "seed_key", "submit")  # the flags of verify itself, not of the search
GRID_FILE = "verify_grid.json"
RECORD = "verification"  # the key of search.json that links a verification to its origin
SUBMITTED = -1  # _run's answer when the service took the verification: no summary yet

_RUN_GROUPS = (Group.RUNS, Group.GPUS, Group.CLUSTER, Group.SLURM, Group.LSF)
_OTHER_FLAGS = ("quiet", "debug")


def _verify_options() -> list[Option]:
    """The flags a verification takes: how and where its runs run, not which runs they are."""
    return [o for o in OPTIONS if not o.hidden and (o.group in _RUN_GROUPS or o.flag in _OTHER_FLAGS)]


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog=PROG, allow_abbrev=False,
        description="Run the K best configurations of a search (grouped over seeds) again, each with S new seeds, "
                    "in a verification search linked to it (SEARCH/verify_<K>x<S>/), and print mean ± std per "
                    "configuration. Repeating the command resumes it: finished runs are not run again. Run and "
                    "executor flags are those of a search; by default the original search's values.",
    )
    parser.add_argument("search", metavar="SEARCH", help="The search's folder, its id or a unique prefix of it.")
    parser.add_argument("--top", type=int, required=True, metavar="K", help="How many of the best configurations.")
    parser.add_argument("--seeds", type=int, required=True, metavar="S", help="New seeds per configuration.")
    parser.add_argument("--submit", action="store_true",
                        help="Hand the verification to the search service (hpsearch serve) instead of running it "
                             "here; once it has ended, the same command without --submit prints mean ± std.")
    parser.add_argument("--seed_key", default=None, metavar="NAME",
                        help="The parameter that takes the seed (passed as --NAME=<seed>); default: the grid "
                             "module's _SEED_KEYS, else a grid key named random_seed, seed or rand_seed.")
    groups: dict[Group, argparse._ArgumentGroup] = {}
    for option in _verify_options():
        if option.group not in groups:
            groups[option.group] = parser.add_argument_group(option.group.value)
        add_option(groups[option.group], option)
    return parser


# --------------------------------------------------------------------------- the original search


@dataclass
class Origin:
    """The search being verified, as its folder recorded it."""

    folder: Path
    saved: dict[str, Any]
    module_copy: Path
    run_cwd: Path
    spec: GridSpec
    runs: Any  # load_results' frame
    configs: dict[str, dict[str, Any]]  # every run's stored configuration, by key

    @property
    def identity(self) -> str:
        """What the seeds derive from: the search's start stamp and grid module file, not its path
        (a moved folder gives the same seeds) nor the module's name (a resume records it as a path)."""
        return f"{self.saved.get('stamp') or self.folder.name}:{self.saved.get('module_file', '')}"

    def options(self) -> dict[str, Any]:
        """The original's run and executor flags, the defaults of the verification."""
        saved = self.saved.get("options") if isinstance(self.saved.get("options"), dict) else {}
        allowed = {o.flag for o in _verify_options() if o.resume is not Resume.SESSION}
        options = {flag: value for flag, value in saved.items() if flag in allowed}
        options["run_cwd"] = str(self.run_cwd)
        return options


def load_origin(text: str) -> Origin:
    """The search named by ``text`` with its grid module copy loaded and its runs read.

    Raises:
        UsageError: Not a search folder, or no saved settings or grid module copy.
    """
    from hpsearch.results import load_results
    from hpsearch.service.snapshot import open_registry, resolve_search

    folder = resolve_search(text, open_registry()).folder
    saved = saved_settings(folder)
    if saved is None:
        raise UsageError(f"{folder}: no {SETTINGS_FILE} (a search made by hypnettorch or an older hpsearch "
                         "cannot be verified: its grid module settings are not recorded)")
    if isinstance(saved.get(RECORD), dict):
        raise UsageError(f"{folder} is itself a verification (of {saved[RECORD].get('origin')}); "
                         "verify the original search")
    copy = folder / str(saved.get("module_file") or "")
    if not saved.get("module_file") or not copy.is_file():
        raise UsageError(f"{folder}: no copy of the grid module there ({SETTINGS_FILE} names "
                         f"{saved.get('module_file')!r})")
    run_cwd = Path(str((saved.get("options") or {}).get("run_cwd") or saved.get("run_cwd") or folder))
    spec = load_grid_module(str(copy), search_path=[run_cwd])
    return Origin(folder, saved, copy, run_cwd, spec, load_results(folder), _stored_configs(folder))


def _stored_configs(folder: Path) -> dict[str, dict[str, Any]]:
    """Every run's configuration as stored (before quotes are stripped), by key; queued runs too."""
    if (folder / STORE_FILE).is_file():
        with RunStore.open(folder, readonly=True) as store:
            return {record.key: record.config for record in store.records()}
    from hpsearch.runfolders import read_run_folder, run_folders

    runs = (read_run_folder(path) for path in run_folders(folder))
    return {run.key: run.config for run in runs if run is not None}


def seed_keys_of(origin: Origin, given: str | None) -> tuple[str, list[str]]:
    """(the key that takes the new seeds, every seed key a group ignores).

    Raises:
        UsageError: No seed key given and none in the grid, or a name that cannot be a flag.
    """
    from hpsearch.results import DEFAULT_SEED_KEYS, seed_keys_of as declared_seed_keys

    declared = declared_seed_keys(origin.spec.grid_keys, origin.spec.seed_keys)
    if given is not None:
        try:
            check_parameter_name(given, "--seed_key")
        except HpsearchError as exc:
            raise UsageError(str(exc)) from None
        if given == origin.spec.out_arg:
            raise UsageError(f"--seed_key {given!r} is the grid module's _OUT_ARG, which names the run folder")
        return given, list(dict.fromkeys([given, *declared]))
    if declared:
        return declared[0], declared
    raise UsageError(
        f"{origin.module_copy}: the grid has no seed parameter (no _SEED_KEYS, and no grid key named "
        f"{', '.join(DEFAULT_SEED_KEYS)}); pass --seed_key NAME or set _SEED_KEYS in the grid module"
    )


# --------------------------------------------------------------------------- the plan


@dataclass
class Planned:
    """One configuration to verify: its group, the seeds it had and the new ones."""

    key: str  # group_seeds' group_key: the configuration without its seeds
    base: dict[str, Any]  # the configuration of the group's best run, as stored
    used: list[Any]
    seeds: list[int]
    original_keys: list[str]  # the original runs that count in its group

    def configs(self, seed_key: str) -> list[dict[str, Any]]:
        """The verification runs: the configuration with each new seed (a new key goes last)."""
        return [{**self.base, seed_key: seed} for seed in self.seeds]

    def run_keys(self, seed_key: str) -> list[str]:
        return [space.config_key(config) for config in self.configs(seed_key)]


def plan(origin: Origin, seed_key: str, seed_keys: Sequence[str], top: int, count: int) -> list[Planned]:
    """The ``top`` configurations by :func:`~hpsearch.results.group_seeds` (the ranking of ``report
    --by_config``) that have a done run, with new seeds: the same for the same search and command.

    Raises:
        UsageError: No run of the search is done with a value of the performance key.
    """
    from hpsearch.results import group_seeds

    runs = origin.runs
    columns = runs.attrs["hpsearch"]["columns"]
    performance = runs.attrs["hpsearch"]["performance_key"]
    value_of = _done_values(runs, performance, columns)
    groups = group_seeds(runs, [key for key in seed_keys if key in runs.columns])
    seed_in_grid = seed_key in origin.spec.grid_keys
    sign = 1.0 if origin.spec.performance_sort_asc else -1.0
    planned = []
    for group_key, keys in zip(groups["group_key"], groups["config_keys"]):
        done = [key for key in keys if key in value_of]
        if not done:
            continue
        best = min(done, key=lambda key: sign * value_of[key])
        if best not in origin.configs:
            raise UsageError(f"{origin.folder}: the configuration of run {best} is neither in {STORE_FILE} nor "
                             f"in a run folder")
        configs = [origin.configs[key] for key in keys if key in origin.configs]
        used = [config[seed_key] for config in configs if seed_key in config]
        originals = [key for key in keys if seed_in_grid and seed_key in origin.configs.get(key, {})]
        planned.append(Planned(group_key, origin.configs[best], used,
                               new_seeds(origin.identity, group_key, used, count), originals))
        if len(planned) == top:
            break
    if not planned:
        done = int((runs[columns["status"]] == RunStatus.DONE.value).sum())
        raise UsageError(f"{origin.folder}: no finished run with a value of {performance!r} yet "
                         f"({done} of {len(runs)} runs done)")
    return planned


def _done_values(runs: Any, performance: str | None, columns: dict[str, str]) -> dict[str, float]:
    """The ranking value of the performance key of every done run, by configuration key."""
    if performance is None:
        return {}
    values = {}
    for key, status, value in zip(runs[columns["config_key"]].tolist(), runs[columns["status"]].tolist(),
                                  runs[performance].tolist()):
        number = ranking_value(value) if status == RunStatus.DONE.value else None
        if number is not None:
            values[key] = number
    return values


# --------------------------------------------------------------------------- the verification folder


def verification_folder(origin: Origin, top: int, seeds: int) -> Path:
    return origin.folder / f"verify_{top}x{seeds}"


def grid_document(planned: Sequence[Planned], seed_key: str) -> dict[str, Any]:
    """The ``--grid_config`` of the verification: one single-valued grid per run, no conditions
    (the original's conditions made these configurations already)."""
    grid = [{name: [value] for name, value in config.items()} for item in planned for config in item.configs(seed_key)]
    return {"grid": grid, "conditions": []}


def record_of(origin: Origin, planned: Sequence[Planned], seed_key: str, top: int, seeds: int,
              argv: Sequence[str]) -> dict[str, Any]:
    """What ``search.json`` keeps of where the verification came from."""
    return {
        "origin": str(origin.folder), "origin_stamp": origin.saved.get("stamp"), "top": top, "seeds": seeds,
        "seed_key": seed_key, "command": ["hpsearch", "verify", *argv], "cwd": os.getcwd(),
        "configurations": [{"key": item.key, "config": item.base, "used_seeds": item.used, "seeds": item.seeds,
                            "original_runs": item.original_keys} for item in planned],
    }


def existing_record(folder: Path) -> dict[str, Any] | None:
    """The verification record of ``folder`` if a verification was set up there."""
    try:
        saved = saved_settings(folder) if folder.is_dir() else None
    except UsageError:
        return None
    record = (saved or {}).get(RECORD)
    return record if isinstance(record, dict) else None


def write_record(folder: Path, record: dict[str, Any]) -> None:
    """Add the record to the verification's ``search.json`` (later sessions keep it)."""
    saved = saved_settings(folder) or {}
    write_json_atomic(folder / SETTINGS_FILE, {**saved, RECORD: record})


# --------------------------------------------------------------------------- the command


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def verify_main(argv: Sequence[str]) -> int:
    argv = list(argv)
    args = build_parser().parse_args(argv)
    flags = flags_of(args)
    debug = bool(flags.get("debug"))
    try:
        return _verify(args, flags, argv)
    except HpsearchError as exc:
        if debug:
            raise
        hint = getattr(exc, "resume_hint", "")
        return _fail(f"{exc}" + (f"; continue with: {hint}" if hint else ""))
    except (PermissionError, FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
        if debug:
            raise
        return _fail(f"{exc.filename or ''}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def _verify(args: argparse.Namespace, flags: dict[str, Any], argv: list[str]) -> int:
    for name in ("top", "seeds"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1, got {getattr(args, name)}")
    origin = load_origin(args.search)
    seed_key, seed_keys = seed_keys_of(origin, args.seed_key)
    planned = plan(origin, seed_key, seed_keys, args.top, args.seeds)
    if len(planned) < args.top:
        _note(f"only {len(planned)} configurations of {origin.folder} have a done run; verifying those")
    folder = verification_folder(origin, args.top, args.seeds)
    record = existing_record(folder)
    if record is not None:
        planned = _take_up(record, planned, seed_key, folder)
        settings = settings_from_args({**flags, "resume": str(folder)}, ["verify", *argv], note=_note)
    else:
        settings = _new_settings(origin, folder, flags, argv)
    code = _run(settings, origin, folder, planned, seed_key, args, argv, new=record is None)
    if code == SUBMITTED:
        return 0
    if code in (0, 1):
        print_summary(origin, folder, planned, seed_key)
    return code


def _note(line: str) -> None:
    print(f"[hpsearch] {line}", file=sys.stderr)


def _take_up(record: dict[str, Any], planned: list[Planned], seed_key: str, folder: Path) -> list[Planned]:
    """An existing verification: it keeps the configurations it was made for."""
    if record.get("seed_key") != seed_key:
        raise UsageError(f"{folder} verifies with --seed_key {record.get('seed_key')!r}, not {seed_key!r}; "
                         f"leave --seed_key out to continue it, or remove the folder")
    kept = [Planned(item["key"], item["config"], item.get("used_seeds", []), item["seeds"],
                    item.get("original_runs", [])) for item in record.get("configurations", [])]
    if [item.key for item in kept] != [item.key for item in planned]:
        _note(f"the best configurations of the search changed since {folder} was made; it continues with the "
              f"ones it was made for (remove the folder to verify the new ones)")
    return kept


def _new_settings(origin: Origin, folder: Path, flags: dict[str, Any], argv: list[str]) -> Any:
    """A new search in ``folder``: the original's grid module copy and run flags, the flags given."""
    given = {
        **origin.options(), **flags,
        "grid_module": str(origin.module_copy), "grid_config": str(folder / GRID_FILE),
        "out_dir": str(folder), "force_out_dir": True, "dont_force_new_dir": True, "deterministic_search": True,
    }
    return settings_from_args(given, ["verify", *argv], note=_note)


def _run(settings: Any, origin: Origin, folder: Path, planned: list[Planned], seed_key: str,
         args: argparse.Namespace, argv: list[str], *, new: bool) -> int:
    """Check what can be checked, set the folder up if it is new, and run it with the search driver."""
    from hpsearch.executors.factory import choose_executor
    from hpsearch.gpu.probe import GpuProbe
    from hpsearch.progress import Progress
    from hpsearch.runner import create_search_folder, enumerate_configs, load_and_check, run_search

    script = Path(settings.run_cwd) / origin.spec.script_name
    if not script.is_file():
        raise UsageError(f"{origin.spec.where}: attribute _SCRIPT_NAME {origin.spec.script_name!r} does not exist "
                         f"under --run_cwd {settings.run_cwd}")
    if args.submit:
        _check_service()
    factory = choose_executor(settings, _note, GpuProbe.start(settings))
    if new:
        folder.mkdir(exist_ok=True)
        write_json_atomic(folder / GRID_FILE, grid_document(planned, seed_key))
        spec = load_and_check(settings)
        progress = Progress(spec.performance_key, spec.performance_sort_asc, quiet=True)
        create_search_folder(settings, spec, enumerate_configs(spec, settings), progress)
        write_record(folder, record_of(origin, planned, seed_key, args.top, args.seeds, argv))
        if not settings.quiet:
            _note(f"verification of {origin.folder}: {len(planned)} configurations x {args.seeds} new seeds "
                  f"(--{seed_key}) in {folder}")
    if args.submit and not _all_done(folder):
        from hpsearch.service.commands import submit_main

        code = submit_main(["--resume", str(folder), *_flag_argv(flags_of(args))])
        if code == 0:
            print("when it has ended, the same command without --submit prints mean ± std per configuration "
                  "(and starts nothing)", file=sys.stderr)
            return SUBMITTED
        return code
    return run_search(settings, executor_factory=factory)


def _check_service() -> None:
    """Before anything is created: a service must be there to take the verification."""
    from hpsearch.service import protocol
    from hpsearch.service.commands import START_HINT
    from hpsearch.service.paths import state_paths

    try:
        protocol.call(state_paths().socket, {"op": "ping"}, timeout=5.0)
    except protocol.ServiceUnavailable:
        raise UsageError(f"--submit: no hpsearch service is running; {START_HINT}") from None


def flags_of(args: argparse.Namespace) -> dict[str, Any]:
    """The search flags given on the command line (only those: defaults are not in the namespace)."""
    return {name: value for name, value in vars(args).items() if name not in _OWN}


def _flag_argv(flags: dict[str, Any]) -> list[str]:
    """The search flags as a command line, for ``hpsearch submit``."""
    words = []
    for flag, value in flags.items():
        if isinstance(value, bool):
            words.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            words.append(f"--{flag}={value}")
    return words


def _all_done(folder: Path) -> bool:
    with RunStore.open(folder, readonly=True) as store:
        counts = store.counts()
    return sum(counts.values()) > 0 and set(counts) <= {RunStatus.DONE}


# --------------------------------------------------------------------------- the summary


def print_summary(origin: Origin, folder: Path, planned: Sequence[Planned], seed_key: str) -> None:
    """Mean ± std of the performance key per configuration over its original runs (when their seed was
    in the grid) and its verification runs, by :func:`~hpsearch.results.group_seeds`, best first."""
    import pandas

    from hpsearch.results import group_seeds, load_results

    performance = origin.spec.performance_key or "value"
    added = load_results(folder)
    parts = []
    for number, item in enumerate(planned):
        parts.append(_part(origin.runs, item.original_keys, number, "original", performance))
        parts.append(_part(added, item.run_keys(seed_key), number, "new", performance))
    frame = pandas.concat(parts, ignore_index=True)
    stats = group_seeds(frame, [], grid_keys=[_GROUP], summary_keys=[performance], performance_key=performance,
                        ascending=origin.spec.performance_sort_asc)
    done = frame[frame["status"] == RunStatus.DONE.value].groupby([_GROUP, "part"]).size()
    print(f"{performance}: mean ± std over seeds (done runs of the original with a seed in its grid + those of "
          f"{folder}), best first")
    print(f"{'rank':>4}  {'was':>3}  {'mean ± std':<24} {'n':<14} configuration")
    for rank, row in enumerate(stats.to_dict("records"), 1):
        number = row[_GROUP]
        mean, std = row.get(f"{performance}_mean"), row.get(f"{performance}_std")
        old, new = int(done.get((number, "original"), 0)), int(done.get((number, "new"), 0))
        text = "no finished run" if old + new == 0 else f"{mean:.6g} ± {std:.3g}"
        count = f"n={old + new} ({old} + {new})"
        shown = _describe(received_config(planned[number].base, origin.spec.strip_outer_quotes), [seed_key])
        print(f"{rank:>4}  {number + 1:>3}  {text:<24} {count:<14} {shown}")


_GROUP = "verified_configuration"


def _part(runs: Any, keys: Sequence[str], number: int, part: str, performance: str) -> Any:
    """The runs of ``keys`` in a frame of load_results, as the rows group_seeds gets: the group's number,
    and the ranking value of the performance key (a list's last element)."""
    import pandas

    columns = runs.attrs["hpsearch"]["columns"]
    rows = runs[runs[columns["config_key"]].isin(list(keys))]
    name = runs.attrs["hpsearch"]["performance_key"]
    values = [ranking_value(v) for v in rows[name].tolist()] if name in rows.columns else [None] * len(rows)
    return pandas.DataFrame({
        _GROUP: number, "part": part, "status": rows[columns["status"]].tolist(),
        "config_key": rows[columns["config_key"]].tolist(), "run_dir": rows[columns["run_dir"]].tolist(),
        performance: pandas.Series(values, dtype="float64"),
    })


def _describe(config: dict[str, Any], seed_keys: Sequence[str]) -> str:
    return " ".join(f"{name}={value!r}" for name, value in config.items() if name not in seed_keys)
