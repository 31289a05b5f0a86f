"""What a training script accepts on its command line, as discovered.

One vocabulary for the three ways of finding out (the script's own parser
captured at ``parse_args``, reading its source, hpman's hyperparameters), so
that ``hpsearch init`` and the grid-key check need not know which one spoke.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from hpsearch.errors import HpsearchError

EXACT = "exact"  # the script's own parser, captured when it parsed its arguments
STATIC = "static"  # read from the source with ast, nothing executed

ZERO_ARG_ACTIONS = ("store_true", "store_false", "store_const", "append_const", "count")
NOT_PARAMETERS = ("help", "version")  # actions that are no hyperparameter
_BOOL_TYPES = ("bool", "str2bool", "strtobool", "boolean", "t_or_f")


class ScriptError(HpsearchError):
    """The script cannot be read: missing, not a file, not Python (one line naming it)."""


@dataclass
class Flag:
    """One argument of the script, as its parser defines it.

    ``options`` is spelled as the script spells it (``["-b", "--batch-size"]``),
    empty for a positional argument. ``default`` holds the value when it is
    known; ``default_text`` the source text (or repr) of one that is not a
    plain value. ``type`` is the converter's name (``int``, ``str2bool``), or
    its source text when read statically. ``origin`` is ``argparse`` or
    ``hpman`` (a hyperparameter that hpargparse turns into a flag).
    """

    options: list[str]
    dest: str
    action: str = "store"
    type: str | None = None
    default: Any = None
    default_text: str | None = None
    choices: list | None = None
    choices_text: str | None = None
    nargs: Any = None
    required: bool = False
    help: str | None = None
    origin: str = "argparse"

    @property
    def long_options(self) -> list[str]:
        return [option for option in self.options if option.startswith("--")]

    @property
    def key(self) -> str | None:
        """The grid key that yields this flag as ``--key=value``: its first long option without dashes."""
        long = self.long_options
        return long[0][2:] if long else None

    @property
    def kind(self) -> str:
        """``int``, ``float``, ``str``, ``bool``, ``switch`` (takes no value) or ``other``."""
        if self.action in ZERO_ARG_ACTIONS:
            return "switch"
        if self.action == "boolean_optional":
            return "bool"
        name = (self.type or "").rsplit(".", 1)[-1]
        if self.type is None or name in ("str", "StringAsDefault"):
            return "str"
        if name in ("int", "float"):
            return name
        if name in _BOOL_TYPES or "bool" in (self.type or "").lower():
            return "bool"
        return "other"

    @property
    def default_is_value(self) -> bool:
        """The default is a plain value (not an expression of the script, not unknown)."""
        return self.default_text is None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Flag":
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


@dataclass
class Discovery:
    """Everything found about one script's flags.

    ``parser_found`` is False when the script defines no parser we can see (no
    check of grid keys is possible then). ``complete`` is False when the static
    reading saw signs of flags it cannot follow (a parser handed to a function
    of another module, flag names computed at run time): then unknown keys are
    not reported either. ``notes`` are lines for the user (why the exact route
    failed, subcommands ignored, ...).
    """

    script: str
    method: str
    flags: list[Flag] = field(default_factory=list)
    parser_found: bool = False
    complete: bool = True
    allow_abbrev: bool = True
    hpman: bool = False
    hpargparse: bool = False
    subcommands: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def parameters(self) -> list[Flag]:
        """The flags that can be hyperparameters (not ``--help``, ``--version``)."""
        return [flag for flag in self.flags if flag.action not in NOT_PARAMETERS]

    def option_strings(self) -> list[str]:
        return [option for flag in self.flags for option in flag.options]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["flags"] = [flag.to_json() for flag in self.flags]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Discovery":
        values = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        values["flags"] = [Flag.from_json(item) for item in data.get("flags", [])]
        return cls(**values)
