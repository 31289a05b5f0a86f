"""How a configuration reaches the training script: a grid module's ``_ARG_STYLE``.

Scripts take their hyperparameters in many ways: hypnettorch's ``--key=value``
flags, argparse with ``--flag``/``--no-flag`` booleans, Hydra overrides, the
flags hpargparse adds to an hpman script, or a config file (JSON, YAML, gin
bindings) named by one flag. Each style here renders a configuration as an
argument list (never a shell line) and, for the file styles, the file's text;
the driver writes that file into the run folder before the run starts.

Only the standard library is needed, except for ``yaml`` (PyYAML, imported
when that style is chosen).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

from hpsearch.command import received_value, render_argv, render_flags

STYLES = ("hypnettorch", "argparse", "hydra", "hpman", "json", "yaml", "gin")
FILE_STYLES = {"json": ("config.json", "--config"), "yaml": ("config.yaml", "--config"),
               "gin": ("config.gin", "--gin_file")}
"""Style -> (the file written into the run folder, the default flag that names it)."""
HYDRA_RUN_DIR = "hydra.run.dir"

_FLAG = re.compile(r"-{1,2}[A-Za-z0-9][\w.\-]*\Z")
_HYDRA_KEY = re.compile(r"(\+\+|\+)?[A-Za-z_$][\w$\-]*(?:[./][A-Za-z0-9_$][\w$\-]*)*(?:@[\w$.\-]*)?\Z")
_HYDRA_DICT_KEY = re.compile(r"[A-Za-z_$][\w$\-]*\Z")
_GIN_KEY = re.compile(r"(?:[A-Za-z_][\w.]*/)*[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*\Z")
_GIN_REFERENCE = re.compile(r"(?:@(?:[A-Za-z_][\w.]*/)*[A-Za-z_][\w.]*(?:\(\))?|%[A-Za-z_][\w./]*)\Z")


class StyleError(ValueError):
    """A style, its options or a configuration the style cannot carry; worded to follow the attribute name."""


@dataclass(frozen=True)
class ArgStyle:
    """One validated ``_ARG_STYLE``.

    Attributes:
        name: One of :data:`STYLES`.
        flag: For the file styles: the flag that names the config file
            (passed as two words, ``--config /run/folder/config.json``).
    """

    name: str = "hypnettorch"
    flag: str = ""

    @property
    def config_file(self) -> str | None:
        """The file this style writes into the run folder, if any."""
        return FILE_STYLES[self.name][0] if self.name in FILE_STYLES else None

    def settings(self) -> dict[str, str]:
        """Plain data for ``search.json``."""
        return {"style": self.name, **({"flag": self.flag} if self.flag else {})}

    # ---- keys and values, checked before anything runs

    def check_key(self, key: str) -> None:
        """Refuse a grid key this style cannot name (hypnettorch's rules stay in the space check)."""
        if self.name == "hydra" and not _HYDRA_KEY.match(key):
            raise StyleError(f"key {key!r} is not a Hydra override key (a.b.c, with + or ++ in front to add it)")
        if self.name == "gin" and not _GIN_KEY.match(key):
            raise StyleError(f"key {key!r} is not a gin binding (configurable.parameter, scope/configurable."
                             "parameter, or a macro name)")

    def check_config(self, config: Mapping[str, Any], strip_quotes: bool = True) -> None:
        """Render ``config`` once, so a value the style cannot carry stops the search before it starts."""
        self.words(config, strip_quotes)
        if self.name in FILE_STYLES:
            self.file_text(config, strip_quotes)

    # ---- rendering

    def words(self, config: Mapping[str, Any], strip_quotes: bool = True) -> list[str]:
        """The words that carry ``config`` (for a file style: the flag and the file's name)."""
        values = {key: received_value(value, strip_quotes) for key, value in config.items()}
        if self.name == "hypnettorch":
            return render_flags(config, strip_quotes=strip_quotes)
        if self.name == "argparse":
            return [word for key, value in values.items() for word in _argparse_words(key, value)]
        if self.name == "hpman":
            return [f"--{key.replace('_', '-')}={_hpman_value(key, value)}" for key, value in values.items()]
        if self.name == "hydra":
            return [f"{key}={hydra_value(value)}" for key, value in values.items()]
        return [self.flag, self.config_file or ""]

    def argv(self, python: str, script: str, config: Mapping[str, Any], *, out_arg: str, run_dir: str,
             strip_quotes: bool = True) -> list[str]:
        """The complete argument list of one run, output folder last."""
        if self.name == "hypnettorch":
            return render_argv(python, script, config, out_arg=out_arg, run_dir=run_dir, strip_quotes=strip_quotes)
        if self.name in FILE_STYLES:
            words = [self.flag, f"{run_dir.rstrip('/')}/{self.config_file}"]
        else:
            words = self.words(config, strip_quotes)
        if self.name == "hydra":
            out = [f"{HYDRA_RUN_DIR}={hydra_value(run_dir)}"]
            if out_arg != HYDRA_RUN_DIR:
                out.append(f"{out_arg}={hydra_value(run_dir)}")
            return [python, script, *words, *out]
        return [python, script, *words, f"--{out_arg}={run_dir}"]

    def file_text(self, config: Mapping[str, Any], strip_quotes: bool = True) -> str | None:
        """The config file's text for a file style, else None."""
        values = {key: received_value(value, strip_quotes) for key, value in config.items()}
        if self.name == "json":
            return json.dumps(values, indent=2, ensure_ascii=False) + "\n"
        if self.name == "yaml":
            return _yaml_text(values)
        if self.name == "gin":
            return "".join(f"{key} = {gin_value(value)}\n" for key, value in values.items())
        return None


def arg_style(value: Any) -> ArgStyle:
    """``_ARG_STYLE`` -> an :class:`ArgStyle`: a style's name, or ``{"style": NAME, "flag": "--config"}``.

    Raises:
        StyleError: an unknown style or option, a flag that is no flag, yaml without PyYAML.
    """
    if value is None:
        return ArgStyle()
    options: Mapping[str, Any] = {"style": value} if isinstance(value, str) else value
    if not isinstance(options, Mapping):
        raise StyleError(f"must be a style name or a dict {{'style': ..., 'flag': ...}}, got {type(value).__name__}")
    name = options.get("style")
    if name not in STYLES:
        raise StyleError(f"style must be one of {', '.join(STYLES)}, got {name!r}")
    allowed = {"style", "flag"} if name in FILE_STYLES else {"style"}
    unknown = sorted(map(str, set(options) - allowed))
    if unknown:
        raise StyleError(f"unknown option {unknown[0]!r} for style {name!r} (it takes {', '.join(sorted(allowed))})")
    if name not in FILE_STYLES:
        return ArgStyle(name)
    flag = options.get("flag", FILE_STYLES[name][1])
    if not isinstance(flag, str) or not _FLAG.match(flag):
        raise StyleError(f"'flag' must be a flag such as '--config', got {flag!r}")
    if name == "yaml":
        try:
            import yaml  # noqa: F401  # the yaml style writes with PyYAML
        except ImportError:
            raise StyleError("style 'yaml' needs PyYAML: pip install pyyaml (or use style 'json')") from None
    return ArgStyle(name, flag)


# --------------------------------------------------------------------------- argparse and hpman


def _argparse_words(key: str, value: Any) -> list[str]:
    """argparse's spelling: booleans as ``--flag``/``--no-flag`` (BooleanOptionalAction), a
    list as ``--key a b`` (``nargs``), everything else ``--key=value``."""
    if isinstance(value, bool):
        return [f"--{key}" if value else f"--no-{key}"]
    if isinstance(value, (list, tuple)):
        items = [_plain_text(item) for item in value]
        bad = [item for item in items if item.startswith("-")]
        if bad:
            raise StyleError(f"key {key!r}: list item {bad[0]!r} starts with '-', so argparse would read it "
                             "as a flag")
        return [f"--{key}", *items]
    return [f"--{key}={_plain_text(value)}"]


def _plain_text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _hpman_value(key: str, value: Any) -> str:
    """What hpargparse parses back to ``value``: ``true``/``false`` for its str2bool, a Python literal
    for a list or dict (it uses ``ast.literal_eval``), text for the rest (``type(default)(text)``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return repr(value)
    if value is None or isinstance(value, tuple):
        raise StyleError(f"key {key!r}: hpargparse cannot pass {value!r} (its type comes from the default)")
    return _plain_text(value)


# --------------------------------------------------------------------------- Hydra


def hydra_value(value: Any) -> str:
    """``value`` in Hydra's override grammar: strings always quoted, so ``'true'`` stays a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _hydra_quoted(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        bad = [key for key in value if not (isinstance(key, str) and _HYDRA_DICT_KEY.match(key))]
        if bad:
            raise StyleError(f"Hydra cannot carry the dict key {bad[0]!r} (keys must be plain names)")
        return "{" + ",".join(f"{key}:{hydra_value(item)}" for key, item in value.items()) + "}"
    raise StyleError(f"Hydra cannot carry a {type(value).__name__} ({value!r})")


def _hydra_quoted(text: str) -> str:
    """Single-quoted: a quote becomes ``\\'``; backslashes before a quote or the end are doubled
    (Hydra halves such runs; other backslashes are taken literally)."""
    def escape(match: re.Match) -> str:
        return match.group(1) * 2 + ("\\'" if match.group(2) else "")

    return "'" + re.sub(r"(\\*)('|\Z)", escape, text) + "'"


# --------------------------------------------------------------------------- gin


def gin_value(value: Any) -> str:
    """``value`` as gin parses it (Python literal syntax); ``@name``/``%macro`` strings are references."""
    if isinstance(value, str):
        return value if _GIN_REFERENCE.match(value) else repr(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise StyleError(f"gin has no literal for {value!r}")
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(gin_value(item) for item in value) + "]"
    if isinstance(value, tuple):
        return "(" + "".join(f"{gin_value(item)}, " for item in value).rstrip(" ") + ")"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{gin_value(key)}: {gin_value(item)}" for key, item in value.items()) + "}"
    raise StyleError(f"gin cannot carry a {type(value).__name__} ({value!r})")


# --------------------------------------------------------------------------- YAML


def _yaml_text(values: Mapping[str, Any]) -> str:
    import yaml  # PyYAML; arg_style() checked it is there

    return yaml.safe_dump(dict(values), sort_keys=False, allow_unicode=True, default_flow_style=False)

