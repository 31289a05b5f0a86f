"""``_ARG_STYLE``: every style end to end with a real consumer (argparse, Hydra, gin-config,
hpman/hpargparse, a JSON/YAML config reader), the renderers against the real parsers, and
the refusals before anything is created (issue 14)."""

from __future__ import annotations

import json
import math
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hpsearch.argstyle import ArgStyle, StyleError, arg_style, gin_value, hydra_value
from hpsearch.errors import GridModuleError
from hpsearch.gridmodule import load_grid_module
from tests.cluster_fixtures import cluster_args
from tests.helpers import env_without_gpus, read_results, run_folders, run_hpsearch

CONSUMERS = Path(__file__).resolve().parent / "consumers"
NASTY = "a b; $(touch pwned) \"q\" 'd' \\ end\\"
"""Spaces, shell syntax, both quotes and backslashes (also one before the end)."""
FLAGS = ("--force_out_dir", "--dont_force_new_dir", "--deterministic_search", "--visible_gpus=-1", "--num_jobs=2")


def project(tmp_path: Path, script: str, grid: dict, **attributes: Any) -> Path:
    """A project folder with the consumer ``script`` (a file or a folder) and a grid module."""
    folder = tmp_path / "project"
    folder.mkdir()
    source = CONSUMERS / script
    if source.is_dir():
        shutil.copytree(source, folder / script)
    else:
        shutil.copy(source, folder / script)
    lines = [f"grid = {grid!r}", "conditions = []"]
    lines += [f"{name} = {value!r}" for name, value in attributes.items()]
    (folder / "grid_cfg.py").write_text("\n".join(lines) + "\n")
    return folder


