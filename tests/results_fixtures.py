"""Search folders for the results tests: real small searches run by the CLI, and large ones built
through the store API."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

from hpsearch.runs import RunStatus
from hpsearch.store import RunRecord, RunStore
from tests.helpers import env_without_gpus

TRAIN = '''
import argparse, sys
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float)
parser.add_argument("--opt")
parser.add_argument("--random_seed", type=int)
parser.add_argument("--out_dir")
args = parser.parse_args()
if args.opt == "bad" and (args.random_seed == 2 or args.lr == 0.01):
    print("diverged", file=sys.stderr)
    sys.exit(3)
acc = 1 - abs(args.lr - 0.1) - 0.1 * (args.opt == "sgd") - 0.003 * (args.opt == "bad") + OFFSET + 0.01 * args.random_seed
curve = [round(acc * (i + 1) / 4, 6) for i in range(2 + args.random_seed % 2)]  # ragged over seeds
with open(args.out_dir + "/performance_overview.txt", "w") as f:
    f.write(f"val_acc {acc}\\nval_curve {' '.join(map(str, curve))}\\nloss {1 - acc}\\nfinished 1\\n")
'''

MODULE = '''
grid = {"lr": [0.01, 0.1], "opt": ["adam", "sgd", "bad"], "random_seed": [1, 2, 3]}
conditions = []
_SCRIPT_NAME = "train.py"
_SUMMARY_FILENAME = "performance_overview.txt"
_SUMMARY_KEYWORDS = ["val_acc", "val_curve", "loss", "finished"]
_PERFORMANCE_KEY = "val_acc"
_PERFORMANCE_SORT_ASC = False
EXTRA
def _criterion(summary_dict, criteria):
    return float(summary_dict["val_acc"][0]) >= criteria

_PERFORMANCE_EVAL_HANDLE = _criterion
'''


def real_search(folder: Path, *, offset: float = 0.0, extra: str = "", grid: str | None = None) -> Path:
    """Run an 18-run search (lr x opt x random_seed; 'bad' fails 4 times, all of lr 0.01) and return its folder."""
    project = folder / "project"
    project.mkdir(parents=True)
    (project / "train.py").write_text(TRAIN.replace("OFFSET", repr(offset)))
    module = MODULE.replace("EXTRA", extra)
    if grid is not None:
        module = module.replace(MODULE.splitlines()[1], grid)
    (project / "grid_cfg.py").write_text(module)
    out = folder / "search"
    done = subprocess.run([sys.executable, "-m", "hpsearch", "--grid_module=grid_cfg", "--visible_gpus=-1",
                           "--num_jobs=2", f"--out_dir={out}", "--force_out_dir", "--keep_going"],
                          cwd=project, env=env_without_gpus(), capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stderr
    return out


def big_search(folder: Path, runs: int, *, seed: int = 3) -> Path:
    """A search folder of ``runs`` runs written through the store API: 5 seeds per configuration,
    a tenth failed, list-valued curves, every status present."""
    folder.mkdir(parents=True)
    (folder / "search.json").write_text(json.dumps({
        "grid_module": "bench_grid", "summary_filename": "performance_overview.txt",
        "summary_keywords": ["acc", "curve", "finished"], "out_arg": "out_dir", "performance_key": "acc",
        "performance_sort_asc": False, "grid_keys": ["lr", "layers", "opt", "random_seed"]}))
    rng = random.Random(seed)
    now = time.time()
    statuses = [RunStatus.DONE] * 90 + [RunStatus.FAILED] * 6 + [RunStatus.TIMED_OUT, RunStatus.INTERRUPTED,
                                                                   RunStatus.RUNNING, RunStatus.QUEUED] * 1
    records = []
    for index in range(runs):
        group = index // 5  # 5 seeds of each configuration, every configuration once
        config = {"lr": [1e-4, 1e-3, 1e-2, 1e-1][group % 4], "layers": group // 4 % 500,
                  "opt": ["adam", "sgd"][group // 2000 % 2], "random_seed": index % 5}
        status = rng.choice(statuses)
        ran = status not in (RunStatus.QUEUED,)
        acc = rng.random()
        records.append(RunRecord(
            key=f"{index:016x}", index=index, config=config, run_dir=f"sim_20260101000000_{index + 1:05d}",
            status=status, attempts=int(ran), backend="local" if ran else None, job_id=str(index) if ran else None,
            where=f"gpu {index % 4}" if ran else None, started=now - 100 + index * 0.001 if ran else None,
            ended=now - 50 + index * 0.001 if ran and status != RunStatus.RUNNING else None,
            reason="exit code 1" if status == RunStatus.FAILED else None,
            summary={"acc": acc, "curve": [rng.random() for _ in range(3 + index % 3)], "finished": 1}
            if status == RunStatus.DONE else None))
    with RunStore.open(folder) as store:
        store.restore(records, {"stamp": "20260101000000", "name_width": 5})
    return folder
