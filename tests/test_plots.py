"""The figures of hpsearch.plots, checked on the returned Figure objects, from frames
built by hand in the shape of hpsearch.results.load_results (one row per run)."""

from __future__ import annotations

import io
import itertools
import math
import random
import xml.etree.ElementTree as ElementTree

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib")

from matplotlib.collections import LineCollection, PolyCollection  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402
import matplotlib.image  # noqa: E402

from hpsearch import plots  # noqa: E402
from hpsearch.plots import SearchFacts  # noqa: E402

PARAMS = ["lr", "optimizer", "batch_size", "use_bias", "seed"]
LRS = [1e-4, 1e-3, 1e-2, 1e-1]
OPTIMIZERS = ["adam", "sgd_with_nesterov_momentum", "rmsprop"]
CONFIGS = len(LRS) * len(OPTIMIZERS) * 2 * 2


def frame(seeds: int = 3, failures: bool = True, times: bool = True, epochs: int = 6) -> pd.DataFrame:
    """A search over lr (4 decades), a category with a long name, two batch sizes, a bool, and seeds;
    every 17th run failed (no values), as load_results gives them."""
    rng = random.Random(1)
    rows = []
    origin = 1_700_000_000.0
    grid = itertools.product(LRS, OPTIMIZERS, [16, 64], [False, True], range(seeds))
    for number, (lr, optimizer, batch, bias, seed) in enumerate(grid):
        acc = 0.9 - 0.1 * abs(math.log10(lr) + 2.5) - (0.05 if optimizer == "rmsprop" else 0) + 0.02 * bias \
            + rng.gauss(0, 0.02)
        curve = [acc * (1 - math.exp(-(epoch + 1) / 2)) for epoch in range(epochs)]
        failed = failures and number % 17 == 5
        start = origin + 30 * number
        rows.append({"lr": lr, "optimizer": optimizer, "batch_size": batch, "use_bias": bias, "seed": seed,
                     "val_acc": math.nan if failed else acc, "val_acc_per_epoch": None if failed else curve,
                     "val_loss": math.nan if failed else 1 - acc,
                     "status": "failed" if failed else "done", "reason": "exit code 1" if failed else "",
                     "attempt": 1, "run_dir": f"/s/sim_{number:04d}", "config_key": f"{number:08x}", "gpu": "0",
                     "start": start if times else None, "end": start + 100 + rng.random() * 50 if times else None})
    return pd.DataFrame(rows)


def facts(ascending: bool = False, key: str = "val_acc") -> SearchFacts:
    return SearchFacts(key, ascending, PARAMS, ["seed"], ["val_acc", "val_acc_per_epoch", "val_loss"])


def expected_configurations(runs: pd.DataFrame) -> pd.DataFrame:
    """An independent groupby of the done runs over everything but the seed."""
    done = runs[runs["status"] == "done"]
    return done.groupby(["lr", "optimizer", "batch_size", "use_bias"])["val_acc"].agg(["count", "mean", "std"])


