"""``hpsearch init`` end to end: the module it writes, its refusals, and a real search run from it as written;
and the check of grid keys against the script's flags before a search starts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from hpsearch.gridmodule import load_grid_module

SCRIPTS = Path(__file__).resolve().parent / "scripts" / "init"


def hpsearch(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, "-m", "hpsearch", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def project(tmp_path: Path, *scripts: str) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    for name in scripts:
        shutil.copy(SCRIPTS / name, folder / name)
    return folder


def test_init_writes_a_module_whose_one_configuration_is_the_defaults(tmp_path):
    folder = project(tmp_path, "toy_train.py")
    result = hpsearch("init", "toy_train.py", cwd=folder)
    assert result.returncode == 0, result.stderr
    module = folder / "hpsearch_toy_train.py"
    assert f"wrote {module.name}" in result.stdout
    text = module.read_text()
    assert "_OUT_ARG = 'output-dir'" in text
    assert "_SUMMARY_KEYWORDS = ['acc_test', 'loss_test', 'finished']" in text
    assert "# 'epochs': [3],  # int; default: 3; passes over the data" in text
    assert "# 'use-bias': [False],  # store_true: True passes --use-bias; add a bias term" in text
    spec = load_grid_module(str(module))
    assert spec.grid == {"learning-rate": [0.1], "batch-size": [16], "optimizer": ["sgd"], "weight_decay": [0.0],
                         "seed": [0]}
    assert spec.script_name == "toy_train.py" and spec.out_arg == "output-dir"
    listing = hpsearch("--grid_module=hpsearch_toy_train.py", "--list", "--format=json", cwd=folder)
    assert listing.returncode == 0, listing.stderr
    configs = json.loads(listing.stdout)["configurations"]
    assert len(configs) == 1
    assert configs[0]["flags"] == ["--learning-rate=0.1", "--batch-size=16", "--optimizer=sgd",
                                   "--weight_decay=0.0", "--seed=0"]
    assert "warning" not in listing.stderr


def test_generated_module_runs_a_real_search_as_written(tmp_path):
    folder = project(tmp_path, "toy_train.py")
    assert hpsearch("init", "toy_train.py", "--out", "grid_toy.py", cwd=folder).returncode == 0
    result = hpsearch("--grid_module=grid_toy.py", "--visible_gpus=-1", "--out_dir=out", "--force_out_dir",
                      cwd=folder)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(folder / "out" / "search_results.csv", sep=";")
    assert list(table["status"]) == ["done"]
    assert table["acc_test"][0] == pytest.approx(1 / (1 + 1 + 1 / 16))
    run = json.loads(next((folder / "out").glob("sim_*/hpsearch_run.json")).read_text())
    assert run["argv"][2:] == ["--learning-rate=0.1", "--batch-size=16", "--optimizer=sgd", "--weight_decay=0.0",
                               "--seed=0", f"--output-dir={folder / 'out' / Path(run['argv'][-1]).name}"]


def test_hpman_module_runs_with_the_hpman_style_and_stdout_json(tmp_path):
    folder = project(tmp_path, "hpman_train.py")
    result = hpsearch("init", "hpman_train.py", cwd=folder)
    assert result.returncode == 0, result.stderr
    text = (folder / "hpsearch_hpman_train.py").read_text()
    assert "_ARG_STYLE = 'hpman'" in text
    assert "'hp-exit'" not in text  # hpargparse's own options are no hyperparameters
    module = text.replace("'dropout': [0.1]", "'dropout': [0.1, 0.3]")
    (folder / "hpsearch_hpman_train.py").write_text(module)
    run = hpsearch("--grid_module=hpsearch_hpman_train.py", "--visible_gpus=-1", "--out_dir=out",
                   "--force_out_dir", "--deterministic_search", cwd=folder)
    assert run.returncode == 0, run.stderr
    assert "warning" not in run.stderr  # hpman's names are spelled as hpargparse's flags
    table = pd.read_csv(folder / "out" / "search_results.csv", sep=";").sort_values("dropout")
    assert list(table["status"]) == ["done", "done"]
    assert list(table["val_acc"]) == pytest.approx([0.1 + 0.1, 0.1 + 0.3])  # the values reached the script


def test_script_without_torch_gets_a_static_module_with_a_note(tmp_path):
    folder = project(tmp_path, "mnist_main.py")
    result = hpsearch("init", "mnist_main.py", cwd=folder)
    assert result.returncode == 0, result.stderr
    text = (folder / "hpsearch_mnist_main.py").read_text()
    assert "Its flags were found by reading the script's source." in text
    assert "No module named 'torch'" in text
    assert "'lr': [1.0],  # try [10.0, 1.0, 0.1]" in text
    assert "TODO: no output-folder flag was found" in text
    assert "warning: no output-folder flag found" in result.stderr
    assert "warning: no metrics were recognised" in result.stderr
    spec = load_grid_module(str(folder / "hpsearch_mnist_main.py"))
    assert spec.grid == {"batch-size": [64], "lr": [1.0], "seed": [1]}


def test_required_flag_and_json_file_metrics(tmp_path):
    folder = project(tmp_path, "hf_glue_no_trainer.py")
    result = hpsearch("init", "hf_glue_no_trainer.py", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert "requires --model_name_or_path" in result.stderr
    spec = load_grid_module(str(folder / "hpsearch_hf_glue_no_trainer.py"))
    assert spec.grid["model_name_or_path"] == ["TODO"]
    assert spec.metrics.source == "json_file" and spec.metrics.file == "all_results.json"
    assert spec.summary_keywords == ["eval_accuracy", "train_loss"] and spec.out_arg == "output_dir"


def test_existing_file_is_kept_without_force(tmp_path):
    folder = project(tmp_path, "toy_train.py")
    (folder / "hpsearch_toy_train.py").write_text("mine\n")
    result = hpsearch("init", "toy_train.py", cwd=folder)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["hpsearch init: error: hpsearch_toy_train.py exists; pass --force "
                                                  "to replace it"]
    assert (folder / "hpsearch_toy_train.py").read_text() == "mine\n"
    assert hpsearch("init", "toy_train.py", "--force", cwd=folder).returncode == 0
    assert (folder / "hpsearch_toy_train.py").read_text().startswith('"""Grid module for toy_train.py')


