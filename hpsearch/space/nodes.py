"""The search-space tree: plain grids, unions, products, tables and derived values.

Every node lists the parameter names it produces, and can either address its
``i``-th point (finite nodes: mixed-radix indexing, so that a grid of 10^12
points is never materialised) or draw a random point. A derived entry is left
in the point as its :class:`Derived` object and computed later, once the
point's other values (and the conditions) are final.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from typing import Any, Callable, Iterator, Mapping, Sequence

from hpsearch.errors import SpaceError
from hpsearch.space.constraints import Constraint, as_constraint
from hpsearch.space.distributions import Distribution
from hpsearch.space.keys import check_argv_value, check_json_like, check_parameter_name, to_plain
from hpsearch.space.randomness import randbelow

Point = dict[str, Any]


class Derived:
    """A value computed from the configuration's other values, e.g. ``d_ff = 4 * d_model``."""

    def __init__(self, function: Callable[[Mapping[str, Any]], Any], constraint: Any = None) -> None:
        if not callable(function):
            raise SpaceError(f"derived({function!r}): needs a function configuration -> value")
        self.function = function
        self.constraint: Constraint | None = as_constraint(constraint)

    def compute(self, parameter: str, values: Mapping[str, Any]) -> Any:
        """Call the function; any failure becomes a SpaceError naming ``parameter``."""
        try:
            value = to_plain(self.function(values))
        except Exception as exc:  # user code may raise anything
            raise SpaceError(
                f"derived parameter {parameter!r}: {self!r} raised {type(exc).__name__}: {exc} "
                f"on {dict(values)!r} (a derived value sees the plain values and the derived values before it)"
            ) from None
        return check_argv_value(check_json_like(value, f"derived parameter {parameter!r}"),
                                f"derived parameter {parameter!r} (on {dict(values)!r})")

    def __repr__(self) -> str:
        return f"derived({getattr(self.function, '__qualname__', repr(self.function))})"


class Node:
    """Base class of the space tree."""

    def keys(self) -> list[str]:
        """Parameter names, in first-seen order."""
        raise NotImplementedError

    def distributions(self) -> Iterator[tuple[str, Distribution]]:
        """``(parameter, distribution)`` for every distribution below this node."""
        raise NotImplementedError

    def derived_keys(self) -> set[str]:
        raise NotImplementedError

    def is_finite(self) -> bool:
        return next(self.distributions(), None) is None

    def size(self) -> int:
        """Number of points; only for finite nodes."""
        raise NotImplementedError

    def point(self, index: int) -> Point:
        """Point ``index`` in ``range(self.size())``; only for finite nodes."""
        raise NotImplementedError

    def sample(self, rng: random.Random) -> Point:
        """One random point: lists become uniform choices."""
        raise NotImplementedError


def _mixed_radix(index: int, radices: Sequence[int]) -> list[int]:
    """Digits of ``index``, the last digit varying fastest (itertools.product order)."""
    digits = [0] * len(radices)
    for position in range(len(radices) - 1, -1, -1):
        index, digits[position] = divmod(index, radices[position])
    return digits


class GridNode(Node):
    """A dict: the product of its entries (value lists, distributions, derived values)."""

    def __init__(self, entries: dict[str, Any]) -> None:
        self.entries = entries
        self._lists = [key for key, entry in entries.items() if isinstance(entry, tuple)]

    def keys(self) -> list[str]:
        return list(self.entries)

    def distributions(self) -> Iterator[tuple[str, Distribution]]:
        return ((key, entry) for key, entry in self.entries.items() if isinstance(entry, Distribution))

    def derived_keys(self) -> set[str]:
        return {key for key, entry in self.entries.items() if isinstance(entry, Derived)}

    def size(self) -> int:
        return math.prod(len(self.entries[key]) for key in self._lists)

    def point(self, index: int) -> Point:
        digits = dict(zip(self._lists, _mixed_radix(index, [len(self.entries[key]) for key in self._lists])))
        return {key: entry[digits[key]] if key in digits else entry for key, entry in self.entries.items()}

    def sample(self, rng: random.Random) -> Point:
        return {key: self._draw(key, entry, rng) for key, entry in self.entries.items()}

    @staticmethod
    def _draw(key: str, entry: Any, rng: random.Random) -> Any:
        if isinstance(entry, tuple):
            return entry[randbelow(rng, len(entry))]
        if isinstance(entry, Distribution):
            return entry.draw(rng, key)
        return entry


