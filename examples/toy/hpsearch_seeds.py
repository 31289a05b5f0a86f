"""Grid module of the toy example with seeds: 16 configurations, 4 seeds each (64 runs).

What `hpsearch plot` (and `report --by_config`) are for: the learning rate spans
four decades, and each configuration is repeated with seeds, so figures show
mean ± std over seeds. Run from this folder:
    python -m hpsearch --grid_module=hpsearch_seeds --visible_gpus=-1 --num_jobs=2 --out_dir=out_seeds \
        --force_out_dir --dont_force_new_dir
    hpsearch plot out_seeds
"""

grid = {
    "lr": [0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0],
    "momentum": [0.0, 0.9],
    "seed": [0, 1, 2, 3],
    "epochs": [3],
}

conditions = []

_SCRIPT_NAME = "train.py"
_SUMMARY_FILENAME = "performance_overview.txt"
_SUMMARY_KEYWORDS = ["val_loss", "val_acc", "val_acc_per_epoch", "finished"]
_OUT_ARG = "out_dir"
_PERFORMANCE_KEY = "val_loss"
_PERFORMANCE_SORT_ASC = True
