"""The subcommands of ``hpsearch`` besides the foreground search.

``hpsearch NAME ...`` with NAME in :data:`SUBCOMMANDS` hands the rest of the
command line to that command's ``main(argv) -> int``; anything else is the
foreground search, every flag unchanged. Entries name their module as text,
so that ``hpsearch --help`` and a foreground search import none of them.
"""

from __future__ import annotations

import importlib
from typing import Callable, Sequence

SUBCOMMANDS: dict[str, str] = {
    "serve": "hpsearch.service.commands:serve_main",
    "submit": "hpsearch.service.commands:submit_main",
    "pause": "hpsearch.service.commands:pause_main",
    "unpause": "hpsearch.service.commands:unpause_main",
    "cancel": "hpsearch.service.commands:cancel_main",
    "priority": "hpsearch.service.commands:priority_main",
    "status": "hpsearch.service.views:status_main",
    "list": "hpsearch.service.views:list_main",
    "find": "hpsearch.service.views:find_main",
    "logs": "hpsearch.service.views:logs_main",
    "report": "hpsearch.report_command:report_main",
    "compare": "hpsearch.compare_command:compare_main",
    "plot": "hpsearch.plot_command:plot_main",
    "verify": "hpsearch.verify:verify_main",
    "init": "hpsearch.init_command:init_main",
}

Command = Callable[[Sequence[str]], int]


def subcommand(name: str) -> Command | None:
    """The ``main`` of subcommand ``name``, imported now; None if ``name`` is no subcommand."""
    target = SUBCOMMANDS.get(name)
    if target is None:
        return None
    module, function = target.split(":")
    try:
        return getattr(importlib.import_module(module), function)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        return lambda _argv: _missing(name)


def _missing(name: str) -> int:
    """A subcommand whose module this installation lacks: one line, exit 2."""
    import sys

    print(f"hpsearch {name}: error: this command is not part of this installation of hpsearch", file=sys.stderr)
    return 2