@pytest.mark.parametrize("content, message", [
    (None, "missing.py: no such file"),
    ("def f(:\n", "missing.py: syntax error in line 1"),
])
def test_bad_script_is_one_line_and_writes_nothing(tmp_path, content, message):
    folder = project(tmp_path)
    if content is not None:
        (folder / "missing.py").write_text(content)
    result = hpsearch("init", "missing.py", cwd=folder)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"hpsearch init: error: {message}")
    assert sorted(path.name for path in folder.iterdir()) == (["missing.py"] if content else [])


def test_script_without_parser_gets_a_module_with_a_todo_and_a_warning(tmp_path):
    folder = project(tmp_path)
    (folder / "plain.py").write_text("print('training')\n")
    result = hpsearch("init", "plain.py", cwd=folder)
    assert result.returncode == 0
    assert "warning: plain.py: no argument parser found" in result.stderr
    text = (folder / "hpsearch_plain.py").read_text()
    assert "# TODO: no flags were found" in text
    compile(text, "hpsearch_plain.py", "exec")


# --------------------------------------------------------------------------- the check before a search


def typo_project(tmp_path: Path, grid: dict, script: str = "toy_train.py") -> Path:
    folder = project(tmp_path, script)
    (folder / "grid.py").write_text(
        f"grid = {grid!r}\nconditions = []\n_SCRIPT_NAME = {script!r}\n_OUT_ARG = 'output-dir'\n"
        "_SUMMARY_FILENAME = 'performance_overview.txt'\n_SUMMARY_KEYWORDS = ['acc_test', 'finished']\n")
    return folder


def test_unknown_grid_key_gets_one_warning_with_did_you_mean(tmp_path):
    folder = typo_project(tmp_path, {"learning_rate": [0.1], "batch-size": [8], "lr": [0.2]})
    result = hpsearch("--grid_module=grid.py", "--list", cwd=folder)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 2
    assert warnings[0].endswith("grid key 'learning_rate' gives --learning_rate, which toy_train.py does not "
                                "accept (did you mean --learning-rate?)")
    assert warnings[1].endswith("grid key 'lr' gives --lr, which toy_train.py does not accept "
                                "(did you mean --learning-rate?)")


def test_strict_flags_refuses_before_anything_is_created(tmp_path):
    folder = typo_project(tmp_path, {"learning_rate": [0.1]})
    result = hpsearch("--grid_module=grid.py", "--visible_gpus=-1", "--out_dir=out", "--strict_flags", cwd=folder)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "refused because of --strict_flags" in lines[0] and "--learning-rate?" in lines[0]
    assert not (folder / "out").exists()


