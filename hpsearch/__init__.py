"""hpsearch: a hyperparameter-search runner for local GPUs and Slurm/LSF clusters.

The grid-module format and command line follow hypnettorch's ``hpsearch``
subpackage. The search-space constructors (``uniform``, ``loguniform``,
``union``, ``table``, ``derived``, ...) are importable from here for grid modules.
"""

from hpsearch.space import api as _api
from hpsearch.space.api import *  # noqa: F401,F403  (the search-space constructors, see api.__all__)

__version__ = "0.1.0"

__all__ = ["__version__", "load_results", "group_seeds", *_api.__all__]


def __getattr__(name: str):
    """``hpsearch.load_results`` and ``hpsearch.group_seeds``, imported when first used:
    they need pandas, which ``import hpsearch`` (and every driver) does without."""
    if name in ("load_results", "group_seeds"):
        from hpsearch import results

        return getattr(results, name)
    raise AttributeError(f"module 'hpsearch' has no attribute {name!r}")
