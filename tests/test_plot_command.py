"""``hpsearch plot`` on real search folders: a small search run by the CLI (seeds, failures,
ragged per-epoch curves), the same search as a CSV alone, a folder of hypnettorch 0.0.4, and a
20-configuration-per-axis search of 2,500 runs written through the store."""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

import matplotlib.image  # noqa: E402

from hpsearch import plots  # noqa: E402
from hpsearch.plot_command import _NoBar, _progress, plot_main  # noqa: E402
from hpsearch.results import load_results  # noqa: E402
from tests.results_fixtures import big_search, real_search  # noqa: E402

HYPNETTORCH_SEARCH = Path(__file__).resolve().parent / "data" / "hypnettorch_search"
GRID = 'grid = {"lr": [0.001, 0.01, 0.1], "opt": ["adam", "sgd", "bad"], "random_seed": [1, 2, 3]}'
FIGURES = ["val_acc_by_lr", "val_acc_by_opt", "best_so_far", "parallel_coordinates", "curves_val_curve"]
CONFIGURATIONS = 8  # 3 lr x 3 opt, less ("bad", 0.01), whose runs all fail


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> Path:
    """27 runs: lr over two decades, three optimizers, three seeds; "bad" fails for seed 2 and lr 0.01."""
    base = tmp_path_factory.mktemp("plotted")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HPSEARCH_STATE_DIR", str(base / "state"))
        patch.setenv("HPSEARCH_CLAIMS_DIR", str(base / "claims"))
        return real_search(base, grid=GRID)


@pytest.fixture
def search(searched, tmp_path) -> Path:
    """A copy of the search for one test, so that tests write their figures apart."""
    return Path(shutil.copytree(searched, tmp_path / "search"))


def plot(capsys, *argv: str) -> tuple[int, list[str], list[str]]:
    code = plot_main(list(argv))
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def test_every_figure_of_a_real_search_is_a_png_in_its_plots_folder(search, capsys):
    code, out, err = plot(capsys, str(search))
    assert code == 0, err
    assert out == [str(search.resolve() / "plots" / f"{name}.png") for name in FIGURES]
    assert err == []
    for line in out:
        image = matplotlib.image.imread(line)
        assert image.shape[0] >= 600 and image.shape[1] >= 1000 and image.shape[2] in (3, 4)
    assert sorted(path.name for path in (search / "plots").iterdir()) == sorted(f"{name}.png" for name in FIGURES)


def test_the_figures_of_a_real_search_show_its_configurations(search):
    runs = load_results(search)
    facts = plots.SearchFacts.of(runs)
    assert facts.seeds() == ["random_seed"]
    ax = plots.performance_against(runs, facts, "lr").axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "lr" and ax.get_ylabel() == "val_acc"
    (bars,) = [c for c in ax.containers if type(c).__name__ == "ErrorbarContainer"]
    assert len(bars.lines[0].get_xdata()) == CONFIGURATIONS and bars.has_yerr
    assert plots.performance_against(runs, facts, "opt").axes[0].get_xscale() == "linear"
    parallel = plots.parallel_coordinates(runs, facts)
    (lines,) = [c for c in parallel.axes[0].collections if type(c).__name__ == "LineCollection"]
    assert len(lines.get_segments()) == CONFIGURATIONS
    best = plots.best_so_far(runs, facts).axes[0]
    done = runs[runs["status"] == "done"]
    assert len(best.collections[0].get_offsets()) == len(done)
    assert max(best.lines[0].get_ydata()) == pytest.approx(done["val_acc"].max())
    curves = plots.curves(runs, facts, "val_curve", top=3).axes[0]
    assert len(curves.lines) == 3 and curves.get_ylabel() == "val_curve"


@pytest.mark.parametrize("fmt", ["svg", "pdf"])
def test_vector_formats_into_another_folder(search, tmp_path, capsys, fmt):
    out_dir = tmp_path / "talk" / "figures"
    code, out, _ = plot(capsys, str(search), "--out", str(out_dir), "--format", fmt, "--top", "2")
    assert code == 0
    assert [Path(line).name for line in out] == [f"{name}.{fmt}" for name in FIGURES]
    assert not (search / "plots").exists()
    for line in out:
        data = Path(line).read_bytes()
        if fmt == "svg":
            assert ElementTree.fromstring(data).tag == "{http://www.w3.org/2000/svg}svg"
        else:
            assert data.startswith(b"%PDF")


def test_a_search_id_prefix_names_the_search_as_for_status(search, tmp_path, monkeypatch, capsys):
    from hpsearch.service.paths import state_paths
    from hpsearch.service.registry import Registry

    monkeypatch.setenv("HPSEARCH_STATE_DIR", str(tmp_path / "state"))
    with Registry.open(state_paths()) as registry:
        entry = registry.register(search, kind="foreground", state="finished")
    code, out, err = plot(capsys, entry.id[:6], "--top", "1")
    assert code == 0, err
    assert out == [str(search.resolve() / "plots" / f"{name}.png") for name in FIGURES]


