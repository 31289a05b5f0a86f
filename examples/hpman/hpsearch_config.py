"""Grid module for an hpman script: keys are the hpman names."""

grid = {"learning_rate": [0.01, 0.1, 0.3], "steps": [5, 10]}
conditions = []
_SCRIPT_NAME = "train.py"
_ARG_STYLE = "hpman"
_METRICS = {
    "source": "stdout_regex",
    "patterns": [r"loss=(?P<loss>\S+)", r"loss=(?P<loss_per_step>\S+)"],
    "take": {"loss": "last", "loss_per_step": "all"},
}
_PERFORMANCE_SORT_ASC = True
