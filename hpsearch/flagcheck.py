"""Grid keys the training script does not accept, found before any run starts.

The most common silent failure of a search is a key the script never reads:
argparse refuses it (every run fails) or, with ``parse_known_args``, ignores
it (every run trains the default). When the script's flags can be read from
its source (:func:`hpsearch.discovery.static_discovery`: nothing of it runs),
each grid key is spelled as the grid module's arg style spells it and
looked up; a key that matches no flag gets one line with a "did you mean".
Scripts whose flags cannot be discovered completely get no warning.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from hpsearch.discovery import Discovery, Flag, static_discovery
from hpsearch.discovery.names import normalised, sweep_category

CHECKED_STYLES = ("hypnettorch", "argparse", "hpman")  # the styles that pass grid keys as flags


def flag_of(key: str, style: str) -> str:
    """The option a grid key becomes on the command line."""
    return "--" + (key.replace("_", "-") if style == "hpman" else key)


def accepted(option: str, discovery: Discovery) -> bool:
    """argparse takes ``option``: one of its spellings, or (if the parser allows) a unique prefix of one."""
    options = discovery.option_strings()
    if option in options:
        return True
    if not discovery.allow_abbrev:
        return False
    return len([known for known in options if known.startswith("--") and known.startswith(option)]) == 1


def suggestion(option: str, discovery: Discovery) -> str | None:
    """The flag the user probably meant: same name up to dashes and case, a close spelling, or a synonym."""
    options = [known for flag in discovery.parameters for known in flag.long_options]
    by_name = {normalised(known): known for known in options}
    if normalised(option) in by_name:
        return by_name[normalised(option)]
    close = difflib.get_close_matches(normalised(option), list(by_name), n=1, cutoff=0.75)
    if close:
        return by_name[close[0]]
    category = sweep_category(Flag([option], normalised(option)), option[2:])
    if category is not None:
        for flag in discovery.parameters:
            if flag.long_options and sweep_category(flag, flag.long_options[0][2:]) == category:
                return flag.long_options[0]
    return None


def unaccepted_keys(keys: list[str], out_arg: str, style: str, script: Path) -> list[str]:
    """One line per grid key (and for ``_OUT_ARG``) the script at ``script`` does not accept."""
    if style not in CHECKED_STYLES:
        return []
    discovery = static_discovery(script)
    if discovery is None or not discovery.parser_found or not discovery.complete:
        return []
    lines = []
    for key in keys:
        option = flag_of(key, style)
        if not accepted(option, discovery):
            hint = suggestion(option, discovery)
            lines.append(f"grid key {key!r} gives {option}, which {script.name} does not accept"
                         + (f" (did you mean {hint}?)" if hint else ""))
    if not accepted(f"--{out_arg}", discovery):
        hint = suggestion(f"--{out_arg}", discovery)
        lines.append(f"_OUT_ARG {out_arg!r} gives --{out_arg}=RUN_FOLDER, which {script.name} does not accept"
                     + (f" (did you mean {hint}?)" if hint else ""))
    return lines