def test_a_csv_alone_has_no_times_so_no_best_so_far_figure_and_says_so(searched, tmp_path, capsys):
    folder = tmp_path / "csv_only"
    folder.mkdir()
    for name in ("search.json", "search_results.csv"):
        shutil.copy(searched / name, folder / name)
    code, out, err = plot(capsys, str(folder))
    assert code == 0
    assert [Path(line).stem for line in out] == [name for name in FIGURES if name != "best_so_far"]
    assert err == ["hpsearch plot: note: no run has an end time (a search_results.csv alone records none): "
                   "no best-so-far figure"]


def test_a_folder_of_hypnettorch_0_0_4(tmp_path, capsys):
    folder = Path(shutil.copytree(HYPNETTORCH_SEARCH, tmp_path / "hnt"))
    code, out, err = plot(capsys, str(folder), "--format", "png")
    assert code == 0, err
    assert [Path(line).stem for line in out] == ["acc_by_lr", "acc_by_opt", "best_so_far", "parallel_coordinates",
                                                  "curves_acc_per_epoch"]
    for line in out:
        assert matplotlib.image.imread(line).ndim == 3
    runs = load_results(folder)
    best = plots.best_so_far(runs, plots.SearchFacts.of(runs)).axes[0]
    assert "since the first run ended" in best.get_xlabel()  # its summary files' times; no start times


def test_nothing_to_plot_is_one_line_and_exit_1(searched, tmp_path, capsys):
    folder = tmp_path / "all_failed"
    folder.mkdir()
    shutil.copy(searched / "search.json", folder / "search.json")
    lines = (searched / "search_results.csv").read_text().splitlines()
    status = lines[0].split(";").index("status")
    rows = [line.split(";") for line in lines[1:]]
    for row in rows:
        row[status] = "failed"
    (folder / "search_results.csv").write_text("\n".join([lines[0], *(";".join(row) for row in rows)]) + "\n")
    code, out, err = plot(capsys, str(folder))
    assert code == 1 and out == []
    assert err == [f"hpsearch plot: nothing to plot: no run in {folder.resolve()} is done with a value of val_acc"]
    assert not (folder / "plots").exists()


@pytest.mark.parametrize("argv, problem", [
    (["{missing}"], "not a registered search id or prefix, and not a folder"),
    (["{search}", "--top", "0"], "--top must be 1 or more, got 0"),
    (["{search}", "--out", "{file}"], "is a file, not a folder"),
    (["{search}", "--out", "{file}/below"], "lies under the file"),
    (["{empty}"], "no search folder"),
])
def test_bad_input_is_one_line_exit_2_and_creates_nothing(search, tmp_path, capsys, argv, problem):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "empty").mkdir()
    names = {"search": str(search), "missing": str(tmp_path / "nowhere"), "file": str(tmp_path / "a_file"),
             "empty": str(tmp_path / "empty")}
    code, out, err = plot(capsys, *(word.format(**names) for word in argv))
    assert code == 2 and out == []
    assert len(err) == 1 and err[0].startswith("hpsearch plot: error: ") and problem in err[0], err
    assert not (search / "plots").exists() and not (tmp_path / "nowhere").exists()


def test_a_bad_flag_value_is_one_line_exit_2(search, capsys):
    with pytest.raises(SystemExit) as stop:
        plot_main([str(search), "--format", "gif"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "invalid choice: 'gif'" in err[0]


def test_without_matplotlib_one_line_exit_2_names_the_extra(search):
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from hpsearch.cli import main\n"
            f"sys.exit(main(['plot', {str(search)!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == ["hpsearch plot: error: matplotlib is not installed: "
                                        "pip install 'hpsearch[plot]'"]
    assert not (search / "plots").exists()


def test_help_and_the_command_table_import_neither_matplotlib_nor_pandas():
    code = ("import sys\n"
            "import hpsearch.cli, hpsearch.subcommands, hpsearch.plot_command\n"
            "hpsearch.plot_command._parser().format_help()\n"
            "print(sorted(m for m in ('matplotlib', 'pandas', 'tqdm') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_large_search_gets_a_progress_bar_on_stderr_and_a_small_one_none():
    assert isinstance(_progress(4, 2000), _NoBar)
    bar = _progress(4, 2001)
    try:
        assert type(bar).__module__.startswith("tqdm") and bar.fp is not sys.stdout and not bar.disable
    finally:
        bar.close()


def test_a_search_of_2500_runs_is_plotted(tmp_path, capsys):
    folder = big_search(tmp_path / "big", 2500)
    code, out, err = plot(capsys, str(folder))
    assert code == 0, err
    assert [Path(line).stem for line in out] == ["acc_by_lr", "acc_by_layers", "best_so_far", "parallel_coordinates",
                                                  "curves_curve"]
    runs = load_results(folder)
    facts = plots.SearchFacts.of(runs)
    configs = plots.configurations(runs, facts)
    ax = plots.performance_against(runs, facts, "layers", configs=configs).axes[0]
    (bars,) = [c for c in ax.containers if type(c).__name__ == "ErrorbarContainer"]
    assert len(bars.lines[0].get_xdata()) == len(configs) == 500


def test_a_plots_file_in_the_search_folder_is_refused_naming_the_way_out(search, capsys):
    (search / "plots").write_text("not a folder")
    code, out, err = plot(capsys, str(search))
    assert code == 2 and out == []
    assert err == [f"hpsearch plot: error: {search.resolve() / 'plots'} (give --out DIR to write elsewhere): "
                   "is a file, not a folder"]
