"""Distributions a grid entry may hold instead of a list of values.

Each distribution is validated when constructed (so a mistake in a grid module
shows at import, with the offending values), draws from a ``random.Random``
given by the search (so draws are reproducible), and rejects values outside
its support or its constraint up to :data:`MAX_TRIES` times before giving up
with a SpaceError: a constraint that rejects everything must not hang a search.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any, Sequence

from hpsearch.errors import SpaceError
from hpsearch.space.constraints import Constraint, as_constraint
from hpsearch.space.keys import check_argv_value, check_json_like, to_plain
from hpsearch.space.randomness import numpy_generator, randbelow, standard_normal

MAX_TRIES = 10_000


def _real(value: Any, what: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpaceError(f"{name}: {what} must be a finite number, got {value!r}")
    return value


def _digits(value: Any, name: str) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise SpaceError(f"{name}: round must be a number of significant digits >= 1, got {value!r}")
    return value


def _significant(value: float, digits: int | None) -> float:
    return value if digits is None else float(f"{value:.{digits}g}")


class Distribution:
    """Base class: a named sampler with an optional constraint.

    Subclasses implement :meth:`_sample` and :meth:`_in_support` and list
    their parameters in :meth:`_arguments` (used by ``repr``).
    """

    name = "distribution"

    def __init__(self, constraint: Any = None) -> None:
        self.constraint: Constraint | None = as_constraint(constraint)

    def _sample(self, rng: random.Random) -> Any:
        raise NotImplementedError

    def _in_support(self, value: Any) -> bool:
        return True

    def _arguments(self) -> list[str]:
        return []

    def draw(self, rng: random.Random, parameter: str) -> Any:
        """A value in the support that satisfies the constraint.

        Raises:
            SpaceError: No acceptable value in :data:`MAX_TRIES` samples.
        """
        for _ in range(MAX_TRIES):
            value = self._sample(rng)
            if self._in_support(value) and (self.constraint is None or self.constraint.accepts(value, parameter)):
                return value
        wanted = "inside its range after rounding" if self.constraint is None else f"satisfying {str(self.constraint)!r}"
        raise SpaceError(
            f"parameter {parameter!r}: {self!r} gave no value {wanted} in {MAX_TRIES} tries; "
            "loosen the constraint or change the distribution"
        )

    def with_constraint(self, constraint: Any) -> Distribution:
        """A copy whose constraint also requires ``constraint``."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        extra = as_constraint(constraint)
        clone.constraint = extra if self.constraint is None else Constraint([self.constraint, extra])
        return clone

    def __repr__(self) -> str:
        arguments = self._arguments()
        if self.constraint is not None:
            arguments.append(f"constraint={str(self.constraint)!r}")
        return f"{self.name}({', '.join(arguments)})"


class Continuous(Distribution):
    """A real-valued distribution on ``[low, high]``; ``round`` keeps that many significant digits."""

    def __init__(self, low: float, high: float, *, constraint: Any = None, round: int | None = None) -> None:
        super().__init__(constraint)
        described = f"{self.name}(low={low!r}, high={high!r})"
        self.low = _real(low, "low", described)
        self.high = _real(high, "high", described)
        if not low < high:
            raise SpaceError(f"{described}: low must be < high")
        self.round = _digits(round, described)

    def _in_support(self, value: float) -> bool:
        return self.low <= value <= self.high

    def _sample(self, rng: random.Random) -> float:
        return _significant(self._unrounded(rng.random()), self.round)

    def _unrounded(self, unit: float) -> float:
        raise NotImplementedError

    def _arguments(self) -> list[str]:
        arguments = [repr(self.low), repr(self.high)]
        if self.round is not None:
            arguments.append(f"round={self.round}")
        return arguments


class Uniform(Continuous):
    """Uniform on ``[low, high]``."""

    name = "uniform"

    def _unrounded(self, unit: float) -> float:
        return self.low + (self.high - self.low) * unit


class LogUniform(Continuous):
    """``log(value)`` uniform on ``[log(low), log(high)]``; needs ``0 < low``."""

    name = "loguniform"

    def __init__(self, low: float, high: float, *, constraint: Any = None, round: int | None = None) -> None:
        super().__init__(low, high, constraint=constraint, round=round)
        if low <= 0:
            raise SpaceError(f"{self.name}(low={low!r}, high={high!r}): low must be > 0 for a log scale")

    def _unrounded(self, unit: float) -> float:
        value = math.exp(math.log(self.low) + (math.log(self.high) - math.log(self.low)) * unit)
        return min(max(value, self.low), self.high)  # exp/log may overshoot by an ulp


class MinLog(LogUniform):
    """hpctl's ``min_log``: log-scale sampling, dense near ``low`` (same law as loguniform)."""

    name = "minlog"


