"""The search page's plots as plotly figure specs (plain dicts; plotly.js draws them).

Built here rather than in the browser so that what a plot shows is tested in
Python: best value so far over time, parallel coordinates of the
hyperparameters against the performance key, and the performance against each
hyperparameter (every run, and mean +- std over runs with the same value, as
seeds repeat a configuration).
"""

from __future__ import annotations

import math
import statistics
from datetime import datetime
from typing import Any

Figure = dict[str, Any]
_FONT = {"family": "system-ui, sans-serif", "size": 12}
_MARGIN = {"l": 60, "r": 20, "t": 40, "b": 50}
_MAX_TICKS = 12


def scored_runs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The done runs that have a performance value, the only ones a plot can place."""
    return [run for run in runs if run["status"] == "done" and run.get("value") is not None]


def varying_keys(runs: list[dict[str, Any]], grid_keys: list[str]) -> list[str]:
    """The hyperparameters that take more than one value among ``runs`` (a constant says nothing)."""
    keys = grid_keys or sorted({name for run in runs for name in run.get("config", {})})
    return [key for key in keys if len({_text(run["config"].get(key)) for run in runs}) > 1]


def best_so_far(runs: list[dict[str, Any]], performance_key: str, ascending: bool) -> Figure:
    """Each scored run's value at its end time, and the best value so far as a step line."""
    done = sorted((run for run in scored_runs(runs) if run.get("ended")), key=lambda run: run["ended"])
    times = [_iso(run["ended"]) for run in done]
    values = [run["value"] for run in done]
    best: list[float] = []
    for value in values:
        best.append(value if not best else (min if ascending else max)(best[-1], value))
    return {
        "data": [
            {"type": "scatter", "mode": "markers", "name": "run", "x": times, "y": values,
             "text": [run["run"] for run in done], "marker": {"size": 6, "opacity": 0.6, "color": "#7f8c99"},
             "hovertemplate": "%{text}<br>%{y}<extra></extra>"},
            {"type": "scatter", "mode": "lines", "name": "best so far", "x": times, "y": best,
             "line": {"shape": "hv", "width": 2.5, "color": "#1f6feb"}},
        ],
        "layout": _layout(f"Best {performance_key} so far (line) and each run (dots)", "run ended (machine time)",
                          performance_key, showlegend=False),
    }


def parallel_coordinates(runs: list[dict[str, Any]], grid_keys: list[str], performance_key: str,
                         ascending: bool) -> Figure:
    """One axis per varying hyperparameter and one for the performance key; lines coloured by it."""
    done = scored_runs(runs)
    dimensions = [_dimension(key, [run["config"].get(key) for run in done]) for key in varying_keys(done, grid_keys)]
    values = [run["value"] for run in done]
    dimensions.append({"label": performance_key, "values": values})
    return {
        "data": [{
            "type": "parcoords",
            "line": {"color": values, "colorscale": "Viridis", "reversescale": ascending, "showscale": True,
                     "colorbar": {"title": {"text": performance_key}, "x": 1.08}},
            "dimensions": dimensions,
        }],
        "layout": {"title": {"text": f"Hyperparameters against {performance_key}"}, "font": _FONT,
                   "margin": {"l": 70, "r": 100, "t": 95, "b": 30}},
    }


def slices(runs: list[dict[str, Any]], grid_keys: list[str], performance_key: str) -> list[Figure]:
    """For each varying hyperparameter: every run's value, and mean +- std per value of it."""
    done = scored_runs(runs)
    return [_slice(key, done, performance_key) for key in varying_keys(done, grid_keys)]


def search_figures(search: dict[str, Any]) -> dict[str, Any]:
    """Every figure of one search page; empty when nothing can be plotted yet."""
    key = search.get("performance_key")
    runs = search.get("runs", [])
    if not key or not scored_runs(runs):
        return {"best": None, "parallel": None, "slices": []}
    ascending = bool(search.get("ascending"))
    grid_keys = search.get("grid_keys", [])
    return {"best": best_so_far(runs, key, ascending),
            "parallel": parallel_coordinates(runs, grid_keys, key, ascending),
            "slices": slices(runs, grid_keys, key)}


def _slice(key: str, done: list[dict[str, Any]], performance_key: str) -> Figure:
    raw = [run["config"].get(key) for run in done]
    numeric = all(_is_number(value) for value in raw)
    xs = raw if numeric else [_text(value) for value in raw]
    groups: dict[Any, list[float]] = {}
    for x, run in zip(xs, done):
        groups.setdefault(x, []).append(run["value"])
    order = sorted(groups) if numeric else list(dict.fromkeys(xs))
    means = [statistics.fmean(groups[x]) for x in order]
    stds = [statistics.pstdev(groups[x]) if len(groups[x]) > 1 else 0.0 for x in order]
    layout = _layout(f"{performance_key} against {key}", key, performance_key, showlegend=False)
    layout["xaxis"]["type"] = "log" if numeric and _log_scale(raw) else ("linear" if numeric else "category")
    if numeric and len(order) <= _MAX_TICKS:  # a grid's few values, not 1.2, 1.4, ... between them
        layout["xaxis"].update(tickvals=order, ticktext=[f"{value:g}" for value in order])
    return {
        "data": [
            {"type": "scatter", "mode": "markers", "name": "run", "x": xs, "y": [run["value"] for run in done],
             "text": [run["run"] for run in done], "marker": {"size": 6, "opacity": 0.45, "color": "#7f8c99"},
             "hovertemplate": "%{text}<br>" + key + "=%{x}<br>%{y}<extra></extra>"},
            {"type": "scatter", "mode": "lines+markers", "name": "mean ± std", "x": order, "y": means,
             "error_y": {"type": "data", "array": stds, "visible": True}, "line": {"color": "#1f6feb"},
             "marker": {"size": 8}},
        ],
        "layout": layout,
    }


def _dimension(key: str, values: list[Any]) -> dict[str, Any]:
    if all(_is_number(value) for value in values):
        distinct = sorted(set(values))
        if _log_scale(values):  # parcoords has no log axis: place log10 of the value, label the value
            dimension = {"label": f"{key} (log)", "values": [math.log10(value) for value in values]}
            if len(distinct) <= _MAX_TICKS:
                dimension.update(tickvals=[math.log10(value) for value in distinct], ticktext=[f"{v:g}" for v in distinct])
            return dimension
        dimension = {"label": key, "values": [float(value) for value in values]}
        if len(distinct) <= _MAX_TICKS:
            dimension.update(tickvals=distinct, ticktext=[f"{value:g}" for value in distinct])
        return dimension
    labels = list(dict.fromkeys(_text(value) for value in values))
    position = {label: number for number, label in enumerate(labels)}
    return {"label": key, "values": [position[_text(value)] for value in values],
            "tickvals": list(range(len(labels))), "ticktext": labels}


def _layout(title: str, x_title: str, y_title: str, **extra: Any) -> dict[str, Any]:
    return {"title": {"text": title}, "font": _FONT, "margin": _MARGIN,
            "xaxis": {"title": {"text": x_title}, "automargin": True},
            "yaxis": {"title": {"text": y_title}, "automargin": True}, **extra}


def _log_scale(values: list[Any]) -> bool:
    """Positive values spanning two decades or more (learning rates, weight decays) read best on a log axis."""
    return all(value > 0 for value in values) and max(values) / min(values) >= 100


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def _iso(stamp: float) -> str:
    """A time plotly reads as a date, in the machine's time zone (the one the runs' logs use)."""
    return datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S")
