"""The web page of ``hpsearch serve --http``: a live, token-protected view of the searches.

Flask and plotly are an extra (``pip install hpsearch[web]``); :func:`require_web`
says so in one line before the service starts anything.
"""

from __future__ import annotations

from hpsearch.errors import UsageError


def require_web() -> None:
    """Raise UsageError naming the extra if Flask or plotly is missing."""
    missing = []
    for name in ("flask", "plotly"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise UsageError(f"--http needs {' and '.join(missing)}: pip install 'hpsearch[web]'")
