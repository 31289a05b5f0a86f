"""A script's argparse flags, read from its source with ``ast``: nothing of it runs.

This works where the script's imports (torch, say) are missing. It sees every
``X.add_argument(...)`` call of the file, on a parser, an argument group or a
parser handed to a helper function, and applies what argparse itself would
make of the call (the dest, the defaults of each action, ``--no-`` options of
``BooleanOptionalAction``). Flags of subcommands (``add_parser``) are left
out and named in a note. Values that are expressions of the script stay as
their source text.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from hpsearch.discovery.flags import STATIC, ZERO_ARG_ACTIONS, Discovery, Flag, ScriptError

_ACTIONS = {
    "store": "store", "store_const": "store_const", "store_true": "store_true", "store_false": "store_false",
    "append": "append", "append_const": "append_const", "count": "count", "help": "help", "version": "version",
    "extend": "extend", "BooleanOptionalAction": "boolean_optional",
}
_DEFAULTS = {"store_true": False, "store_false": True}
_MISSING = object()


def read_script(path: str | Path) -> tuple[str, ast.Module]:
    """The script's source and syntax tree; one-line :class:`ScriptError` if it has none."""
    path = Path(path)
    if not path.exists():
        raise ScriptError(f"{path}: no such file")
    if not path.is_file():
        raise ScriptError(f"{path}: not a file")
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScriptError(f"{path}: cannot be read: {exc}") from None
    try:
        tree = ast.parse(source, str(path))
    except SyntaxError as exc:
        raise ScriptError(f"{path}: syntax error in line {exc.lineno}: {exc.msg}") from None
    except ValueError as exc:  # NUL bytes
        raise ScriptError(f"{path}: not Python source: {exc}") from None
    return source, tree


def module_constants(tree: ast.Module) -> dict[str, Any]:
    """Module-level names bound once to a literal (``DEFAULT_LR = 1e-3``), for defaults that name them."""
    values: dict[str, Any] = {}
    seen: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, value = node.target.id, node.value
        else:
            continue
        if name in seen:
            values.pop(name, None)
            continue
        seen.add(name)
        try:
            values[name] = ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            pass
    return values


def positioned(nodes: list[ast.AST]) -> list[Any]:
    return sorted(nodes, key=lambda node: (getattr(node, "lineno", 0), getattr(node, "col_offset", 0)))