class MaxLog(LogUniform):
    """hpctl's ``max_log``: the mirror image of :class:`MinLog`, dense near ``high``."""

    name = "maxlog"

    def _unrounded(self, unit: float) -> float:
        mirrored = self.low + self.high - super()._unrounded(unit)
        return min(max(mirrored, self.low), self.high)


class Normal(Distribution):
    """Gaussian with ``mean`` and ``std`` (> 0); ``round`` keeps significant digits."""

    name = "normal"

    def __init__(self, mean: float, std: float, *, constraint: Any = None, round: int | None = None) -> None:
        super().__init__(constraint)
        described = f"normal(mean={mean!r}, std={std!r})"
        self.mean = _real(mean, "mean", described)
        self.std = _real(std, "std", described)
        if not std > 0:
            raise SpaceError(f"{described}: std must be > 0")
        self.round = _digits(round, described)

    def _sample(self, rng: random.Random) -> float:
        return _significant(self.mean + self.std * standard_normal(rng), self.round)

    def _arguments(self) -> list[str]:
        return [repr(self.mean), repr(self.std)] + ([f"round={self.round}"] if self.round is not None else [])


class RandInt(Distribution):
    """Integers in ``[low, high]``, both ends included (as hpctl's ``uniform_int``)."""

    name = "randint"

    def __init__(self, low: int, high: int, *, constraint: Any = None) -> None:
        super().__init__(constraint)
        described = f"randint(low={low!r}, high={high!r})"
        for what, value in (("low", low), ("high", high)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise SpaceError(f"{described}: {what} must be an integer")
        if not low <= high:
            raise SpaceError(f"{described}: low must be <= high (both are included)")
        self.low, self.high = low, high

    def _sample(self, rng: random.Random) -> int:
        return self.low + randbelow(rng, self.high - self.low + 1)

    def _in_support(self, value: int) -> bool:
        return self.low <= value <= self.high

    def _arguments(self) -> list[str]:
        return [repr(self.low), repr(self.high)]


class Choice(Distribution):
    """One of ``values``, uniformly or with relative ``weights``."""

    name = "choice"

    def __init__(self, values: Sequence[Any], weights: Sequence[float] | None = None, *, constraint: Any = None) -> None:
        super().__init__(constraint)
        values = to_plain(values)
        if not isinstance(values, (list, tuple)) or not values:
            raise SpaceError(f"choice(values={values!r}): values must be a non-empty list")
        self.values = tuple(check_argv_value(check_json_like(value, f"choice value {index}"), f"choice value {index}")
                            for index, value in enumerate(values))
        self.weights = None if weights is None else self._check_weights(to_plain(weights))
        self._cumulative = None if self.weights is None else list(itertools.accumulate(self.weights))

    def _check_weights(self, weights: Any) -> tuple[float, ...]:
        described = f"choice(values={list(self.values)!r}, weights={weights!r})"
        if not isinstance(weights, (list, tuple)) or len(weights) != len(self.values):
            raise SpaceError(f"{described}: weights must be a list as long as values ({len(self.values)})")
        for weight in weights:
            if _real(weight, "every weight", described) < 0:
                raise SpaceError(f"{described}: weights must be >= 0")
        if not sum(weights) > 0:
            raise SpaceError(f"{described}: at least one weight must be > 0")
        return tuple(weights)

    def _sample(self, rng: random.Random) -> Any:
        if self._cumulative is None:
            return self.values[randbelow(rng, len(self.values))]
        target = rng.random() * self._cumulative[-1]
        for value, bound in zip(self.values, self._cumulative):
            if target < bound:
                return value
        return self.values[-1]

    def _arguments(self) -> list[str]:
        arguments = [repr(list(self.values))]
        if self.weights is not None:
            arguments.append(f"weights={list(self.weights)!r}")
        return arguments


class ScipyDistribution(Distribution):
    """Any frozen ``scipy.stats`` distribution (anything with ``rvs(random_state=...)``)."""

    name = "scipy"

    def __init__(self, frozen: Any, *, constraint: Any = None) -> None:
        super().__init__(constraint)
        if not callable(getattr(frozen, "rvs", None)):
            raise SpaceError(f"{frozen!r} has no rvs() method; pass a frozen scipy.stats distribution like norm(0, 1)")
        self.frozen = frozen

    def _sample(self, rng: random.Random) -> Any:
        value = to_plain(self.frozen.rvs(random_state=numpy_generator(rng)))
        return check_json_like(value, repr(self))

    def __repr__(self) -> str:
        family = getattr(getattr(self.frozen, "dist", None), "name", None)
        if family is None:
            text = repr(self.frozen)
        else:
            arguments = [repr(to_plain(arg)) for arg in getattr(self.frozen, "args", ())]
            arguments += [f"{key}={to_plain(value)!r}" for key, value in getattr(self.frozen, "kwds", {}).items()]
            text = f"scipy.stats.{family}({', '.join(arguments)})"
        if self.constraint is None:
            return text
        return f"constrained({text}, {str(self.constraint)!r})"
