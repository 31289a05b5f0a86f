"""What every ``hpsearch`` command line shares: its parser, its exit statuses
and the guard that turns a user's mistake into one line.

A command's error must read the same whichever subcommand made it, so the
parser and the guard live here once; the commands only add their arguments.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from typing import Callable

from hpsearch.errors import HpsearchError, UsageError

EXIT_USAGE = 2
"""A mistake in what the user gave: one line on stderr, nothing created."""


class CommandParser(argparse.ArgumentParser):
    """argparse that reports a mistake in one line (exit 2), with a "did you mean" for an unknown flag."""

    def error(self, message: str) -> None:  # type: ignore[override]
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            known = [s for action in self._actions for s in action.option_strings if s.startswith("--")]
            hints = []
            for word in message[len(prefix):].split():
                close = difflib.get_close_matches(word.split("=", 1)[0], known, n=1)
                hints.append(f"{word} (did you mean {close[0]}?)" if close else word)
            message = prefix + ", ".join(hints)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def stdout_closed() -> None:
    """The reader of our output went away (``| head``): drop the rest quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def guarded(prog: str, body: Callable[[], int], *, failure_exit: int = 1) -> int:
    """Run a command: a user mistake becomes one line and exit 2, another of our errors one line and
    ``failure_exit``, a closed pipe a quiet end, Ctrl-C exit 130."""
    try:
        return body()
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except HpsearchError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return failure_exit
    except BrokenPipeError:
        stdout_closed()
        return 0
    except KeyboardInterrupt:
        return 130