class UnionNode(Node):
    """Points of any one member; finite unions concatenate their members' points."""

    def __init__(self, members: Sequence[Node]) -> None:
        if not members:
            raise SpaceError("union(): needs at least one member space")
        self.members = list(members)
        self._cumulative: list[int] | None = None

    def keys(self) -> list[str]:
        return list(dict.fromkeys(key for member in self.members for key in member.keys()))

    def distributions(self) -> Iterator[tuple[str, Distribution]]:
        return (item for member in self.members for item in member.distributions())

    def derived_keys(self) -> set[str]:
        return set().union(*(member.derived_keys() for member in self.members))

    def size(self) -> int:
        return self._bounds()[-1]

    def _bounds(self) -> list[int]:
        if self._cumulative is None:
            self._cumulative = list(itertools.accumulate(member.size() for member in self.members))
        return self._cumulative

    def point(self, index: int) -> Point:
        bounds = self._bounds()
        position = bisect.bisect_right(bounds, index)
        offset = bounds[position - 1] if position else 0
        return self.members[position].point(index - offset)

    def sample(self, rng: random.Random) -> Point:
        """Pick a member by size when all are finite (uniform over all points), else uniformly."""
        if self.is_finite():
            return self.point(randbelow(rng, self.size()))
        return self.members[randbelow(rng, len(self.members))].sample(rng)


class ProductNode(Node):
    """One point of each member, merged; members must not share parameters."""

    def __init__(self, members: Sequence[Node]) -> None:
        if not members:
            raise SpaceError("product(): needs at least one member space")
        owners: dict[str, int] = {}
        for number, member in enumerate(members, start=1):
            for key in member.keys():
                if key in owners:
                    raise SpaceError(
                        f"product(): parameter {key!r} appears in member {owners[key]} and member {number}; "
                        "use a union for alternatives, or rename one"
                    )
                owners[key] = number
        self.members = list(members)

    def keys(self) -> list[str]:
        return [key for member in self.members for key in member.keys()]

    def distributions(self) -> Iterator[tuple[str, Distribution]]:
        return (item for member in self.members for item in member.distributions())

    def derived_keys(self) -> set[str]:
        return set().union(*(member.derived_keys() for member in self.members))

    def size(self) -> int:
        return math.prod(member.size() for member in self.members)

    def point(self, index: int) -> Point:
        digits = _mixed_radix(index, [member.size() for member in self.members])
        merged: Point = {}
        for member, digit in zip(self.members, digits):
            merged.update(member.point(digit))
        return merged

    def sample(self, rng: random.Random) -> Point:
        merged: Point = {}
        for member in self.members:
            merged.update(member.sample(rng))
        return merged


class TableNode(Node):
    """Rows of values that go together, e.g. ``(d_model, d_ff)`` pairs."""

    def __init__(self, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        described = f"table({tuple(columns)!r}, ...)" if isinstance(columns, (list, tuple)) else f"table({columns!r})"
        if not isinstance(columns, (list, tuple)) or not columns:
            raise SpaceError(f"{described}: columns must be a non-empty tuple of parameter names")
        for column in columns:
            if not isinstance(column, str) or not column:
                raise SpaceError(f"{described}: column name {column!r} is not a non-empty string")
            check_parameter_name(column, described)
        duplicates = sorted({column for column in columns if list(columns).count(column) > 1})
        if duplicates:
            raise SpaceError(f"{described}: column {duplicates[0]!r} appears twice")
        rows = to_plain(rows)
        if not isinstance(rows, (list, tuple)) or not rows:
            raise SpaceError(f"{described}: rows must be a non-empty list of tuples")
        for number, row in enumerate(rows, start=1):
            if not isinstance(row, (list, tuple)) or len(row) != len(columns):
                raise SpaceError(f"{described}: row {number} {row!r} must have {len(columns)} values, one per column")
            for column, value in zip(columns, row):
                check_json_like(value, f"{described}: row {number}, column {column!r}")
                check_argv_value(value, f"{described}: row {number}, column {column!r}")
        self.columns = tuple(columns)
        self.rows = [tuple(row) for row in rows]

    def keys(self) -> list[str]:
        return list(self.columns)

    def distributions(self) -> Iterator[tuple[str, Distribution]]:
        return iter(())

    def derived_keys(self) -> set[str]:
        return set()

    def size(self) -> int:
        return len(self.rows)

    def point(self, index: int) -> Point:
        return dict(zip(self.columns, self.rows[index]))

    def sample(self, rng: random.Random) -> Point:
        return self.point(randbelow(rng, len(self.rows)))