def search(folder: Path, out: Path, *extra: str) -> None:
    result = run_hpsearch(["--grid_module=grid_cfg", f"--out_dir={out}", *FLAGS, *extra], folder,
                          env=env_without_gpus(), timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (folder / "pwned").exists()


def received(run_dir: Path) -> tuple[dict, dict]:
    """(the configuration hpsearch recorded, what the script's library handed its training code)."""
    config = json.loads((run_dir / "hpsearch_run.json").read_text())["config"]
    return config, json.loads((run_dir / "received.json").read_text())


def test_argparse_script_gets_every_value_as_configured(tmp_path):
    grid = {"learning-rate": [1e-05], "run-name": [NASTY, "-starts with a dash"], "use-bias": [True, False],
            "layers": [[1, 2, 3]], "epochs": [3]}
    folder = project(tmp_path, "argparse_train.py", grid, _SCRIPT_NAME="argparse_train.py", _ARG_STYLE="argparse",
                     _METRICS={"source": "stdout_json", "keys": ["val_acc"]})
    out = tmp_path / "search"
    search(folder, out)
    runs = run_folders(out)
    assert len(runs) == 4
    for run_dir in runs:
        config, got = received(run_dir)
        assert got == {key.replace("-", "_"): value for key, value in config.items()}
        assert isinstance(got["learning_rate"], float) and got["learning_rate"] == 1e-05
        argv = json.loads((run_dir / "hpsearch_run.json").read_text())["argv"]
        assert ("--use-bias" if config["use-bias"] else "--no-use-bias") in argv
        assert argv[-1] == f"--out_dir={run_dir}"
    table = read_results(out)
    assert set(table["status"]) == {"done"} and list(table["val_acc"]) == pytest.approx([3e-05] * 4)


def test_hpman_script_gets_every_value_through_hpargparse(tmp_path):
    grid = {"learning_rate": [1e-05], "run_name": [NASTY], "use_bias": [True, False], "layers": [[1, 2]],
            "epochs": [3]}
    folder = project(tmp_path, "hpman_train.py", grid, _SCRIPT_NAME="hpman_train.py", _ARG_STYLE="hpman",
                     _METRICS={"source": "stdout_regex", "patterns": [r"val_acc=(?P<val_acc>\S+)"]})
    out = tmp_path / "search"
    search(folder, out)
    runs = run_folders(out)
    assert len(runs) == 2
    for run_dir in runs:
        config, got = received(run_dir)
        assert got == config
        argv = json.loads((run_dir / "hpsearch_run.json").read_text())["argv"]
        assert f"--run-name={NASTY}" in argv and "--learning-rate=1e-05" in argv
    assert set(read_results(out)["status"]) == {"done"}


def test_hydra_app_composes_the_configured_overrides(tmp_path):
    grid = {"model.learning_rate": [1e-05], "model.name": [NASTY, "true"], "train.use_bias": [True, False],
            "model.layers": [[1, 2]], "train.epochs": [2], "+extra.seed": [7], "+extra.tags": [["x y", "z"]]}
    folder = project(tmp_path, "hydra_app", grid, _SCRIPT_NAME="hydra_app/app.py", _ARG_STYLE="hydra",
                     _METRICS={"source": "stdout_regex", "patterns": [r"val_acc=(?P<val_acc>\S+)"]})
    out = tmp_path / "search with space"
    search(folder, out)
    runs = run_folders(out)
    assert len(runs) == 4
    for run_dir in runs:
        config, got = received(run_dir)
        assert got["output_dir"] == str(run_dir)  # hydra.run.dir: Hydra's output folder is the run folder
        assert (run_dir / ".hydra" / "overrides.yaml").is_file()
        composed = got["config"]
        for key, value in config.items():
            node = composed
            for part in key.lstrip("+").split("."):
                node = node[part]
            assert node == value and type(node) is type(value), key
    table = read_results(out)
    assert set(table["status"]) == {"done"}
    assert "+extra.seed" in table.columns and not (folder / "outputs").exists()


def test_gin_script_gets_the_bindings_of_its_config_file(tmp_path):
    grid = {"model.d_model": [512], "model.name": [NASTY], "model.layers": [[1, 2]],
            "train.learning_rate": [1e-05], "train.use_bias": [True, False], "train.optimizer": ["@Adam"]}
    folder = project(tmp_path, "gin_train.py", grid, _SCRIPT_NAME="gin_train.py", _ARG_STYLE="gin",
                     _METRICS={"source": "json_file", "file": "metrics.json", "keys": ["val_acc"]})
    out = tmp_path / "search"
    search(folder, out)
    runs = run_folders(out)
    assert len(runs) == 2
    for run_dir in runs:
        config, got = received(run_dir)
        for key, value in config.items():
            configurable, parameter = key.split(".")
            expected = "Adam" if value == "@Adam" else value
            assert got[configurable][parameter] == expected, key
        argv = json.loads((run_dir / "hpsearch_run.json").read_text())["argv"]
        assert argv[2:4] == ["--gin_file", str(run_dir / "config.gin")]
        assert "model.d_model = 512\n" in (run_dir / "config.gin").read_text()
    table = read_results(out)
    assert set(table["status"]) == {"done"} and list(table["val_acc"]) == pytest.approx([512e-05] * 2)


@pytest.mark.parametrize("style", ["json", "yaml"])
def test_config_file_styles_write_the_file_the_script_reads(tmp_path, style):
    grid = {"learning_rate": [1e-05], "name": [NASTY], "flag": [True, False], "layers": [[1, 2]],
            "nothing": [None]}
    folder = project(tmp_path, "config_train.py", grid, _SCRIPT_NAME="config_train.py",
                     _ARG_STYLE={"style": style, "flag": "--config"},
                     _METRICS={"source": "json_file", "file": "metrics.jsonl", "keys": ["val_acc"]})
    out = tmp_path / "search"
    search(folder, out)
    runs = run_folders(out)
    assert len(runs) == 2
    for run_dir in runs:
        config, got = received(run_dir)
        assert got == config
        assert (run_dir / f"config.{style}").is_file()
    table = read_results(out)
    assert set(table["status"]) == {"done"}
    assert list(table["val_acc"]) == pytest.approx([3e-05] * 2) and list(table["epoch"]) == [3, 3]


def test_cluster_job_script_carries_the_same_argv_and_the_config_file_exists(tmp_path, fake_lsf):
    grid = {"model.d_model": [8], "model.name": [NASTY], "train.learning_rate": [0.5], "train.use_bias": [True]}
    folder = project(tmp_path, "gin_train.py", grid, _SCRIPT_NAME="gin_train.py", _ARG_STYLE="gin",
                     _METRICS={"source": "json_file", "file": "metrics.json", "keys": ["val_acc"]})
    out = tmp_path / "search"
    result = run_hpsearch(cluster_args(out, "lsf", "--num_jobs=1", f"--python={sys.executable}"), folder,
                          timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    [run_dir] = run_folders(out)
    argv = json.loads((run_dir / "hpsearch_run.json").read_text())["argv"]
    assert shlex.join(argv) in (run_dir / "job.sh").read_text()
    config, got = received(run_dir)
    assert got["model"]["name"] == NASTY and got["train"]["use_bias"] is True
    assert read_results(out)["val_acc"].tolist() == [4.0]


# --------------------------------------------------------------------------- the renderers against real parsers


hydra_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3), max_leaves=6)


