"""hpman's inline hyperparameters (``_("lr", 1e-3)``) and the flags hpargparse makes of them.

hpman finds them by parsing the source, never by running it: a call of the
placeholder name with a string literal first and the default second. When the
hpman package is installed we ask its own parser; otherwise we read the same
calls with ``ast``. Attribute-style reads (``_.lr``, ``_.get_value("lr")``)
define nothing in hpman, so they are not hyperparameters here either.
``hpargparse.bind(parser, _)`` turns each into ``--<name with dashes>`` and
adds its ``--hp-*`` options, which we list as hpargparse would.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpsearch.discovery.flags import Discovery, Flag
from hpsearch.discovery.static import hpargparse_bind_calls, read_script

_HP_ACTIONS = ("save", "load", "list", "detail")  # hpargparse's inject_actions=True
_SERIAL_FORMATS = ["auto", "yaml", "pickle"]


@dataclass
class Hyperparameter:
    name: str
    default: Any = None
    default_text: str | None = None  # a default that is no literal (hpman: NotLiteralEvaluable)
    hints: dict | None = None


def placeholders(tree: ast.Module) -> list[str]:
    """The names a script uses for hpman managers: ``from hpman.m import _``, ``HyperParameterManager("_")``."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "hpman.m":
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.Call) and ast.unparse(node.func).endswith("HyperParameterManager"):
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                names.append(node.args[0].value)
    return list(dict.fromkeys(names))


def hyperparameters(source: str, tree: ast.Module, placeholder: str, filename: str,
                    notes: list[str]) -> list[Hyperparameter]:
    """The hyperparameters of one source, through hpman's parser if installed."""
    try:
        import hpman
    except ImportError:
        return _read(source, tree, placeholder)
    try:
        manager = hpman.HyperParameterManager(placeholder).parse_source(source, filename)
    except Exception as exc:  # hpman refuses what it cannot parse (a name that is no literal, ...)
        notes.append(f"hpman's parser refused {filename}: {type(exc).__name__}: {exc}; read with ast instead")
        return _read(source, tree, placeholder)
    found = []
    for node in manager.get_nodes():
        occurrence = node.get()
        value = node.value
        if isinstance(value, hpman.EmptyValue):
            continue
        if isinstance(value, hpman.NotLiteralEvaluable):
            text = ast.get_source_segment(source, occurrence.ast_node) if occurrence.ast_node else None
            found.append(Hyperparameter(occurrence.name, None, text or "?", dict(occurrence.hints)))
        else:
            found.append(Hyperparameter(occurrence.name, value, None, dict(occurrence.hints)))
    return found


def _read(source: str, tree: ast.Module, placeholder: str) -> list[Hyperparameter]:
    """hpman's rule with ``ast``: first call with a default wins, in ``ast.walk`` order as hpman walks."""
    found: dict[str, Hyperparameter] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == placeholder):
            continue
        if not node.args or not (isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            continue
        name = node.args[0].value
        if len(node.args) < 2 or name in found:
            continue
        hints = {}
        for keyword in node.keywords:
            try:
                hints[keyword.arg] = ast.literal_eval(keyword.value)
            except ValueError:
                pass
        try:
            found[name] = Hyperparameter(name, ast.literal_eval(node.args[1]), None, hints)
        except (ValueError, TypeError, SyntaxError):
            found[name] = Hyperparameter(name, None, ast.get_source_segment(source, node.args[1]), hints)
    return list(found.values())


def parsed_files(script: Path, tree: ast.Module, placeholder: str, notes: list[str]) -> list[Path] | None:
    """The files ``_.parse_file(...)`` reads (``__file__`` or literal paths); None if it names others."""
    files: list[Path] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "parse_file"
                and isinstance(node.func.value, ast.Name) and node.func.value.id == placeholder and node.args):
            continue
        arg = node.args[0]
        items = arg.elts if isinstance(arg, (ast.List, ast.Tuple)) else [arg]
        for item in items:
            if isinstance(item, ast.Name) and item.id == "__file__":
                files.append(script)
            elif isinstance(item, ast.Constant) and isinstance(item.value, str):
                path = script.parent / item.value
                files += sorted(path.glob("**/*.py")) if path.is_dir() else [path]
            else:
                notes.append(f"line {node.lineno}: {placeholder}.parse_file({ast.unparse(arg)}) reads files this "
                             "reading cannot follow")
                return None
    return list(dict.fromkeys(path.resolve() for path in files))


