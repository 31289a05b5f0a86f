"""Figures, goals and the printed table.

A workload yields :class:`Figure` objects; a figure with a goal gets a PASS or
MISS verdict. Everything ends up in one JSON document and one text table.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any, Sequence

_OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}


@dataclass(frozen=True)
class Figure:
    """One measured number.

    Attributes:
        name: Short identifier, unique within its workload (a JSON key).
        value: The number; None when it could not be measured.
        unit: Printed after the value ("s", "MB", "x", "%" is a fraction shown as percent).
        op: Comparison of the goal ("<=", ">=", "<", ">"), or None for context figures.
        limit: The goal's bound.
        note: What the number means, for the table.
    """

    name: str
    value: float | None
    unit: str = ""
    op: str | None = None
    limit: float | None = None
    note: str = ""

    @property
    def verdict(self) -> str | None:
        if self.op is None:
            return None
        if self.value is None or (isinstance(self.value, float) and math.isnan(self.value)):
            return "MISS"
        return "PASS" if _OPS[self.op](self.value, self.limit) else "MISS"

    @property
    def goal(self) -> str:
        return "" if self.op is None else f"{self.op} {format_value(self.limit, self.unit)}"

    def as_json(self) -> dict[str, Any]:
        return {"value": self.value, "unit": self.unit, "goal": self.goal or None, "verdict": self.verdict,
                "note": self.note}


@dataclass
class WorkloadResult:
    """All figures of one workload, or why it was skipped or failed."""

    name: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    skipped: str | None = None
    error: str | None = None
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "seconds": round(self.seconds, 2),
            "skipped": self.skipped,
            "error": self.error,
            "figures": {f.name: f.as_json() for f in self.figures},
            "details": self.details,
        }


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "%":
        return f"{value * 100:.1f} %"
    if isinstance(value, int):
        return f"{value} {unit}".rstrip()
    digits = 3 if abs(value) < 10 else 1
    return f"{value:.{digits}f} {unit}".rstrip()


def render_table(results: Sequence[WorkloadResult]) -> str:
    """A plain-text table, one line per figure, goals and verdicts at the right."""
    rows = [("workload", "figure", "value", "goal", "", "meaning")]
    for result in results:
        if result.skipped or result.error:
            rows.append((result.name, "-", "SKIPPED" if result.skipped else "ERROR", "", "",
                         (result.skipped or result.error or "").splitlines()[0][:100]))
            continue
        for figure in result.figures:
            rows.append((result.name, figure.name, format_value(figure.value, figure.unit), figure.goal,
                         figure.verdict or "", figure.note))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for number, row in enumerate(rows):
        cells = [cell.ljust(width) if i != 2 else cell.rjust(width) for i, (cell, width) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells + [row[-1]]).rstrip())
        if number == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


def tally(results: Sequence[WorkloadResult]) -> dict[str, int]:
    verdicts = [f.verdict for r in results for f in r.figures if f.verdict]
    return {"PASS": verdicts.count("PASS"), "MISS": verdicts.count("MISS")}
