"""hpsearch: a hyperparameter-search runner for local GPUs and Slurm/LSF clusters.

The grid-module format and command line follow hypnettorch's ``hpsearch``
subpackage. The search-space constructors (``uniform``, ``loguniform``,
``union``, ``table``, ``derived``, ...) are importable from here for grid modules.
"""

from hpsearch.space import api as _api
from hpsearch.space.api import *  # noqa: F401,F403  (the search-space constructors, see api.__all__)

__version__ = "0.1.0"

__all__ = ["__version__", *_api.__all__]
