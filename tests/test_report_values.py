"""Any value survives search_results.csv: hostile texts, through the writer and through a real search.

"The same value" is defined in hpsearch/report.py: read with ``dtype=str,
keep_default_na=False`` every cell's text comes back exactly; read with
pandas' defaults every run has one row and every value its own cell, read the
way pandas reads that text.
"""

from __future__ import annotations

import io
import itertools
import math
import subprocess
import sys

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hpsearch.command import received_value
from hpsearch.report import ReportRow, ResultsReport, cell_text, column_names, table_text
from hpsearch.summary import parse_numbers
from tests.helpers import run_hpsearch, write_project

ATOMS = ["\r", "\n", "\r\n", "\n\r", "\r\r", ";", '"', "'", " ", "  ", "\t", "#", "\\", "\\n", ",", "=", "[", "]",
         "{", "}", "$", "`", "%s", "{0}", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\u2028", "\u2029", "\ufeff",
         "é", "ß", "日本", "\u0301", "🎉", "👩‍👩‍👧", "\U0010ffff", '""', '";"', "';'", "\r\"", "\";\r"]
NUMBER_LIKE = ["1e5", "007", "nan", "NaN", "-nan", "inf", "-inf", "True", "False", "true", "None", "null", "NULL",
               "NA", "N/A", "#N/A", "n/a", "<NA>", "", " ", "0x10", "1_000", "+1", "-0", "1.", ".5", "1,5", "1;5",
               "0", "-1", "1e-05", "3.14159"]


def hostile_texts() -> list[str]:
    """More than 300 distinct texts: each atom alone, at the start, inside, at the end, and in pairs."""
    texts = list(NUMBER_LIKE)
    for atom in ATOMS:
        texts += [atom, f"{atom}ab", f"a{atom}b", f"ab{atom}", f" {atom} "]
    texts += [a + b for a, b in itertools.combinations(ATOMS[:12], 2)]
    texts += ["x" * 50_000, "a;\r\n\"" * 2_000, " leading", "trailing ", "\ttabbed\t", '"quoted"', "'single'"]
    return list(dict.fromkeys(texts))


