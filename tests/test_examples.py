"""Every folder of examples/ runs its search as examples/README.md says, on a copy (issue 14)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import env_without_gpus, read_results, run_hpsearch

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
COMMAND = ["--grid_module=hpsearch_config", "--visible_gpus=-1", "--num_jobs=2", "--out_dir=out", "--force_out_dir",
           "--dont_force_new_dir"]
METRIC = {"toy": "val_acc", "argparse": "loss", "hpman": "loss", "hydra": "loss", "json": "loss", "yaml": "loss",
          "gin": "loss"}


def test_every_example_is_listed_in_the_readme():
    folders = sorted(path.name for path in EXAMPLES.iterdir() if (path / "hpsearch_config.py").is_file())
    assert folders == sorted(METRIC)
    readme = (EXAMPLES / "README.md").read_text()
    assert all(f"[`{name}/`]({name})" in readme for name in folders)
    assert "python -m hpsearch " + " ".join(COMMAND) in readme


@pytest.mark.parametrize("name", sorted(METRIC))
def test_example_runs_as_written(tmp_path, name):
    folder = tmp_path / name
    shutil.copytree(EXAMPLES / name, folder, ignore=shutil.ignore_patterns("out", "__pycache__"))
    result = run_hpsearch(COMMAND, folder, env=env_without_gpus(), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    table = read_results(folder / "out")
    assert set(table["status"]) == {"done"} and table[METRIC[name]].notna().all()
