"""Stable content keys, value equality and parameter names of configurations.

A configuration's key names it in the run store, on disk and across resumed
searches, so it must not depend on the process: no ``hash()``, no dict order,
no ``PYTHONHASHSEED``. The canonical form is JSON with sorted keys, in which
``True`` and ``1`` differ, tuples equal lists and floats appear as ``repr``.

Whether two configurations are the same *search point* is decided as
hypnettorch decides it, by Python equality (``True == 1 == 1.0``):
:func:`equality_key`. The stable key stays type-exact, so stored runs keep
their names.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any, Hashable, Mapping

from hpsearch.errors import SpaceError

SCALARS = (str, int, float, bool, type(None))
PLAIN = (str, int, float, type(None))  # bool is an int
KEY_LENGTH = 16
BAD_NAME = re.compile(r"[=\s\x00]")


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


def equality_key(config: Mapping[str, Any]) -> Hashable:
    """Equal keys exactly when hypnettorch's dedupe sees the same configuration.

    hypnettorch compares ``frozenset(config.items())``: key order does not
    count and values compare with ``==``, so ``True``, ``1`` and ``1.0`` are
    one value. That is the key of a configuration of plain values; one that
    holds lists or dicts (which hypnettorch could not hash) gets a JSON text
    in which they compare by content, tuples equal to lists.
    """
    if all(isinstance(value, PLAIN) for value in config.values()):
        return frozenset(config.items())
    return json.dumps({key: _equality_form(value) for key, value in config.items()}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=True, allow_nan=True)


def _equality_form(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    if isinstance(value, (list, tuple)):
        return [_equality_form(item) for item in value]
    if isinstance(value, dict):
        return {key: _equality_form(item) for key, item in value.items()}
    return value


def check_parameter_name(key: Any, where: str) -> str:
    """A name that can be a flag ``--key=value``: a non-empty string without ``=``, whitespace or NUL,
    not starting with ``-``."""
    if not isinstance(key, str) or not key:
        raise SpaceError(f"{where}: parameter name {key!r} must be a non-empty string")
    if BAD_NAME.search(key) or key.startswith("-"):
        raise SpaceError(
            f"{where}: parameter name {key!r} cannot be a flag --{key}=...; "
            "a name must not contain '=', whitespace or NUL, nor start with '-'"
        )
    return key


def check_argv_value(value: Any, where: str) -> Any:
    """Refuse a string with a NUL byte: no argv can carry it (nested values are rendered with repr)."""
    if isinstance(value, str) and "\x00" in value:
        raise SpaceError(f"{where}: value {value!r} contains a NUL byte, which no command line can carry")
    return value
