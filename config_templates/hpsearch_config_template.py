"""Template of a grid module for hpsearch: copy it next to your training script and edit it.

A grid module is a plain Python module. hpsearch imports it
(``python -m hpsearch --grid_module=my_project.hpsearch_config``), reads the
attributes below, builds one command line per configuration and runs them::

    <python> <_SCRIPT_NAME> --lr=0.001 --batch_size=32 --use_bias --<_OUT_ARG>=<run folder>

(``<python>`` is the interpreter hpsearch runs in, or ``--python``; the
script's path is relative to ``--run_cwd``.)

Each configuration gets its own run folder, and your script is expected to
write the summary file ``<run folder>/<_SUMMARY_FILENAME>`` there. Grid
modules written for hypnettorch's ``hpsearch`` work unchanged.

How values become flags:
    * ``--name=str(value)`` for every parameter, in the order of ``grid``.
    * ``True`` becomes a bare ``--name``; ``False`` leaves the flag out (so
      declare such options in your script with ``action='store_true'``).
    * hpsearch hands each flag to the run as one argv element, without a shell,
      so spaces, quotes and ``;`` reach your script exactly as written. For
      compatibility with hypnettorch, which went through a shell, a string that
      is wrapped in one pair of matching quotes, like ``'"example string"'``,
      loses that outer pair: the script receives ``example string``. Any other
      string is passed as it is.

See docs/search-space.md for every construct of the search space.
"""

from hpsearch import (  # only needed for the "Beyond the grid" section below
    choice,
    constrained,
    derived,
    loguniform,
    maxlog,
    minlog,
    normal,
    product,
    randint,
    table,
    uniform,
    union,
)

# --------------------------------------------------------------------------------------------
# grid (required)
# --------------------------------------------------------------------------------------------
# Parameter name -> list of values to try. The search runs the Cartesian product of all
# lists, in this order, the last parameter changing fastest (shuffled unless
# --deterministic_search). Values may be strings, numbers, booleans, None or lists
# (a list value is one value: [[100, 100], [200]] tries two layer layouts).
# The names must match the command-line options of your script.
grid = {
    "lr": [1e-3, 1e-4],
    "batch_size": [32, 128],
    "optimizer": ["adam", "sgd"],
    "momentum": [0.0],
    "hidden_layers": [[100, 100], [400]],
    "use_bias": [True],
    "notes": ['"quoted text"'],  # reaches the script as: --notes=quoted text
}

# --------------------------------------------------------------------------------------------
# conditions (required, may be empty)
# --------------------------------------------------------------------------------------------
# A list of (cond, action) pairs of dicts whose values are lists. A configuration matches
# when each of cond's parameters has one of the listed values (``in``: True == 1); a match
# is replaced by one copy per combination of the action's lists, whose flags come first on
# its command line. An action may name a parameter that is not in ``grid``: only those runs
# get the flag. A condition whose cond names a parameter missing from ``grid`` (e.g. one
# commented out) is dropped with a warning (--strict_conditions: an error). Conditions apply
# once each, in this order; equal configurations run once.
conditions = [
    # Momentum only matters for SGD: try two values there, keep 0.0 for Adam.
    ({"optimizer": ["sgd"]}, {"momentum": [0.5, 0.9]}),
    # Shared base conditions, e.g. imported with ``from mysim.base_conditions import ...``,
    # may name parameters this grid leaves out; such a condition is dropped with a warning.
    # ({"use_adam": [True]}, {"adam_beta1": [0.9]}),  # adds --adam_beta1=0.9 to Adam runs only
]

# --------------------------------------------------------------------------------------------
# How to run the script (required unless marked optional)
# --------------------------------------------------------------------------------------------
# Path of the training script, relative to --run_cwd (default: the current folder).
_SCRIPT_NAME = "train.py"

# Name of the summary file the script writes into its run folder.
_SUMMARY_FILENAME = "performance_overview.txt"

# The lines of the summary file, in order: each line is a keyword, a space and one or more
# numbers (several numbers make a list), e.g. "acc_test 0.93" or "acc_per_epoch 0.5 0.7 0.9".
# Must contain 'finished'; a run counts as done only if it exits with status 0 and its
# summary says "finished 1".
_SUMMARY_KEYWORDS = ["acc_test", "loss_test", "finished"]

# Optional. The option through which the script receives its run folder (default 'out_dir').
# hpsearch adds it last; it must not be a grid parameter.
_OUT_ARG = "out_dir"

# Optional. How a configuration reaches the script (default "hypnettorch": --key=value, True as
# a bare --key, False left out). Others: "argparse", "hydra", "hpman", "json", "yaml", "gin",
# or {"style": "json", "flag": "--config"}; see docs/scripts.md.
# _ARG_STYLE = "argparse"

