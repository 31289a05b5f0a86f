"""Load a hypnettorch-style grid module and check it before anything runs.

A grid module is user code; every mistake in it must surface here as one
:class:`~hpsearch.errors.GridModuleError` naming the module, the attribute and
the problem, never later as a traceback from deep inside the search.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from hpsearch import space
from hpsearch.argstyle import ArgStyle, HYDRA_RUN_DIR, StyleError, arg_style
from hpsearch.errors import GridModuleError, HpsearchError, SpaceError
from hpsearch.metrics import MetricsSource, metrics_source

REQUIRED = ("grid", "conditions", "_SCRIPT_NAME", "_SUMMARY_FILENAME", "_SUMMARY_KEYWORDS")
SUMMARY_ATTRIBUTES = ("_SUMMARY_FILENAME", "_SUMMARY_KEYWORDS")
"""Required unless ``_METRICS`` names another source than the summary file."""
HANDLES = ("_SUMMARY_PARSER_HANDLE", "_PERFORMANCE_EVAL_HANDLE", "_ARGPARSE_HANDLE")


@dataclass
class GridSpec:
    """Everything the search needs from a grid module, validated."""

    module_name: str
    module_file: Path
    grid: Any
    conditions: list
    script_name: str
    summary_filename: str
    summary_keywords: list[str]
    out_arg: str = "out_dir"
    summary_parser: Callable | None = None
    performance_key: str | None = None
    performance_sort_asc: bool = False
    performance_eval: Callable | None = None
    argparse_handle: Callable | None = None
    strip_outer_quotes: bool = True
    arg_style: ArgStyle = field(default_factory=ArgStyle)
    metrics: MetricsSource | None = None
    """None: the summary file (``_SUMMARY_FILENAME``); else ``_METRICS``'s source, whose keys are
    :attr:`summary_keywords` and whose file is :attr:`summary_filename`."""
    warnings: list[str] = field(default_factory=list)
    search_space: space.SearchSpace | None = None

    @property
    def where(self) -> str:
        return f"grid module {self.module_name} ({self.module_file})"

    @property
    def compiled(self) -> space.SearchSpace:
        """The search space, compiled once (by :func:`load_grid_module`) for the whole search."""
        if self.search_space is None:
            self.search_space = space.SearchSpace.compile(self.grid, self.conditions)
        return self.search_space

    @property
    def grid_keys(self) -> list[str]:
        """The CSV's parameter columns: grid keys, then keys that conditions add."""
        return self.compiled.keys()

    def settings(self) -> dict[str, Any]:
        """The plain-data part, saved in ``search.json`` for the postprocessor."""
        return {
            "grid_module": self.module_name,
            "module_file": self.module_file.name,
            "script_name": self.script_name,
            "summary_filename": self.summary_filename,
            "summary_keywords": list(self.summary_keywords),
            "out_arg": self.out_arg,
            "performance_key": self.performance_key,
            "performance_sort_asc": self.performance_sort_asc,
            "grid_keys": self.grid_keys,
            "strip_outer_quotes": self.strip_outer_quotes,
            "arg_style": self.arg_style.settings(),
            "metrics": None if self.metrics is None else self.metrics.settings(),
        }


def import_grid_module(name: str, search_path: list[Path]) -> ModuleType:
    """Import ``name``: a dotted module name, or a path to a file (``.py`` may be left out).

    The current directory and ``search_path`` are put on ``sys.path`` first,
    because users run us from their project folder as they ran hypnettorch
    with ``python -m``, which puts the current directory there too. A file in
    a package is imported under its dotted name, from the package's root, so
    that it can import its sibling modules as ``from mysim.base import X``.
    """
    for folder in reversed([Path.cwd(), *search_path]):
        _put_on_path(folder)
    try:
        path = _module_path(name)
        if path is not None:
            return _import_file(path)
        return importlib.import_module(name)
    except SpaceError as exc:  # a constructor such as uniform(1, 0) refused its arguments
        raise GridModuleError(f"grid module {name}: {exc}") from None
    except HpsearchError:
        raise
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise GridModuleError(
                f"grid module {name}: cannot be imported (no module named {exc.name!r}); "
                "run hpsearch from the folder that contains the package, or pass a .py path"
            ) from None
        raise GridModuleError(f"grid module {name}: importing it failed: {_describe_exception(exc)}") from None
    except BaseException as exc:  # user code may raise anything, even SystemExit
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise GridModuleError(f"grid module {name}: importing it failed: {_describe_exception(exc)}") from None


def _put_on_path(folder: Path) -> None:
    entry = str(folder.resolve())
    if entry not in sys.path:
        sys.path.insert(0, entry)


