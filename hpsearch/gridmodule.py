"""Load a hypnettorch-style grid module and check it before anything runs.

A grid module is user code; every mistake in it must surface here as one
:class:`~hpsearch.errors.GridModuleError` naming the module, the attribute and
the problem, never later as a traceback from deep inside the search.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from hpsearch import space
from hpsearch.errors import GridModuleError, HpsearchError, SpaceError

REQUIRED = ("grid", "conditions", "_SCRIPT_NAME", "_SUMMARY_FILENAME", "_SUMMARY_KEYWORDS")
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
    warnings: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"grid module {self.module_name} ({self.module_file})"

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
            "grid_keys": space.grid_keys(self.grid),
        }


def import_grid_module(name: str, search_path: list[Path]) -> ModuleType:
    """Import ``name`` (dotted module name, or a path to a ``.py`` file).

    The current directory and ``search_path`` are put on ``sys.path`` first,
    because users run us from their project folder as they ran hypnettorch
    with ``python -m``, which puts the current directory there too.
    """
    for folder in reversed([Path.cwd(), *search_path]):
        entry = str(folder.resolve())
        if entry not in sys.path:
            sys.path.insert(0, entry)
    try:
        if name.endswith(".py") or "/" in name:
            path = Path(name).resolve()
            if not path.is_file():
                raise GridModuleError(f"grid module file {name} does not exist")
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            assert module_spec is not None and module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
            return module
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
    allow_unknown_condition_keys: bool = False,
) -> GridSpec:
    """Import and validate a grid module; ``grid_config`` may override grid/conditions.

    A condition naming a parameter that is not in the grid is an error unless
    ``allow_unknown_condition_keys``: hypnettorch silently dropped such
    conditions, which hides typos; with the flag we drop them with a warning.
    """
    module = import_grid_module(name, search_path or [])
    module_file = Path(getattr(module, "__file__", None) or name).resolve()
    where = f"grid module {name} ({module_file})"
    attrs = _read_attributes(module, where)
    if grid_config:
        attrs.update(_read_grid_config(grid_config))
    spec = _build_spec(name, module_file, attrs, where)
    if not allow_unknown_condition_keys:
        _check_condition_keys(spec)
    return spec


def _check_condition_keys(spec: GridSpec) -> None:
    """Refuse conditions on parameters that are not in the grid, except commented-out ones.

    hypnettorch documents that commenting a parameter out of ``grid`` silently
    disables the conditions on it; that case (the key still appears in a
    comment of the module) keeps working, with the warning the space gives.
    Any other unknown key is most likely a typo and would hide a condition.
    """
    known = set(space.grid_keys(spec.grid))
    commented = _commented_out_keys(spec.module_file)
    for number, condition in enumerate(spec.conditions, 1):
        if any(key in commented and key not in known for mapping in condition for key in mapping):
            continue  # dropped by the space, with a warning
        for part, mapping in zip(("condition", "action"), condition):
            unknown = [key for key in mapping if key not in known]
            if not unknown:
                continue
            import difflib  # deferred for start-up time: only a refused grid module needs it

            hint = difflib.get_close_matches(unknown[0], sorted(known), n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise GridModuleError(
                f"{spec.where}: attribute conditions, entry {number}: {part} key {unknown[0]!r} is not a grid "
                f"key{suggestion}; fix it, or pass --allow_unknown_condition_keys to drop such conditions "
                "with a warning as hypnettorch did"
            )


def _commented_out_keys(module_file: Path) -> set[str]:
    """Quoted names on comment lines, e.g. ``#'int_option' : [1, 2, 3],``."""
    try:
        text = module_file.read_text(errors="replace")
    except OSError:
        return set()
    return set(re.findall(r"""^\s*#.*?['"]([^'"\n]+)['"]""", text, flags=re.MULTILINE))


def _read_attributes(module: ModuleType, where: str) -> dict[str, Any]:
    missing = [attr for attr in REQUIRED if not hasattr(module, attr)]
    if missing:
        raise GridModuleError(f"{where}: missing attribute {', '.join(missing)}")
    optional = ("_OUT_ARG", "_PERFORMANCE_KEY", "_PERFORMANCE_SORT_ASC", "_STRIP_OUTER_QUOTES", *HANDLES)
    return {attr: getattr(module, attr) for attr in (*REQUIRED, *optional) if hasattr(module, attr)}


def _read_grid_config(path: str) -> dict[str, Any]:
    """hypnettorch's ``--grid_config``: a pickle ``{'grid': ..., 'conditions': ...}``."""
    import pickle  # deferred for start-up time: only --grid_config needs it

    try:
        with open(path, "rb") as handle:
            data = pickle.load(handle)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise GridModuleError(f"--grid_config {path}: cannot be read: {exc}") from None
    if not isinstance(data, dict) or not set(data) <= {"grid", "conditions"}:
        raise GridModuleError(f"--grid_config {path}: must hold a dict with keys 'grid' and/or 'conditions'")
    return dict(data)


def _build_spec(name: str, module_file: Path, attrs: dict[str, Any], where: str) -> GridSpec:
    keywords = attrs["_SUMMARY_KEYWORDS"]
    if not isinstance(keywords, (list, tuple)) or not all(isinstance(k, str) and k for k in keywords):
        raise GridModuleError(f"{where}: attribute _SUMMARY_KEYWORDS must be a list of non-empty strings")
    if "finished" not in keywords:
        raise GridModuleError(f"{where}: attribute _SUMMARY_KEYWORDS must contain 'finished' (got {list(keywords)})")
    for attr in ("_SCRIPT_NAME", "_SUMMARY_FILENAME"):
        if not isinstance(attrs[attr], str) or not attrs[attr].strip():
            raise GridModuleError(f"{where}: attribute {attr} must be a non-empty string")
    out_arg = attrs.get("_OUT_ARG") or "out_dir"
    if not isinstance(out_arg, str):
        raise GridModuleError(f"{where}: attribute _OUT_ARG must be a string")
    performance_key = attrs.get("_PERFORMANCE_KEY") or keywords[0]
    if performance_key not in keywords:
        raise GridModuleError(
            f"{where}: attribute _PERFORMANCE_KEY {performance_key!r} is not in _SUMMARY_KEYWORDS {list(keywords)}"
        )
    for attr in HANDLES:
        if attrs.get(attr) is not None and not callable(attrs[attr]):
            raise GridModuleError(f"{where}: attribute {attr} must be a function or None")
    conditions = attrs["conditions"]
    warnings = space.validate_space(attrs["grid"], conditions, where)
    if out_arg in space.grid_keys(attrs["grid"]):
        raise GridModuleError(
            f"{where}: grid key {out_arg!r} equals _OUT_ARG; hpsearch sets --{out_arg} itself, remove it from grid"
        )
    return GridSpec(
        module_name=name,
        module_file=module_file,
        grid=attrs["grid"],
        conditions=list(conditions or []),
        script_name=attrs["_SCRIPT_NAME"],
        summary_filename=attrs["_SUMMARY_FILENAME"],
        summary_keywords=list(keywords),
        out_arg=out_arg,
        summary_parser=attrs.get("_SUMMARY_PARSER_HANDLE"),
        performance_key=performance_key,
        performance_sort_asc=bool(attrs.get("_PERFORMANCE_SORT_ASC", False)),
        performance_eval=attrs.get("_PERFORMANCE_EVAL_HANDLE"),
        argparse_handle=attrs.get("_ARGPARSE_HANDLE"),
        strip_outer_quotes=bool(attrs.get("_STRIP_OUTER_QUOTES", True)),
        warnings=list(warnings or []),
    )
