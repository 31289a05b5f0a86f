"""New seeds for a configuration that already ran: reproducible, and never one it used.

``hpsearch verify`` must give the same seeds for the same command (so a
repeat finds its runs done instead of starting new ones), and different
configurations should not share one sequence of seeds by accident. So the
candidates come from sha256 of the search's identity, the configuration's
key and a counter: no random generator whose algorithm could change.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable

SEED_LIMIT = 2**31
"""Seeds are in [0, 2**31): an int32, which numpy, torch, TensorFlow and JAX all accept."""


def new_seeds(identity: str, group_key: str, used: Iterable[Any], count: int) -> list[int]:
    """``count`` distinct seeds for the configuration ``group_key`` of the search ``identity``,
    none equal to a value in ``used`` (ints, or text or floats that spell one)."""
    taken = {_as_int(value) for value in used}
    seeds: list[int] = []
    counter = 0
    while len(seeds) < count:
        digest = hashlib.sha256(f"{identity}\0{group_key}\0{counter}".encode()).digest()
        counter += 1
        seed = int.from_bytes(digest[:8], "big") % SEED_LIMIT
        if seed not in taken:
            taken.add(seed)
            seeds.append(seed)
    return seeds


def _as_int(value: Any) -> Any:
    """The integer a used seed stands for (``5``, ``5.0``, ``"5"``), else the value itself."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return value
    return value
