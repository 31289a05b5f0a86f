"""Flag discovery of ``hpsearch init``: what it finds must equal what the script's own parser defines.

The oracle is the script's parser itself, taken in this process by importing
the script (stub ``torch``/``torchvision`` packages stand in where the real
ones are not installed) and stopping it at ``parse_known_args``: independent
of both the static reader and the subprocess capture it is compared with.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hpsearch.discovery import ScriptError, discover
from hpsearch.discovery import hpman_params
from hpsearch.discovery.static import read_script

SCRIPTS = Path(__file__).resolve().parent / "scripts" / "init"
_ACTIONS = {
    argparse._StoreAction: "store", argparse._StoreTrueAction: "store_true",
    argparse._StoreFalseAction: "store_false", argparse._StoreConstAction: "store_const",
    argparse._AppendAction: "append", argparse._CountAction: "count", argparse._HelpAction: "help",
    argparse.BooleanOptionalAction: "boolean_optional",
}

STUB = '''
class _Anything:
    def __init__(self, *args, **kwargs):
        pass
    def __call__(self, *args, **kwargs):
        return _Anything()
    def __getattr__(self, name):
        return _Anything()


def __getattr__(name):
    return _Anything
'''


def write_stubs(folder: Path) -> Path:
    """``torch`` and ``torchvision`` packages whose every name is a dummy (enough to import a script)."""
    for package in ("torch", "torch/nn", "torch/optim", "torch/backends", "torch/utils", "torchvision"):
        (folder / package).mkdir(parents=True, exist_ok=True)
        (folder / package / "__init__.py").write_text(STUB)
    for module in ("torch/nn/functional", "torch/optim/lr_scheduler", "torch/backends/cudnn"):
        (folder / f"{module}.py").write_text(STUB)
    (folder / "torchvision" / "models.py").write_text("def resnet18():\n    pass\n\ndef resnet50():\n    pass\n")
    (folder / "torchvision" / "datasets.py").write_text(STUB)
    (folder / "torchvision" / "transforms.py").write_text(STUB)
    return folder


class _Stop(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


def own_parser(script: Path, monkeypatch, call: str | None = "main", attribute: str | None = None):
    """The script's parser, taken by importing it here and stopping it when it parses."""
    def stop(self, *args, **kwargs):
        raise _Stop(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", stop)
    monkeypatch.syspath_prepend(str(script.parent))
    spec = importlib.util.spec_from_file_location(f"fixture_{script.stem}_{time.monotonic_ns()}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if attribute:
        return getattr(module, attribute)
    try:
        getattr(module, call)()
    except _Stop as stopped:
        return stopped.parser
    raise AssertionError(f"{script} did not parse its arguments")


def truth(parser: argparse.ArgumentParser) -> dict[tuple, dict]:
    flags = {}
    for action in parser._actions:
        flags[tuple(action.option_strings) or (action.dest,)] = {
            "dest": action.dest, "action": _ACTIONS.get(type(action), "other"),
            "type": getattr(action.type, "__name__", None) if action.type else None,
            "default": action.default, "choices": None if action.choices is None else list(action.choices),
            "nargs": action.nargs, "required": action.required, "help": action.help,
        }
    return flags


def assert_same(discovery, parser: argparse.ArgumentParser, *, skip_help_of=(), ordered: bool = True) -> None:
    """Every flag of ``parser`` and no other, with its dest, action, type, default, choices, nargs,
    required and help; values the static reading keeps as source text are compared as absent."""
    expected = truth(parser)
    found = {tuple(flag.options) or (flag.dest,): flag for flag in discovery.flags}
    if ordered:
        assert list(found) == list(expected)  # same flags, same order
    assert sorted(found) == sorted(expected)
    for key, want in expected.items():
        flag = found[key]
        assert flag.dest == want["dest"], key
        assert flag.action == want["action"], key
        assert flag.required == bool(want["required"]), key
        assert flag.nargs == want["nargs"], key
        if want["type"] is not None and flag.type is not None and flag.type.isidentifier():
            assert flag.type == want["type"], key
        assert (flag.type is None) == (want["type"] is None), key
        if flag.default_text is None:
            assert flag.default == (list(want["default"]) if isinstance(want["default"], tuple) else want["default"]), key
        if flag.choices_text is None:
            assert flag.choices == want["choices"], key
        if key not in skip_help_of and "(" not in (flag.help or ""):
            assert flag.help == want["help"], key


def test_mnist_style_script_without_torch_static_equals_its_parser(tmp_path, monkeypatch):
    script = SCRIPTS / "mnist_main.py"
    discovery = discover(script)  # torch is missing here: the exact route fails, the source is read
    assert discovery.method == "static"
    assert "No module named 'torch'" in discovery.notes[0]
    monkeypatch.syspath_prepend(str(write_stubs(tmp_path / "stubs")))
    assert_same(discovery, own_parser(script, monkeypatch))
    assert [flag.key for flag in discovery.parameters][:3] == ["batch-size", "test-batch-size", "epochs"]


def test_imagenet_style_module_level_parser_with_dest_and_computed_choices(tmp_path, monkeypatch):
    script = SCRIPTS / "imagenet_main.py"
    discovery = discover(script)
    assert discovery.method == "static"
    stubs = write_stubs(tmp_path / "stubs")
    monkeypatch.syspath_prepend(str(stubs))
    parser = own_parser(script, monkeypatch, attribute="parser")
    assert_same(discovery, parser)
    by_dest = {flag.dest: flag for flag in discovery.flags}
    assert by_dest["lr"].options == ["--lr", "--learning-rate"]
    assert by_dest["weight_decay"].options == ["--wd", "--weight-decay"]
    assert by_dest["arch"].choices_text == "model_names"  # the stubbed torchvision gave resnet18, resnet50
    assert by_dest["checkpoint_dir"].default_text == 'os.path.join(os.getcwd(), "checkpoints")'
    assert by_dest["data"].options == [] and by_dest["data"].nargs == "?"


def test_imagenet_exact_with_stubs_on_the_path(tmp_path, monkeypatch):
    script = SCRIPTS / "imagenet_main.py"
    stubs = write_stubs(tmp_path / "stubs")
    monkeypatch.setenv("PYTHONPATH", str(stubs))
    exact = discover(script)
    assert exact.method == "exact", exact.notes
    monkeypatch.syspath_prepend(str(stubs))
    parser = own_parser(script, monkeypatch, attribute="parser")
    assert_same(exact, parser)
    assert {flag.dest: flag for flag in exact.flags}["arch"].choices == ["resnet18", "resnet50"]


def test_huggingface_style_groups_exact_and_static_equal_its_parser(monkeypatch):
    script = SCRIPTS / "hf_glue_no_trainer.py"
    exact, static = discover(script), discover(script, exact=False)
    assert exact.method == "exact" and static.method == "static"
    parser = own_parser(script, monkeypatch, call="parse_args")
    assert_same(exact, parser)
    assert_same(static, parser)
    by_dest = {flag.options[-1]: flag for flag in static.flags}
    assert by_dest["--max_length"].default == 128  # DEFAULT_MAX_LENGTH, a module-level constant
    assert by_dest["--task_name"].choices_text == "list(task_to_keys.keys())"
    assert by_dest["--no_tracking"].dest == "with_tracking"
    assert by_dest["--model_name_or_path"].required


def test_hpman_script_static_equals_exact_and_its_parser(monkeypatch):
    script = SCRIPTS / "hpman_train.py"
    exact, static = discover(script), discover(script, exact=False)
    assert exact.method == "exact" and exact.hpman and exact.hpargparse
    parser = own_parser(script, monkeypatch)
    hp_options = [flag.options[0] for flag in static.flags if flag.origin == "hpargparse"]
    assert_same(exact, parser)
    assert_same(static, parser, skip_help_of=[(option,) for option in hp_options])
    names = [flag.dest for flag in static.flags if flag.origin == "hpman"]
    assert names == ["hidden_size", "num_layers", "learning_rate", "dropout", "use_amp", "milestones", "steps",
                     "activation"]
    steps = next(flag for flag in static.flags if flag.dest == "steps")
    assert steps.default_text == "10 * 100"  # not a literal: hpman's NotLiteralEvaluable


def test_hpman_read_with_ast_when_hpman_is_missing_matches_hpmans_parser(monkeypatch):
    source, tree = read_script(SCRIPTS / "hpman_train.py")
    with_hpman = hpman_params.hyperparameters(source, tree, "_", "hpman_train.py", [])
    monkeypatch.setitem(sys.modules, "hpman", None)  # import hpman now fails
    without = hpman_params.hyperparameters(source, tree, "_", "hpman_train.py", [])
    assert [(p.name, p.default, p.default_text, p.hints) for p in without] == \
           [(p.name, p.default, p.default_text, p.hints) for p in with_hpman]
    assert [p.name for p in without][:2] == ["hidden_size", "num_layers"]


def test_subparsers_boolean_optional_and_parents(tmp_path, monkeypatch):
    script = tmp_path / "cli.py"
    script.write_text(textwrap.dedent('''
        import argparse

        common = argparse.ArgumentParser(add_help=False)
        common.add_argument("--seed", type=int, default=0)

        def main():
            parser = argparse.ArgumentParser(parents=[common], allow_abbrev=False)
            parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True)
            parser.add_argument("--sizes", type=int, nargs="+", default=(1, 2))
            parser.set_defaults(seed=7)
            sub = parser.add_subparsers(dest="command")
            train = sub.add_parser("train")
            train.add_argument("--epochs", type=int, default=3)
            group = train.add_argument_group("extra")
            group.add_argument("--hidden", type=int, default=5)
            parser.parse_args()

        if __name__ == "__main__":
            main()
    '''))
    static, exact = discover(script, exact=False), discover(script)
    assert exact.method == "exact"
    parser = own_parser(script, monkeypatch)
    parser._actions = [action for action in parser._actions if not isinstance(action, argparse._SubParsersAction)]
    assert_same(exact, parser)
    assert_same(static, parser, ordered=False)  # argparse puts -h before the flags of parents=[...]
    for discovery in (static, exact):
        assert discovery.subcommands == ["train"]
        assert any("subcommands train" in note for note in discovery.notes)
        assert discovery.allow_abbrev is False
    assert [flag.options for flag in static.flags if flag.dest == "augment"] == [["--augment", "--no-augment"]]


def test_exact_route_stops_at_parse_args_discards_output_and_refuses_network(tmp_path, capfd):
    marker, trained = tmp_path / "network.txt", tmp_path / "trained.txt"
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f'''
        import argparse, socket
        print("SCRIPT OUTPUT")
        try:
            socket.create_connection(("127.0.0.1", 9), timeout=1)
            open({str(marker)!r}, "w").write("connected")
        except OSError as exc:
            open({str(marker)!r}, "w").write(str(exc))
        parser = argparse.ArgumentParser()
        parser.add_argument("--lr", type=float, default=0.1)
        args = parser.parse_args()
        open({str(trained)!r}, "w").write("trained")
    '''))
    discovery = discover(script)
    assert discovery.method == "exact"
    assert [flag.options for flag in discovery.parameters] == [["--lr"]]
    assert "disabled" in marker.read_text()
    assert not trained.exists()
    assert "SCRIPT OUTPUT" not in capfd.readouterr().out


