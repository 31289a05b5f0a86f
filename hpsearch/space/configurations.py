"""The configurations of a search, in run order, deduplicated and lazily produced.

A finite space is enumerated: base point ``perm[i]`` for ``i = 0, 1, ...``,
where ``perm`` is a seeded permutation computed point by point (or the
identity for ``--deterministic_search``), each expanded by the conditions.
A space with distributions, or a random search, is sampled: draw ``i`` comes
from a generator seeded by ``(seed, i)``. Either way the first ``n``
configurations do not depend on how many were asked for.

Duplicates are removed as hypnettorch removes them: by Python equality of
the values, whatever the key order; which copy runs is decided in
:mod:`hpsearch.space.duplicates`.
"""

from __future__ import annotations

import itertools
from typing import Any, Hashable, Iterable, Iterator

from hpsearch.errors import SpaceError
from hpsearch.space.duplicates import unique_configurations
from hpsearch.space.keys import equality_key
from hpsearch.space.nodes import Point
from hpsearch.space.permutation import IndexPermutation
from hpsearch.space.randomness import draw_rng
from hpsearch.space.searchspace import SearchSpace

MIN_FRUITLESS_DRAWS = 1000


def iter_configurations(
    grid: Any,
    conditions: Any,
    *,
    num_searches: int = -1,
    random_search: bool = False,
    shuffle: bool = True,
    seed: int = 42,
) -> Iterator[dict[str, Any]]:
    """The configurations of a search, in run order, deduplicated, cut to ``num_searches``.

    Args:
        grid: The grid module's ``grid``.
        conditions: Its ``conditions``.
        num_searches: How many configurations; negative means all (finite spaces only).
        random_search: Draw each parameter's value independently instead of
            enumerating the product (``--dont_generate_full_grid``).
        shuffle: Enumerate a finite space in a seeded random order (False for
            ``--deterministic_search``).
        seed: ``--random_seed``.

    Raises:
        SpaceError: The space is invalid, or it must be sampled and
            ``num_searches`` is not positive. Later, while iterating: a derived
            value fails, or constraints reject nearly every draw.
    """
    return configurations(
        SearchSpace.compile(grid, conditions),
        num_searches=num_searches,
        random_search=random_search,
        shuffle=shuffle,
        seed=seed,
    )


def configurations(
    space: SearchSpace,
    *,
    num_searches: int = -1,
    random_search: bool = False,
    shuffle: bool = True,
    seed: int = 42,
) -> Iterator[dict[str, Any]]:
    """:func:`iter_configurations` of a compiled space."""
    if random_search or not space.finite:
        if num_searches <= 0:
            raise SpaceError(_why_num_searches(space, random_search))
        return itertools.islice(_sampled(space, seed, num_searches), num_searches)
    size = space.node.size()
    order: Iterable[int] = IndexPermutation(size, seed) if shuffle else range(size)
    unique = unique_configurations(space, order)
    return unique if num_searches < 0 else itertools.islice(unique, num_searches)


def _why_num_searches(space: SearchSpace, random_search: bool) -> str:
    if not space.finite:
        return (
            f"the space contains distributions (parameter {space.first_distribution()!r}), "
            "so --num_searches is required (a number > 0 of configurations to draw)"
        )
    return "a random search (--dont_generate_full_grid) needs --num_searches > 0, the number of random picks"


class FirstSeen:
    """Called with a configuration: True the first time an equal one comes up."""

    def __init__(self) -> None:
        self._seen: set[Hashable] = set()

    def __call__(self, config: Point) -> bool:
        key = equality_key(config)
        if key in self._seen:
            return False
        self._seen.add(key)
        return True


def _sampled(space: SearchSpace, seed: int, wanted: int) -> Iterator[Point]:
    """New configurations from draw 0, 1, 2, ... until too many draws in a row bring none.

    Raises:
        SpaceError: Every one of those fruitless draws was rejected by a
            derived value's constraint (rather than being a duplicate).
    """
    limit = max(MIN_FRUITLESS_DRAWS, 10 * wanted)
    fruitless = rejected = 0
    last_rejection = ""
    first_seen = FirstSeen()
    for index in itertools.count():
        configs, rejections = space.finish(space.node.sample(draw_rng(seed, index)))
        fresh = [config for config, _ in configs if first_seen(config)]
        yield from fresh
        fruitless = 0 if fresh else fruitless + 1
        rejected = rejected + 1 if rejections and not configs else 0
        last_rejection = rejections[-1] if rejections else last_rejection
        if fruitless >= limit:
            break
    if rejected >= limit:
        raise SpaceError(f"{last_rejection} rejected every configuration of the last {limit} draws; loosen it")
