"""Rebuild an hpsearch search's results table from its run folders.

``python -m postprocessing OUT_DIR`` (or ``hpsearch_postprocessing``); see
:mod:`postprocessing.cli`.
"""
