"""hypnettorch's ``conditions``: replace the configurations that match a pattern.

``conditions = [({'opt': ['sgd']}, {'momentum': [0.0, 0.9]}), ...]``: every
configuration whose ``opt`` is one of ``['sgd']`` is replaced by one copy per
point of the product of the action's lists. Conditions are applied once each,
in order. Values are compared by their canonical JSON, so ``1`` and ``True``
differ and lists compare by content (hypnettorch compared with ``in``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from hpsearch.errors import SpaceError
from hpsearch.space.keys import canonical_json, check_json_like, to_plain
from hpsearch.space.nodes import Derived, Point

SHAPE = "conditions must be a list of (condition, action) pairs of dicts mapping a parameter to a list of values"


@dataclass(frozen=True)
class Condition:
    """One ``(condition, action)`` pair, checked and ready to match."""

    number: int
    when: dict[str, frozenset[str]]
    then: dict[str, tuple[Any, ...]]

    def keys(self) -> list[str]:
        return list(dict.fromkeys([*self.when, *self.then]))

    def matches(self, config: Point) -> bool:
        return all(
            key in config and not isinstance(config[key], Derived) and canonical_json(config[key]) in tokens
            for key, tokens in self.when.items()
        )

    def apply(self, config: Point) -> list[Point]:
        """The configurations that replace ``config`` (the last action key varies fastest)."""
        return [{**config, **dict(zip(self.then, values))} for values in itertools.product(*self.then.values())]


def parse_conditions(conditions: Any) -> list[Condition]:
    """Check the shape of a ``conditions`` attribute (None means no conditions)."""
    if conditions is None:
        return []
    if not isinstance(conditions, (list, tuple)):
        raise SpaceError(f"{SHAPE}; got {type(conditions).__name__}")
    parsed = []
    for number, pair in enumerate(conditions, start=1):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not all(isinstance(part, dict) for part in pair):
            raise SpaceError(f"condition {number}: {pair!r} is not a (condition dict, action dict) pair; {SHAPE}")
        when, then = (_value_lists(part, f"condition {number} ({role})") for part, role in zip(pair, ("if", "then")))
        parsed.append(Condition(number, {key: frozenset(map(canonical_json, values)) for key, values in when.items()}, then))
    return parsed


def _value_lists(part: dict, where: str) -> dict[str, tuple[Any, ...]]:
    checked = {}
    for key, values in part.items():
        values = to_plain(values)
        if not isinstance(key, str):
            raise SpaceError(f"{where}: key {key!r} is not a parameter name")
        if not isinstance(values, (list, tuple)):
            raise SpaceError(f"{where}: parameter {key!r} must map to a list of values, got {values!r}")
        if not values:
            raise SpaceError(f"{where}: parameter {key!r} has an empty value list")
        checked[key] = tuple(check_json_like(value, f"{where}: parameter {key!r}") for value in values)
    return checked


def select_conditions(
    conditions: Sequence[Condition], grid_keys: Iterable[str], derived_keys: Iterable[str]
) -> tuple[list[Condition], list[str]]:
    """Drop (with a warning, as hypnettorch) conditions that use unknown parameters.

    Raises:
        SpaceError: A condition uses a derived parameter, whose value is not
            known when conditions are applied.
    """
    known, derived = set(grid_keys), set(derived_keys)
    kept, warnings = [], []
    for condition in conditions:
        unknown = [key for key in condition.keys() if key not in known]
        if unknown:
            warnings.append(
                f"condition {condition.number} uses {', '.join(map(repr, unknown))}, which "
                f"{'is not a grid parameter' if len(unknown) == 1 else 'are not grid parameters'}; it is ignored"
            )
            continue
        clashes = [key for key in condition.keys() if key in derived]
        if clashes:
            raise SpaceError(
                f"condition {condition.number} uses derived parameter {clashes[0]!r}; "
                "derived values are computed after the conditions, so a condition cannot test or set them"
            )
        kept.append(condition)
    return kept, warnings


def expand(config: Point, conditions: Sequence[Condition]) -> list[Point]:
    """Apply each condition once, in order, to ``config`` and what replaced it."""
    configs = [config]
    for condition in conditions:
        configs = [new for old in configs for new in (condition.apply(old) if condition.matches(old) else [old])]
    return configs
