"""``search_results_by_config.csv``: the table of :func:`hpsearch.results.group_seeds`, as a file.

It lies next to ``search_results.csv`` and is written the same way (``;``,
atomically, lists of numbers as ``0.1,0.2``), by ``hpsearch report --by_config``
and by the driver when a search that has seed parameters ends. The per-run
lists (config keys, run folders) stay out of it; the seeds stay in.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpsearch.report import summary_text, write_table

if TYPE_CHECKING:
    import pandas

BY_CONFIG_FILE = "search_results_by_config.csv"
LEFT_OUT = ("config_keys", "run_dirs")


def by_config_path(folder: Path) -> Path:
    return Path(folder) / BY_CONFIG_FILE


def cell(value: Any) -> str:
    """A cell's text: nothing for None/NaN/NaT, lists of numbers as ``0.1,0.2`` (NaN inside as ``nan``),
    times in ISO 8601."""
    if value is None or isinstance(value, float) and math.isnan(value):
        return ""
    if hasattr(value, "isoformat"):  # a pandas Timestamp, or NaT
        import pandas

        return "" if pandas.isna(value) else value.isoformat()
    if isinstance(value, tuple):
        value = list(value)
    if hasattr(value, "item") and not isinstance(value, (list, str)):
        value = value.item()  # a numpy scalar
    return summary_text(value)


def table_of(grouped: "pandas.DataFrame") -> tuple[list[str], list[list[str]]]:
    """Header and cell texts of the grouped table (every column but :data:`LEFT_OUT`)."""
    columns = [str(c) for c in grouped.columns if c not in LEFT_OUT]
    rows = [[cell(value) for value in row] for row in grouped[columns].itertuples(index=False, name=None)]
    return columns, rows


def write_by_config(folder: Path, grouped: "pandas.DataFrame") -> Path:
    """Replace ``search_results_by_config.csv`` in ``folder`` atomically; returns its path."""
    path = by_config_path(folder)
    write_table(path, *table_of(grouped))
    return path


def has_seed_keys(grid_keys: list[str], declared: list[str] | None) -> bool:
    """Whether a search has seed parameters, decided without importing pandas."""
    from hpsearch.results import seed_keys_of

    return bool(seed_keys_of(grid_keys, declared))


def refresh_by_config(folder: Path) -> Path:
    """Rewrite the file from what the search folder holds now (the driver, when a search ends)."""
    from hpsearch.results import group_seeds, load_results

    return write_by_config(folder, group_seeds(load_results(folder)))

