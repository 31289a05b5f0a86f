"""Constraints on sampled values: a callable, or hpctl's small string language.

Strings such as ``"> 0"``, ``">= 1e-3"``, ``"% 2 == 0"`` or
``"> 0 and != 3"`` are read by a tokenizer, never by ``eval``: a grid module
is shared and copied around, and a constraint must not be a way to run code.
``and`` binds tighter than ``or``; there are no parentheses. A list of
constraints means all of them.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Any, Callable

from hpsearch.errors import SpaceError

COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
TOKEN = re.compile(rf"\s*(?:(?P<number>{NUMBER})|(?P<mod>%)|(?P<op><=|>=|==|!=|<|>)|(?P<word>and|or)\b)")
HINT = "write e.g. '> 0', '<= 1e-3', '% 2 == 0', '!= 3', joined with 'and'/'or'"


@dataclass(frozen=True)
class Clause:
    """``[% modulus] comparison bound``, compared against the value."""

    comparison: str
    bound: float | int
    modulus: float | int | None = None

    def holds(self, value: Any) -> bool:
        subject = value % self.modulus if self.modulus is not None else value
        return bool(COMPARISONS[self.comparison](subject, self.bound))


def _number(text: str) -> float | int:
    return int(text) if re.fullmatch(r"[-+]?\d+", text) else float(text)


def tokenize(text: str) -> list[tuple[str, str]]:
    """Split a constraint string into ``(kind, text)`` tokens."""
    tokens, position = [], 0
    while text[position:].strip():
        match = TOKEN.match(text, position)
        if match is None:
            rest = text[position:].strip()
            raise SpaceError(f"constraint {text!r}: unexpected {rest!r}; {HINT}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def parse(text: str) -> list[list[Clause]]:
    """Parse ``text`` into alternatives (``or``) of clause lists (``and``)."""
    tokens = tokenize(text)
    alternatives: list[list[Clause]] = [[]]
    position = 0
    while position < len(tokens):
        clause, position = _parse_clause(text, tokens, position)
        alternatives[-1].append(clause)
        if position < len(tokens):
            kind, word = tokens[position]
            if kind != "word":
                raise SpaceError(f"constraint {text!r}: expected 'and' or 'or' before {word!r}; {HINT}")
            if word == "or":
                alternatives.append([])
            position += 1
            if position == len(tokens):
                raise SpaceError(f"constraint {text!r}: ends with {word!r}; {HINT}")
    if not alternatives[0]:
        raise SpaceError(f"constraint {text!r} is empty; {HINT}")
    return alternatives


def _parse_clause(text: str, tokens: list[tuple[str, str]], position: int) -> tuple[Clause, int]:
    def expect(kind: str, what: str) -> str:
        nonlocal position
        if position >= len(tokens) or tokens[position][0] != kind:
            found = repr(tokens[position][1]) if position < len(tokens) else "the end"
            raise SpaceError(f"constraint {text!r}: expected {what}, found {found}; {HINT}")
        position += 1
        return tokens[position - 1][1]

    modulus = None
    if tokens[position][0] == "mod":
        position += 1
        modulus = _number(expect("number", "a number after '%'"))
        if modulus == 0:
            raise SpaceError(f"constraint {text!r}: '% 0' divides by zero")
    comparison = expect("op", "a comparison (<, <=, >, >=, ==, !=)")
    bound = _number(expect("number", f"a number after {comparison!r}"))
    return Clause(comparison, bound, modulus), position


class Constraint:
    """A predicate on one value, from a string, a callable or a list of those."""

    def __init__(self, spec: Any) -> None:
        parts = list(spec) if isinstance(spec, (list, tuple)) else [spec]
        if not parts:
            raise SpaceError("constraint list is empty")
        self._checks: list[Callable[[Any], bool]] = []
        self._texts: list[str] = []
        for part in parts:
            if isinstance(part, str):
                alternatives = parse(part)
                self._checks.append(lambda v, alts=alternatives: any(all(c.holds(v) for c in cs) for cs in alts))
                self._texts.append(part)
            elif callable(part):
                self._checks.append(part)
                self._texts.append(getattr(part, "__qualname__", repr(part)))
            else:
                raise SpaceError(f"constraint {part!r} must be a string like '> 0' or a function value -> bool")

    def __call__(self, value: Any) -> bool:
        return all(check(value) for check in self._checks)

    def __repr__(self) -> str:
        return " and ".join(f"({text})" if " or " in text else text for text in self._texts)

    def accepts(self, value: Any, parameter: str) -> bool:
        """``self(value)``, with the user's exceptions turned into a SpaceError."""
        try:
            return self(value)
        except Exception as exc:  # user callables may raise anything
            raise SpaceError(
                f"parameter {parameter!r}: constraint {self!r} failed on value {value!r}: {type(exc).__name__}: {exc}"
            ) from None


def as_constraint(spec: Any) -> Constraint | None:
    """None stays None; everything else becomes a :class:`Constraint`."""
    if spec is None or isinstance(spec, Constraint):
        return spec
    return Constraint(spec)
