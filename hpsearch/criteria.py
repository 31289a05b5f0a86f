"""``--performance_criteria``: the grid module's ``_PERFORMANCE_EVAL_HANDLE(summary_dict, X)``,
called as hypnettorch called it; shared by ``python -m postprocessing`` and ``hpsearch report``.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from hpsearch.errors import GridModuleError

EVAL_HANDLE = "_PERFORMANCE_EVAL_HANDLE"


def parse_criteria(text: str) -> Any:
    """hypnettorch passed a float; a criterion that is no number is passed as the string."""
    try:
        return float(text)
    except ValueError:
        return text


def hypnettorch_summary(summary: dict[str, Any]) -> dict[str, list[Any]]:
    """The summary in the shape hypnettorch handed to ``_PERFORMANCE_EVAL_HANDLE``.

    hypnettorch's parser returned ``{key: [value]}``, so existing criteria read
    ``float(summary_dict['acc'][0])``; we keep that shape, with numbers (a
    list-valued entry is the list, wrapped the same way).
    """
    return {key: [value] for key, value in summary.items()}


def module_handle(module: ModuleType, attribute: str, module_name: str) -> Callable | None:
    """A function attribute of the grid module, or None.

    Raises:
        GridModuleError: The attribute is set to something that is no function.
    """
    value = getattr(module, attribute, None)
    if value is not None and not callable(value):
        raise GridModuleError(f"grid module {module_name}: attribute {attribute} must be a function or None")
    return value


def module_copy(out_dir: Path, settings: dict[str, Any]) -> str | None:
    """Path of the grid module's copy that ``search.json`` names, if it is in the search folder."""
    name = settings.get("module_file")
    if isinstance(name, str) and name and (out_dir / name).is_file():
        return str(out_dir / name)
    return None


def require_handle(handle: Callable | None, where: str) -> Callable:
    """The handle, or the error a criterion without one gets."""
    if handle is None:
        raise GridModuleError(
            f"--performance_criteria needs {EVAL_HANDLE}, which {where or 'the grid module'} does not define"
        )
    return handle


def passes(handle: Callable, summary: dict[str, Any], criteria: Any, where: str, run_dir: str) -> bool:
    """``handle(summary_dict, criteria)`` of one done run.

    Raises:
        GridModuleError: The handle raised.
    """
    try:
        return bool(handle(hypnettorch_summary(summary), criteria))
    except Exception as exc:
        raise GridModuleError(
            f"{EVAL_HANDLE} of {where or 'the grid module'} failed on {run_dir}: {type(exc).__name__}: {exc}"
        ) from None
