"""Grid module of the toy example (a plain hypnettorch-style grid module).

Run from this folder:
    python -m hpsearch --grid_module=hpsearch_config --visible_gpus=-1 --num_jobs=2
"""

grid = {
    "lr": [0.01, 0.1, 0.5],
    "batch_size": [8, 32],
    "momentum": [0.0, 0.9],
    "use_bias": [False, True],
    "epochs": [5],
}

conditions = [
    # Small batches with a large step size diverge; try smaller momentum there only.
    ({"lr": [0.5], "batch_size": [8]}, {"momentum": [0.0, 0.5]}),
]

_SCRIPT_NAME = "train.py"
_SUMMARY_FILENAME = "performance_overview.txt"
_SUMMARY_KEYWORDS = ["val_acc", "val_acc_per_epoch", "val_loss", "finished"]
_OUT_ARG = "out_dir"
_SUMMARY_PARSER_HANDLE = None
_PERFORMANCE_KEY = "val_acc"
_PERFORMANCE_SORT_ASC = False


def _performance_criteria(summary_dict, performance_criteria):
    """Keep runs whose final validation accuracy reaches the criterion.

    ``summary_dict`` has hypnettorch's shape: keyword -> list of values.
    """
    return summary_dict["val_acc"][0] >= performance_criteria


_PERFORMANCE_EVAL_HANDLE = _performance_criteria
_ARGPARSE_HANDLE = None
