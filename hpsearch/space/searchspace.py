"""A grid and its conditions, checked and combined: what the search driver asks about.

A base point (enumerated or drawn) becomes configurations in three steps:
the conditions replace it by their expansions, then derived values are
computed, then derived constraints drop the configurations they reject.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from hpsearch.errors import SpaceError
from hpsearch.space.build import to_node
from hpsearch.space.conditions import (
    Condition,
    Position,
    added_keys,
    expand,
    check_not_derived,
    parse_conditions,
)
from hpsearch.space.nodes import Derived, GridNode, Node, Point, ProductNode, TableNode, UnionNode
from hpsearch.space.randomness import draw_rng


@dataclass
class SearchSpace:
    """A checked space tree plus the conditions that apply to it.

    Attributes:
        dropped: One message per condition dropped because its ``cond`` names
            a parameter missing from the grid (hypnettorch's warning).
        warnings: Other messages: condition values that match nothing.
    """

    node: Node
    conditions: list[Condition]
    dropped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def compile(cls, grid: Any, conditions: Any) -> SearchSpace:
        """Check ``grid`` and ``conditions``; raises SpaceError naming the problem."""
        node = to_node(grid)
        kept, dropped, warnings = parse_conditions(conditions, node.keys())
        check_not_derived(kept, node.derived_keys())
        space = cls(node, kept, dropped, warnings)
        space.warnings.extend(space._unmatched_values())
        return space

    @property
    def finite(self) -> bool:
        return self.node.is_finite()

    def keys(self) -> list[str]:
        """Every parameter a configuration can have, in first-seen order (the CSV columns):
        the grid's, then those the kept conditions' actions add."""
        grid_keys = self.node.keys()
        return [*grid_keys, *added_keys(self.conditions, grid_keys)]

    def added_keys(self) -> list[str]:
        """Parameters only the actions of conditions set."""
        return added_keys(self.conditions, self.node.keys())

    def first_distribution(self) -> str | None:
        """Name of the first parameter drawn from a distribution, for messages."""
        return next((name for name, _ in self.node.distributions()), None)

    def finish(self, base: Point, position: Position = 0) -> tuple[list[tuple[Point, Position]], list[str]]:
        """The configurations of one base point (with their place in hypnettorch's list),
        and what rejected the others.

        Returns:
            ``(configurations, rejections)``; each rejection names a derived
            parameter and the constraint its value failed.
        """
        configs, rejections = [], []
        for config, place in expand(base, self.conditions, position):
            resolved, rejection = resolve_derived(config)
            if rejection:
                rejections.append(rejection)
            else:
                configs.append((resolved, place))
        return configs, rejections

    def check_examples(self) -> None:
        """Finish one point of every union member, so derived-value mistakes show before a run."""
        for base in examples(self.node, draw_rng(0, 0)):
            self.finish(base)

    def _unmatched_values(self) -> list[str]:
        """One message per ``cond`` value that no value list of its parameter holds (a typo, most likely)."""
        import difflib  # deferred for start-up time

        messages, seen = [], set()
        for condition in self.conditions:
            for key, wanted in self.when_lists(condition):
                pool = plain_values(self.node, key)
                if pool is None:
                    continue
                pool += [value for other in self.conditions for value in other.then.get(key, ())]
                for value in wanted:
                    if any(_same(value, known) for known in pool) or (key, repr(value)) in seen:
                        continue
                    seen.add((key, repr(value)))
                    texts = {str(known).lower(): known for known in pool}  # 'SGD' is meant as 'sgd'
                    close = difflib.get_close_matches(str(value).lower(), list(texts), n=1)
                    hint = f" (did you mean {texts[close[0]]!r}?)" if close else ""
                    messages.append(f"conditions[{condition.number}]: value {value!r} of {key!r} is in no value "
                                    f"list of {key!r}, so it matches nothing{hint}")
        return messages

    @staticmethod
    def when_lists(condition: Condition) -> list[tuple[str, tuple]]:
        """The ``cond`` entries that are value lists (a string is a substring test, not checked)."""
        return [(key, tuple(values)) for key, values in condition.when.items() if not isinstance(values, str)]


def _same(value: Any, known: Any) -> bool:
    try:
        return bool(value == known)
    except Exception:  # user objects may compare badly
        return False


def plain_values(node: Node, key: str) -> list[Any] | None:
    """Every value ``key`` takes in plain value lists and table columns; None if it is ever
    sampled or derived (then no list of values exists to check against)."""
    if isinstance(node, GridNode):
        entry = node.entries.get(key)
        if entry is None:
            return []
        return list(entry) if isinstance(entry, tuple) else None
    if isinstance(node, TableNode):
        if key not in node.columns:
            return []
        column = node.columns.index(key)
        return [row[column] for row in node.rows]
    if isinstance(node, (UnionNode, ProductNode)):
        found: list[Any] = []
        for member in node.members:
            values = plain_values(member, key)
            if values is None:
                return None
            found += values
        return found
    return None


def resolve_derived(config: Point) -> tuple[Point, str]:
    """Compute derived values in order; each sees the plain values and the derived ones before it."""
    if not any(isinstance(value, Derived) for value in config.values()):
        return config, ""
    values = {key: value for key, value in config.items() if not isinstance(value, Derived)}
    for key, value in config.items():
        if isinstance(value, Derived):
            values[key] = value.compute(key, MappingProxyType(values))
            if value.constraint is not None and not value.constraint.accepts(values[key], key):
                return config, f"derived parameter {key!r} with constraint {str(value.constraint)!r}"
    return {key: values[key] for key in config}, ""


def examples(node: Node, rng: random.Random) -> list[Point]:
    """A few points that together visit every member of every union."""
    if not isinstance(node, (UnionNode, ProductNode)):
        return [node.point(0) if node.is_finite() else node.sample(rng)]
    per_member = [examples(member, rng) for member in node.members]
    if isinstance(node, UnionNode):
        return [point for points in per_member for point in points]
    longest = max(len(points) for points in per_member)
    return [{k: v for points in per_member for k, v in points[i % len(points)].items()} for i in range(longest)]


def validate_space(grid: Any, conditions: Any, where: str) -> list[str]:
    """Check a grid/conditions pair before anything runs.

    Args:
        grid: The grid module's ``grid``.
        conditions: Its ``conditions`` (None for none).
        where: Prefix of every message, e.g. ``grid module my_sim.hpsearch_config (/path/file.py)``.

    Returns:
        Warnings: conditions dropped because their ``cond`` names a parameter
        missing from the grid, and condition values that match nothing.

    Raises:
        SpaceError: The message starts with ``where`` and names the parameter and the problem.
    """
    space = compile_checked(grid, conditions, where)
    return [f"{where}: {warning}" for warning in [*dropped_warnings(space), *space.warnings]]


def dropped_warnings(space: SearchSpace) -> list[str]:
    """One warning per dropped condition."""
    return [f"{reason}; the condition is dropped, as hypnettorch drops it" for reason in space.dropped]


def compile_checked(grid: Any, conditions: Any, where: str) -> SearchSpace:
    """:meth:`SearchSpace.compile` plus :meth:`~SearchSpace.check_examples`; errors start with ``where``."""
    try:
        space = SearchSpace.compile(grid, conditions)
        space.check_examples()
    except SpaceError as exc:
        raise SpaceError(f"{where}: {exc}") from None
    return space


def grid_keys(grid: Any, conditions: Any = None) -> list[str]:
    """All parameter names the space can produce, in first-seen order (the CSV columns)."""
    return SearchSpace.compile(grid, conditions).keys()
