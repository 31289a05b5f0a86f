"""The search space: hypnettorch grids and conditions, plus distributions and composition.

The driver compiles a grid module's space once (:class:`SearchSpace`, via
:func:`compile_checked`) and asks it for its keys and :func:`configurations`;
:func:`config_key` names a configuration. Grid modules use the constructors
of :mod:`hpsearch.space.api`.
"""

from hpsearch.space import api as _api
from hpsearch.space.api import *  # noqa: F401,F403  (the constructors, see api.__all__)
from hpsearch.space.configurations import configurations, iter_configurations
from hpsearch.space.keys import config_key, equality_key
from hpsearch.space.searchspace import SearchSpace, compile_checked, dropped_warnings, grid_keys, validate_space

__all__ = [
    *_api.__all__,
    "SearchSpace",
    "compile_checked",
    "config_key",
    "configurations",
    "dropped_warnings",
    "equality_key",
    "grid_keys",
    "iter_configurations",
    "validate_space",
]
