"""Properties of the search space, checked on generated grids (hypothesis)."""

from __future__ import annotations

import itertools
import math
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpsearch import (
    choice,
    derived,
    loguniform,
    normal,
    randint,
    space,
    table,
    uniform,
    union,
)
from hpsearch.errors import SpaceError
from hpsearch.space import duplicates
from hpsearch.space.permutation import IndexPermutation

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEYS = ["a", "b", "c", "d"]
CONDITION_KEYS = [*KEYS, "e", "f"]  # "e", "f" are never grid keys: dropped conditions, added flags

values = st.one_of(
    st.integers(-2, 3),
    st.booleans(),
    st.sampled_from(["x", "y z", "'q'"]),
    st.lists(st.integers(0, 2), max_size=2),
)
value_lists = st.lists(values, min_size=1, max_size=3)
grids = st.dictionaries(st.sampled_from(KEYS), value_lists, min_size=1, max_size=4)
conditions = st.lists(
    st.tuples(
        st.dictionaries(st.sampled_from(CONDITION_KEYS), value_lists, max_size=2),
        st.dictionaries(st.sampled_from(CONDITION_KEYS), value_lists, max_size=2),
    ),
    max_size=4,
)
seeds = st.integers(0, 2**40)


def reference(grid: dict, conds: list) -> list[dict]:
    """hypnettorch 0.0.4's algorithm, transcribed the short way: the product (last key fastest);
    each condition whose cond keys are all grid keys replaces, list-wide, every configuration it
    matches (``in``) by the product of its action (action keys first, then the other keys), the
    replacements appended after the rest; of equal configurations (``==``) the last one stays."""
    configs = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]
    for cond, action in conds:
        if not set(cond) <= set(grid):
            continue
        kept, replacements = [], []
        for config in configs:
            if all(config[key] in wanted for key, wanted in cond.items()):
                for combo in itertools.product(*action.values()):
                    new = dict(zip(action, combo))
                    replacements.append({**new, **{k: v for k, v in config.items() if k not in new}})
            else:
                kept.append(config)
        configs = kept + replacements
    unique: list[dict] = []
    for config in configs:
        unique = [other for other in unique if other != config] + [config]
    return unique


def flags(configs) -> list[str]:
    """Each configuration as its ordered items (the rendered flags and their order), sorted."""
    return sorted(repr(list(config.items())) for config in configs)


def as_set(configs) -> set[str]:
    return {space.equality_key(config) for config in configs}


@FAST
@given(grids, conditions, st.booleans(), seeds)
def test_configurations_and_their_flag_order_match_hypnettorch(grid, conds, shuffle, seed):
    assert flags(space.iter_configurations(grid, conds, shuffle=shuffle, seed=seed)) == flags(reference(grid, conds))


@FAST
@given(grids, conditions, seeds)
def test_the_first_pass_finds_the_same_copies_as_the_grid_resolver(grid, conds, seed):
    """Spaces the resolver does not take (unions, tables, many acted-on points) get a first pass instead."""
    with mock.patch.object(duplicates, "MAX_CANDIDATES", 0):
        assert flags(space.iter_configurations(grid, conds, seed=seed)) == flags(reference(grid, conds))


@FAST
@given(grids, conditions, seeds)
def test_shuffled_grids_hold_the_same_configurations(grid, conds, seed):
    shuffled = list(space.iter_configurations(grid, conds, seed=seed))
    assert len(shuffled) == len(reference(grid, conds))
    assert as_set(shuffled) == as_set(reference(grid, conds))


@FAST
@given(grids, grids, seeds, st.booleans())
def test_union_yields_exactly_the_union_of_its_parts(first, second, seed, shuffle):
    parts = as_set(space.iter_configurations(first, [])) | as_set(space.iter_configurations(second, []))
    for grid in (union(first, second), [first, second]):
        result = list(space.iter_configurations(grid, [], seed=seed, shuffle=shuffle))
        assert len(result) == len(parts) and as_set(result) == parts


@FAST
@given(st.lists(st.tuples(st.integers(0, 9), st.sampled_from(["p", "q"])), min_size=1, max_size=8, unique=True),
       seeds, st.booleans())
