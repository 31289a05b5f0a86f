"""Grid module for a script that reads its configuration from one YAML file."""

grid = {"lr": [0.01, 0.1], "epochs": [5, 20], "name": ["a run: with a colon"]}
conditions = []
_SCRIPT_NAME = "train.py"
_ARG_STYLE = "yaml"  # --config RUN/config.yaml
_METRICS = {"source": "json_file", "file": "metrics.json", "keys": ["loss"]}
_PERFORMANCE_SORT_ASC = True
