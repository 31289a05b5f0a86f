"""The figures of a search's results, drawn with matplotlib from a results frame.

Each function takes the frame of :func:`hpsearch.results.load_results` (one
row per run) and returns a :class:`matplotlib.figure.Figure`, so that what a
figure shows is tested on the Figure itself and a notebook can show or restyle
it; writing files is the ``hpsearch plot`` command's business
(:mod:`hpsearch.plot_command`). Figures are made without pyplot: no backend,
no display and no global figure list, so the functions are safe anywhere;
``savefig`` renders with Agg (PNG) or the vector backends (SVG, PDF).

Runs that differ only in their seed parameters are one *configuration*
(:func:`hpsearch.results.group_seeds`, the grouping of ``report --by_config``):
the slices, the parallel coordinates and the curves place one mark per
configuration at its mean over seeds (with mean ± std where it has several
runs), so a lucky seed does not pass for a good configuration. Each function
takes that grouped frame as ``configs=`` so that a caller drawing several
figures groups once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Columns of a results frame that describe a run, not its configuration or summary.
RUN_COLUMNS = ("status", "reason", "attempt", "run_dir", "config_key", "gpu", "start", "end")
LOG_DECADES = 2  # positive values spanning this many decades or more get a log axis
MAX_VALUE_TICKS = 12  # a grid with at most this many values gets a tick at each of them
LABEL_CHARS = 18  # category names are cut to this length (with an ellipsis) on axes
LEGEND_CHARS = 72
MISSING = "(none)"

# Slide-size figures: about 1200 x 750 pixels at the default 150 dpi, with type that is
# readable from the back of a room.
DPI = 150
FONT = {"title": 15, "label": 14, "ticks": 12, "legend": 11, "note": 10}
SIZE = (8.0, 5.0)
_STYLE = {"font.size": FONT["ticks"], "axes.titlesize": FONT["title"], "axes.labelsize": FONT["label"],
          "xtick.labelsize": FONT["ticks"], "ytick.labelsize": FONT["ticks"], "legend.fontsize": FONT["legend"],
          "axes.spines.top": False, "axes.spines.right": False, "savefig.dpi": DPI}
_RUN_GREY = "#8a94a0"
_BEST = "#d62728"


@dataclass(frozen=True)
class SearchFacts:
    """What the figures need to know about a search beyond its frame.

    ``params`` are the hyperparameters (grid keys, in grid order); the seed
    parameters among them (``seed_keys``, else those named ``random_seed``,
    ``seed`` or ``rand_seed``) are repeats, not settings, and are never
    plotted against. ``summary_keys`` default to the columns that are neither
    parameters nor :data:`RUN_COLUMNS`.
    """

    performance_key: str
    ascending: bool = False
    params: Sequence[str] = ()
    seed_keys: Sequence[str] | None = None
    summary_keys: Sequence[str] | None = None

    @classmethod
    def of(cls, runs: pd.DataFrame) -> SearchFacts:
        """What :func:`hpsearch.results.load_results` recorded in the frame's ``attrs``.

        Raises:
            ValueError: The frame names no performance key (it lost its ``attrs``).
        """
        from hpsearch.run_table import ATTRS_KEY

        meta = runs.attrs.get(ATTRS_KEY) or {}
        if not meta.get("performance_key"):
            raise ValueError("the frame names no performance key (no summary keys known)")
        return cls(meta["performance_key"], bool(meta.get("ascending", False)), tuple(meta.get("grid_keys", ())),
                   meta.get("seed_keys"), meta.get("summary_keys"))

    def seeds(self) -> list[str]:
        from hpsearch.results import seed_keys_of

        return seed_keys_of(list(self.params), self.seed_keys)

    def settings(self) -> list[str]:
        """The parameters that define a configuration: every parameter but the seeds."""
        seeds = self.seeds()
        return [name for name in self.params if name not in seeds]

    def summaries(self, runs: pd.DataFrame) -> list[str]:
        if self.summary_keys is not None:
            return [name for name in self.summary_keys if name in runs.columns]
        skip = {*self.params, *RUN_COLUMNS}
        return [name for name in runs.columns if name not in skip]


# --------------------------------------------------------------------------- the frames


def scored_runs(runs: pd.DataFrame, facts: SearchFacts) -> pd.DataFrame:
    """The done runs with a finite performance value: the only ones a figure can place."""
    if facts.performance_key not in runs.columns:
        return runs.iloc[0:0]
    values = pd.to_numeric(runs[facts.performance_key], errors="coerce")
    keep = np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
    if "status" in runs.columns:
        keep &= (runs["status"].astype(str) == "done").to_numpy()
    scored = runs.loc[keep].copy()
    scored[facts.performance_key] = values[keep].astype(float)
    return scored


def configurations(runs: pd.DataFrame, facts: SearchFacts) -> pd.DataFrame:
    """The configurations with a mean performance, best first: :func:`~hpsearch.results.group_seeds`
    of ``runs`` (``K_n``, ``K_mean``, ``K_std``, ... for each summary key K)."""
    from hpsearch.results import group_seeds

    key = facts.performance_key
    summary = facts.summaries(runs)
    if key not in summary and key in runs.columns:
        summary.append(key)
    grouped = group_seeds(runs, facts.seeds(), grid_keys=[name for name in facts.params if name in runs.columns],
                          summary_keys=summary, performance_key=key if key in runs.columns else None,
                          ascending=facts.ascending)
    column = f"{key}_mean"
    if column not in grouped.columns:
        return grouped.iloc[0:0]
    means = pd.to_numeric(grouped[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return grouped[np.isfinite(means)].reset_index(drop=True)


def stat(configs: pd.DataFrame, key: str, name: str) -> pd.Series:
    """Column ``name`` (n, mean, std, min, max) of summary key ``key`` in a grouped frame."""
    return configs[f"{key}_{name}"]


def varying_params(configs: pd.DataFrame, facts: SearchFacts) -> list[str]:
    """The settings that take more than one value among the configurations (a constant says nothing)."""
    return [name for name in facts.settings()
            if name in configs.columns and configs[name].map(value_label).nunique() > 1]


def list_keys(configs: pd.DataFrame, facts: SearchFacts, runs: pd.DataFrame) -> list[str]:
    """The summary keys whose values are lists of numbers (per-epoch curves) of more than one element."""
    found = []
    for name in facts.summaries(runs):
        column = f"{name}_mean"
        if name == facts.performance_key or column not in configs.columns or configs[column].dtype != object:
            continue
        if any(isinstance(value, list) and len(value) > 1 for value in configs[column]):
            found.append(name)
    return found


def value_label(value: Any) -> str:
    """A value as an axis or legend shows it: numbers with ``:g``, missing as ``(none)``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    if isinstance(value, (list, tuple, np.ndarray)):
        return "[" + ", ".join(value_label(item) for item in value) + "]"
    return str(value)