def add_hpman(discovery: Discovery, script: Path) -> None:
    """Add the script's hpman hyperparameters (as the flags hpargparse makes, if it binds them)."""
    source, tree = read_script(script)
    names = placeholders(tree)
    if not names:
        return
    discovery.hpman = True
    placeholder = names[0]
    files = parsed_files(script, tree, placeholder, discovery.notes)
    if files is None:
        files, discovery.complete = [script.resolve()], False
    elif not files:
        files = [script.resolve()]
    params: dict[str, Hyperparameter] = {}
    for path in files:
        try:
            file_source, file_tree = (source, tree) if path == script.resolve() else read_script(path)
        except Exception as exc:  # a file hpman would read that we cannot: note it
            discovery.notes.append(f"hpman file {path}: {exc}")
            continue
        for param in hyperparameters(file_source, file_tree, placeholder, str(path), discovery.notes):
            params.setdefault(param.name, param)
    binds = hpargparse_bind_calls(tree, source)
    discovery.hpargparse = bool(binds)
    if binds:
        discovery.parser_found = True
        discovery.flags += hpargparse_flags(list(params.values()), binds[0])
    else:
        discovery.flags += [_unbound(param) for param in params.values()]
        names = ", ".join(params) or "none"
        discovery.notes.append(f"hpman hyperparameters ({names}) without hpargparse.bind: no flag sets them")


def _unbound(param: Hyperparameter) -> Flag:
    """A hyperparameter no flag can set (no hpargparse): listed for the record, with no option."""
    return Flag(options=[], dest=param.name, type=type(param.default).__name__, default=param.default,
                default_text=param.default_text, help=(param.hints or {}).get("help"), origin="hpman",
                action="hpman")


def hpargparse_flags(params: list[Hyperparameter], bind: ast.Call) -> list[Flag]:
    """The options ``hpargparse.bind`` adds: one per hyperparameter, then its ``--hp-*`` actions."""
    options = {keyword.arg: keyword.value for keyword in bind.keywords if keyword.arg}
    flags = [_hp_flag(param) for param in params]
    inject: Any = True
    if "inject_actions" in options:
        try:
            inject = ast.literal_eval(options["inject_actions"])
        except ValueError:
            inject = True
    actions = list(_HP_ACTIONS) if inject is True else [] if inject is False else list(inject)
    prefix = "hp"
    if "action_prefix" in options and isinstance(options["action_prefix"], ast.Constant):
        prefix = options["action_prefix"].value
    serial = "auto"
    if "serial_format" in options and isinstance(options["serial_format"], ast.Constant):
        serial = options["serial_format"].value
    flags += _hp_actions(actions, prefix, serial)
    return flags


def _hp_flag(param: Hyperparameter) -> Flag:
    hints = param.hints or {}
    value = param.default
    option = "--" + param.name.replace("_", "-")
    if param.default_text is not None:  # hpman's NotLiteralEvaluable sentinel is the default hpargparse sees
        kind = type_name = "NotLiteralEvaluable"
        choices = hints.get("choices")
    elif isinstance(value, bool):
        kind, type_name, choices = "bool", "str2bool", [True, False]
    else:
        kind = "type_func" if isinstance(value, (list, dict)) else type(value).__name__
        type_name = "StringAsDefault" if isinstance(value, str) else kind
        choices = hints.get("choices")
    return Flag(options=[option], dest=option[2:].replace("-", "_"), type=type_name, default=value,
                default_text=param.default_text, choices=list(choices) if choices is not None else None,
                required=bool(hints.get("required")) if hints.get("required") is not None else False,
                help=hints.get("help") or f"A {kind} hyper-parameter named `{param.name}`.", origin="hpman")


def _hp_actions(actions: list[str], prefix: str, serial: str) -> list[Flag]:
    flags = []
    option = lambda name: f"--{prefix}-{name}"  # noqa: E731
    dest = lambda name: f"{prefix}_{name}".replace("-", "_")  # noqa: E731
    for action in actions:
        if action == "list":
            flags.append(Flag([option("list")], dest("list"), nargs="?", choices=["detail", "yaml", "json"],
                              origin="hpargparse"))
        elif action == "detail":
            flags.append(Flag([option("detail")], dest("detail"), "store_true", default=False, nargs=0,
                              origin="hpargparse"))
        elif action in ("save", "load"):
            flags.append(Flag([option(action)], dest(action), origin="hpargparse"))
    if "load" in actions or "save" in actions:
        flags.append(Flag([option("serial-format")], dest("serial-format"), default=serial,
                          choices=list(_SERIAL_FORMATS), origin="hpargparse"))
    if actions:
        flags.append(Flag([option("exit")], dest("exit"), "store_true", default=False, nargs=0, origin="hpargparse"))
    return flags