def the_errorbar(ax) -> ErrorbarContainer:
    (container,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    return container


# --------------------------------------------------------------------------- grouping


def test_configurations_match_an_independent_groupby_and_are_ranked():
    runs = frame()
    table = plots.configurations(runs, facts())
    expected = expected_configurations(runs)
    assert len(table) == len(expected) == CONFIGS
    for _, row in table.iterrows():
        count, mean, std = expected.loc[(row["lr"], row["optimizer"], row["batch_size"], row["use_bias"])]
        assert row["val_acc_n"] == count and row["val_acc_mean"] == pytest.approx(mean)
        assert (math.isnan(row["val_acc_std"]) and count == 1) or row["val_acc_std"] == pytest.approx(std)
    assert list(table["val_acc_mean"]) == sorted(table["val_acc_mean"], reverse=True)
    ascending = plots.configurations(runs, facts(True))
    assert list(ascending["val_acc_mean"]) == sorted(ascending["val_acc_mean"])


def test_facts_come_from_the_attrs_of_load_results():
    runs = frame()
    runs.attrs["hpsearch"] = {"grid_keys": PARAMS, "summary_keys": ["val_acc", "val_acc_per_epoch", "val_loss"],
                              "performance_key": "val_loss", "ascending": True, "seed_keys": None}
    search = SearchFacts.of(runs)
    assert search.performance_key == "val_loss" and search.ascending
    assert search.seeds() == ["seed"] and search.settings() == ["lr", "optimizer", "batch_size", "use_bias"]
    runs.attrs.clear()
    with pytest.raises(ValueError, match="no performance key"):
        SearchFacts.of(runs)


# --------------------------------------------------------------------------- performance against a parameter


def test_a_parameter_spanning_decades_gets_a_log_axis_one_point_per_configuration_and_error_bars():
    fig = plots.performance_against(frame(), facts(), "lr")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == "lr" and ax.get_ylabel() == "val_acc" and "lr" in ax.get_title()
    bars = the_errorbar(ax)
    assert len(bars.lines[0].get_xdata()) == CONFIGS
    assert bars.has_yerr
    assert [float(tick) for tick in ax.get_xticks()] == LRS
    assert [text.get_text() for text in ax.get_xticklabels()] == ["0.0001", "0.001", "0.01", "0.1"]
    # configurations that share a value are spread around it, not beyond 0.3 of the gap to the next
    xs = np.log10(np.asarray(bars.lines[0].get_xdata(), dtype=float))
    assert len(set(np.round(xs, 6))) == CONFIGS
    assert all(min(abs(x - math.log10(lr)) for lr in LRS) <= 0.3 + 1e-9 for x in xs)


def test_a_numeric_parameter_within_two_decades_keeps_a_linear_axis():
    runs = frame()
    fig = plots.performance_against(runs, facts(), "batch_size")
    assert fig.axes[0].get_xscale() == "linear"
    narrow = runs.assign(lr=runs["lr"] * 0 + runs["batch_size"] / 16 * 0.3)  # 0.3 and 1.2
    assert plots.performance_against(narrow, facts(), "lr").axes[0].get_xscale() == "linear"
    with_zero = runs.assign(lr=runs["lr"].replace(1e-4, 0.0))  # decades, but a zero has no logarithm
    assert plots.performance_against(with_zero, facts(), "lr").axes[0].get_xscale() == "linear"


def test_without_seeds_there_are_no_error_bars():
    fig = plots.performance_against(frame(seeds=1, failures=False), facts(), "lr")
    bars = the_errorbar(fig.axes[0])
    assert not bars.has_yerr
    assert len(bars.lines[0].get_xdata()) == CONFIGS


def test_categories_sit_at_ordered_positions_with_boxes_and_cut_labels():
    fig = plots.performance_against(frame(), facts(), "optimizer")
    ax = fig.axes[0]
    labels = [text.get_text() for text in ax.get_xticklabels()]
    assert labels == ["adam", "rmsprop", "sgd_with…_momentum"]
    assert all(text.get_rotation() == 30 for text in ax.get_xticklabels())
    assert len(the_errorbar(ax).lines[0].get_xdata()) == CONFIGS
    boxes = [patch for patch in ax.patches if type(patch).__name__ == "PathPatch"]
    assert len(boxes) == len(OPTIMIZERS)
    positions = np.asarray(the_errorbar(ax).lines[0].get_xdata(), dtype=float)
    assert set(np.round(positions).astype(int)) == {0, 1, 2}


def test_booleans_are_categories():
    ax = plots.performance_against(frame(), facts(), "use_bias").axes[0]
    assert [text.get_text() for text in ax.get_xticklabels()] == ["False", "True"]
    assert ax.get_xscale() == "linear"


def test_configurations_without_a_value_of_the_parameter_are_left_out_with_a_note():
    runs = frame()
    runs["momentum"] = np.where(runs["optimizer"] == "adam", np.nan, 0.9)
    runs.loc[runs["optimizer"] == "rmsprop", "momentum"] = 0.5
    search = SearchFacts("val_acc", False, [*PARAMS, "momentum"], ["seed"])
    ax = plots.performance_against(runs, search, "momentum").axes[0]
    assert len(the_errorbar(ax).lines[0].get_xdata()) == CONFIGS - CONFIGS // 3
    assert any("16 configuration(s) without a value of momentum" in text.get_text() for text in ax.texts)


def test_only_varying_settings_are_plotted_against_and_never_the_seed():
    runs = frame().assign(epochs=5)
    search = SearchFacts("val_acc", False, [*PARAMS, "epochs"], ["seed"])
    configs = plots.configurations(runs, search)
    assert plots.varying_params(configs, search) == ["lr", "optimizer", "batch_size", "use_bias"]


# --------------------------------------------------------------------------- best so far


@pytest.mark.parametrize("ascending", [False, True])
def test_best_so_far_is_the_running_best_in_the_sort_direction(ascending):
    runs = frame()
    key = "val_loss" if ascending else "val_acc"
    fig = plots.best_so_far(runs, facts(ascending, key))
    ax = fig.axes[0]
    (line,) = [line for line in ax.lines if line.get_label() == "best so far"]
    best = np.asarray(line.get_ydata(), dtype=float)
    done = runs[runs["status"] == "done"].sort_values("end")
    expected = done[key].cummin() if ascending else done[key].cummax()
    assert np.allclose(best, expected.to_numpy())
    assert len(ax.collections[0].get_offsets()) == len(done)
    assert ax.get_ylabel() == key and "since the search started" in ax.get_xlabel()
    assert ("lower" if ascending else "higher") in ax.get_title()


def test_best_so_far_reads_datetime_and_text_times_and_picks_a_unit():
    runs = frame()
    for column in ("start", "end"):
        runs[column] = pd.to_datetime(runs[column], unit="s")
    ax = plots.best_so_far(runs, facts()).axes[0]
    assert "minutes" in ax.get_xlabel()  # 144 runs 30 s apart
    elapsed = np.asarray(ax.lines[0].get_xdata(), dtype=float)
    assert 1.5 < elapsed.min() < 3 and elapsed.max() < 80
    runs["end"] = runs["end"].dt.strftime("%Y-%m-%dT%H:%M:%S")
    runs["start"] = runs["start"].dt.strftime("%Y-%m-%dT%H:%M:%S")
    assert "minutes" in plots.best_so_far(runs, facts()).axes[0].get_xlabel()


def test_no_end_times_no_best_so_far_figure():
    assert plots.best_so_far(frame(times=False), facts()) is None
    assert plots.best_so_far(frame().drop(columns=["start", "end"]), facts()) is None


# --------------------------------------------------------------------------- parallel coordinates


def test_parallel_coordinates_one_line_per_configuration_with_labelled_axes_and_colourbar():
    fig = plots.parallel_coordinates(frame(), facts())
    ax = fig.axes[0]
    (lines,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    segments = lines.get_segments()
    assert len(segments) == CONFIGS
    assert all(len(segment) == 5 for segment in segments)  # 4 settings and the performance key
    assert [text.get_text() for text in ax.get_xticklabels()] == ["lr", "optimizer", "batch_size", "use_bias",
                                                                  "val_acc"]
    colourbar = fig.axes[1]
    assert colourbar.get_ylabel() == "val_acc (mean over seeds)"
    tick_texts = {text.get_text() for text in ax.texts}
    assert {"0.0001", "0.1", "adam", "rmsprop", "sgd_with…_momentum", "False", "True", "16", "64"} <= tick_texts
    heights = np.array([segment[:, 1] for segment in segments])
    assert set(np.round(heights[:, 0], 6)) == {0.0, round(1 / 3, 6), round(2 / 3, 6), 1.0}  # lr, log-spaced
    assert set(np.round(heights[:, 1], 6)) == {0.0, 0.5, 1.0}  # three ordered categories
    # the best configuration is drawn last, on top
    best = plots.configurations(frame(), facts())["val_acc_mean"].iloc[0]
    assert heights[-1, -1] == pytest.approx(1.0) and heights[:, -1].max() == pytest.approx(1.0)
    assert best == pytest.approx(frame().query("status == 'done'").groupby(
        ["lr", "optimizer", "batch_size", "use_bias"])["val_acc"].mean().max())


def test_parallel_coordinates_colour_the_best_bright_also_when_lower_is_better():
    fig = plots.parallel_coordinates(frame(), facts(True, "val_loss"))
    (lines,) = [c for c in fig.axes[0].collections if isinstance(c, LineCollection)]
    colours = lines.get_colors()
    assert colours[-1][1] > colours[0][1]  # viridis: the bright end is yellow-green, high in green
    assert fig.axes[1].get_ylabel() == "val_loss (mean over seeds)"


# --------------------------------------------------------------------------- curves


def test_curves_of_the_top_configurations_with_bands_over_seeds():
    runs = frame()
    fig = plots.curves(runs, facts(), "val_acc_per_epoch", top=4)
    ax = fig.axes[0]
    assert len(ax.lines) == 4
    assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 4
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "val_acc_per_epoch"
    first = plots.configurations(runs, facts()).iloc[0]
    mine = runs[(runs["status"] == "done") & (runs["lr"] == first["lr"]) & (runs["optimizer"] == first["optimizer"])
                & (runs["batch_size"] == first["batch_size"]) & (runs["use_bias"] == first["use_bias"])]
    curves = np.array(mine["val_acc_per_epoch"].tolist())
    assert np.allclose(ax.lines[0].get_ydata(), curves.mean(axis=0))
    assert np.allclose(ax.collections[0].get_paths()[0].vertices[:, 1].max(),
                       (curves.mean(axis=0) + curves.std(axis=0, ddof=1)).max())
    assert list(ax.lines[0].get_xdata()) == list(range(1, 7))
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend[0].startswith("#1 ") and f"n={len(mine)}" in legend[0]
    assert "seed" not in " ".join(legend)


def test_curves_without_seeds_have_no_bands_and_a_top_larger_than_the_search_draws_all():
    runs = frame(seeds=1, failures=False)
    ax = plots.curves(runs, facts(), "val_acc_per_epoch", top=500).axes[0]
    assert len(ax.lines) == CONFIGS
    assert not [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert ax.get_xlabel() == "epoch"


def test_curves_of_unequal_lengths_average_what_is_there():
    runs = frame(seeds=2, failures=False).iloc[:2].copy()
    runs["val_acc_per_epoch"] = [[0.1, 0.2, 0.3], [0.3, 0.4]]
    runs["curve"] = runs["val_acc_per_epoch"]
    search = SearchFacts("val_acc", False, PARAMS, ["seed"], ["val_acc", "curve"])
    ax = plots.curves(runs, search, "curve", top=1).axes[0]
    assert np.allclose(ax.lines[0].get_ydata(), [0.2, 0.3, 0.3])
    assert ax.get_xlabel().startswith("position in the list")
    with pytest.raises(ValueError, match="'val_loss_per_epoch' is not a numeric summary key"):
        plots.curves(runs, search, "val_loss_per_epoch")


def test_list_valued_summary_keys_are_found_and_list_valued_settings_are_not():
    runs = frame()
    runs["hidden"] = [[100, 100]] * len(runs)
    search = SearchFacts("val_acc", False, [*PARAMS, "hidden"], ["seed"], None)
    assert plots.list_keys(plots.configurations(runs, search), search, runs) == ["val_acc_per_epoch"]


# --------------------------------------------------------------------------- files


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
def test_figures_save_as_valid_images(fmt):
    buffer = io.BytesIO()
    plots.parallel_coordinates(frame(), facts()).savefig(buffer, format=fmt)
    data = buffer.getvalue()
    if fmt == "png":
        image = matplotlib.image.imread(io.BytesIO(data), format="png")
        assert image.shape[0] >= 600 and image.shape[1] >= 1000  # slide size at 150 dpi
    elif fmt == "svg":
        assert ElementTree.fromstring(data).tag == "{http://www.w3.org/2000/svg}svg"
    else:
        assert data.startswith(b"%PDF")


@pytest.mark.parametrize("values, log", [
    ([1e-4, 1e-3, 1e-2, 1e-1], True),
    ([1e-5, 1e-3], True),  # two values two decades apart
    ([0.1, 1, 10], True),
    ([1, 10, 100, 1000], True),
    ([16, 64], False),  # less than two decades
    ([0.0, 1e-3, 1e-1], False),  # a zero has no logarithm
    ([-1e-3, 1e-1], False),
    ([0.01, 0.5, 1.0], False),  # two decades, but spread evenly on a linear axis
    ([7.0], False),
])
def test_log_axis_rule(values, log):
    assert plots.log_scale(values) is log


def test_a_uniform_draw_near_zero_keeps_a_linear_axis_and_a_log_uniform_one_gets_a_log_axis():
    rng = np.random.default_rng(3)
    assert not plots.log_scale(rng.uniform(0, 0.5, 2000))
    assert plots.log_scale(10 ** rng.uniform(-5, -1, 2000))


def test_many_long_categories_stand_upright_on_a_wider_figure_and_are_cut_in_the_middle():
    names = [f"dataset_{family}_{number}" for number, family in enumerate(["cifar", "imagenet_subset"] * 10)]
    runs = pd.DataFrame([{"data": name, "seed": seed, "acc": 0.1 * seed + number / 100, "status": "done",
                          "run_dir": f"/s/{number}_{seed}", "config_key": f"{number}_{seed}"}
                         for number, name in enumerate(names) for seed in range(2)])
    fig = plots.performance_against(runs, SearchFacts("acc", False, ["data", "seed"], None, ["acc"]), "data")
    ax = fig.axes[0]
    labels = ax.get_xticklabels()
    assert len(labels) == 20 and all(label.get_rotation() == 90 for label in labels)
    assert fig.get_figwidth() > plots.SIZE[0]
    assert "dataset_…subset_11" in [label.get_text() for label in labels]
    assert len(the_errorbar(ax).lines[0].get_xdata()) == 20 and the_errorbar(ax).has_yerr
