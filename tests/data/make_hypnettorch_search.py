"""Make tests/data/hypnettorch_search/ by running hypnettorch 0.0.4's own hpsearch (not ours).

    python tests/data/make_hypnettorch_search.py /tmp/hnt/x

The argument is a folder holding the unpacked hypnettorch wheel (its ``hypnettorch``
package). hypnettorch.utils.misc imports torch and matplotlib at module level but the
search never uses them, so empty stand-ins are put first on PYTHONPATH. The runs: lr x
opt x random_seed (12); opt 'bad' with seed 2 exits 3 after making its folder (no
summary), lr 0.01 with opt 'bad' and seed 3 writes 'finished 0'; loss is written as
2.5e-05-style numbers, which hypnettorch's CSV mangles and the summary files keep.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = HERE / "hypnettorch_search"

GRID = '''
grid = {"lr": [0.01, 0.1], "opt": ["adam", "bad"], "random_seed": [1, 2, 3]}
conditions = []
_SCRIPT_NAME = "train.py"
_SUMMARY_FILENAME = "performance_overview.txt"
_SUMMARY_KEYWORDS = ["acc", "acc_per_epoch", "loss", "finished"]
_OUT_ARG = "out_dir"
_SUMMARY_PARSER_HANDLE = None
_PERFORMANCE_KEY = "acc"
_PERFORMANCE_SORT_ASC = False
_PERFORMANCE_EVAL_HANDLE = None
_ARGPARSE_HANDLE = None
'''

TRAIN = '''
import argparse, os, sys
p = argparse.ArgumentParser()
p.add_argument("--out_dir"); p.add_argument("--lr", type=float); p.add_argument("--opt")
p.add_argument("--random_seed", type=int)
a = p.parse_args()
os.makedirs(a.out_dir, exist_ok=True)
if a.opt == "bad" and a.random_seed == 2:
    sys.exit(3)
acc = round(0.5 + a.lr + 0.01 * a.random_seed - 0.2 * (a.opt == "bad"), 4)
curve = [round(acc * (i + 1) / 3, 4) for i in range(1 + a.random_seed)]
finished = 0 if (a.opt == "bad" and a.lr == 0.01 and a.random_seed == 3) else 1
with open(os.path.join(a.out_dir, "performance_overview.txt"), "w") as f:
    f.write(f"acc {acc}\\nacc_per_epoch {' '.join(map(str, curve))}\\nloss {a.random_seed * 2.5}e-05\\n"
            f"finished {finished}\\n")
'''


def main() -> int:
    hypnettorch_root = Path(sys.argv[1]).resolve()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        stubs = work / "stubs"
        for package in ("torch", "torch/nn", "matplotlib"):
            (stubs / package).mkdir(parents=True, exist_ok=True)
        (stubs / "torch" / "__init__.py").write_text("from . import nn\n")
        (stubs / "torch" / "nn" / "__init__.py").write_text("")
        (stubs / "matplotlib" / "__init__.py").write_text("def use(*a, **k):\n    pass\n")
        (stubs / "matplotlib" / "pyplot.py").write_text("")
        (work / "hnt_grid.py").write_text(GRID)
        (work / "train.py").write_text(TRAIN)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(work), str(stubs), str(hypnettorch_root)]))
        subprocess.run([sys.executable, "-m", "hypnettorch.hpsearch.hpsearch", "--grid_module=hnt_grid",
                        "--visible_gpus=-1", "--out_dir=out/hnt_search", "--force_out_dir", "--run_cwd=.",
                        "--random_seed=1"], cwd=work, env=env, check=True)
        if TARGET.exists():
            shutil.rmtree(TARGET)
        shutil.copytree(work / "out" / "hnt_search", TARGET)
    print(TARGET)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