@settings(max_examples=300, deadline=None)
@given(hydra_values)
@example("tail\\")
@example("q\\'x\\\\")
@example(["it's", "a,b", "[x]", "", "true", "1e-05"])
def test_hydra_values_parse_back_with_hydras_own_override_parser(value):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    override = OverridesParser.create().parse_override(f"key={hydra_value(value)}")
    assert same(override.value(), value)


def same(got: Any, want: Any) -> bool:
    """Equal, with the same types (``1`` is not ``1.0`` or ``True``), NaN equal to NaN."""
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(same, got, want))
    if isinstance(want, float) and math.isnan(want):
        return isinstance(got, float) and math.isnan(got)
    return type(got) is type(want) and got == want


gin_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12).filter(lambda text: not text.startswith(("@", "%"))),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=2),
    max_leaves=6)


@settings(max_examples=300, deadline=None)
@given(gin_values)
def test_gin_values_parse_back_with_gins_own_parser(value):
    import gin
    from gin import config_parser

    [statement] = list(config_parser.ConfigParser(f"train.value = {gin_value(value)}\n",
                                                  gin.config.ParserDelegate(skip_unknown=True)))
    assert statement.value == value and same_types(statement.value, value)


def same_types(got: Any, want: Any) -> bool:
    if isinstance(want, dict):
        return all(same_types(got[key], item) for key, item in want.items())
    if isinstance(want, list):
        return all(map(same_types, got, want))
    return type(got) is type(want)


def test_argv_of_each_style():
    config = {"lr": 1e-05, "name": "a b", "adam": True, "sgd": False, "layers": [1, 2]}
    argv = {name: ArgStyle(name, flag).argv("py", "t.py", config, out_arg="out_dir", run_dir="/r")[2:]
            for name, flag in [("hypnettorch", ""), ("argparse", ""), ("hpman", ""), ("gin", "--gin_file")]}
    assert argv["hypnettorch"] == ["--lr=1e-05", "--name=a b", "--adam", "--layers=[1, 2]", "--out_dir=/r"]
    assert argv["argparse"] == ["--lr=1e-05", "--name=a b", "--adam", "--no-sgd", "--layers", "1", "2",
                                "--out_dir=/r"]
    assert argv["hpman"] == ["--lr=1e-05", "--name=a b", "--adam=true", "--sgd=false", "--layers=[1, 2]",
                             "--out_dir=/r"]
    assert argv["gin"] == ["--gin_file", "/r/config.gin", "--out_dir=/r"]
    hydra = ArgStyle("hydra").argv("py", "t.py", config, out_arg="hydra.run.dir", run_dir="/r")[2:]
    assert hydra == ["lr=1e-05", "name='a b'", "adam=true", "sgd=false", "layers=[1,2]", "hydra.run.dir='/r'"]
    assert ArgStyle("gin").file_text({"T.d_model": 512, "T.name": "it's", "T.ref": "@Adam"}) == (
        "T.d_model = 512\nT.name = \"it's\"\nT.ref = @Adam\n")


# --------------------------------------------------------------------------- refusals


