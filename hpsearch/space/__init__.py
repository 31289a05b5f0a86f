"""The search space: hypnettorch grids and conditions, plus distributions and composition.

The driver uses :func:`validate_space`, :func:`grid_keys`,
:func:`iter_configurations`, :func:`config_key`, :func:`is_finite` and
:func:`space_size`; grid modules use the constructors of :mod:`hpsearch.space.api`.
"""

from hpsearch.space import api as _api
from hpsearch.space.api import *  # noqa: F401,F403  (the constructors, see api.__all__)
from hpsearch.space.configurations import iter_configurations
from hpsearch.space.keys import config_key
from hpsearch.space.searchspace import grid_keys, is_finite, space_size, validate_space

__all__ = [
    *_api.__all__,
    "config_key",
    "grid_keys",
    "is_finite",
    "iter_configurations",
    "space_size",
    "validate_space",
]
