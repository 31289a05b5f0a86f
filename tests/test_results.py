"""hpsearch.load_results and hpsearch.group_seeds on real searches, checked against plain pandas."""

from __future__ import annotations

import math
from pathlib import Path
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import hpsearch
from tests.results_fixtures import big_search, real_search

GRID = ["lr", "opt", "random_seed"]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    return real_search(tmp_path_factory.mktemp("seeded"))


def test_import_hpsearch_does_not_import_pandas():
    code = "import sys, hpsearch; assert 'pandas' not in sys.modules; assert callable(hpsearch.load_results); " \
           "assert hpsearch.group_seeds.__module__ == 'hpsearch.results'"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_load_results_has_one_typed_row_per_run(seeded):
    df = hpsearch.load_results(seeded)
    assert len(df) == 18
    assert list(df.columns) == [*GRID, "val_acc", "val_curve", "loss", "finished", "status", "reason", "attempt",
                                "run_dir", "config_key", "gpu", "start", "end"]
    assert df["lr"].dtype == np.float64 and df["random_seed"].dtype == np.int64 and pd.api.types.is_string_dtype(df["opt"])
    assert df["val_acc"].dtype == np.float64 and df["attempt"].dtype == np.int64
    assert str(df["start"].dtype) == "datetime64[ns, UTC]" and str(df["end"].dtype) == "datetime64[ns, UTC]"
    assert df["status"].value_counts().to_dict() == {"done": 14, "failed": 4}
    failed = df[df.status == "failed"]
    assert set(failed.opt) == {"bad"} and all(r.startswith("exit code 3") for r in failed.reason)
    done = df[df.status == "done"]
    assert all(isinstance(v, list) and len(v) == 2 + s % 2 for v, s in zip(done.val_curve, done.random_seed))
    assert done["start"].notna().all() and (done["end"] >= done["start"]).all()
    assert all(path.startswith(str(seeded)) for path in df.run_dir) and df.config_key.is_unique
    assert df.gpu.isna().all()  # CPU runs
    meta = df.attrs["hpsearch"]
    assert meta["performance_key"] == "val_acc" and meta["ascending"] is False and meta["source"] == "store"