def is_numeric(values: pd.Series) -> bool:
    """Numbers (not booleans) once missing values are left out, and at least one of them."""
    present = values.dropna()
    if present.empty:
        return False
    return all(isinstance(value, (int, float, np.integer, np.floating))
               and not isinstance(value, (bool, np.bool_)) for value in present)


def log_scale(values: Sequence[float]) -> bool:
    """Whether positive values read best on a log axis: they span two decades or more and
    crowd the low end of a linear one (half their distinct values in its lowest tenth), as
    learning rates and weight decays do; a uniform draw from (0, 0.5) keeps a linear axis
    even when it happens to hold a 1e-5."""
    numbers = np.asarray([float(value) for value in values if value is not None], dtype=float)
    numbers = np.unique(numbers[~np.isnan(numbers)])
    if len(numbers) < 2 or numbers[0] <= 0 or numbers[-1] / numbers[0] < 10 ** LOG_DECADES:
        return False
    low_end = numbers[0] + 0.1 * (numbers[-1] - numbers[0])
    return bool(np.count_nonzero(numbers <= low_end) >= len(numbers) / 2)


# --------------------------------------------------------------------------- the figures


def performance_against(runs: pd.DataFrame, facts: SearchFacts, param: str, *,
                        configs: pd.DataFrame | None = None) -> Figure:
    """The performance key against one hyperparameter, one point per configuration.

    Numbers are placed at their value (a log axis when they span decades),
    categories and booleans at ordered positions with a box of their
    configurations; configurations sharing a value are spread sideways so
    none hides another. Error bars are mean ± std over seeds.
    """
    configs = configurations(runs, facts) if configs is None else configs
    key = facts.performance_key
    values = configs[param] if param in configs.columns else pd.Series([], dtype=object)
    numeric = is_numeric(values)
    categories = 0 if numeric else values.map(value_label).nunique()
    fig, ax = _figure(width=min(16.0, max(SIZE[0], 0.4 * categories + 2)))
    if numeric:
        shown = configs[values.notna()]
        left_out = len(configs) - len(shown)
        positions = _numeric_positions(ax, shown[param].astype(float).to_numpy())
    else:
        shown, left_out = configs, 0
        positions = _category_positions(ax, shown[param].map(value_label).tolist(),
                                        stat(shown, key, "mean").to_numpy(dtype=float))
    means = stat(shown, key, "mean").to_numpy(dtype=float)
    repeated = bool((stat(shown, key, "n") > 1).any())
    error = stat(shown, key, "std").fillna(0.0).to_numpy(dtype=float) if repeated else None
    many = len(shown) > 500
    bars = ax.errorbar(positions, means, yerr=error, fmt="o", markersize=3 if many else 6, color="C0",
                       alpha=0.35 if many else 0.8, ecolor="C0", elinewidth=0.6 if many else 1.2,
                       capsize=0 if many else 3,
                       label="configuration (mean ± std over seeds)" if repeated else "configuration")
    if many:  # thousands of bars would fill the plot: keep them a faint haze behind the points
        for lines in bars.lines[2]:
            lines.set_alpha(0.12)
    if len(shown):
        ax.plot(positions[:1], means[:1], marker="*", markersize=16, linestyle="none",
                color=_BEST, zorder=5, label=f"best: {means[0]:.4g}")
    ax.set_xlabel(param)
    ax.set_ylabel(key)
    ax.set_title(f"{key} against {param}")
    if left_out:
        _note(ax, f"{left_out} configuration(s) without a value of {param} not shown")
    ax.legend(loc="best", frameon=False)
    return _finish(fig, ax)


