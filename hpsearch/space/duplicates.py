"""Which copy of equal configurations a search runs: the one hypnettorch keeps.

hypnettorch removes duplicates (equal values, any key order) after applying
the conditions to its whole list, and keeps the copy that comes last in that
list. Copies can differ in flag order (an action's keys come first) or in how a
value is written (``True`` against ``1``), so the choice shows on the command
line. We enumerate lazily, one grid point at a time, so for a plain grid we
find that copy among the few grid points that can produce it: those that agree
with it on every parameter that no action sets. Other spaces (unions, tables,
derived values, or too many such grid points) get one pass over every point
first when they are small enough, else the first copy seen is run.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any, Hashable, Iterable, Iterator

from hpsearch.space.keys import PLAIN, equality_key
from hpsearch.space.nodes import GridNode, Point
from hpsearch.space.searchspace import SearchSpace

MAX_CANDIDATES = 64  # grid points searched for the kept copy of one configuration
EXACT_LIMIT = 200_000  # grid points of a space that gets a first pass instead

Expansion = list[tuple[Hashable, Any, Point]]  # (equality key, place in hypnettorch's list, configuration)


def unique_configurations(space: SearchSpace, order: Iterable[int]) -> Iterator[Point]:
    """The configurations of the grid points in ``order``, each distinct one once, as hypnettorch keeps it."""
    if not _copies_may_differ(space):
        return _first_copies(space, order)
    resolver = GridResolver.for_space(space)
    if resolver is not None:
        return resolver.unique(order)
    if space.node.size() <= EXACT_LIMIT:
        return _after_first_pass(space, order)
    return _first_copies(space, order)


def _copies_may_differ(space: SearchSpace) -> bool:
    """Whether two equal configurations could differ in key order or value type."""
    if space.conditions or not isinstance(space.node, GridNode):
        return True
    return any(
        len({repr(value) for value in entry}) > len({_value_key(value) for value in entry})
        for entry in space.node.entries.values()
        if isinstance(entry, tuple)
    )


def _value_key(value: Any) -> Hashable:
    """Equal keys for values hypnettorch takes as equal (a tuple is never a plain value)."""
    return value if isinstance(value, PLAIN) else ("json", equality_key({"v": value}))


def _expansion(space: SearchSpace, index: int) -> Expansion:
    configs, _ = space.finish(space.node.point(index), index)
    return [(equality_key(config), place, config) for config, place in configs]


def _first_copies(space: SearchSpace, order: Iterable[int]) -> Iterator[Point]:
    emitted: set[Hashable] = set()
    for index in order:
        for config, _ in space.finish(space.node.point(index))[0]:
            key = equality_key(config)
            if key not in emitted:
                emitted.add(key)
                yield config


def _after_first_pass(space: SearchSpace, order: Iterable[int]) -> Iterator[Point]:
    last: dict[Hashable, tuple[Any, Point]] = {}
    for index in range(space.node.size()):
        for key, place, config in _expansion(space, index):
            if key not in last or place > last[key][0]:
                last[key] = (place, config)
    emitted: set[Hashable] = set()
    for index in order:
        for key, _, _ in _expansion(space, index):
            if key not in emitted:
                emitted.add(key)
                yield last[key][1]


class GridResolver:
    """For a plain grid (a dict of value lists): finds the kept copy among the grid points that can produce it."""

    def __init__(self, space: SearchSpace, free: list[bool]) -> None:
        assert isinstance(space.node, GridNode)
        self.space = space
        self.keys = list(space.node.entries)
        self.lists: list[tuple] = [space.node.entries[key] for key in self.keys]
        self.free = free
        self.digits_of: list[dict[Hashable, list[int]]] = []  # per parameter: value -> its positions
        for values in self.lists:
            positions: dict[Hashable, list[int]] = {}
            for digit, value in enumerate(values):
                positions.setdefault(_value_key(value), []).append(digit)
            self.digits_of.append(positions)
        self.strides = [math.prod(len(values) for values in self.lists[position + 1:])
                        for position in range(len(self.lists))]
        self._expand = functools.lru_cache(maxsize=4096)(functools.partial(_expansion, space))

    @classmethod
    def for_space(cls, space: SearchSpace) -> GridResolver | None:
        """A resolver, if ``space`` is a plain grid whose actions leave few grid points to search."""
        node = space.node
        if not isinstance(node, GridNode) or not all(isinstance(entry, tuple) for entry in node.entries.values()):
            return None
        acted_on = {key for condition in space.conditions for key in condition.then}
        free = [key in acted_on for key in node.entries]
        if math.prod(len(entry) for entry, is_free in zip(node.entries.values(), free) if is_free) > MAX_CANDIDATES:
            return None
        return cls(space, free)

    def unique(self, order: Iterable[int]) -> Iterator[Point]:
        emitted: set[Hashable] = set()
        for index in order:
            for key, _, config in self._expand(index):
                if key not in emitted:
                    emitted.add(key)
                    yield dict(self._kept_copy(key, config))  # the cache keeps its own

    def _kept_copy(self, key: Hashable, config: Point) -> Point:
        """The copy of ``config`` that comes last in hypnettorch's list."""
        digits = [
            range(len(values)) if is_free else positions[_value_key(config[name])]
            for name, values, positions, is_free in zip(self.keys, self.lists, self.digits_of, self.free)
        ]
        best: tuple[Any, Point] | None = None
        for combination in itertools.product(*digits):
            index = sum(digit * stride for digit, stride in zip(combination, self.strides))
            for other, place, copy in self._expand(index):
                if other == key and (best is None or place > best[0]):
                    best = (place, copy)
        assert best is not None  # config itself came from one of these points
        return best[1]
