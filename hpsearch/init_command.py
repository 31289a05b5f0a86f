"""``hpsearch init SCRIPT [--out FILE] [--force]``: a grid module from the training script itself.

The script's flags are discovered without running its training (see
:mod:`hpsearch.discovery`), its outputs guessed from its source, and a grid
module that runs as written is saved. Bad input is one line and exit status
2 before anything is written; an existing file is never replaced without
``--force``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Sequence

from hpsearch.atomic import write_text_atomic
from hpsearch.commandline import EXIT_USAGE, CommandParser
from hpsearch.discovery import Discovery, ScriptError, discover
from hpsearch.discovery.exact import TIMEOUT
from hpsearch.discovery.outputs import guess_metrics, output_flag
from hpsearch.discovery.static import read_script
from hpsearch.scaffold import grid_module_text



def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="hpsearch init", allow_abbrev=False,
                     description="Write a grid module for a training script from the flags its parser defines "
                                 "(argparse, hpman/hpargparse). Its one configuration is the script's defaults.")
    parser.add_argument("script", help="the training script (a .py file)")
    parser.add_argument("--out", metavar="FILE", help="the grid module to write (default: hpsearch_<script>.py "
                                                      "in the current folder)")
    parser.add_argument("--force", action="store_true", help="replace FILE if it exists")
    parser.add_argument("--static", action="store_true",
                        help="only read the source; do not run the script up to its parse_args")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter the script runs with, for the exact route (default: this one)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT,
                        help=f"seconds the script may take to reach parse_args (default: {TIMEOUT:g})")
    return parser


def script_name(script: Path) -> str:
    """The script as ``_SCRIPT_NAME`` names it: relative to the current folder (the default --run_cwd)."""
    relative = os.path.relpath(script.resolve(), Path.cwd())
    return str(script.resolve()) if relative.startswith("..") else relative


def init_main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    script = Path(args.script)
    out = Path(args.out) if args.out else Path(f"hpsearch_{script.stem}.py")
    problem = _out_problem(out, args.force) or _script_problem(script)
    if problem:
        print(f"hpsearch init: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if args.timeout <= 0:
        print(f"hpsearch init: error: --timeout must be > 0, got {args.timeout:g}", file=sys.stderr)
        return EXIT_USAGE
    try:
        discovery = discover(script, exact=not args.static, python=args.python, timeout=args.timeout)
        source, tree = read_script(script)
    except ScriptError as exc:
        print(f"hpsearch init: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    command = shlex.join(["hpsearch", "init", *argv])
    hint = shlex.quote(str(out) if out.is_absolute() or "/" in str(out) else f"./{out}")
    scaffold = grid_module_text(discovery, guess_metrics(source, tree), script_name=script_name(script),
                                command=command, module_hint=hint)
    compile(scaffold.text, str(out), "exec")  # what we write must at least be Python
    try:
        write_text_atomic(out, scaffold.text, durable=False)
    except OSError as exc:
        print(f"hpsearch init: error: {out}: cannot be written: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    if not discovery.parser_found:
        print(f"hpsearch init: warning: {script}: no argument parser found (argparse add_argument, "
              "hpman with hpargparse)", file=sys.stderr)
    for warning in scaffold.warnings:
        print(f"hpsearch init: warning: {warning}", file=sys.stderr)
    _summary(out, discovery, hint)
    return 0


def _out_problem(out: Path, force: bool) -> str:
    if out.exists() and not force:
        return f"{out} exists; pass --force to replace it"
    if out.exists() and not out.is_file():
        return f"{out} is not a file"
    if not out.parent.resolve().is_dir():
        return f"{out}: folder {out.parent} does not exist"
    return ""


def _script_problem(script: Path) -> str:
    if not script.exists():
        return f"{script}: no such file"
    if not script.is_file():
        return f"{script}: not a file"
    return ""


def _summary(out: Path, discovery: Discovery, hint: str) -> None:
    method = "its parser" if discovery.method == "exact" else "its source"
    flag = output_flag(discovery)
    print(f"wrote {out}: {len(discovery.parameters)} flags of {discovery.script} (read from {method})"
          + (f", output folder through {flag.long_options[0]}" if flag is not None and flag.long_options else ""))
    for note in discovery.notes:
        print(f"  note: {note}")
    print(f"run it: python -m hpsearch --grid_module={hint} --visible_gpus=-1")