def best_so_far(runs: pd.DataFrame, facts: SearchFacts) -> Figure | None:
    """Each done run's value at its end time and the best value so far (a step line).

    None when no done run has an end time (a ``search_results.csv`` alone records none).
    """
    scored = scored_runs(runs, facts)
    if "end" not in scored.columns:
        return None
    ends = _seconds(scored["end"])
    keep = ends.notna()
    if not keep.any():
        return None
    scored, ends = scored[keep], ends[keep]
    starts = _seconds(runs["start"]).dropna() if "start" in runs.columns else pd.Series([], dtype=float)
    origin = min(float(starts.min()) if len(starts) else math.inf, float(ends.min()))
    since = "the search started" if len(starts) else "the first run ended"  # hypnettorch records no starts
    order = np.argsort(ends.to_numpy(), kind="stable")
    elapsed = ends.to_numpy()[order] - origin
    values = scored[facts.performance_key].to_numpy()[order]
    best = (np.minimum if facts.ascending else np.maximum).accumulate(values)
    unit, scale = _time_unit(float(elapsed.max()) if len(elapsed) else 0.0)
    key = facts.performance_key
    fig, ax = _figure()
    ax.scatter(elapsed / scale, values, s=18, color=_RUN_GREY, alpha=0.6, linewidths=0, label="run", zorder=2,
               rasterized=len(values) > 2000)
    ax.step(elapsed / scale, best, where="post", color="C0", linewidth=2.5, label="best so far", zorder=3)
    found = int(np.flatnonzero(values == best[-1])[0])  # when the best run ended
    ax.plot(elapsed[found:found + 1] / scale, best[-1:], marker="*", markersize=16, color=_BEST, linestyle="none", zorder=4,
            label=f"best: {best[-1]:.4g}")
    ax.set_xlabel(f"run end ({unit} since {since})")
    ax.set_ylabel(key)
    ax.set_title(f"Best {key} so far ({'lower' if facts.ascending else 'higher'} is better)")
    ax.legend(loc="best", frameon=False)
    return _finish(fig, ax)


