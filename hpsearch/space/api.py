"""The constructors a grid module uses beyond plain value lists.

``from hpsearch import loguniform, randint, union, table, derived`` and write
``grid = {'lr': loguniform(1e-5, 1e-1), ...}``. Every constructor checks its
arguments at once, so a mistake shows when the grid module is imported.
See docs/search-space.md for the semantics of each construct.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from hpsearch.errors import SpaceError
from hpsearch.space.build import to_node
from hpsearch.space.distributions import (
    Choice,
    Distribution,
    LogUniform,
    MaxLog,
    MinLog,
    Normal,
    RandInt,
    ScipyDistribution,
    Uniform,
)
from hpsearch.space.nodes import Derived, ProductNode, TableNode, UnionNode

ConstraintSpec = Any  # a string like "> 0", a function value -> bool, or a list of those


def uniform(low: float, high: float, *, constraint: ConstraintSpec = None, round: int | None = None) -> Uniform:
    """Real values uniform on ``[low, high]``; ``round=3`` keeps 3 significant digits."""
    return Uniform(low, high, constraint=constraint, round=round)


def loguniform(low: float, high: float, *, constraint: ConstraintSpec = None, round: int | None = None) -> LogUniform:
    """Real values whose logarithm is uniform; ``0 < low < high``."""
    return LogUniform(low, high, constraint=constraint, round=round)


def minlog(low: float, high: float, *, constraint: ConstraintSpec = None, round: int | None = None) -> MinLog:
    """Log-scale sampling dense near ``low`` (hpctl's ``min_log``; the same law as loguniform)."""
    return MinLog(low, high, constraint=constraint, round=round)


def maxlog(low: float, high: float, *, constraint: ConstraintSpec = None, round: int | None = None) -> MaxLog:
    """Log-scale sampling dense near ``high`` (hpctl's ``max_log``): ``low + high - minlog``."""
    return MaxLog(low, high, constraint=constraint, round=round)


def normal(mean: float, std: float, *, constraint: ConstraintSpec = None, round: int | None = None) -> Normal:
    """Gaussian values; combine with e.g. ``constraint="> 0"`` to truncate."""
    return Normal(mean, std, constraint=constraint, round=round)


def randint(low: int, high: int, *, constraint: ConstraintSpec = None) -> RandInt:
    """Integers from ``low`` to ``high``, both included (as hpctl's ``uniform_int``)."""
    return RandInt(low, high, constraint=constraint)


def choice(values: Sequence[Any], weights: Sequence[float] | None = None, *, constraint: ConstraintSpec = None) -> Choice:
    """One of ``values``, uniformly or with relative ``weights``."""
    return Choice(values, weights, constraint=constraint)


def constrained(distribution: Any, constraint: ConstraintSpec) -> Distribution:
    """``distribution`` (ours or a frozen scipy.stats one) restricted by ``constraint``."""
    if isinstance(distribution, Distribution):
        return distribution.with_constraint(constraint)
    return ScipyDistribution(distribution, constraint=constraint)


def union(*spaces: Any) -> UnionNode:
    """Alternatives: each configuration comes from one of ``spaces`` (same as a list of dicts)."""
    if not spaces:
        raise SpaceError("union(): needs at least one member space")
    return UnionNode([to_node(space, f"union member {number}") for number, space in enumerate(spaces, start=1)])


def product(*spaces: Any) -> ProductNode:
    """Every combination of one point of each space; the spaces must not share parameters."""
    return ProductNode([to_node(space, f"product member {number}") for number, space in enumerate(spaces, start=1)])


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> TableNode:
    """Rows of values that go together: ``table(("d_model", "d_ff"), [(512, 2048), (1024, 4096)])``."""
    return TableNode(columns, rows)


def derived(function: Callable[[Mapping[str, Any]], Any], *, constraint: ConstraintSpec = None) -> Derived:
    """A value computed from the others, e.g. ``derived(lambda c: 4 * c["d_model"])``.

    The function gets the configuration's plain values and the derived values
    listed before this one. With ``constraint``, configurations whose derived
    value fails it are skipped.
    """
    return Derived(function, constraint)


__all__ = [
    "choice",
    "constrained",
    "derived",
    "loguniform",
    "maxlog",
    "minlog",
    "normal",
    "product",
    "randint",
    "table",
    "uniform",
    "union",
]
