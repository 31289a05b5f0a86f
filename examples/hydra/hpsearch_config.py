"""Grid module for a Hydra app: keys are override keys; '+' adds one the config lacks."""

grid = {
    "optim.lr": [0.01, 0.1],
    "optim.name": ["sgd", "plain sgd"],  # quoted for Hydra by hpsearch
    "+target": [3.0],  # not in conf/config.yaml: Hydra's own '+'
}
conditions = []
_SCRIPT_NAME = "app.py"
_ARG_STYLE = "hydra"
_METRICS = {"source": "stdout_regex", "patterns": [r"final loss=(?P<loss>\S+)"]}
_PERFORMANCE_SORT_ASC = True