def parallel_coordinates(runs: pd.DataFrame, facts: SearchFacts, *, configs: pd.DataFrame | None = None) -> Figure:
    """One vertical axis per varying hyperparameter and one for the performance key;
    one line per configuration, coloured by its mean performance, the best drawn last.

    Numbers are scaled to their axis (log where they span decades); categories
    and booleans sit at ordered positions, labelled.
    """
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize

    configs = configurations(runs, facts) if configs is None else configs
    key = facts.performance_key
    names = varying_params(configs, facts)
    columns = [_axis_positions(configs[name]) for name in names]
    means = stat(configs, key, "mean").to_numpy(dtype=float)
    columns.append(_axis_positions(pd.Series(means)))
    labels = [*names, key]
    count = len(labels)
    fig, ax = _figure(width=min(16.0, max(8.0, 1.9 * count + 2)))
    norm = Normalize(float(means.min()), float(means.max())) if len(means) else Normalize(0, 1)
    cmap = colormaps["viridis_r" if facts.ascending else "viridis"]  # the best is always the bright end
    drawn = np.arange(len(configs))[::-1]  # configurations are best first: draw the best last, on top
    points = np.column_stack([column.positions for column in columns]) if len(configs) else np.zeros((0, count))
    segments = [np.column_stack([np.arange(count), points[row]]) for row in drawn]
    many = len(configs) > 300
    lines = LineCollection(segments, colors=cmap(norm(means[drawn])), linewidths=0.8 if many else 1.8,
                           alpha=0.35 if many else 0.85, rasterized=len(configs) > 2000)
    ax.add_collection(lines)
    for number, column in enumerate(columns):
        ax.axvline(number, color="#333333", linewidth=1.0, zorder=3)
        for position, text in zip(column.tick_positions, column.tick_labels):
            ax.text(number - 0.04, position, text, ha="right", va="center", fontsize=FONT["note"], zorder=4,
                    bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})
    ax.set_xlim(-0.45, count - 1 + 0.25)
    ax.set_ylim(-0.1, 1.05)
    ax.set_yticks([])
    ax.spines[["left", "right", "top"]].set_visible(False)
    ax.set_xticks(range(count), [_cut(name, LABEL_CHARS) for name in labels])
    title = f"Hyperparameters and {key}, one line per configuration"
    ax.set_title(title if len(title) < 60 else f"Hyperparameters and {key}")
    repeated = bool((stat(configs, key, "n") > 1).any())
    fig.colorbar(ScalarMappable(norm, cmap), ax=ax, pad=0.02,
                 label=f"{key} (mean over seeds)" if repeated else key)
    _turn_tick_labels(ax, labels)
    return _finish(fig, ax)


def curves(runs: pd.DataFrame, facts: SearchFacts, list_key: str, top: int = 5, *,
           configs: pd.DataFrame | None = None) -> Figure:
    """A list-valued summary key (a per-epoch curve) of the ``top`` best configurations:
    the element-wise mean over each configuration's seeds, with a mean ± std band.

    The legend names only the settings in which the drawn configurations
    differ; those they share are one line under it.
    """
    from matplotlib.colors import to_rgb

    configs = configurations(runs, facts) if configs is None else configs
    if f"{list_key}_mean" not in configs.columns:
        raise ValueError(f"{list_key!r} is not a numeric summary key of these runs")
    key = facts.performance_key
    chosen = []  # (rank, configuration, element-wise mean, element-wise std)
    for rank, (_, config) in enumerate(configs.iterrows(), 1):
        if len(chosen) == top:
            break
        mean = config[f"{list_key}_mean"]
        if isinstance(mean, list) and mean:
            chosen.append((rank, config, np.asarray(mean, dtype=float),
                           np.asarray(config[f"{list_key}_std"], dtype=float)))
    drawn = pd.DataFrame([config for config in (entry[1] for entry in chosen)])
    differ = varying_params(drawn, facts) if len(drawn) else []
    shared = [name for name in varying_params(configs, facts) if name not in differ]
    fig, ax = _figure(width=9.0, height=SIZE[1] + 0.32 * len(chosen))
    repeated = False
    for rank, config, mean, std in chosen:
        steps = np.arange(1, len(mean) + 1)
        setting = ", ".join(f"{name}={value_label(config[name])}" for name in differ)
        label = f"#{rank} " + (f"{_cut(setting, LEGEND_CHARS)}: " if setting else "") \
            + f"{key} {config[f'{key}_mean']:.4g} (n={config[f'{key}_n']})"
        (line,) = ax.plot(steps, mean, linewidth=2, marker="o" if len(steps) <= 30 else None, markersize=4,
                          label=label)
        if np.isfinite(std).any():
            repeated = True
            colour = to_rgb(line.get_color())  # a faint fill with a clear edge: overlapping bands stay apart
            ax.fill_between(steps, mean - std, mean + std, facecolor=(*colour, 0.1), edgecolor=(*colour, 0.55),
                            linewidth=0.8)
    ax.set_xlabel("epoch" if "epoch" in list_key.lower() else "position in the list (1 = first value)")
    ax.set_ylabel(list_key)
    ax.set_title(f"{list_key} of the {len(chosen)} best configurations")
    if chosen:
        title = f"ranked by mean {key}" + ("; bands: mean ± std over seeds" if repeated else "")
        if shared:
            common = ", ".join(f"{name}={value_label(drawn[name].iloc[0])}" for name in shared)
            title += "\n" + _cut(f"all of them: {common}", 2 * LEGEND_CHARS)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False, fontsize=FONT["legend"],
                  title=title, title_fontsize=FONT["legend"])
    ax.xaxis.get_major_locator().set_params(integer=True)
    return _finish(fig, ax)


