
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
