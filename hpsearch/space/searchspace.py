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
    expand,
    parse_conditions,
    select_conditions,
)
from hpsearch.space.nodes import Derived, Node, Point, ProductNode, UnionNode
from hpsearch.space.randomness import draw_rng


@dataclass
class SearchSpace:
    """A checked space tree plus the conditions that apply to it."""

    node: Node
    conditions: list[Condition]
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def compile(cls, grid: Any, conditions: Any) -> SearchSpace:
        """Check ``grid`` and ``conditions``; raises SpaceError naming the problem."""
        node = to_node(grid)
        kept, warnings = select_conditions(parse_conditions(conditions), node.keys(), node.derived_keys())
        return cls(node, kept, warnings)

    @property
    def finite(self) -> bool:
        return self.node.is_finite()

    def first_distribution(self) -> str | None:
        """Name of the first parameter drawn from a distribution, for messages."""
        return next((name for name, _ in self.node.distributions()), None)

    def finish(self, base: Point) -> tuple[list[Point], list[str]]:
        """The configurations of one base point, and what rejected the others.

        Returns:
            ``(configurations, rejections)``; each rejection names a derived
            parameter and the constraint its value failed.
        """
        configs, rejections = [], []
        for config in expand(base, self.conditions):
            resolved, rejection = resolve_derived(config)
            if rejection:
                rejections.append(rejection)
            else:
                configs.append(resolved)
        return configs, rejections

    def check_examples(self) -> None:
        """Finish one point of every union member, so derived-value mistakes show before a run."""
        for base in examples(self.node, draw_rng(0, 0)):
            self.finish(base)


def resolve_derived(config: Point) -> tuple[Point, str]:
    """Compute derived values in order; each sees the plain values and the derived ones before it."""
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
        Warnings, e.g. for conditions dropped because they use unknown parameters.

    Raises:
        SpaceError: The message starts with ``where`` and names the parameter and the problem.
    """
    try:
        space = SearchSpace.compile(grid, conditions)
        space.check_examples()
    except SpaceError as exc:
        raise SpaceError(f"{where}: {exc}") from None
    return [f"{where}: {warning}" for warning in space.warnings]


def grid_keys(grid: Any) -> list[str]:
    """All parameter names the space can produce, in first-seen order (the CSV columns)."""
    return to_node(grid).keys()


def is_finite(grid: Any) -> bool:
    """False if any distribution is in the space."""
    return to_node(grid).is_finite()


def space_size(grid: Any) -> int | None:
    """Number of points of a finite space before conditions; None if it has distributions."""
    node = to_node(grid)
    return node.size() if node.is_finite() else None