def _module_path(name: str) -> Path | None:
    """The file ``name`` means, if it names one (``mysim/my_grid``, ``my_grid.py``); else None."""
    if not (name.endswith(".py") or "/" in name):
        return None
    for candidate in (Path(name), Path(name + ".py")):
        if candidate.is_file():
            return candidate.resolve()
    raise GridModuleError(f"grid module file {name} does not exist")


def _import_file(path: Path) -> ModuleType:
    """Import a grid module file: by its dotted name if it lies in a package, else on its own."""
    parts, folder = [path.stem], path.parent
    while (folder / "__init__.py").is_file() and folder.name.isidentifier():
        parts.insert(0, folder.name)
        folder = folder.parent
    _put_on_path(folder)
    if len(parts) > 1 and all(part.isidentifier() for part in parts):
        return importlib.import_module(".".join(parts))
    module_spec = importlib.util.spec_from_file_location(path.stem, path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules.setdefault(path.stem, module)  # dataclasses and pickle look their module up there
    module_spec.loader.exec_module(module)
    return module


def _describe_exception(exc: BaseException) -> str:
    """``Type: message (at file:line)`` of the innermost frame, without a traceback."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def load_grid_module(
    name: str,
    *,
    grid_config: str = "",
    search_path: list[Path] | None = None,
    strict_conditions: bool = False,
) -> GridSpec:
    """Import and validate a grid module; ``grid_config`` may override grid/conditions.

    A condition whose ``cond`` names a parameter that is not in the grid is
    dropped with a warning, as hypnettorch does (shared base conditions meet
    grids that use only some of their keys); ``strict_conditions`` makes that
    an error instead.
    """
    module = import_grid_module(name, search_path or [])
    module_file = Path(getattr(module, "__file__", None) or name).resolve()
    where = f"grid module {name} ({module_file})"
    attrs = _read_attributes(module, where)
    if grid_config:
        attrs.update(_read_grid_config(grid_config))
    spec = _build_spec(name, module_file, attrs, where)
    dropped = spec.compiled.dropped
    if strict_conditions and dropped:
        more = f" (and {len(dropped) - 1} more)" if len(dropped) > 1 else ""
        raise GridModuleError(f"{where}: {dropped[0]}{more} (refused because of --strict_conditions)")
    return spec


def _read_attributes(module: ModuleType, where: str) -> dict[str, Any]:
    needed = REQUIRED
    metrics = getattr(module, "_METRICS", None)
    if metrics is not None and not (isinstance(metrics, dict) and metrics.get("source") == "summary"):
        needed = tuple(attr for attr in REQUIRED if attr not in SUMMARY_ATTRIBUTES)  # no summary file to name
    missing = [attr for attr in needed if not hasattr(module, attr)]
    if missing:
        raise GridModuleError(f"{where}: missing attribute {', '.join(missing)}")
    optional = ("_OUT_ARG", "_PERFORMANCE_KEY", "_PERFORMANCE_SORT_ASC", "_STRIP_OUTER_QUOTES", *HANDLES,
                "_ARG_STYLE", "_METRICS", *SUMMARY_ATTRIBUTES)
    return {attr: getattr(module, attr) for attr in (*REQUIRED, *optional) if hasattr(module, attr)}


def _read_grid_config(path: str) -> dict[str, Any]:
    """hypnettorch's ``--grid_config``: ``{'grid': ..., 'conditions': ...}`` as a pickle, or as the
    JSON file hypnettorch writes into its search folder (told apart by content, not by name)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise GridModuleError(f"--grid_config {path}: cannot be read: {exc}") from None
    data = _json_grid_config(raw)
    if data is None:
        import pickle  # deferred for start-up time: only --grid_config needs it

        try:
            data = pickle.loads(raw)
        except Exception as exc:  # a damaged pickle can raise nearly anything
            raise GridModuleError(f"--grid_config {path}: neither JSON nor a readable pickle: {exc}") from None
    if not isinstance(data, dict) or not set(data) <= {"grid", "conditions"}:
        raise GridModuleError(f"--grid_config {path}: must hold a dict with keys 'grid' and/or 'conditions'")
    return dict(data)


def _json_grid_config(raw: bytes) -> Any:
    """The JSON document in ``raw``, or None if it is not JSON (then it should be a pickle)."""
    import json  # deferred for start-up time

    if raw[:1] == b"\x80":  # every pickle protocol >= 2 starts so
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


def _summary_attributes(attrs: dict[str, Any], where: str) -> tuple[str, list[str]]:
    """``_SUMMARY_FILENAME`` and ``_SUMMARY_KEYWORDS``, checked (the summary file is the metrics' source)."""
    keywords = attrs["_SUMMARY_KEYWORDS"]
    if not isinstance(keywords, (list, tuple)) or not all(isinstance(k, str) and k for k in keywords):
        raise GridModuleError(f"{where}: attribute _SUMMARY_KEYWORDS must be a list of non-empty strings")
    if "finished" not in keywords:
        raise GridModuleError(f"{where}: attribute _SUMMARY_KEYWORDS must contain 'finished' (got {list(keywords)})")
    if not isinstance(attrs["_SUMMARY_FILENAME"], str) or not attrs["_SUMMARY_FILENAME"].strip():
        raise GridModuleError(f"{where}: attribute _SUMMARY_FILENAME must be a non-empty string")
    return attrs["_SUMMARY_FILENAME"], list(keywords)


def _build_spec(name: str, module_file: Path, attrs: dict[str, Any], where: str) -> GridSpec:
    if not isinstance(attrs["_SCRIPT_NAME"], str) or not attrs["_SCRIPT_NAME"].strip():
        raise GridModuleError(f"{where}: attribute _SCRIPT_NAME must be a non-empty string")
    try:
        style = arg_style(attrs.get("_ARG_STYLE"))
    except StyleError as exc:
        raise GridModuleError(f"{where}: attribute _ARG_STYLE: {exc}") from None
    try:
        metrics = metrics_source(attrs.get("_METRICS"))
    except ValueError as exc:
        raise GridModuleError(f"{where}: attribute _METRICS: {exc}") from None
    if metrics is None:
        filename, keywords = _summary_attributes(attrs, where)
    else:
        if attrs.get("_SUMMARY_PARSER_HANDLE") is not None:
            raise GridModuleError(f"{where}: attributes _METRICS and _SUMMARY_PARSER_HANDLE both say where the "
                                  "metrics come from; keep one")
        filename, keywords = metrics.file, list(metrics.keys)
    out_arg = attrs.get("_OUT_ARG") or (HYDRA_RUN_DIR if style.name == "hydra" else "out_dir")
    if not isinstance(out_arg, str):
        raise GridModuleError(f"{where}: attribute _OUT_ARG must be a string")
    performance_key = attrs.get("_PERFORMANCE_KEY") or keywords[0]
    if performance_key not in keywords:
        names = "_SUMMARY_KEYWORDS" if metrics is None else "the keys of _METRICS"
        raise GridModuleError(
            f"{where}: attribute _PERFORMANCE_KEY {performance_key!r} is not in {names} {list(keywords)}"
        )
    for attr in HANDLES:
        if attrs.get(attr) is not None and not callable(attrs[attr]):
            raise GridModuleError(f"{where}: attribute {attr} must be a function or None")
    for attr in ("_PERFORMANCE_SORT_ASC", "_STRIP_OUTER_QUOTES"):
        if attr in attrs and not isinstance(attrs[attr], bool):
            raise GridModuleError(f"{where}: attribute {attr} must be True or False, got {attrs[attr]!r}")
    conditions = attrs["conditions"]
    compiled = space.compile_checked(attrs["grid"], conditions, where)
    if out_arg in compiled.node.keys():
        raise GridModuleError(
            f"{where}: grid key {out_arg!r} equals _OUT_ARG; hpsearch sets --{out_arg} itself, remove it from grid"
        )
    for condition in compiled.conditions:
        if out_arg in condition.then:
            raise GridModuleError(
                f"{where}: conditions[{condition.number}] (action) sets {out_arg!r}, which is _OUT_ARG; "
                f"hpsearch sets --{out_arg} itself"
            )
    for key in compiled.keys():
        try:
            style.check_key(key)
        except StyleError as exc:
            raise GridModuleError(f"{where}: attribute _ARG_STYLE {style.name!r}: {exc}") from None
    warnings = [f"{where}: {message}" for message in [*space.dropped_warnings(compiled), *compiled.warnings]]
    return GridSpec(
        module_name=name,
        module_file=module_file,
        grid=attrs["grid"],
        conditions=list(conditions or []),
        script_name=attrs["_SCRIPT_NAME"],
        summary_filename=filename,
        summary_keywords=list(keywords),
        out_arg=out_arg,
        summary_parser=attrs.get("_SUMMARY_PARSER_HANDLE"),
        performance_key=performance_key,
        performance_sort_asc=bool(attrs.get("_PERFORMANCE_SORT_ASC", False)),
        performance_eval=attrs.get("_PERFORMANCE_EVAL_HANDLE"),
        argparse_handle=attrs.get("_ARGPARSE_HANDLE"),
        strip_outer_quotes=bool(attrs.get("_STRIP_OUTER_QUOTES", True)),
        arg_style=style,
        metrics=metrics,
        warnings=warnings,
        search_space=compiled,
    )
