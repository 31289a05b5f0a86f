"""Turn a configuration into the run's argument list.

Flags are rendered as hypnettorch does (``--key=value``, a True boolean as a
bare ``--key``, False left out, the output folder flag last), but as separate
argv elements: no shell ever sees them, so any value arrives byte for byte.
"""

from __future__ import annotations

import shlex
from typing import Any, Iterable, Mapping

QUOTES = "\"'"


def strip_shell_quotes(value: str) -> str:
    """Remove one outer pair of matching quotes, as hypnettorch's shell did.

    hypnettorch grid modules write ``'"example string"'`` so that its shell
    command keeps the string as one word; the script then received the text
    without the quotes. Only a value wrapped entirely in one pair of the same
    quote character, with no such character inside, is treated that way.
    """
    if len(value) >= 2 and value[0] in QUOTES and value[-1] == value[0] and value[0] not in value[1:-1]:
        return value[1:-1]
    return value


def received_value(value: Any, strip_quotes: bool = True) -> Any:
    """The value as the run receives it: a string without the outer quotes the shell removed.

    The CSV and ``--list`` show this, so that ``'"my run"'`` reads ``my run`` there too.
    """
    if strip_quotes and isinstance(value, str):
        return strip_shell_quotes(value)
    return value


def received_config(config: Mapping[str, Any], strip_quotes: bool = True) -> dict[str, Any]:
    """:func:`received_value` of every value, in the configuration's order."""
    return {key: received_value(value, strip_quotes) for key, value in config.items()}


def render_flags(config: Mapping[str, Any], *, strip_quotes: bool = True) -> list[str]:
    """``{'lr': 0.1, 'adam': True, 'sgd': False}`` -> ``['--lr=0.1', '--adam']``."""
    flags = []
    for key, value in config.items():
        if isinstance(value, bool):
            if value:
                flags.append(f"--{key}")
            continue
        flags.append(f"--{key}={received_value(value, strip_quotes)}")
    return flags


def render_argv(
    python: str,
    script: str,
    config: Mapping[str, Any],
    *,
    out_arg: str,
    run_dir: str,
    strip_quotes: bool = True,
) -> list[str]:
    """The complete argument list of one run, output-folder flag last."""
    return [python, script, *render_flags(config, strip_quotes=strip_quotes), f"--{out_arg}={run_dir}"]


def shell_line(argv: Iterable[str]) -> str:
    """A copy-pasteable command line for ``commands.sh`` (every word quoted)."""
    return shlex.join(list(argv))
