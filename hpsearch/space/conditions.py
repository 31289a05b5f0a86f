"""hypnettorch's ``conditions``: replace the configurations that match a pattern.

``conditions = [({'opt': ['sgd']}, {'momentum': [0.0, 0.9]}), ...]``: every
configuration whose ``opt`` is in ``['sgd']`` (Python ``in``, so ``True == 1``)
is replaced by one copy per point of the product of the action's lists. The
action's keys need not be grid keys: a new key is added to those copies only.
Each copy lists the action's keys first, then the configuration's other keys
in their previous order (this is the flag order of the run's command line).
Conditions are applied once each, in order. A condition whose ``cond`` names a
parameter missing from the grid is dropped with a warning, as hypnettorch does.
Conditions are numbered from 0, as hypnettorch's warnings number them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Collection, Iterable, Sequence

from hpsearch.errors import SpaceError
from hpsearch.space.keys import check_argv_value, check_json_like, check_parameter_name, to_plain
from hpsearch.space.nodes import Derived, Point

SHAPE = "conditions must be a list of (condition, action) pairs of dicts mapping a parameter to a list of values"

# Where a configuration stands in hypnettorch's list after each condition:
# (replaced by this condition?, position before it, index among the replacements).
Position = Any


@dataclass(frozen=True)
class Condition:
    """One ``(cond, action)`` pair, checked and ready to match."""

    number: int
    when: dict[str, Collection[Any]]
    then: dict[str, tuple[Any, ...]]

    def matches(self, config: Point) -> bool:
        return all(
            key in config and not isinstance(config[key], Derived) and _contains(values, config[key])
            for key, values in self.when.items()
        )

    def apply(self, config: Point) -> list[Point]:
        """The configurations that replace ``config`` (the last action key varies fastest).

        An empty action replaces a configuration by itself (hypnettorch hangs on it).
        """
        if not self.then:
            return [config]
        rest = {key: value for key, value in config.items() if key not in self.then}
        return [{**dict(zip(self.then, values)), **rest} for values in itertools.product(*self.then.values())]


def _contains(values: Collection[Any], value: Any) -> bool:
    """``value in values`` as hypnettorch tests it; a comparison Python cannot make is no match."""
    try:
        return value in values
    except TypeError:
        return False


def parse_conditions(conditions: Any, grid_keys: Iterable[str]) -> tuple[list[Condition], list[str], list[str]]:
    """Check a ``conditions`` attribute (None means no conditions) against the grid's parameters.

    As in hypnettorch, every entry must be a pair of dicts, and a condition
    whose ``cond`` names a parameter missing from the grid is dropped before
    anything else of it is looked at (so its values may be anything).

    Returns:
        The kept conditions, one message per dropped condition (why it cannot
        apply), and warnings (a ``cond`` value given as a string).
    """
    if conditions is None:
        return [], [], []
    if not isinstance(conditions, (list, tuple)):
        raise SpaceError(f"{SHAPE}; got {type(conditions).__name__}")
    known = set(grid_keys)
    kept, dropped, warnings = [], [], []
    for number, pair in enumerate(conditions):
        where = f"conditions[{number}]"
        if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not isinstance(pair[0], dict):
            raise SpaceError(f"{where}: {pair!r} is not a (cond dict, action dict) pair; {SHAPE}")
        unknown = [key for key in pair[0] if key not in known]
        if unknown:
            verb = "is not a grid key" if len(unknown) == 1 else "are not grid keys"
            dropped.append(f"{where}: cond key {', '.join(map(repr, unknown))} {verb}")
            continue
        if not isinstance(pair[1], dict):
            raise SpaceError(f"{where}: {pair!r} is not a (cond dict, action dict) pair; {SHAPE}")
        when = _cond_values(pair[0], f"{where} (cond)", warnings)
        then = _action_values(pair[1], f"{where} (action)")
        kept.append(Condition(number, when, then))
    return kept, dropped, warnings


def _cond_values(part: dict, where: str, warnings: list[str]) -> dict[str, Collection[Any]]:
    checked: dict[str, Collection[Any]] = {}
    for key, values in part.items():
        if not isinstance(key, str):
            raise SpaceError(f"{where}: key {key!r} is not a parameter name")
        values = to_plain(values)
        if isinstance(values, str):
            warnings.append(f"{where}: {key!r} maps to the string {values!r}, not a list; as in hypnettorch it "
                            f"matches the values contained in that string (write [{values!r}] for one value)")
        elif isinstance(values, range):
            values = tuple(values)
        elif not isinstance(values, (list, tuple, set, frozenset)):
            raise SpaceError(f"{where}: parameter {key!r} must map to a list of values, got {values!r}")
        checked[key] = tuple(values) if isinstance(values, list) else values
    return checked


def _action_values(part: dict, where: str) -> dict[str, tuple[Any, ...]]:
    checked = {}
    for key, values in part.items():
        check_parameter_name(key, where)
        values = to_plain(values)
        if isinstance(values, range):
            values = list(values)
        if not isinstance(values, (list, tuple)):
            raise SpaceError(f"{where}: parameter {key!r} must map to a list of values, got {values!r}")
        if not values:
            raise SpaceError(f"{where}: parameter {key!r} has an empty value list")
        checked[key] = tuple(
            check_argv_value(check_json_like(value, f"{where}: parameter {key!r}"), f"{where}: parameter {key!r}")
            for value in values
        )
    return checked


def check_not_derived(conditions: Sequence[Condition], derived_keys: Iterable[str]) -> None:
    """Raises SpaceError if a condition tests or sets a derived parameter, whose value is not
    known when conditions are applied."""
    derived = set(derived_keys)
    for condition in conditions:
        clashes = [key for key in [*condition.when, *condition.then] if key in derived]
        if clashes:
            raise SpaceError(
                f"conditions[{condition.number}] uses derived parameter {clashes[0]!r}; "
                "derived values are computed after the conditions, so a condition cannot test or set them"
            )


def added_keys(conditions: Sequence[Condition], grid_keys: Iterable[str]) -> list[str]:
    """Action keys that are not grid keys, in first-seen order: flags only some runs get."""
    known = set(grid_keys)
    return [key for key in dict.fromkeys(key for condition in conditions for key in condition.then)
            if key not in known]


def expand(config: Point, conditions: Sequence[Condition], position: Position = 0) -> list[tuple[Point, Position]]:
    """Apply each condition once, in order, to ``config`` and what replaced it.

    Each result carries its place in hypnettorch's list (``position`` is the
    base point's index in the product): after a condition, the configurations
    it left alone keep their order and come first, its replacements follow in
    the order of what they replaced. Comparing these nested tuples orders the
    results as hypnettorch's list does, so a duplicate can be resolved as it
    resolves it.
    """
    configs = [(config, position)]
    for condition in conditions:
        step = []
        for old, place in configs:
            if condition.matches(old):
                step.extend((new, (1, place, index)) for index, new in enumerate(condition.apply(old)))
            else:
                step.append((old, (0, place, 0)))
        configs = step
    return configs
