"""The text of a grid module for a script whose flags were discovered (``hpsearch init``).

The module runs as written: its one configuration is the script's defaults.
Parameters one usually sweeps (learning rate, batch size, weight decay,
dropout, seed, ...) are active grid entries at their default with a short
suggested list beside them; every other flag is a commented-out line with
its default, type, choices and help. What could not be decided (no
output-folder flag, no recognised metrics) is a TODO naming the choices.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from hpsearch.discovery.flags import EXACT, Discovery, Flag
from hpsearch.discovery.names import normalised, sweep_category
from hpsearch.discovery.outputs import SUMMARY_FILE, MetricsGuess, output_flag

_LOWER_IS_BETTER = ("loss", "err", "error", "ppl", "perplexity", "mse", "mae", "rmse", "nll", "cer", "wer", "fid")
_HELP_WIDTH = 90


@dataclass
class Scaffold:
    """The module's text and what the user must hear about it (one line each)."""

    text: str
    warnings: list[str] = field(default_factory=list)


def _number(value: float) -> float | int:
    """``value`` rounded to 3 significant digits, so suggestions read 0.001 and not 0.0010000000000000002."""
    if value == 0 or not math.isfinite(value):
        return value
    return float(f"{value:.3g}")


def suggestion(flag: Flag, category: str) -> list | None:
    """A short list to try for a typical sweep parameter, around its default."""
    default = flag.default
    if category == "optimizer":
        return list(flag.choices) if flag.choices and len(flag.choices) > 1 else None
    if flag.kind not in ("int", "float") or isinstance(default, bool):
        return None
    if category == "seed":
        start = default if isinstance(default, int) else 0
        return [start, start + 1, start + 2]
    if not isinstance(default, (int, float)):
        return None
    if category == "lr":
        return [_number(default * 10), default, _number(default / 10)] if default > 0 else None
    if category == "batch" and isinstance(default, int) and default > 0:
        return sorted({max(1, default // 2), default, default * 2})
    if category == "weight_decay":
        return [0.0, default, _number(default * 10)] if default > 0 else [0.0, 1e-4, 1e-2]
    if category == "dropout":
        return sorted({0.0, float(default), 0.3 if default < 0.3 else 0.5})
    if category == "momentum":
        return sorted({0.0, float(default), 0.9 if default != 0.9 else 0.99})
    if category == "warmup" and isinstance(default, int):
        return sorted({0, default, max(100, default * 2)})
    return None


def choose_style(discovery: Discovery) -> str:
    """``hpman`` for hpargparse's flags, ``argparse`` where booleans are ``--x/--no-x`` and no switch is
    plain ``store_true``, else ``hypnettorch`` (True: bare flag, False: left out)."""
    params = discovery.parameters
    if discovery.hpargparse and any(flag.origin == "hpman" for flag in params):
        return "hpman"
    if any(flag.action == "boolean_optional" for flag in params) and not any(
            flag.action in ("store_true", "store_false") for flag in params):
        return "argparse"
    return "hypnettorch"


@dataclass
class _Entry:
    key: str | None
    values: list | None  # None: the line stays commented out
    comment: str
    active: bool = False
    problem: str = ""  # why it cannot be a grid entry as written


class _Writer:
    def __init__(self, discovery: Discovery, metrics: MetricsGuess, script_name: str, command: str,
                 module_hint: str) -> None:
        self.discovery = discovery
        self.module_hint = module_hint
        self.metrics = metrics
        self.script_name = script_name
        self.command = command
        self.style = choose_style(discovery)
        self.out = output_flag(discovery)
        self.warnings: list[str] = []

    # ---- one flag

    def key_of(self, flag: Flag) -> str | None:
        if self.style == "hpman" and flag.origin == "hpman":
            return flag.dest
        return flag.key

    def entry(self, flag: Flag) -> _Entry:
        key = self.key_of(flag)
        comment = self.describe(flag)
        if key is None:
            where = "positional argument" if not flag.options else f"{'/'.join(flag.options)} (short option only)"
            if flag.required:
                self.warnings.append(f"the script requires {where} {flag.dest}, which no grid key can give: "
                                     "give it a default in the script, or a --flag")
            return _Entry(None, None, f"{where} {flag.dest}: {comment}", problem="no grid key can set it")
        value, problem = self.grid_value(flag)
        entry = _Entry(key, None if problem else [] if value is None else [value], comment, problem=problem)
        category = sweep_category(flag, key)
        tries = suggestion(flag, category) if category is not None and not problem else None
        if tries and tries != entry.values:
            entry.comment = f"try {_literal(tries)}; {comment}"
        if entry.values and category is not None:
            entry.active = True
        if flag.required and flag.options:
            entry.active = True
            if not entry.values:
                entry.values = [flag.choices[0] if flag.choices else "TODO"]
                self.warnings.append(f"the script requires {flag.options[-1]}: set its value in grid "
                                     f"(now {entry.values[0]!r})")
        return entry

    def grid_value(self, flag: Flag) -> tuple[Any, str]:
        """The grid value that gives the script its default, or why there is none."""
        if flag.action in ("store_true", "store_false", "store_const", "count", "append_const"):
            if self.style == "argparse":
                return None, "argparse style writes False as --no-<flag>, which this switch does not take"
            return False, ""  # left out: the script's default
        if flag.action == "boolean_optional":
            return (flag.default if isinstance(flag.default, bool) else False), ""
        if flag.action in ("append", "extend"):
            return None, f"action={flag.action!r}: give each value as its own flag, which no grid entry does"
        if self.style == "hpman" and flag.origin != "hpman" and "_" in (flag.key or ""):
            return None, f"hpman style would write --{(flag.key or '').replace('_', '-')}"
        if (isinstance(flag.default, list) or flag.nargs not in (None, "?")) and self.style == "hypnettorch":
            return None, "a list: _ARG_STYLE = 'argparse' passes it as --key a b"
        if not flag.default_is_value:
            return None, ""
        if flag.default is None or flag.default == "==SUPPRESS==":
            return None, ""
        if flag.kind == "bool":
            if self.style == "hpman":
                return flag.default, ""
            if (flag.type or "").rsplit(".", 1)[-1] == "bool":
                return None, "type=bool turns any text into True (leave the flag out for False)"
            return str(flag.default).lower(), ""
        if isinstance(flag.default, list) or flag.nargs not in (None, "?"):
            return flag.default, ""  # argparse and hpman styles carry lists
        if flag.choices is not None and flag.default not in flag.choices:
            return None, ""
        if isinstance(flag.default, float) and not math.isfinite(flag.default):
            return None, ""
        return flag.default, ""

    def describe(self, flag: Flag) -> str:
        parts = [flag.action if flag.kind == "switch" else "BooleanOptionalAction"
                 if flag.action == "boolean_optional" else flag.type or "str"]
        if flag.kind == "switch":
            parts[0] += f": True passes {flag.long_options[0] if flag.long_options else flag.options[0]}" \
                if flag.options else ""
        if flag.default_text is not None:
            parts.append(f"default: {flag.default_text} (computed by the script)")
        elif flag.kind != "switch":
            parts.append(f"default: {flag.default!r}")
        if flag.choices is not None:
            parts.append(f"choices: {_literal(flag.choices)}")
        elif flag.choices_text:
            parts.append(f"choices: {flag.choices_text} (computed by the script)")
        if flag.nargs not in (None, 0):
            parts.append(f"nargs={flag.nargs!r}")
        if flag.required:
            parts.append("required")
        if flag.help:
            text = re.sub(r"\s+", " ", flag.help).strip()
            parts.append(text if len(text) <= _HELP_WIDTH else text[:_HELP_WIDTH - 3] + "...")
        return "; ".join(part for part in parts if part)

    # ---- the module

    def parameters(self) -> list[Flag]:
        skip = {id(self.out)} if self.out is not None else set()
        return [flag for flag in self.discovery.parameters
                if id(flag) not in skip and flag.origin != "hpargparse" and flag.action != "hpman"]

    def grid_lines(self) -> list[str]:
        entries = [self.entry(flag) for flag in self.parameters()]
        if not any(entry.active for entry in entries):
            first = next((entry for entry in entries if entry.values and entry.key), None)
            if first is not None:
                first.active = True  # a grid needs one parameter; at its default it changes nothing
        active = [entry for entry in entries if entry.active]
        lines = ["grid = {"]
        for entry in active:
            lines.append(f"    {_literal(entry.key)}: {_literal(entry.values)},  # {entry.comment}")
        if active and len(active) < len(entries):
            lines.append("    # The script's other flags; uncomment a line to sweep it (an empty list needs values):")
        for entry in entries:
            if entry.active:
                continue
            if entry.key is None:
                lines.append(f"    # {entry.comment} -- {entry.problem}")
            elif entry.problem:
                lines.append(f"    # {_literal(entry.key)}: ...,  # {entry.comment} -- {entry.problem}")
            else:
                lines.append(f"    # {_literal(entry.key)}: {_literal(entry.values or [])},  # {entry.comment}")
        if not entries:
            lines.append("    # TODO: no flags were found; name the script's parameters here")
            self.warnings.append("no flags were found: the grid is empty and must be filled in before a search runs")
        elif not active:
            lines.append("    # TODO: no flag has a default hpsearch can pass; give one parameter its values")
            self.warnings.append("no flag has a plain default: give one grid entry its values before a search runs")
        lines.append("}")
        return lines

    def out_lines(self) -> list[str]:
        if self.style == "hydra":
            return []
        if self.out is not None:
            return ["# The script's output-folder flag: each run gets its own folder through it.",
                    f"_OUT_ARG = {_literal(self.out.key)}"]
        self.warnings.append("no output-folder flag found (--out_dir, --output-dir, --save_dir, --logdir, ...): "
                             "set _OUT_ARG to the flag that tells the script where to write")
        return ["# TODO: no output-folder flag was found (--out_dir, --output-dir, --save_dir, --logdir, ...).",
                "# hpsearch passes each run's folder as --<_OUT_ARG>=FOLDER; the script must accept that flag.",
                '_OUT_ARG = "out_dir"']

    def metrics_lines(self) -> list[str]:
        guess = self.metrics
        keys = guess.keys
        where = f" (line {guess.line} of the script)" if guess.line else ""
        if guess.kind == "summary":
            keywords = keys + ([] if "finished" in keys else ["finished"])
            lines = [f"# The script writes hypnettorch's summary file{where}.",
                     f"_SUMMARY_FILENAME = {_literal(guess.filename)}",
                     f"_SUMMARY_KEYWORDS = {_literal(keywords)}"]
            return lines + self.performance(keywords[:-1] if len(keywords) > 1 else [])
        if guess.kind == "json_file" and keys:
            return [f"# The script writes {guess.filename} with json.dump{where}; a run is done when it exits 0",
                    "# and every key below is in that file.",
                    f"_METRICS = {{'source': 'json_file', 'file': {_literal(guess.filename)}, 'keys': {_literal(keys)}}}",
                    *self.performance(keys)]
        if guess.kind == "stdout_json" and keys:
            return [f"# The script prints a JSON object{where}; a run is done when it exits 0 and its last",
                    "# JSON line holds every key below.",
                    f"_METRICS = {{'source': 'stdout_json', 'keys': {_literal(keys)}}}", *self.performance(keys)]
        if guess.kind == "stdout_key_value" and keys:
            named = [key for key in keys if re.fullmatch(r"[A-Za-z_]\w*", key)]
            if named:
                patterns = ", ".join(f"r\"{re.escape(key)}=(?P<{key}>\\S+)\"" for key in named)
                return [f"# The script prints key=value{where}; a run is done when it exits 0 and each pattern",
                        "# matched (the last match is taken).",
                        f"_METRICS = {{'source': 'stdout_regex', 'patterns': [{patterns}]}}",
                        *self.performance(named)]
        seen = {"json_file": f"it writes {guess.filename} but no keys were recognised",
                "stdout_json": "it prints JSON but no keys were recognised"}.get(guess.kind or "", "")
        self.warnings.append("no metrics were recognised" + (f" ({seen})" if seen else "") +
                             ": set _METRICS (or make the script write the summary file) before runs can be done")
        return [
            "# TODO: no metrics were recognised" + (f" ({seen})" if seen else "") + ". Choose one source:",
            "#   the summary file (hypnettorch's; lines 'name value', last 'finished 1') in the run folder:",
            f'_SUMMARY_FILENAME = "{SUMMARY_FILE}"',
            '_SUMMARY_KEYWORDS = ["finished"]  # TODO: your metrics first, e.g. ["val_acc", "finished"]',
            "#   or a JSON file the script writes into the run folder:",
            "# _METRICS = {'source': 'json_file', 'file': 'metrics.json', 'keys': ['val_acc']}",
            "#   or the last JSON object it prints:",
            "# _METRICS = {'source': 'stdout_json', 'keys': ['val_acc']}",
            "#   or regular expressions over its printed lines:",
            "# _METRICS = {'source': 'stdout_regex', 'patterns': [r'val_acc=(?P<val_acc>\\S+)'], 'take': 'last'}",
        ]

    def performance(self, keys: list[str]) -> list[str]:
        if not keys:
            return []
        key = keys[0]
        lower = any(word in normalised(key).split("_") or normalised(key).endswith(word) for word in _LOWER_IS_BETTER)
        return [f"_PERFORMANCE_KEY = {_literal(key)}",
                f"_PERFORMANCE_SORT_ASC = {lower}  # {'smaller' if lower else 'larger'} is better"]

    def style_lines(self) -> list[str]:
        why = {"hypnettorch": "--key=value; True gives a bare --flag, False leaves it out",
               "argparse": "--key=value; booleans as --flag/--no-flag, lists as --key a b",
               "hpman": "the flags hpargparse adds: grid keys are the hpman names"}[self.style]
        return [f"_ARG_STYLE = {_literal(self.style)}  # {why}"]

    def header(self) -> list[str]:
        discovery = self.discovery
        how = ("from the script's own parser (captured when it parsed its arguments)" if discovery.method == EXACT
               else "by reading the script's source")
        lines = ['"""Grid module for ' + self.script_name + ", written by `" + self.command + "`.",
                 "",
                 f"Its flags were found {how}."]
        lines += [f"Note: {note}".replace("\\", "\\\\") for note in discovery.notes]
        lines += ["",
                  "As written it runs one configuration: the script's defaults. To sweep, give an entry",
                  "more values (suggestions stand beside them) or uncomment more lines. Run it with:",
                  "",
                  f"    python -m hpsearch --grid_module={self.module_hint} --visible_gpus=-1",
                  '"""']
        return [line.replace('"""', "'''") if 0 < index < len(lines) - 1 else line
                for index, line in enumerate(lines)]

    def text(self) -> str:
        grid = self.grid_lines()
        body = [
            *self.header(), "",
            *grid, "",
            "conditions = []", "",
            f"_SCRIPT_NAME = {_literal(self.script_name)}  # relative to --run_cwd (default: the current folder)",
            *self.style_lines(),
            *self.out_lines(), "",
            *self.metrics_lines(), "",
        ]
        return "\n".join(body)


def _literal(value: Any) -> str:
    """Python source for ``value`` (repr of plain data), so the module reads back the same values."""
    return repr(value)


def grid_module_text(discovery: Discovery, metrics: MetricsGuess, *, script_name: str, command: str,
                     module_hint: str) -> Scaffold:
    """The grid module for the discovered script, and the warnings to print with it."""
    writer = _Writer(discovery, metrics, script_name, command, module_hint)
    text = writer.text()
    return Scaffold(text, writer.warnings)