class _Reader:
    """One pass over one file's syntax tree."""

    def __init__(self, source: str, tree: ast.Module) -> None:
        self.source = source
        self.tree = tree
        self.constants = module_constants(tree)
        self.functions = {node.name for node in ast.walk(tree)
                          if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
        self.classes = {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
        self.parsers: set[str] = set()  # names bound to a parser or group of the script itself
        self.sub: set[str] = set()  # names bound to a subcommand's parser or one of its groups
        self.subcommands: list[str] = []
        self.notes: list[str] = []
        self.complete = True
        self.parser_found = False
        self.allow_abbrev = True
        self.help_at: tuple[int, int] | None = None  # argparse adds -h/--help unless add_help=False
        self.hpargparse_calls: list[ast.Call] = []

    # ---- helpers

    def text(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.source, node) or ast.unparse(node)

    def value(self, node: ast.AST) -> Any:
        """The literal ``node`` denotes, or _MISSING."""
        if isinstance(node, ast.Name) and node.id in self.constants:
            return self.constants[node.id]
        try:
            return ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return _MISSING

    def incomplete(self, note: str) -> None:
        self.complete = False
        if note not in self.notes:
            self.notes.append(note)

    def receiver_is_sub(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "add_parser":
                return True
            if node.func.attr in ("add_argument_group", "add_mutually_exclusive_group"):
                return self.receiver_is_sub(node.func.value)
        return ast.unparse(node) in self.sub

    # ---- the pass

    def read(self) -> list[Flag]:
        self._bindings()
        flags: list[Flag] = []
        positions: list[tuple[int, int]] = []
        calls = positioned([node for node in ast.walk(self.tree) if isinstance(node, ast.Call)])
        for call in calls:
            func = call.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name == "add_argument" and isinstance(func, ast.Attribute):
                if self.receiver_is_sub(func.value):
                    continue
                self.parser_found = True
                flag = self._flag(call)
                if flag is not None:
                    flags.append(flag)
                    positions.append((call.lineno, call.col_offset))
            elif self._is_parser_class(name):
                self._parser_made(call, name)
            elif name == "set_defaults" and isinstance(func, ast.Attribute) and not self.receiver_is_sub(func.value):
                self._set_defaults(call, flags)
            elif name == "bind" and self._is_hpargparse(func):
                self.hpargparse_calls.append(call)
            else:
                self._handed_over(call, name)
        if self.help_at is not None:  # where argparse adds it: when the first parser with a help flag is made
            at = sum(1 for position in positions if position < self.help_at)
            flags.insert(at, Flag(["-h", "--help"], "help", "help", default="==SUPPRESS==", nargs=0,
                                  help="show this help message and exit"))
        if self.subcommands:
            self.notes.append(f"subcommands {', '.join(self.subcommands)}: their flags are not listed "
                              "(hpsearch passes one command line per run)")
        return flags

    def _bindings(self) -> None:
        """Which names hold the script's parsers and groups, and which a subcommand's."""
        for node in positioned([n for n in ast.walk(self.tree) if isinstance(n, (ast.Assign, ast.NamedExpr))]):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            value = node.value
            if not isinstance(value, ast.Call):
                continue
            func = value.func
            attr = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            names = [ast.unparse(target) for target in targets]
            if self._is_parser_class(attr):
                self.parsers.update(names)
            elif attr == "add_parser":
                self.sub.update(names)
                if value.args and isinstance(value.args[0], ast.Constant):
                    self.subcommands.append(str(value.args[0].value))
            elif attr in ("add_argument_group", "add_mutually_exclusive_group") and isinstance(func, ast.Attribute):
                (self.sub if self.receiver_is_sub(func.value) else self.parsers).update(names)

    def _is_parser_class(self, name: str) -> bool:
        return name.endswith("ArgumentParser") or name in self.classes and self._parser_class(name)

    def _parser_class(self, name: str) -> bool:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.ClassDef) and node.name == name:
                return any(ast.unparse(base).endswith("ArgumentParser") for base in node.bases)
        return False

    def _parser_made(self, call: ast.Call, constructor: str) -> None:
        self.parser_found = True
        if constructor != "ArgumentParser" and constructor not in self.classes:
            self.incomplete(f"its parser is a {constructor}, which may add flags this reading cannot see")
        if not any(keyword.arg == "add_help" and self.value(keyword.value) is False for keyword in call.keywords):
            where = (call.lineno, call.col_offset)
            self.help_at = where if self.help_at is None else min(self.help_at, where)
        for keyword in call.keywords:
            if keyword.arg == "allow_abbrev" and self.value(keyword.value) is False:
                self.allow_abbrev = False
            if keyword.arg == "parents":
                elements = keyword.value.elts if isinstance(keyword.value, (ast.List, ast.Tuple)) else [keyword.value]
                for element in elements:
                    if ast.unparse(element) not in self.parsers:
                        self.incomplete(f"parents={self.text(keyword.value)} brings flags defined elsewhere")

    def _is_hpargparse(self, func: ast.AST) -> bool:
        if isinstance(func, ast.Attribute):
            return isinstance(func.value, ast.Name) and func.value.id == "hpargparse"
        for node in ast.walk(self.tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hpargparse"):
                if any((alias.asname or alias.name) == getattr(func, "id", None) for alias in node.names):
                    return True
        return False

    def _handed_over(self, call: ast.Call, name: str) -> None:
        """A parser handed to a function this file does not define may get flags we cannot see."""
        if name in self.functions or name in ("parse_args", "parse_known_args", "print_help", "error"):
            return
        for arg in call.args:
            if ast.unparse(arg) in self.parsers:
                self.incomplete(f"line {call.lineno}: {self.text(call.func)}({ast.unparse(arg)}) may add "
                                "flags defined in another module")

    def _set_defaults(self, call: ast.Call, flags: list[Flag]) -> None:
        for keyword in call.keywords:
            value = self.value(keyword.value) if keyword.arg else _MISSING
            for flag in flags:
                if flag.dest == keyword.arg:
                    if value is _MISSING:
                        flag.default, flag.default_text = None, self.text(keyword.value)
                    else:
                        flag.default, flag.default_text = value, None

    def _flag(self, call: ast.Call) -> Flag | None:
        names = []
        for arg in call.args:
            value = self.value(arg)
            if not isinstance(value, str):
                self.incomplete(f"line {call.lineno}: add_argument({self.text(arg)}, ...) names its flag at run time")
                return None
            names.append(value)
        if not names:
            return None
        kwargs = {keyword.arg: keyword.value for keyword in call.keywords if keyword.arg}
        options = [name for name in names if name.startswith("-")]
        action = self._action(kwargs.get("action"))
        if action == "boolean_optional":
            options += [f"--no-{option[2:]}" for option in options if option.startswith("--")]
        flag = Flag(options=options, dest=self._dest(names, kwargs), action=action)
        if action in ZERO_ARG_ACTIONS + ("boolean_optional", "help", "version"):
            flag.nargs = 0
        if "type" in kwargs:
            node = kwargs["type"]
            flag.type = node.attr if isinstance(node, ast.Attribute) else self.text(node)
        self._default(flag, kwargs)
        if "choices" in kwargs:
            choices = self.value(kwargs["choices"])
            if isinstance(choices, (list, tuple, set, frozenset, dict)):
                flag.choices = list(choices)
            else:
                flag.choices_text = self.text(kwargs["choices"])
        if "nargs" in kwargs:
            nargs = self.value(kwargs["nargs"])
            flag.nargs = nargs if nargs is not _MISSING else "..." if self.text(kwargs["nargs"]).endswith(
                "REMAINDER") else self.text(kwargs["nargs"])
        if "help" in kwargs:
            text = self.value(kwargs["help"])
            flag.help = text if isinstance(text, str) else self.text(kwargs["help"])
        if options:
            flag.required = self.value(kwargs["required"]) is True if "required" in kwargs else False
        else:
            flag.required = flag.nargs not in ("?", "*") or (flag.nargs == "*" and "default" not in kwargs)
        return flag

    def _action(self, node: ast.AST | None) -> str:
        if node is None:
            return "store"
        value = self.value(node)
        if isinstance(value, str):
            return _ACTIONS.get(value, value)
        name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
        return _ACTIONS.get(name, "other")

    def _dest(self, names: list[str], kwargs: dict[str, ast.AST]) -> str:
        if "dest" in kwargs and isinstance(self.value(kwargs["dest"]), str):
            return self.value(kwargs["dest"])
        if not names[0].startswith("-"):
            return names[0]
        long = [name for name in names if name.startswith("--")]
        return (long[0] if long else names[0]).lstrip("-").replace("-", "_")

    def _default(self, flag: Flag, kwargs: dict[str, ast.AST]) -> None:
        if "default" not in kwargs:
            flag.default = _DEFAULTS.get(flag.action)
            return
        value = self.value(kwargs["default"])
        if value is _MISSING:
            flag.default_text = self.text(kwargs["default"])
        elif isinstance(value, (tuple, set, frozenset)):
            flag.default = list(value)
        else:
            flag.default = value


def read_flags(path: str | Path) -> Discovery:
    """The argparse flags of the script at ``path``, statically (hpman's are added by :mod:`hpman_params`)."""
    source, tree = read_script(path)
    reader = _Reader(source, tree)
    flags = reader.read()
    discovery = Discovery(script=str(path), method=STATIC, flags=_unique(flags), parser_found=reader.parser_found,
                          complete=reader.complete, allow_abbrev=reader.allow_abbrev,
                          subcommands=reader.subcommands, notes=reader.notes)
    discovery.hpargparse = bool(reader.hpargparse_calls)
    return discovery


def hpargparse_bind_calls(tree: ast.Module, source: str) -> list[ast.Call]:
    """The ``hpargparse.bind(parser, _)`` calls of a script."""
    reader = _Reader(source, tree)
    reader.read()
    return reader.hpargparse_calls


def _unique(flags: list[Flag]) -> list[Flag]:
    """A flag defined twice the same way (one helper called for two parsers) is listed once."""
    seen: set[tuple] = set()
    unique = []
    for flag in flags:
        mark = (tuple(flag.options), flag.dest)
        if mark not in seen:
            seen.add(mark)
            unique.append(flag)
    return unique
