"""A seeded permutation of ``range(n)`` that is computed point by point.

Shuffling a grid of 10^9 points must not build a list of 10^9 points. A
keyed Feistel network permutes the integers below the next even power of
two; cycle walking (apply it again until the result is below ``n``) turns
that into a permutation of ``range(n)``. Element ``i`` costs a few hashes,
and taking the first 10 elements gives the first 10 of any longer prefix.
"""

from __future__ import annotations

import hashlib
from typing import Iterator

from hpsearch.space.randomness import derive_seed

ROUNDS = 6


class IndexPermutation:
    """``perm[i]`` for ``i`` in ``range(size)``: a bijection onto ``range(size)``."""

    def __init__(self, size: int, seed: int) -> None:
        if size < 0:
            raise ValueError(f"permutation size must be >= 0, got {size}")
        self.size = size
        self._half_bits = max(1, ((size - 1).bit_length() + 1) // 2) if size > 1 else 1
        self._half_mask = (1 << self._half_bits) - 1
        self._half_bytes = (self._half_bits + 7) // 8
        self._key = derive_seed("hpsearch-permutation", seed, size).to_bytes(32, "big")

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> int:
        if not 0 <= index < self.size:
            raise IndexError(f"index {index} out of range({self.size})")
        value = self._feistel(index)
        while value >= self.size:  # cycle walking; the domain is < 4 * size
            value = self._feistel(value)
        return value

    def __iter__(self) -> Iterator[int]:
        return (self[index] for index in range(self.size))

    def _feistel(self, value: int) -> int:
        left, right = value >> self._half_bits, value & self._half_mask
        for round_number in range(ROUNDS):
            left, right = right, left ^ self._round(round_number, right)
        return (left << self._half_bits) | right

    def _round(self, round_number: int, half: int) -> int:
        message = self._key + bytes([round_number]) + half.to_bytes(self._half_bytes, "big")
        digest = hashlib.shake_256(message).digest(self._half_bytes)
        return int.from_bytes(digest, "big") & self._half_mask