def test_table_yields_exactly_its_rows(rows, seed, shuffle):
    result = list(space.iter_configurations(table(("n", "s"), rows), [], seed=seed, shuffle=shuffle))
    assert sorted((c["n"], c["s"]) for c in result) == sorted(rows)
    assert all(list(c) == ["n", "s"] for c in result)


@FAST
@given(value_lists.filter(lambda vs: all(isinstance(v, int) and not isinstance(v, bool) for v in vs)),
       st.lists(st.integers(-3, 3), min_size=1, max_size=3), seeds, st.booleans())
def test_derived_values_equal_their_expression(a_values, b_values, seed, sampled):
    grid = {
        "c": derived(lambda cfg: cfg["a"] * cfg["b"] + 1),
        "a": a_values if not sampled else choice(a_values),
        "b": b_values,
        "d": derived(lambda cfg: [cfg["c"], cfg["a"]]),
    }
    options = {"num_searches": 5} if sampled else {}
    for config in space.iter_configurations(grid, [], seed=seed, **options):
        assert config["c"] == config["a"] * config["b"] + 1
        assert config["d"] == [config["c"], config["a"]]
        assert list(config) == ["c", "a", "b", "d"]


distributions = st.one_of(
    st.tuples(st.floats(-1e6, 1e6), st.floats(1e-3, 1e6)).map(lambda t: ("uniform", t[0], t[0] + t[1])),
    st.tuples(st.floats(1e-8, 1e3), st.floats(1.01, 1e4)).map(lambda t: ("loguniform", t[0], t[0] * t[1])),
    st.tuples(st.integers(-100, 100), st.integers(0, 50)).map(lambda t: ("randint", t[0], t[0] + t[1])),
    st.tuples(st.floats(-100, 100), st.floats(0.1, 10)).map(lambda t: ("normal", t[0], t[1])),
)
MAKERS = {"uniform": uniform, "loguniform": loguniform, "randint": randint, "normal": normal}


def bound_at(kind: str, first: float, second: float, fraction: float) -> float:
    """A point inside the distribution's bulk, so that a one-sided constraint keeps >= 5% of it."""
    if kind == "normal":
        return first + (2 * fraction - 1) * second
    if kind == "loguniform":
        return math.exp(math.log(first) + fraction * (math.log(second) - math.log(first)))
    point = first + fraction * (second - first)
    return round(point) if kind == "randint" else point


@FAST
@given(distributions, st.sampled_from([None, ">=", "<=", "!=", "between"]), st.floats(0.05, 0.95), seeds)
def test_sampled_values_honour_support_and_constraint(dist, operator, fraction, seed):
    kind, first, second = dist
    bound = bound_at(kind, first, second, fraction)
    text = {None: None, "between": f">= {bound!r} or <= {bound!r} and != {bound!r}"}.get(operator, f"{operator} {bound!r}")
    made = MAKERS[kind](first, second, constraint=text)
    if kind == "randint" and made.constraint is not None and not any(map(made.constraint, range(first, second + 1))):
        with pytest.raises(SpaceError):  # an empty support must end in a clear error, not a hang
            list(space.iter_configurations({"x": made}, [], num_searches=20, seed=seed))
        return
    result = list(space.iter_configurations({"x": made}, [], num_searches=20, seed=seed))
    assert result
    for config in result:
        value = config["x"]
        assert made.constraint is None or made.constraint(value)
        if kind == "randint":
            assert type(value) is int and first <= value <= second
        elif kind != "normal":
            assert first <= value <= second


@FAST
@given(grids, conditions, seeds, st.integers(1, 30), st.booleans())
def test_shorter_searches_are_prefixes(grid, conds, seed, n, random_search):
    longer = list(space.iter_configurations(grid, conds, seed=seed, num_searches=n + 5, random_search=random_search))
    shorter = list(space.iter_configurations(grid, conds, seed=seed, num_searches=n, random_search=random_search))
    assert shorter == longer[:n]


@FAST
@given(st.integers(0, 600), seeds)
def test_index_permutation_is_a_bijection(size, seed):
    assert sorted(IndexPermutation(size, seed)) == list(range(size))
