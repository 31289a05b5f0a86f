"""Exceptions of hpsearch.

Every error a user can cause derives from :class:`HpsearchError`; the CLI turns
it into one line on stderr and exit status 2 instead of a traceback.
"""


class HpsearchError(Exception):
    """Base class of all errors hpsearch reports to the user."""


class UsageError(HpsearchError):
    """Bad command-line flags or flag combinations."""


class GridModuleError(HpsearchError):
    """The grid module (or ``--grid_config``) is invalid.

    The message names the module file, the attribute and the problem.
    """


class SpaceError(HpsearchError):
    """A search-space construct is invalid or cannot produce configurations."""


class GpuQueryError(HpsearchError):
    """``nvidia-smi`` is missing, fails, or reports no usable GPU."""


class SubmissionError(HpsearchError):
    """A cluster scheduler refused a job (``sbatch``/``bsub`` failed)."""


class SchedulerQueryError(HpsearchError):
    """Job states could not be read from the scheduler for too long."""


class StoreError(HpsearchError):
    """The run store cannot be opened, is locked by another driver, or is corrupt."""


class SummaryError(HpsearchError):
    """A run's summary file is missing, malformed or says it did not finish.

    ``str(error)`` is the reason recorded for the run.
    """