def write_module(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "grid_cfg.py"
    path.write_text("grid = {'lr': [0.1]}\nconditions = []\n_SCRIPT_NAME = 'train.py'\n"
                    "_SUMMARY_FILENAME = 'summary.txt'\n_SUMMARY_KEYWORDS = ['acc', 'finished']\n" + body)
    return path


@pytest.mark.parametrize("body, message", [
    ("_ARG_STYLE = 'click'", "attribute _ARG_STYLE: style must be one of hypnettorch, argparse"),
    ("_ARG_STYLE = 3", "attribute _ARG_STYLE: must be a style name or a dict"),
    ("_ARG_STYLE = {'style': 'json', 'flag': 'config'}", "attribute _ARG_STYLE: 'flag' must be a flag"),
    ("_ARG_STYLE = {'style': 'argparse', 'flag': '--x'}", "unknown option 'flag' for style 'argparse'"),
    ("_ARG_STYLE = 'gin'\ngrid = {'no-binding!': [1]}", "is not a gin binding"),
    ("_ARG_STYLE = 'hydra'\ngrid = {'a..b': [1]}", "is not a Hydra override key"),
    ("_METRICS = 'stdout'", "attribute _METRICS: must be a dict"),
    ("_METRICS = {'source': 'csv'}", "attribute _METRICS: 'source' must be one of"),
    ("_METRICS = {'source': 'stdout_json'}", "attribute _METRICS: 'keys' must be a non-empty list"),
    ("_METRICS = {'source': 'json_file', 'file': '../x.json', 'keys': ['a']}", "path inside the run folder"),
    ("_METRICS = {'source': 'json_file', 'file': 'x.txt', 'keys': ['a']}", "must end in .json or .jsonl"),
    ("_METRICS = {'source': 'stdout_regex', 'patterns': ['acc=(\\\\S+)']}", "has no named group"),
    ("_METRICS = {'source': 'stdout_regex', 'patterns': ['(?P<a>']}", "is not a valid regular expression"),
    ("_METRICS = {'source': 'stdout_regex', 'patterns': ['(?P<a>x)'], 'take': {'b': 'all'}}", "'take' names 'b'"),
    ("_METRICS = {'source': 'stdout_json', 'keys': ['a'], 'file': 'x.json'}", "unknown entry 'file'"),
    ("_METRICS = {'source': 'stdout_json', 'keys': ['a']}\n_PERFORMANCE_KEY = 'b'", "is not in the keys of _METRICS"),
    ("_METRICS = {'source': 'stdout_json', 'keys': ['a']}\n_SUMMARY_PARSER_HANDLE = print",
     "_METRICS and _SUMMARY_PARSER_HANDLE"),
])
def test_bad_attributes_are_one_line_naming_the_file(tmp_path, body, message):
    path = write_module(tmp_path, body)
    with pytest.raises(GridModuleError) as caught:
        load_grid_module(str(path))
    assert message in str(caught.value) and str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_bad_value_for_the_style_exits_2_before_anything_is_created(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "train.py").write_text("")
    (folder / "grid_cfg.py").write_text("grid = {'T.x': [float('nan')]}\nconditions = []\n_SCRIPT_NAME = 'train.py'\n"
                                        "_ARG_STYLE = 'gin'\n_METRICS = {'source': 'stdout_json', 'keys': ['a']}\n")
    out = tmp_path / "out"
    result = run_hpsearch(["--grid_module=grid_cfg", f"--out_dir={out}", "--visible_gpus=-1"], folder,
                          env=env_without_gpus())
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "_ARG_STYLE 'gin': gin has no literal for nan" in line and "grid_cfg.py" in line
    assert not out.exists()


def test_metrics_make_the_summary_attributes_optional(tmp_path):
    path = tmp_path / "grid_cfg.py"
    path.write_text("grid = {'lr': [0.1]}\nconditions = []\n_SCRIPT_NAME = 'train.py'\n"
                    "_METRICS = {'source': 'stdout_regex', 'patterns': [r'acc=(?P<acc>\\S+) loss=(?P<loss>\\S+)']}\n")
    spec = load_grid_module(str(path))
    assert spec.summary_keywords == ["acc", "loss"] and spec.performance_key == "acc"
    assert spec.settings()["metrics"]["source"] == "stdout_regex"
    for metrics in ("", "_METRICS = {'source': 'summary'}\n"):
        path.write_text(f"grid = {{'lr': [0.1]}}\nconditions = []\n_SCRIPT_NAME = 'train.py'\n{metrics}")
        with pytest.raises(GridModuleError, match="missing attribute _SUMMARY_FILENAME, _SUMMARY_KEYWORDS"):
            load_grid_module(str(path))


def test_yaml_without_pyyaml_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(StyleError, match="needs PyYAML"):
        arg_style("yaml")


def test_list_shows_the_words_of_the_style(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "grid_cfg.py").write_text("grid = {'optim.lr': [1e-05], 'name': ['a b'], '+seed': [1]}\n"
                                        "conditions = []\n_SCRIPT_NAME = 'app.py'\n_ARG_STYLE = 'hydra'\n"
                                        "_METRICS = {'source': 'stdout_json', 'keys': ['a']}\n")
    result = run_hpsearch(["--grid_module=grid_cfg", "--list", "--format=json"], folder, env=env_without_gpus())
    assert result.returncode == 0, result.stderr
    [item] = json.loads(result.stdout)["configurations"]
    assert item["flags"] == ["optim.lr=1e-05", "name='a b'", "+seed=1"]