# --------------------------------------------------------------------------- helpers


def _figure(width: float = SIZE[0], height: float = SIZE[1]) -> tuple[Figure, Axes]:
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
        ax = fig.subplots()
    return fig, ax


def _finish(fig: Figure, ax: Axes) -> Figure:
    """Sizes set on the artists themselves (ticks are made lazily, after any rc context has ended)."""
    ax.tick_params(labelsize=FONT["ticks"])
    ax.title.set_fontsize(FONT["title"])
    ax.xaxis.label.set_fontsize(FONT["label"])
    ax.yaxis.label.set_fontsize(FONT["label"])
    ax.grid(axis="y", alpha=0.3)
    return fig


def _numeric_positions(ax: Axes, values: np.ndarray) -> np.ndarray:
    """Where each configuration's point goes, on a log axis if :func:`log_scale` says so; a few
    grid values get a tick each, and the configurations at one value are spread around it."""
    log = log_scale(values)
    if log:
        ax.set_xscale("log")
    distinct = np.unique(values)
    if len(values) == 0:
        return values
    scaled = np.log10(values) if log else values.astype(float)
    if len(distinct) <= MAX_VALUE_TICKS:
        from matplotlib.ticker import NullFormatter, NullLocator

        ax.set_xticks(distinct, [f"{value:g}" for value in distinct])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
        spread_distinct = np.log10(distinct) if log else distinct.astype(float)
        gap = float(np.diff(spread_distinct).min()) if len(distinct) > 1 else 1.0
        scaled = scaled + gap * _spread(values)
        if len(distinct) == 1:
            ax.set_xlim(*(10 ** (spread_distinct[0] + np.array([-0.5, 0.5])) if log
                          else spread_distinct[0] + np.array([-0.5, 0.5])))
        _turn_tick_labels(ax, [f"{value:g}" for value in distinct])
    return 10 ** scaled if log else scaled


def _category_positions(ax: Axes, labels: list[str], means: np.ndarray) -> np.ndarray:
    """Ordered positions 0..k-1 for the categories, a box of their configurations' means each."""
    order = sorted(set(labels), key=_category_order)
    where = {label: number for number, label in enumerate(order)}
    base = np.array([where[label] for label in labels], dtype=float)
    groups = [means[base == number] for number in range(len(order))]
    if any(len(group) > 1 for group in groups):
        ax.boxplot(groups, positions=range(len(order)), widths=0.55, showfliers=False, patch_artist=True,
                   boxprops={"facecolor": "#e8eef6", "edgecolor": "#7f8c99"},
                   medianprops={"color": "#7f8c99"}, whiskerprops={"color": "#7f8c99"},
                   capprops={"color": "#7f8c99"}, zorder=1)
    ax.set_xticks(range(len(order)), [_cut(label, LABEL_CHARS) for label in order])
    ax.set_xlim(-0.6, len(order) - 0.4)
    _turn_tick_labels(ax, order)
    return base + _spread(base)