# Optional. Where the metrics come from when the script writes no summary file (then
# _SUMMARY_FILENAME and _SUMMARY_KEYWORDS are not needed); see docs/scripts.md.
# _METRICS = {"source": "json_file", "file": "metrics.json", "keys": ["acc_test", "loss_test"]}
# _METRICS = {"source": "stdout_json", "keys": ["acc_test"]}
# _METRICS = {"source": "stdout_regex", "patterns": [r"acc_test=(?P<acc_test>\S+)"], "take": "last"}

# Optional. None uses the built-in summary parser. Otherwise a function
# f(out_dir, cmd_ident) -> {keyword: [value, ...]} that reads the results of the run in
# out_dir itself (cmd_ident identifies the run); it must return every keyword of
# _SUMMARY_KEYWORDS, including 'finished'.
_SUMMARY_PARSER_HANDLE = None

# Optional. The keyword the results table search_results.csv is sorted by (default: the
# first keyword), and whether smaller is better (default False: largest first).
_PERFORMANCE_KEY = "acc_test"
_PERFORMANCE_SORT_ASC = False

# Optional. The grid keys that only pick a random seed: `hpsearch report --by_config` and
# hpsearch.group_seeds fold runs that differ only in them into mean +- std. None (the
# default) takes the grid keys named random_seed, seed or rand_seed.
_SEED_KEYS = None


def _performance_is_good(summary_dict, performance_criteria):
    """Tell whether a finished run meets ``--performance_criteria`` of hpsearch_postprocessing.

    Args:
        summary_dict: The run's summary in hypnettorch's shape, keyword -> list of
            values (one entry for a single number), e.g. ``{"acc_test": [0.91]}``.
        performance_criteria: The number given on the command line.
    """
    return summary_dict["acc_test"][0] >= performance_criteria


# Optional. f(summary_dict, criteria) -> bool, used by postprocessing to set aside runs
# that fall short; None keeps every run.
_PERFORMANCE_EVAL_HANDLE = _performance_is_good

# Optional. The training script's own argument parser as f(argv) -> argparse.Namespace,
# for tools that want to read a run's full settings (defaults included). None if unused.
_ARGPARSE_HANDLE = None

# --------------------------------------------------------------------------------------------
# Beyond the grid (optional; uncomment and adapt one of the examples)
# --------------------------------------------------------------------------------------------
# A grid value may be a distribution instead of a list. As soon as the space contains one,
# the search draws --num_searches configurations (required) at random, reproducibly for a
# given --random_seed. Every distribution takes constraint= (a function value -> bool, or
# a string such as "> 0", ">= 1e-3", "% 2 == 0", "!= 3", joined with "and"/"or"; strings
# are parsed, never evaluated) and the float ones round= (significant digits to keep).
#
# grid = {
#     "lr": loguniform(1e-5, 1e-1, round=3),         # log-uniform between the bounds
#     "dropout": uniform(0.0, 0.5),                   # uniform between the bounds
#     "init_std": normal(0.02, 0.01, constraint="> 0"),
#     "num_layers": randint(2, 8),                    # 2, 3, ..., 8 (both ends included)
#     "hidden": randint(64, 512, constraint="% 64 == 0"),
#     "warmup": minlog(1, 1000),                      # log scale, dense near the minimum
#     "beta2": maxlog(0.9, 0.9999),                   # log scale, dense near the maximum
#     "optimizer": choice(["adam", "sgd"], weights=[3, 1]),
#     "batch_size": [32, 128],                        # a list becomes a uniform choice
# }
#
# Any frozen scipy.stats distribution works as well (pip install scipy):
#
# import scipy.stats
# grid = {
#     "weight_decay": scipy.stats.expon(scale=1e-4),
#     "seq_len": constrained(scipy.stats.poisson(128), ">= 16"),
# }
#
# Alternatives: a list of dicts (or union(...)) draws each configuration from one of them.
#
# grid = [
#     {"model": ["mlp"], "hidden_layers": [[100], [100, 100]]},
#     {"model": ["cnn"], "channels": [16, 32], "kernel": [3, 5]},
# ]
# grid = union({"optimizer": ["adam"]}, {"optimizer": ["sgd"], "momentum": [0.0, 0.9]})
#
# Values that belong together: a table lists rows, product(...) combines it with the rest.
#
# grid = product(
#     table(("d_model", "n_heads"), [(256, 4), (512, 8), (1024, 16)]),
#     {"lr": [1e-3, 3e-4]},
# )
#
# Derived values are computed from the others (after conditions), in grid order:
#
# grid = {
#     "d_model": [256, 512],
#     "d_ff": derived(lambda c: 4 * c["d_model"]),
#     "head_dim": derived(lambda c: c["d_ff"] // 32, constraint=">= 16"),
# }
