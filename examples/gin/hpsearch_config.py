"""Grid module for a gin script: keys name the bindings (configurable.parameter)."""

grid = {"optimizer.lr": [0.01, 0.1], "optimizer.decay": [1.0, 0.9], "train.steps": [20]}
conditions = []
_SCRIPT_NAME = "train.py"
_ARG_STYLE = "gin"  # config.gin in the run folder, passed as --gin_file
_METRICS = {"source": "json_file", "file": "metrics.json", "keys": ["loss"]}
_PERFORMANCE_SORT_ASC = True
