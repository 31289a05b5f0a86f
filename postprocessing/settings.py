"""What the postprocessor needs to know about a search, and where it comes from.

The driver saves the plain settings in ``search.json`` and a copy of the grid
module next to it; the module is only imported for its functions (a custom
summary parser, the performance criterion). Without ``search.json`` the grid
module named by ``--grid_module`` supplies everything, as in hypnettorch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hpsearch.criteria import module_copy, module_handle
from hpsearch.errors import UsageError
from hpsearch.gridmodule import import_grid_module, load_grid_module
from hpsearch.metrics import MetricsSource, saved_metrics_source
from hpsearch.searchdir import SETTINGS_FILE, saved_settings


@dataclass
class SearchInfo:
    """Settings of one search, as far as the results table needs them."""

    summary_filename: str
    summary_keywords: list[str]
    out_arg: str = "out_dir"
    performance_key: str | None = None
    sort_ascending: bool = False
    grid_keys: list[str] = field(default_factory=list)
    summary_parser: Callable | None = None
    performance_eval: Callable | None = None
    module_where: str = ""
    strip_quotes: bool = True
    """``_STRIP_OUTER_QUOTES``: values are shown as the runs received them."""
    metrics: MetricsSource | None = None
    """``_METRICS``: read from the run folders exactly as the driver read them."""


def load_search_info(out_dir: Path, grid_module: str | None, search_path: list[Path]) -> SearchInfo:
    """Settings from ``<out_dir>/search.json`` (functions from the module copy or ``grid_module``),
    or, without that file, everything from ``grid_module``.

    Raises:
        UsageError: Neither ``search.json`` nor ``grid_module`` is there, or
            ``search.json`` is unreadable.
        GridModuleError: The grid module cannot be imported.
    """
    settings_path = out_dir / SETTINGS_FILE
    data = saved_settings(out_dir)
    if data is None:
        if not grid_module:
            raise UsageError(
                f"{out_dir} has no {SETTINGS_FILE}; is it a search folder? For a search made by hypnettorch "
                "pass --grid_module NAME to read the settings from the grid module"
            )
        return _info_from_module(grid_module, search_path)
    run_cwd = data.get("run_cwd")
    search_path = [*search_path, *([Path(run_cwd)] if run_cwd and Path(run_cwd).is_dir() else [])]
    info = _info_from_settings(settings_path, data)
    module_name = grid_module or module_copy(out_dir, data)
    if module_name:
        module = import_grid_module(module_name, search_path)
        info.summary_parser = module_handle(module, "_SUMMARY_PARSER_HANDLE", module_name)
        info.performance_eval = module_handle(module, "_PERFORMANCE_EVAL_HANDLE", module_name)
        info.module_where = f"grid module {module_name}"
    return info


def _info_from_settings(path: Path, data: dict[str, Any]) -> SearchInfo:
    keywords = data.get("summary_keywords")
    filename = data.get("summary_filename")
    if not isinstance(filename, str) or not filename:
        raise UsageError(f"{path}: 'summary_filename' is missing or not a string")
    if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
        raise UsageError(f"{path}: 'summary_keywords' is missing or not a list of strings")
    return SearchInfo(
        summary_filename=filename,
        summary_keywords=keywords,
        out_arg=data.get("out_arg") or "out_dir",
        performance_key=data.get("performance_key") or (keywords[0] if keywords else None),
        sort_ascending=bool(data.get("performance_sort_asc", False)),
        strip_quotes=bool(data.get("strip_outer_quotes", True)),
        grid_keys=list(data.get("grid_keys") or []),
        metrics=saved_metrics_source(path, data.get("metrics")),
    )


def _info_from_module(name: str, search_path: list[Path]) -> SearchInfo:
    spec = load_grid_module(name, search_path=search_path)
    settings = spec.settings()
    return SearchInfo(
        summary_filename=spec.summary_filename,
        summary_keywords=list(spec.summary_keywords),
        out_arg=spec.out_arg,
        performance_key=spec.performance_key,
        sort_ascending=spec.performance_sort_asc,
        grid_keys=list(settings["grid_keys"]),
        summary_parser=spec.summary_parser,
        performance_eval=spec.performance_eval,
        module_where=spec.where,
        strip_quotes=spec.strip_outer_quotes,
        metrics=spec.metrics,
    )
