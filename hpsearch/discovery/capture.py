"""Run a training script until it parses its arguments, write its parser's flags as JSON, stop.

Usage: ``python capture.py RESULT_JSON SCRIPT``. Standard library only, and
imports nothing of hpsearch: it runs in the interpreter the script runs in.
The script is run as ``python SCRIPT`` would (``__main__``, its folder first
on ``sys.path``, ``sys.argv == [SCRIPT]``). ``ArgumentParser.parse_known_args``
(which ``parse_args`` calls) is wrapped: at the first call the flags of every
parser the script made (except subcommand parsers) are written to RESULT_JSON
and the process ends at once, before any training. Network connections are
refused. If the script ends, or fails, without parsing, RESULT_JSON says why.
"""

import sys

del sys.path[0]  # this file's folder: nothing next to it may shadow a module (the script's folder comes below)

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import runpy  # noqa: E402
import socket  # noqa: E402
import traceback  # noqa: E402

_ACTIONS = {
    "_StoreAction": "store", "_StoreConstAction": "store_const", "_StoreTrueAction": "store_true",
    "_StoreFalseAction": "store_false", "_AppendAction": "append", "_AppendConstAction": "append_const",
    "_CountAction": "count", "_HelpAction": "help", "_VersionAction": "version", "_ExtendAction": "extend",
    "BooleanOptionalAction": "boolean_optional", "_SubParsersAction": "parsers",
}
_parsers = []


def _plain(value):
    """``(value, None)`` if JSON can carry it unchanged, else ``(None, repr(value))``."""
    try:
        if json.loads(json.dumps(value)) == value and not isinstance(value, tuple):
            return value, None
    except (TypeError, ValueError, RecursionError):
        pass
    if isinstance(value, (tuple, set, frozenset)):
        items = list(value)
        plain, text = _plain(items)
        if text is None:
            return plain, None
    return None, repr(value)


def _action(action):
    kind = _ACTIONS.get(type(action).__name__)
    if kind is None:
        for base in type(action).__mro__:
            if base.__name__ in _ACTIONS:
                kind = _ACTIONS[base.__name__]
                break
        else:
            kind = "other"
    default, default_text = _plain(action.default)
    choices, choices_text = (None, None)
    if action.choices is not None and kind != "parsers":
        choices, choices_text = _plain(list(action.choices))
    return {
        "options": list(action.option_strings),
        "dest": action.dest,
        "action": kind,
        "type": getattr(action.type, "__name__", None) if action.type is not None else None,
        "default": default,
        "default_text": default_text,
        "choices": choices,
        "choices_text": choices_text,
        "nargs": action.nargs if action.nargs is None or isinstance(action.nargs, (int, str)) else repr(action.nargs),
        "required": bool(action.required),
        "help": action.help if isinstance(action.help, str) else None,
    }


def _describe(first):
    subparsers = {id(p) for parser in _parsers for action in parser._actions
                  if isinstance(action, argparse._SubParsersAction) for p in action.choices.values()}
    commands = [name for parser in _parsers for action in parser._actions
                if isinstance(action, argparse._SubParsersAction) for name in action.choices]
    flags, seen = [], set()
    for parser in [first, *[p for p in _parsers if p is not first]]:
        if id(parser) in subparsers and parser is not first:
            continue
        for action in parser._actions:
            described = _action(action)
            mark = (tuple(described["options"]), described["dest"])
            if described["action"] == "parsers" or id(action) in seen or mark in seen:
                continue
            seen.update((id(action), mark))
            flags.append(described)
    return {"status": "captured", "flags": flags, "subcommands": commands,
            "allow_abbrev": all(getattr(parser, "allow_abbrev", True) for parser in _parsers if id(parser) not in subparsers)}


def _write(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    os.replace(tmp, path)


def _no_network(*_args, **_kwargs):
    raise OSError("network access is disabled while hpsearch init reads the script's flags")


def main():
    result, script = sys.argv[1], sys.argv[2]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    sys.argv = [script]
    original_init = argparse.ArgumentParser.__init__
    original_parse = argparse.ArgumentParser.parse_known_args

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        _parsers.append(self)

    def parse_known_args(self, *args, **kwargs):
        try:
            _write(result, _describe(self))
        finally:
            os._exit(0)  # before any training; hpsearch reads only the file
        return original_parse(self, *args, **kwargs)  # pragma: no cover

    argparse.ArgumentParser.__init__ = init
    argparse.ArgumentParser.parse_known_args = parse_known_args
    real_connect = socket.socket.connect

    def connect(self, address):
        if self.family == getattr(socket, "AF_UNIX", None):
            return real_connect(self, address)
        _no_network()

    socket.socket.connect = connect
    socket.socket.connect_ex = connect
    socket.create_connection = _no_network
    socket.getaddrinfo = _no_network
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        _write(result, {"status": "exited", "error": f"it exited (status {exc.code}) before parsing its arguments"})
        return
    except BaseException as exc:
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" (at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
        _write(result, {"status": "failed", "error": f"{type(exc).__name__}: {exc}{where}"})
        return
    _write(result, {"status": "exited", "error": "it ended without parsing any arguments"})


if __name__ == "__main__":
    main()
