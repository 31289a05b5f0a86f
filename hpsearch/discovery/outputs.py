"""Where a script writes its results, guessed from its source: the output-folder flag and the metrics.

``hpsearch init`` sets ``_OUT_ARG`` and the metrics source from these guesses
and says in the module what it saw (or leaves a TODO naming the choices).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from hpsearch.discovery.flags import Discovery, Flag
from hpsearch.discovery.names import OUT_NAMES, normalised

SUMMARY_FILE = "performance_overview.txt"  # hypnettorch's summary file name
_METRIC_WORDS = ("metric", "result", "eval", "score", "summary", "stats", "perf", "acc", "loss")
_NOT_METRICS = ("config", "args", "hparam", "param", "vocab", "token", "label", "setting", "option")
_KEY_VALUE = re.compile(r"([A-Za-z_][\w./-]*)=$")
_SUMMARY_LINE = re.compile(r"^([A-Za-z_]\w*) ")


def output_flag(discovery: Discovery) -> Flag | None:
    """The flag through which the script is told its output folder, if one is recognised by name."""
    candidates = [flag for flag in discovery.parameters if flag.key and flag.kind in ("str", "other")
                  and flag.nargs is None]
    for name in OUT_NAMES:
        for flag in candidates:
            if name in (normalised(flag.key or ""), normalised(flag.dest)):
                return flag
    return None


@dataclass
class MetricsGuess:
    """What the script appears to write: ``kind`` is ``summary``, ``json_file``, ``stdout_json``,
    ``stdout_key_value`` or None (nothing recognised); ``keys`` the metric names seen, in order."""

    kind: str | None = None
    filename: str | None = None
    keys: list[str] = field(default_factory=list)
    line: int | None = None


def guess_metrics(source: str, tree: ast.Module) -> MetricsGuess:
    """The most hpsearch-ready way the script reports results: a summary file, a JSON file, stdout."""
    strings = _string_constants(tree)
    summary = _summary_file(strings, tree)
    if summary is not None:
        return summary
    json_file = _json_file(strings, tree)
    if json_file is not None:
        return json_file
    printed = _printed(tree)
    return printed or MetricsGuess()


def _string_constants(tree: ast.Module) -> list[ast.Constant]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def _summary_file(strings: list[ast.Constant], tree: ast.Module) -> MetricsGuess | None:
    names = [node for node in strings if node.value.endswith(".txt") and "/" not in node.value]
    chosen = next((node for node in names if node.value == SUMMARY_FILE), None)
    writes_finished = any(node.value == "finished" or node.value.startswith("finished ") for node in strings)
    if chosen is None and writes_finished:
        chosen = next((node for node in names if any(word in node.value for word in ("summary", "perf", "overview"))),
                      None)
    if chosen is None:
        return None
    keys = _written_keywords(tree)
    return MetricsGuess("summary", chosen.value, keys, chosen.lineno)


def _written_keywords(tree: ast.Module) -> list[str]:
    """Keywords of summary lines the script writes: ``f.write(f"acc_test {acc}\\n")``, ``"%s %f" % ("acc", x)``."""
    keys: list[str] = []
    for node in sorted((n for n in ast.walk(tree) if isinstance(n, ast.Call)), key=lambda n: n.lineno):
        if not (isinstance(node.func, ast.Attribute) and node.func.attr == "write" and node.args):
            continue
        keys += [key for key in _line_keywords(node.args[0]) if key not in keys]
    return keys


def _line_keywords(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [match.group(1) for line in node.value.splitlines() if (match := _SUMMARY_LINE.match(line))]
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        match = _SUMMARY_LINE.match(str(node.values[0].value))
        return [match.group(1)] if match else []
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and isinstance(node.left, ast.Constant):
        left = str(node.left.value)
        if left.startswith("%s ") and isinstance(node.right, ast.Tuple) and node.right.elts:
            first = node.right.elts[0]
            return [first.value] if isinstance(first, ast.Constant) and isinstance(first.value, str) else []
        return _line_keywords(node.left)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return _line_keywords(node.func.value)
    return []


def _json_file(strings: list[ast.Constant], tree: ast.Module) -> MetricsGuess | None:
    if not any(_is_json_dump(node) for node in ast.walk(tree)):
        return None
    names = [node for node in strings if node.value.endswith((".json", ".jsonl")) and "/" not in node.value
             and not any(word in node.value.lower() for word in _NOT_METRICS)]
    ranked = sorted(names, key=lambda node: not any(word in node.value.lower() for word in _METRIC_WORDS))
    if not ranked:
        return None
    keys = [key for node in ast.walk(tree) if _is_json_dump(node) for key in _dict_keys(node.args[0])]
    return MetricsGuess("json_file", ranked[0].value, list(dict.fromkeys(keys)), ranked[0].lineno)


def _is_json_dump(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "dump"
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "json" and bool(node.args))


def _dict_keys(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Dict):
        return [key.value for key in node.keys if isinstance(key, ast.Constant) and isinstance(key.value, str)]
    if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "dict":
        return [keyword.arg for keyword in node.keywords if keyword.arg]
    return []


def _printed(tree: ast.Module) -> MetricsGuess | None:
    """``print(json.dumps({...}))`` or ``print(f"val_acc={acc}")`` lines."""
    json_keys: list[str] = []
    pairs: list[str] = []
    first_line = None
    for node in sorted((n for n in ast.walk(tree) if isinstance(n, ast.Call)), key=lambda n: n.lineno):
        if not (isinstance(node.func, ast.Name) and node.func.id == "print" and node.args):
            continue
        arg = node.args[0]
        if (isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute) and arg.func.attr == "dumps"
                and getattr(arg.func.value, "id", "") == "json" and arg.args):
            json_keys += _dict_keys(arg.args[0]) or []
            first_line = first_line or node.lineno
        elif isinstance(arg, ast.JoinedStr):
            found = _key_value_names(arg)
            if found:
                pairs += found
                first_line = first_line or node.lineno
    if json_keys:
        return MetricsGuess("stdout_json", None, list(dict.fromkeys(json_keys)), first_line)
    if pairs:
        return MetricsGuess("stdout_key_value", None, list(dict.fromkeys(pairs)), first_line)
    return None


def _key_value_names(node: ast.JoinedStr) -> list[str]:
    names = []
    for before, after in zip(node.values, node.values[1:]):
        if isinstance(before, ast.Constant) and isinstance(after, ast.FormattedValue):
            match = _KEY_VALUE.search(str(before.value).split()[-1] if str(before.value).split() else "")
            if match:
                names.append(match.group(1))
    return names