def _spread(values: np.ndarray) -> np.ndarray:
    """Offsets that spread the points sharing a value evenly, in their order, as fractions of the
    gap to the next value: wider the more share one value, never beyond 0.3 (the next is clear)."""
    offsets = np.zeros(len(values))
    for value in np.unique(values):
        members = np.flatnonzero(values == value)
        if len(members) > 1:
            width = min(0.3, 0.08 * (len(members) - 1))
            offsets[members] = np.linspace(-width, width, len(members))
    return offsets


@dataclass
class _Column:
    positions: np.ndarray
    tick_positions: list[float]
    tick_labels: list[str]


def _axis_positions(values: pd.Series) -> _Column:
    """A parallel-coordinates axis: each value's height in [0, 1], and the ticks to label."""
    if is_numeric(values):
        numbers = values.astype(float).to_numpy()
        present = numbers[~np.isnan(numbers)]
        log = log_scale(present)
        scaled = np.log10(numbers) if log else numbers
        low, high = float(np.nanmin(scaled)), float(np.nanmax(scaled))
        span = high - low

        def height(x: np.ndarray) -> np.ndarray:
            return (x - low) / span if span > 0 else np.full_like(x, 0.5)

        positions = height(scaled)
        distinct = np.unique(present)
        ticks = (np.log10(distinct) if log else distinct) if len(distinct) <= 8 else np.linspace(low, high, 5)
        labels = [f"{(10 ** tick if log else tick):.3g}" for tick in ticks]
        tick_positions = list(height(np.asarray(ticks, dtype=float)))
        if np.isnan(numbers).any():
            positions = np.where(np.isnan(positions), -0.08, positions)
            tick_positions.append(-0.08)
            labels.append(MISSING)
        return _Column(positions, tick_positions, labels)
    texts = values.map(value_label).tolist()
    order = sorted(set(texts), key=_category_order)
    step = 1.0 / (len(order) - 1) if len(order) > 1 else 0.0
    where = {label: (number * step if len(order) > 1 else 0.5) for number, label in enumerate(order)}
    return _Column(np.array([where[text] for text in texts], dtype=float), [where[label] for label in order],
                   [_cut(label, LABEL_CHARS) for label in order])


def _category_order(label: str) -> tuple[int, float, str]:
    """Numbers in numeric order, then texts alphabetically, ``(none)`` last."""
    if label == MISSING:
        return (2, 0.0, label)
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def _seconds(values: pd.Series) -> pd.Series:
    """Times as seconds since the epoch, from numbers (already seconds), datetimes or ISO texts."""
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = values
    elif pd.api.types.is_numeric_dtype(values):
        return values.astype(float)
    else:
        numbers = pd.to_numeric(values, errors="coerce")
        if numbers.notna().sum() == values.notna().sum():
            return numbers.astype(float)
        stamps = pd.to_datetime(values, errors="coerce", utc=True)
    if getattr(stamps.dt, "tz", None) is None:
        stamps = stamps.dt.tz_localize("UTC")
    epoch = pd.Timestamp(0, tz="UTC")
    return (stamps - epoch).dt.total_seconds()


def _time_unit(span: float) -> tuple[str, float]:
    """The unit that makes a span of seconds read as a few to a few hundred of it."""
    if span < 120:
        return "seconds", 1.0
    if span < 2 * 3600:
        return "minutes", 60.0
    if span < 72 * 3600:
        return "hours", 3600.0
    return "days", 86400.0


def _note(ax: Axes, text: str) -> None:
    ax.annotate(text, xy=(0.0, -0.16), xycoords="axes fraction", fontsize=FONT["note"], color="#555555")


def _turn_tick_labels(ax: Axes, labels: Sequence[str]) -> None:
    """Turn the x tick labels that would run into each other side by side: by 30 degrees,
    or upright when there are so many that even turned ones would touch."""
    longest = max((len(_cut(label, LABEL_CHARS)) for label in labels), default=0)
    if longest * len(labels) <= 60 and longest <= 10:
        return
    upright = len(labels) > 12
    for text in ax.get_xticklabels():
        text.set_rotation(90 if upright else 30)
        text.set_horizontalalignment("center" if upright else "right")
        text.set_rotation_mode("default" if upright else "anchor")


def _cut(text: str, limit: int) -> str:
    """Long names cut in the middle, where names of one family differ least (``sgd_with…_momentum``)."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return text[:head] + "…" + text[len(text) - (limit - 1 - head):]