TEXTS = hostile_texts()
NA_TEXTS = {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
            "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
"""What pandas.read_csv takes for missing by default (its documented na_values)."""


def read_exact(path) -> pd.DataFrame:
    return pd.read_csv(path, sep=";", dtype=str, keep_default_na=False)


def test_there_are_more_than_300_hostile_texts():
    assert len(TEXTS) > 300 and len(set(TEXTS)) == len(TEXTS)


def make_rows(values: list) -> list[ReportRow]:
    return [ReportRow(f"key{i}", {"v": value, "n": i}, "done", f"reason {value}", f"/s/run {i}",
                      {"acc": i, "finished": 1, "text": value}) for i, value in enumerate(values)]


def write(tmp_path, values: list, grid_keys=("v", "n")) -> ResultsReport:
    report = ResultsReport(tmp_path / "search_results.csv", grid_keys=list(grid_keys), summary_keys=["acc", "finished"],
                           out_arg="out_dir", performance_key="acc", sort_ascending=True)
    for row in make_rows(values):
        report.set_row(row)
    report.write()
    return report


def test_every_hostile_text_comes_back_exactly(tmp_path):
    report = write(tmp_path, TEXTS)
    table = read_exact(report.path)
    assert len(table) == len(TEXTS)
    assert list(table.columns) == ["v", "n", "acc", "finished", "text", "status", "reason", "out_dir", "config_key"]
    assert list(table["n"]) == [str(i) for i in range(len(TEXTS))]  # sorted by acc = i
    assert list(table["v"]) == TEXTS and list(table["text"]) == TEXTS
    assert list(table["reason"]) == [f"reason {text}" for text in TEXTS]
    assert list(table["out_dir"]) == [f"/s/run {i}" for i in range(len(TEXTS))]


def test_with_pandas_defaults_every_run_keeps_its_row_and_its_texts(tmp_path):
    report = write(tmp_path, TEXTS)
    table = pd.read_csv(report.path, sep=";")
    assert len(table) == len(TEXTS) and list(table["n"]) == list(range(len(TEXTS)))
    assert list(table["config_key"]) == [f"key{i}" for i in range(len(TEXTS))]
    for text, value in zip(TEXTS, table["v"]):  # a column of mixed texts stays text
        if text in NA_TEXTS:
            assert isinstance(value, float) and math.isnan(value), repr(text)
        else:
            assert value == text, repr(text)


def test_texts_that_look_like_numbers_are_read_as_pandas_reads_them(tmp_path):
    """The documented limit of pandas' defaults: only the text reading keeps "007"."""
    report = write(tmp_path, ["007", "1e5", "nan", "-1"])
    table = pd.read_csv(report.path, sep=";")
    assert table["v"].tolist()[:2] == [7.0, 100000.0] and math.isnan(table["v"][2]) and table["v"][3] == -1
    assert read_exact(report.path)["v"].tolist() == ["007", "1e5", "nan", "-1"]


def test_values_of_other_types_are_written_as_their_text(tmp_path):
    values = [None, True, False, 0, -7, 1e-05, 0.1, float("inf"), float("-inf"), float("nan"), 2 ** 70, [1, "a"],
              [0.5, 2], (1,), {"a": [1, 2]}, [], "", "x"]
    report = write(tmp_path, values)
    table = read_exact(report.path)
    assert list(table["v"]) == ["", "True", "False", "0", "-7", "1e-05", "0.1", "inf", "-inf", "nan",
                                str(2 ** 70), "[1, 'a']", "[0.5, 2]", "(1,)", "{'a': [1, 2]}", "[]", "", "x"]
    # in a summary a list of numbers is comma separated, as hypnettorch wrote it
    assert list(table["text"])[11:14] == ["[1, 'a']", "0.5,2", "1"]


def test_hostile_grid_keys_and_summary_keys_make_the_header(tmp_path):
    keys = ["a;b", 'q"k', "k'", "#k", "k\\", "é🎉", "1e5", "nan", "True", "status", "summary_x"]
    report = ResultsReport(tmp_path / "search_results.csv", grid_keys=keys, summary_keys=["x", "status", "a;b"],
                           out_arg="out_dir", performance_key=None, sort_ascending=True)
    report.set_row(ReportRow("k", {key: f"v{i}" for i, key in enumerate(keys)}, "done", None, "/s/a",
                             {"x": 1, "status": 2, "a;b": 3}))
    report.write()
    for table in (read_exact(report.path), pd.read_csv(report.path, sep=";")):
        assert list(table.columns) == [*keys, "x", "summary_status", "summary_a;b",
                                       "hpsearch_status", "reason", "out_dir", "config_key"]
        assert len(table) == 1 and table.loc[0, "a;b"] == "v0" and table.loc[0, "hpsearch_status"] == "done"


def test_text_utf8_cannot_hold_is_escaped_not_fatal(tmp_path):
    report = write(tmp_path, ["bad \udc80 byte"])
    assert read_exact(report.path)["v"].tolist() == ["bad \\udc80 byte"]


def test_lines_end_in_newline_and_cells_with_line_breaks_are_quoted(tmp_path):
    assert table_text(["a", "b"], [["x\ry", "1"], ["p;q", 'say "hi"']]) == (
        'a;b\n"x\ry";1\n"p;q";"say ""hi"""\n')
    assert cell_text(None) == "" and cell_text(1e-05) == "1e-05"


def test_column_names_never_repeat():
    assert column_names(["reason", "out_dir"], ["reason", "summary_reason"], "out_dir") == [
        "reason", "out_dir", "summary_reason", "summary_summary_reason", "status", "hpsearch_reason",
        "hpsearch_out_dir", "config_key"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(), st.text(alphabet="\r\n;\"' \t#\\,01e.-"),
                          st.floats(), st.integers(), st.booleans(), st.none()), min_size=1, max_size=8))
def test_any_values_round_trip(values):
    """Any text (no NUL: it cannot travel in an argv), any number: the text reading gives cell_text back."""
    rows = [[cell_text(value), str(i)] for i, value in enumerate(values)]
    text = table_text(["v", "n"], rows)
    table = pd.read_csv(io.StringIO(text), sep=";", dtype=str, keep_default_na=False)
    assert table.values.tolist() == rows
    default = pd.read_csv(io.StringIO(text), sep=";")
    assert list(default["n"]) == list(range(len(values)))
    floats = [value for value in values if isinstance(value, float) and not isinstance(value, bool)]
    if floats and len(floats) == len(values) and not any(math.isnan(x) for x in floats):
        assert default["v"].tolist() == floats  # numbers we write come back equal, floats exactly


