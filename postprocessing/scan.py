"""The rows of the results table, from the run folders.

The reading itself is shared with :func:`hpsearch.results.load_results` and
lives in :mod:`hpsearch.folder_runs`; this module keeps the postprocessor's names.
"""

from hpsearch.folder_runs import MISSING, UNFINISHED, missing_runs, read_run

__all__ = ["MISSING", "UNFINISHED", "missing_runs", "read_run"]