def test_wrong_out_arg_is_reported_too(tmp_path):
    folder = typo_project(tmp_path, {"seed": [1]})
    module = (folder / "grid.py").read_text().replace("'output-dir'", "'output_dir'")
    (folder / "grid.py").write_text(module)
    result = hpsearch("--grid_module=grid.py", "--list", cwd=folder)
    assert "_OUT_ARG 'output_dir' gives --output_dir=RUN_FOLDER, which toy_train.py does not accept " \
           "(did you mean --output-dir?)" in result.stderr


def test_scripts_whose_flags_cannot_be_discovered_get_no_warning(tmp_path):
    folder = typo_project(tmp_path, {"anything": [1]})
    (folder / "toy_train.py").write_text("import argparse\nfrom helpers import add_args\n"
                                         "parser = argparse.ArgumentParser()\nadd_args(parser)\nparser.parse_args()\n")
    result = hpsearch("--grid_module=grid.py", "--list", cwd=folder)
    assert result.returncode == 0 and "warning" not in result.stderr
    (folder / "toy_train.py").write_text("import sys\nprint(sys.argv)\n")
    result = hpsearch("--grid_module=grid.py", "--list", cwd=folder)
    assert result.returncode == 0 and "warning" not in result.stderr


def test_static_option_and_a_script_in_a_subfolder(tmp_path):
    folder = project(tmp_path)
    (folder / "src").mkdir()
    shutil.copy(SCRIPTS / "hf_glue_no_trainer.py", folder / "src" / "run_glue.py")
    result = hpsearch("init", "src/run_glue.py", "--static", cwd=folder)
    assert result.returncode == 0, result.stderr
    text = (folder / "hpsearch_run_glue.py").read_text()
    assert "Its flags were found by reading the script's source." in text
    assert "Note:" not in text  # the exact route was not tried, so there is nothing to explain
    assert load_grid_module(str(folder / "hpsearch_run_glue.py")).script_name == "src/run_glue.py"


def test_required_positional_argument_is_a_warning(tmp_path):
    folder = project(tmp_path)
    (folder / "train.py").write_text("import argparse\np = argparse.ArgumentParser()\np.add_argument('data')\n"
                                     "p.add_argument('--lr', type=float, default=0.1)\np.add_argument('--out_dir')\n"
                                     "p.parse_args()\n")
    result = hpsearch("init", "train.py", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert "the script requires positional argument data, which no grid key can give" in result.stderr
    assert load_grid_module(str(folder / "hpsearch_train.py")).grid == {"lr": [0.1]}


def test_boolean_optional_script_gets_the_argparse_style_and_its_lists_run(tmp_path):
    folder = project(tmp_path)
    (folder / "train.py").write_text(
        "import argparse, json, os\n"
        "p = argparse.ArgumentParser()\n"
        "p.add_argument('--lr', type=float, default=0.1)\n"
        "p.add_argument('--augment', action=argparse.BooleanOptionalAction, default=True)\n"
        "p.add_argument('--layers', type=int, nargs='+', default=[4])\n"
        "p.add_argument('--save-dir', default='.')\n"
        "a = p.parse_args()\n"
        "with open(os.path.join(a.save_dir, 'metrics.json'), 'w') as f:\n"
        "    json.dump({'val_loss': a.lr + sum(a.layers), 'augmented': a.augment}, f)\n")
    assert hpsearch("init", "train.py", cwd=folder).returncode == 0
    module = folder / "hpsearch_train.py"
    text = module.read_text()
    assert "_ARG_STYLE = 'argparse'" in text and "_OUT_ARG = 'save-dir'" in text
    assert "# 'layers': [[4]],  # int; default: [4]; nargs='+'" in text
    module.write_text(text.replace("# 'layers': [[4]],", "'layers': [[1, 2]],").replace(
        "# 'augment': [True],", "'augment': [False],"))
    result = hpsearch("--grid_module=hpsearch_train.py", "--visible_gpus=-1", "--out_dir=out", "--force_out_dir",
                      cwd=folder)
    assert result.returncode == 0, result.stderr
    row = pd.read_csv(folder / "out" / "search_results.csv", sep=";").iloc[0]
    assert (row["status"], row["val_loss"], row["augmented"]) == ("done", pytest.approx(3.1), False)
