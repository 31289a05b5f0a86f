"""Grid module for an argparse script: keys are the flags' own names."""

grid = {
    "learning-rate": [0.01, 0.1],
    "momentum": [True, False],  # --momentum / --no-momentum
    "steps": [[5, 5], [20]],  # --steps 5 5
}
conditions = []
_SCRIPT_NAME = "train.py"
_ARG_STYLE = "argparse"
_METRICS = {"source": "stdout_json", "keys": ["loss", "weight"]}
_PERFORMANCE_SORT_ASC = True  # smaller loss is better
