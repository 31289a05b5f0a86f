"""The settings of one search, as chosen on the command line.

A plain dataclass so that the CLI, the driver and the executor factory can
share it without importing each other. Its fields are derived from the
option table (:mod:`hpsearch.options`): one field per option, named and
defaulted as there, plus the driver's own argv.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hpsearch.options import OPTIONS, Option


def _field(option: Option) -> tuple[str, Any, Any]:
    kind = option.kind if option.default is not None else (option.kind | None)
    default = option.flip(option.default)
    if option.flag == "grid_module":
        return option.field, kind, dataclasses.field()  # required
    return option.field, kind, dataclasses.field(default=default)


_FIELDS = sorted((_field(o) for o in OPTIONS), key=lambda f: f[0] != "grid_module")  # the required one first

SearchSettings = dataclasses.make_dataclass(
    "SearchSettings",
    [*_FIELDS, ("driver_argv", list, dataclasses.field(default_factory=list))],
    namespace={
        "__doc__": "Every command-line choice that shapes a search (see ``hpsearch --help``); "
                   "``driver_argv`` is the argv this session was started with.",
        "__module__": __name__,
    },
)