def test_load_results_without_store_reads_the_run_folders(seeded, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(seeded, copy)
    (copy / "hpsearch.db").unlink()
    for name in ("hpsearch.db-wal", "hpsearch.db-shm"):
        (copy / name).unlink(missing_ok=True)
    from_store = hpsearch.load_results(seeded).sort_values("config_key").reset_index(drop=True)
    from_folders = hpsearch.load_results(copy)
    assert from_folders.attrs["hpsearch"]["source"] == "run_folders"
    from_folders = from_folders.sort_values("config_key").reset_index(drop=True)
    for column in [*GRID, "val_acc", "loss", "status", "config_key", "attempt"]:
        pd.testing.assert_series_equal(from_folders[column], from_store[column], obj=column)
    assert from_folders.val_curve.tolist()[:3] == from_store.val_curve.tolist()[:3]


def independent_groupby(df: pd.DataFrame, key: str) -> pd.DataFrame:
    done = df[df.status == "done"]
    return done.groupby(["lr", "opt"])[key].agg(["count", "mean", "std", "min", "max"])


def test_group_seeds_equals_a_plain_pandas_groupby(seeded):
    df = hpsearch.load_results(seeded)
    grouped = hpsearch.group_seeds(df)
    assert grouped.attrs["hpsearch"]["seed_keys"] == ["random_seed"]
    assert len(grouped) == 6  # every (lr, opt), also the one whose runs all failed
    expected = independent_groupby(df, "val_acc")
    for key in ("val_acc", "loss"):
        expected = independent_groupby(df, key)
        with_runs = grouped[grouped[f"{key}_n"] > 0].set_index(["lr", "opt"]).sort_index()
        assert with_runs.index.tolist() == expected.index.tolist()
        assert with_runs[f"{key}_n"].tolist() == expected["count"].tolist()
        for stat in ("mean", "std", "min", "max"):
            np.testing.assert_allclose(with_runs[f"{key}_{stat}"].to_numpy(dtype=float),
                                       expected[stat].to_numpy(dtype=float), equal_nan=True)
    empty = grouped[(grouped.lr == 0.01) & (grouped.opt == "bad")].iloc[0]
    assert empty.n_done == 0 and empty.n_failed == 3 and empty.n_runs == 3 and math.isnan(empty.val_acc_mean)
    partial = grouped[(grouped.lr == 0.1) & (grouped.opt == "bad")].iloc[0]
    assert (partial.n_done, partial.n_failed, sorted(partial.seeds)) == (2, 1, [1, 2, 3])
    means = grouped.val_acc_mean.tolist()
    assert means[:5] == sorted(means[:5], reverse=True) and math.isnan(means[5])  # ranked, no value last
    assert grouped.iloc[0].lr == 0.1 and grouped.iloc[0].opt == "adam"


def test_list_valued_keys_are_aggregated_element_wise_over_ragged_runs(seeded):
    df = hpsearch.load_results(seeded)
    grouped = hpsearch.group_seeds(df).set_index(["lr", "opt"])
    done = df[df.status == "done"]
    for (lr, opt), runs in done.groupby(["lr", "opt"]):
        width = max(len(curve) for curve in runs.val_curve)
        curves = pd.DataFrame([curve + [math.nan] * (width - len(curve)) for curve in runs.val_curve])
        row = grouped.loc[(lr, opt)]
        assert row.val_curve_n == curves.count().tolist()
        np.testing.assert_allclose(row.val_curve_mean, curves.mean().to_numpy())
        np.testing.assert_allclose(row.val_curve_std, curves.std().to_numpy(), equal_nan=True)
        np.testing.assert_allclose(row.val_curve_min, curves.min().to_numpy())
        np.testing.assert_allclose(row.val_curve_max, curves.max().to_numpy())


def test_group_seeds_honours_explicit_seed_keys_and_ascending(seeded):
    df = hpsearch.load_results(seeded)
    per_run = hpsearch.group_seeds(df, seed_keys=[])
    assert len(per_run) == 18 and (per_run.n_runs == 1).all()
    by_loss = hpsearch.group_seeds(df, performance_key="loss", ascending=True)
    assert by_loss.loss_mean.dropna().is_monotonic_increasing
    with pytest.raises(ValueError, match="'nope' is not a column"):
        hpsearch.group_seeds(df, seed_keys=["nope"])
    with pytest.raises(ValueError, match="grid_keys"):
        hpsearch.group_seeds(pd.DataFrame(df))  # attrs gone
    done = df[df.status == "done"]  # a filtered frame keeps its attrs
    assert hpsearch.group_seeds(done).n_failed.sum() == 0


def test_load_results_refuses_what_is_no_search(tmp_path):
    with pytest.raises(hpsearch.errors.UsageError, match="no such search folder"):
        hpsearch.load_results(tmp_path / "nothing")
    with pytest.raises(hpsearch.errors.UsageError, match="no search folder"):
        hpsearch.load_results(tmp_path)


def test_twenty_thousand_runs_load_and_group_correctly(tmp_path):
    folder = big_search(tmp_path / "big", 20_000)
    df = hpsearch.load_results(folder)
    assert len(df) == 20_000 and df.config_key.is_unique
    import sqlite3

    with sqlite3.connect(folder / "hpsearch.db") as db:
        counts = dict(db.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())
    assert df.status.value_counts().to_dict() == counts
    assert df.gpu.dropna().isin(["0", "1", "2", "3"]).all()
    grouped = hpsearch.group_seeds(df)
    assert len(grouped) == 4000 and grouped.n_runs.sum() == 20_000
    expected = df[df.status == "done"].groupby(["lr", "layers", "opt"])["acc"].agg(["count", "mean", "std"])
    with_runs = grouped[grouped.acc_n > 0].set_index(["lr", "layers", "opt"]).sort_index()
    assert with_runs.acc_n.tolist() == expected["count"].tolist()
    np.testing.assert_allclose(with_runs.acc_mean, expected["mean"])
    np.testing.assert_allclose(with_runs.acc_std, expected["std"], equal_nan=True)


def test_seed_keys_of_the_grid_module_are_recorded_and_used(tmp_path):
    folder = real_search(tmp_path, extra='_SEED_KEYS = ["random_seed", "opt"]',
                         grid='grid = {"lr": [0.01, 0.1], "opt": ["adam", "sgd"], "random_seed": [1]}')
    import json

    assert json.loads((folder / "search.json").read_text())["seed_keys"] == ["random_seed", "opt"]
    grouped = hpsearch.group_seeds(hpsearch.load_results(folder))
    assert sorted(grouped.lr) == [0.01, 0.1] and (grouped.n_done == 2).all()
    assert "opt" not in grouped.columns and sorted(grouped.seeds[0]) == [(1, "adam"), (1, "sgd")]


@pytest.mark.parametrize("value, problem", [
    ('"random_seed"', "must be a list of grid key names"),
    ('["random_seed", 3]', "must be a list of grid key names"),
    ('["nope"]', "'nope', which is not a grid key"),
])
def test_bad_seed_keys_are_one_line_and_exit_2(tmp_path, value, problem):
    from tests.results_fixtures import MODULE

    (tmp_path / "grid_cfg.py").write_text(MODULE.replace("EXTRA", f"_SEED_KEYS = {value}"))
    done = subprocess.run([sys.executable, "-m", "hpsearch", "--grid_module=grid_cfg", "--list"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and problem in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


HNT = Path(__file__).resolve().parent / "data" / "hypnettorch_search"


def test_a_search_folder_of_hypnettorch_reads_like_ours(tmp_path):
    """tests/data/hypnettorch_search was written by hypnettorch 0.0.4 itself (make_hypnettorch_search.py)."""
    import shutil

    folder = tmp_path / "old"
    shutil.copytree(HNT, folder)
    shutil.rmtree(folder / "sim_20261201121601_12")  # a run the killed search never started
    df = hpsearch.load_results(folder)
    assert df.attrs["hpsearch"]["source"] == "hypnettorch"
    assert list(df.columns)[:7] == ["lr", "opt", "random_seed", "acc", "acc_per_epoch", "loss", "finished"]
    assert len(df) == 12 and df.status.value_counts().to_dict() == {"done": 8, "unfinished": 3, "missing": 1}
    first = df.iloc[0]  # commands.pickle order: lr 0.1, adam, seed 3
    assert (first.lr, first.opt, first.random_seed, first.acc) == (0.1, "adam", 3, 0.63)
    assert first.loss == 7.5e-05  # the summary file says so; hypnettorch's CSV holds "7.5,05"
    assert first.acc_per_epoch == [0.21, 0.42, 0.63, 0.84]
    assert df.loc[df.status == "missing", "run_dir"].iloc[0].endswith("sim_20261201121601_12")
    assert "no summary file" in df.loc[(df.opt == "bad") & (df.random_seed == 2), "reason"].iloc[0]
    grouped = hpsearch.group_seeds(df)
    assert grouped[["lr", "opt"]].values.tolist()[:2] == [[0.1, "adam"], [0.01, "adam"]]
    expected = df[df.status == "done"].groupby(["lr", "opt"])["acc"].agg(["count", "mean", "std"])
    got = grouped.set_index(["lr", "opt"]).loc[expected.index]
    assert got.acc_n.tolist() == expected["count"].tolist()
    np.testing.assert_allclose(got.acc_mean, expected["mean"])
    np.testing.assert_allclose(got.acc_std, expected["std"], equal_nan=True)


def test_hypnettorch_folder_without_its_command_list_is_read_from_the_run_folders(tmp_path):
    import shutil

    folder = tmp_path / "old"
    shutil.copytree(HNT, folder)
    for name in ("commands.pickle", "commands.sh", "commands_wo_dirs.sh", "hnt_grid.py"):
        (folder / name).unlink()
    df = hpsearch.load_results(folder)
    assert len(df) == 12 and (df.status == "done").sum() == 9  # every folder, 9 of them say finished 1
    assert sorted(df.acc.dropna())[:2] == [0.32, 0.34]
    row = df[df.run_dir.str.endswith("_01")].iloc[0]
    assert (row.lr, row.opt, row.random_seed, row.loss) == (0.1, "adam", 3, 7.5e-05)


def test_only_the_csv_left_is_read_back(seeded, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(seeded, copy)
    for path in [*copy.glob("hpsearch.db*"), copy / "commands.sh"]:
        path.unlink()
    for path in copy.glob("sim_*"):
        shutil.rmtree(path)
    from_csv = hpsearch.load_results(copy)
    assert from_csv.attrs["hpsearch"]["source"] == "csv"
    original = hpsearch.load_results(seeded)
    assert sorted(from_csv.config_key) == sorted(original.config_key)
    merged = from_csv.merge(original, on="config_key", suffixes=("", "_store"))
    for column in ("lr", "opt", "random_seed", "val_acc", "status"):
        pd.testing.assert_series_equal(merged[column], merged[f"{column}_store"], check_names=False, obj=column)
    done = merged[merged.status == "done"]
    assert done.val_curve.tolist() == done.val_curve_store.tolist()


def test_hypnettorch_csv_alone_is_read_with_its_list_cells(tmp_path):
    import shutil

    folder = tmp_path / "old"
    shutil.copytree(HNT, folder)
    for name in ("commands.pickle", "commands.sh", "commands_wo_dirs.sh"):
        (folder / name).unlink()
    for path in folder.glob("sim_*"):
        shutil.rmtree(path)
    df = hpsearch.load_results(folder)
    assert len(df) == 10 and (df.status == "done").sum() == 9  # the CSV has a row per run with a summary
    row = df[(df.lr == 0.1) & (df.opt == "adam") & (df.random_seed == 3)].iloc[0]
    assert row.acc == 0.63 and row.acc_per_epoch == [0.21, 0.42, 0.63, 0.84]
    assert row.loss == [7.5, 5]  # hypnettorch's CSV mangled 7.5e-05 into "7.5,05"; only the run folder knew


def test_group_keys_match_across_frames_whatever_the_column_types():
    """A key that only some configurations have is a float column; its ints must still match."""
    def frame(momentum: list) -> pd.DataFrame:
        from hpsearch.run_table import RunTable

        table = RunTable(search="x", source="test", grid_keys=["lr", "momentum", "seed"], summary_keys=["acc"],
                         performance_key="acc")
        for i, value in enumerate(momentum):
            config = {"lr": 0.1, "seed": i} | ({} if value is None else {"momentum": value})
            table.add(config, {"acc": 0.5}, "done", None, 1, f"run{i}", f"k{i}", None, None, None)
        return table.frame()

    full, gappy = frame([5, 5]), frame([5, None])
    assert full.momentum.dtype == np.int64 and gappy.momentum.dtype == np.float64
    key_full = hpsearch.group_seeds(full).group_key.tolist()
    key_gappy = hpsearch.group_seeds(gappy).group_key.tolist()
    assert len(key_full) == 1 and len(key_gappy) == 2 and key_full[0] in key_gappy