# --------------------------------------------------------------------------- through a real search

ECHO_SCRIPT = """#!/bin/sh
# the test's training script: keeps its first argument byte for byte, writes a summary
for arg; do last=$arg; done
dir=${last#--out_dir=}
printf '%s' "${1#--v=}" > "$dir/argument.txt"
printf 'acc 1\\nfinished 1\\n' > "$dir/performance_overview.txt"
"""

ECHO_PARSER = """
import os
def _echo(out_dir, cmd_ident):
    with open(os.path.join(out_dir, 'argument.txt'), encoding='utf-8', newline='') as handle:
        argument = handle.read()
    return {'acc': [1], 'finished': [1], 'echo': [argument]}
_SUMMARY_PARSER_HANDLE = _echo
"""


@pytest.mark.timeout(600)
def test_hostile_values_through_a_real_search(tmp_path):
    values = [text for text in TEXTS if text != "x" * 50_000] + ["x" * 20_000]
    project = write_project(tmp_path / "p", {"v": values}, extra=ECHO_PARSER)
    (project / "train.py").write_text(ECHO_SCRIPT)
    out = tmp_path / "search"
    result = run_hpsearch(["--grid_module=grid_cfg", f"--out_dir={out}", "--force_out_dir", "--dont_force_new_dir",
                           "--visible_gpus=-1", "--num_jobs=4", "--python=/bin/sh", "--deterministic_search"],
                          project, timeout=560)
    assert result.returncode == 0, result.stderr[-2000:]
    path = out / "search_results.csv"
    table = read_exact(path)
    received = [received_value(value) for value in values]  # the CSV shows what the run received
    assert len(table) == len(values) and sorted(table["v"]) == sorted(received)
    assert set(table["status"]) == {"done"}
    for value, echo in zip(table["v"], table["echo"]):
        if parse_numbers(value) is None:  # a custom parser's number-like text becomes a number
            assert echo == value, repr(value)
    default = pd.read_csv(path, sep=";")
    assert len(default) == len(values) and set(default["status"]) == {"done"}
    assert sorted(default["out_dir"]) == sorted(str(p) for p in out.iterdir()
                                                 if p.is_dir() and (p / "hpsearch_run.json").exists())
    before = path.read_bytes()
    assert run_hpsearch_postprocessing(out).returncode == 0
    assert path.read_bytes() == before  # the postprocessor writes the same file with the same writer


def run_hpsearch_postprocessing(out) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "postprocessing", str(out)], capture_output=True, text=True,
                          timeout=300)


HOSTILE_KEYS = ["a;b", 'q"k', "k'", "#k", "k\\", "é🎉", "1e5", "nan", "True", "x,y", "summary_acc"]
"""Grid keys the command line accepts (no '=', no whitespace, no leading '-') that a CSV could trip on."""


def test_hostile_grid_keys_through_a_real_search(tmp_path):
    grid = {key: [f"v{i};\r\"{key}"] for i, key in enumerate(HOSTILE_KEYS)}
    grid["n"] = [0, 1, 2]
    project = write_project(tmp_path / "p", grid, keywords=("acc", "finished"))
    out = tmp_path / "search"
    result = run_hpsearch(["--grid_module=grid_cfg", f"--out_dir={out}", "--force_out_dir", "--dont_force_new_dir",
                           "--visible_gpus=-1", "--num_jobs=2"], project, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    for table in (read_exact(out / "search_results.csv"), pd.read_csv(out / "search_results.csv", sep=";")):
        assert list(table.columns) == [*HOSTILE_KEYS, "n", "acc", "finished", "status", "reason", "out_dir",
                                       "config_key"]
        assert len(table) == 3 and sorted(table["n"].astype(int)) == [0, 1, 2]
        for i, key in enumerate(HOSTILE_KEYS):
            assert set(table[key]) == {f"v{i};\r\"{key}"}, key
