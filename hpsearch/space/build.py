"""Turn what a grid module wrote into a space tree, checking every part of it.

A grid module says ``grid = {'lr': [0.1, 0.01], ...}`` (hypnettorch), a list of
such dicts (a union), or any of our constructors. Mistakes are reported here,
before anything runs, naming the parameter and what is wrong with it.
"""

from __future__ import annotations

from typing import Any, Mapping

from hpsearch.errors import SpaceError
from hpsearch.space.distributions import Distribution, ScipyDistribution
from hpsearch.space.keys import check_argv_value, check_json_like, check_parameter_name, to_plain
from hpsearch.space.nodes import Derived, GridNode, Node, UnionNode

SHAPES = "a dict of parameter -> list of values, a list of such dicts (a union), union(), product() or table()"


def to_node(space: Any, where: str = "grid") -> Node:
    """The space tree of ``space``; ``where`` names it in error messages."""
    if isinstance(space, Node):
        return space
    if isinstance(space, Mapping):
        if not space:
            raise SpaceError(f"{where} is an empty dict; give at least one parameter with its list of values")
        return GridNode({_check_name(key, where): to_entry(value, _parameter(key, where)) for key, value in space.items()})
    if isinstance(space, (list, tuple)):
        if not space:
            raise SpaceError(f"{where} is an empty list; give {SHAPES}")
        return UnionNode([to_node(member, f"{where}[{index}]") for index, member in enumerate(space)])
    raise SpaceError(f"{where} must be {SHAPES}; got {type(space).__name__} {space!r}")


def _parameter(key: str, where: str) -> str:
    return f"parameter {key!r}" if where == "grid" else f"parameter {key!r} in {where}"


def _check_name(key: Any, where: str) -> str:
    return check_parameter_name(key, where)


def to_entry(value: Any, where: str) -> Any:
    """A value list (as a tuple), a distribution or a derived value."""
    if isinstance(value, (Distribution, Derived)):
        return value
    if isinstance(value, Node):
        raise SpaceError(
            f"{where}: a {type(value).__name__} cannot be one parameter's value; "
            "combine it with the dict in product(...) or union(...)"
        )
    if callable(getattr(value, "rvs", None)):
        return ScipyDistribution(value)
    value = to_plain(value)
    if isinstance(value, range):
        value = list(value)
    if not isinstance(value, (list, tuple)):
        raise SpaceError(
            f"{where}: value must be a list of values or a distribution, got {value!r} "
            f"(write [{value!r}] for a single value)"
        )
    if not value:
        raise SpaceError(f"{where}: value list is empty; give at least one value")
    return tuple(
        check_argv_value(check_json_like(item, f"{where}, value {index}"), f"{where}, value {index}")
        for index, item in enumerate(value)
    )
