"""Seeded random numbers that come out the same in every process and on every machine.

Each draw of a search gets its own generator, seeded from ``(seed, index)``
through sha256, so draw 7 does not depend on how many draws came before it
nor on ``PYTHONHASHSEED``. Only ``random()`` and ``getrandbits()`` of the
Mersenne Twister are used: their output for an integer seed has been stable
across Python 3 releases, unlike ``randrange``/``gauss``/``shuffle``.
"""

from __future__ import annotations

import hashlib
import math
import random


def derive_seed(*parts: object) -> int:
    """A 256-bit integer from ``parts`` (their ``str``), independent of the process."""
    text = "\x1f".join(str(part) for part in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest(), "big")


def draw_rng(seed: int, index: int) -> random.Random:
    """The generator of draw ``index`` of a search with ``seed``."""
    return random.Random(derive_seed("hpsearch-draw", seed, index))


def randbelow(rng: random.Random, n: int) -> int:
    """Uniform integer in ``[0, n)`` by rejection on ``getrandbits``."""
    if n <= 0:
        raise ValueError(f"randbelow needs n > 0, got {n}")
    bits = n.bit_length()
    while True:
        value = rng.getrandbits(bits)
        if value < n:
            return value


def standard_normal(rng: random.Random) -> float:
    """One N(0, 1) sample (Box-Muller), built on ``random()`` only."""
    u1 = 1.0 - rng.random()  # in (0, 1], so log(u1) is finite
    u2 = rng.random()
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def numpy_generator(rng: random.Random):
    """A numpy Generator seeded from ``rng``, for scipy's ``rvs(random_state=...)``."""
    import numpy as np  # only spaces with scipy distributions need numpy

    return np.random.default_rng(rng.getrandbits(128))