def test_exact_route_time_limit_falls_back_to_static(tmp_path):
    script = tmp_path / "slow.py"
    script.write_text("import argparse, time\ntime.sleep(60)\np = argparse.ArgumentParser()\n"
                      "p.add_argument('--lr', type=float, default=0.1)\np.parse_args()\n")
    started = time.monotonic()
    discovery = discover(script, timeout=1)
    assert time.monotonic() - started < 30
    assert discovery.method == "static"
    assert "within 1 s" in discovery.notes[0]
    assert [flag.options for flag in discovery.parameters] == [["--lr"]]


def test_script_errors_are_one_line(tmp_path):
    with pytest.raises(ScriptError, match="no such file"):
        discover(tmp_path / "missing.py")
    bad = tmp_path / "bad.py"
    bad.write_text("def f(:\n")
    with pytest.raises(ScriptError, match=r"bad.py: syntax error in line 1"):
        discover(bad)


def test_flags_handed_to_another_module_make_the_reading_incomplete(tmp_path):
    shutil.copy(SCRIPTS / "toy_train.py", tmp_path / "toy_train.py")
    script = tmp_path / "train.py"
    script.write_text("import argparse\nfrom helpers import add_model_args\n"
                      "parser = argparse.ArgumentParser()\nadd_model_args(parser)\n"
                      "parser.add_argument('--lr', type=float, default=0.1)\nparser.parse_args()\n")
    discovery = discover(script, exact=False)
    assert not discovery.complete
    assert any("add_model_args(parser)" in note for note in discovery.notes)


