"""Grid module for a script that reads its configuration from one JSON file."""

grid = {"lr": [0.01, 0.1], "epochs": [5, 20], "optimizer": ["sgd"]}
conditions = []
_SCRIPT_NAME = "train.py"
_ARG_STYLE = {"style": "json", "flag": "--config"}
_METRICS = {"source": "json_file", "file": "metrics.jsonl", "keys": ["loss"]}
_PERFORMANCE_SORT_ASC = True
