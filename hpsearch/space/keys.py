"""Stable content keys and value equality for configurations.

A configuration's key names it in the run store, on disk and across resumed
searches, so it must not depend on the process: no ``hash()``, no dict order,
no ``PYTHONHASHSEED``. The canonical form is JSON with sorted keys, in which
``True`` and ``1`` differ, tuples equal lists and floats appear as ``repr``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from hpsearch.errors import SpaceError

SCALARS = (str, int, float, bool, type(None))
KEY_LENGTH = 16


def to_plain(value: Any) -> Any:
    """Turn numpy scalars and arrays into Python values, recursively.

    scipy samples and ``np.linspace`` grids arrive as numpy types, which JSON
    and the command line should see as plain numbers and lists.
    """
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, list):
        return [to_plain(item) for item in value]
    if isinstance(value, tuple):
        return tuple(to_plain(item) for item in value)
    if isinstance(value, dict):
        return {key: to_plain(item) for key, item in value.items()}
    return value


def check_json_like(value: Any, where: str) -> Any:
    """Return ``value`` if it is JSON-like, else raise SpaceError naming ``where``."""
    if isinstance(value, SCALARS):
        return value
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_json_like(item, f"{where}[{index}]")
        return value
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise SpaceError(f"{where}: dict key {key!r} is not a string")
            check_json_like(item, f"{where}[{key!r}]")
        return value
    raise SpaceError(
        f"{where}: value {value!r} of type {type(value).__name__} is not JSON-like "
        "(use str, int, float, bool, None, or lists/dicts of them)"
    )


def canonical_json(value: Any) -> str:
    """The canonical text of a JSON-like value; equal text means equal value."""
    check_json_like(value, "value")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)


def config_key(config: Mapping[str, Any]) -> str:
    """Stable content key of a configuration (first 16 hex chars of a sha256).

    Raises:
        SpaceError: A value (or key) is not JSON-like.
    """
    if not isinstance(config, Mapping):
        raise SpaceError(f"configuration {config!r} is not a mapping")
    text = canonical_json(dict(config))
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:KEY_LENGTH]