def test_timm_style_config_parser_then_main_parser(tmp_path, monkeypatch):
    """The first parse is the config parser's parse_known_args; the flags are those of both parsers."""
    script = SCRIPTS / "timm_train.py"
    static = discover(script)
    assert static.method == "static"  # torch and yaml are missing here
    stubs = write_stubs(tmp_path / "stubs")
    (stubs / "yaml.py").write_text(STUB)
    monkeypatch.setenv("PYTHONPATH", str(stubs))
    exact = discover(script)
    assert exact.method == "exact", exact.notes
    monkeypatch.syspath_prepend(str(stubs))
    config_parser = own_parser(script, monkeypatch, attribute="config_parser")
    main_parser = own_parser(script, monkeypatch, attribute="parser")
    both = argparse.ArgumentParser(add_help=False)
    both._actions = [*config_parser._actions, *main_parser._actions]
    for discovery in (static, exact):
        assert_same(discovery, both)
    by_dest = {flag.dest: flag for flag in static.flags}
    assert by_dest["scale"].default == [0.08, 1.0] and by_dest["scale"].nargs == "+"
    assert by_dest["decay_rate"].options == ["--decay-rate", "--dr"]
    assert by_dest["data"].options == [] and not by_dest["data"].required


def test_parser_subclass_from_another_module_exact_only(tmp_path, monkeypatch):
    """HuggingFace's HfArgumentParser adds flags from dataclasses: only the running parser shows them."""
    (tmp_path / "hfargs.py").write_text(textwrap.dedent('''
        import argparse, dataclasses

        class DataclassArgumentParser(argparse.ArgumentParser):
            def __init__(self, types):
                super().__init__()
                for kind in types:
                    for item in dataclasses.fields(kind):
                        self.add_argument(f"--{item.name}", type=item.type, default=item.default)

            def parse_args_into_dataclasses(self):
                return self.parse_known_args()
    '''))
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent('''
        import dataclasses
        from hfargs import DataclassArgumentParser

        @dataclasses.dataclass
        class TrainingArguments:
            learning_rate: float = 5e-5
            output_dir: str = "out"

        def main():
            parser = DataclassArgumentParser((TrainingArguments,))
            parser.parse_args_into_dataclasses()

        if __name__ == "__main__":
            main()
    '''))
    static, exact = discover(script, exact=False), discover(script)
    assert not static.complete and "DataclassArgumentParser" in static.notes[0]
    assert exact.method == "exact"
    assert [flag.options for flag in exact.parameters] == [["--learning_rate"], ["--output_dir"]]
    assert [flag.default for flag in exact.parameters] == [5e-5, "out"]
    assert_same(exact, own_parser(script, monkeypatch))
