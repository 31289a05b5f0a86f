"""The summary-file parser: exact keywords, real float syntax, reasons a user can act on."""

from __future__ import annotations

import math
import os

import pytest

from hpsearch.errors import SummaryError
from hpsearch.summary import (
    MAX_RUN_FILE_BYTES,
    RunFileTooLarge,
    finished_flag,
    load_custom_summary,
    parse_numbers,
    parse_summary,
    read_run_file,
)


def write(tmp_path, text: str):
    path = tmp_path / "performance_overview.txt"
    path.write_text(text)
    return path


def test_keywords_match_exactly_not_by_prefix(tmp_path):
    path = write(tmp_path, "acc_test 0.1\nacc 0.9\nfinished 1\n")
    summary = parse_summary(path, ["acc", "acc_test", "finished"])
    assert summary == {"acc_test": 0.1, "acc": 0.9, "finished": 1}


def test_a_keyword_that_only_prefixes_another_line_is_missing(tmp_path):
    path = write(tmp_path, "acc_test 0.1\nfinished 1\n")
    with pytest.raises(SummaryError) as info:
        parse_summary(path, ["acc", "finished"])
    assert str(info.value) == "summary lacks keyword 'acc'"


@pytest.mark.parametrize(
    "text, expected",
    [("1e-05", 1e-05), ("-3", -3), ("+.5", 0.5), ("-2.5E+3", -2500.0), ("inf", math.inf), ("-inf", -math.inf),
     ("7", 7)],
)
def test_numbers_keep_sign_and_exponent(tmp_path, text, expected):
    summary = parse_summary(write(tmp_path, f"loss {text}\nfinished 1\n"), ["loss", "finished"])
    assert summary["loss"] == expected
    assert type(summary["loss"]) is type(expected)


def test_nan_is_a_number(tmp_path):
    summary = parse_summary(write(tmp_path, "loss nan\nfinished 1\n"), ["loss", "finished"])
    assert math.isnan(summary["loss"])


@pytest.mark.parametrize("text", ["0.1 0.2 1e-05", "0.1,0.2,1e-05", "[0.1, 0.2, 1e-05]", "0.1 ,\t0.2,  1e-05"])
def test_several_numbers_are_a_list(tmp_path, text):
    summary = parse_summary(write(tmp_path, f"curve {text}\nfinished 1\n"), ["curve", "finished"])
    assert summary["curve"] == [0.1, 0.2, 1e-05]


def test_lines_in_any_order_blank_lines_and_extra_keys(tmp_path):
    path = write(tmp_path, "\nfinished 1\n\nextra 3 4\nnote written by hand\nacc 0.5\n")
    summary = parse_summary(path, ["acc", "finished"])
    assert summary == {"finished": 1, "extra": [3, 4], "acc": 0.5}


def test_malformed_line_names_its_number(tmp_path):
    path = write(tmp_path, "acc 0.5\nfinished yes\n")
    with pytest.raises(SummaryError) as info:
        parse_summary(path, ["acc", "finished"])
    assert str(info.value) == "summary line 2 malformed: 'finished yes'"


def test_keyword_without_value_is_malformed(tmp_path):
    path = write(tmp_path, "\nacc\nfinished 1\n")
    with pytest.raises(SummaryError, match=r"^summary line 2 malformed: 'acc'$"):
        parse_summary(path, ["acc", "finished"])


def test_missing_file_reason_names_the_file(tmp_path):
    with pytest.raises(SummaryError) as info:
        parse_summary(tmp_path / "performance_overview.txt", ["acc", "finished"])
    assert str(info.value) == "no summary file performance_overview.txt"


def test_finished_flag():
    assert finished_flag({"finished": 1})
    assert finished_flag({"finished": 1.0})
    assert finished_flag({"finished": [0, 0, 1]})
    assert not finished_flag({"finished": 0})
    assert not finished_flag({"finished": [1, 0]})
    assert not finished_flag({"finished": []})
    assert not finished_flag({})
    assert finished_flag({"finished": "1"})
    assert not finished_flag({"finished": "no"})


def test_finished_zero_vs_one_from_a_file(tmp_path):
    assert not finished_flag(parse_summary(write(tmp_path, "acc 1\nfinished 0\n"), ["acc", "finished"]))
    assert finished_flag(parse_summary(write(tmp_path, "acc 1\nfinished 1\n"), ["acc", "finished"]))


def test_parse_numbers_rejects_words():
    assert parse_numbers("") is None
    assert parse_numbers("[]") is None
    assert parse_numbers("1 two") is None
    assert parse_numbers(" 2 ") == 2


def test_custom_handle_hypnettorch_shape_is_normalised(tmp_path):
    calls = []

    def handle(out_dir, cmd_ident):
        calls.append((out_dir, cmd_ident))
        return {"acc": ["0.75"], "curve": ['"0.1,0.2"'], "finished": [1], "name": ["resnet"], "flag": [True]}

    summary = load_custom_summary(handle, tmp_path, 4)
    assert calls == [(str(tmp_path), 4)]
    assert summary == {"acc": 0.75, "curve": [0.1, 0.2], "finished": 1, "name": "resnet", "flag": 1}
    assert finished_flag(summary)


def test_custom_handle_exception_becomes_the_reason(tmp_path):
    def handle(out_dir, cmd_ident):
        raise KeyError("acc")

    with pytest.raises(SummaryError) as info:
        load_custom_summary(handle, tmp_path, 0)
    assert str(info.value) == "custom summary parser failed: KeyError: 'acc'"


def test_custom_handle_calling_sys_exit_does_not_end_the_caller(tmp_path):
    def handle(out_dir, cmd_ident):
        raise SystemExit(3)

    with pytest.raises(SummaryError, match="custom summary parser failed: SystemExit: 3"):
        load_custom_summary(handle, tmp_path, 0)


def test_custom_handle_returning_no_dict(tmp_path):
    with pytest.raises(SummaryError, match="returned list, not a dict"):
        load_custom_summary(lambda out_dir, ident: [1, 2], tmp_path, 0)


def test_a_summary_beyond_the_limit_fails_without_being_read(tmp_path):
    path = tmp_path / "performance_overview.txt"
    with open(path, "wb") as handle:
        handle.write(b"acc 0.5\nfinished 1\n")
        handle.truncate(MAX_RUN_FILE_BYTES + 1)
    with pytest.raises(SummaryError) as info:
        parse_summary(path, ["acc", "finished"])
    assert str(info.value) == "summary file too large (16 MB)"


def test_a_summary_just_at_the_limit_is_read(tmp_path):
    path = tmp_path / "performance_overview.txt"
    text = b"acc 0.5\nfinished 1\n"
    path.write_bytes(text + b"#" * (MAX_RUN_FILE_BYTES - len(text)))
    assert parse_summary(path, ["acc", "finished"]) == {"acc": 0.5, "finished": 1}


def test_a_fifo_or_a_folder_as_summary_does_not_block_the_driver(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    with pytest.raises(SummaryError) as info:
        parse_summary(tmp_path / "fifo", ["finished"])
    assert str(info.value) == "summary file fifo is not a regular file"
    with pytest.raises(SummaryError) as info:
        parse_summary(tmp_path / "folder", ["finished"])
    assert str(info.value) == "no summary file folder"


def test_run_files_are_read_with_a_limit(tmp_path):
    path = tmp_path / "hpsearch_result.json"
    path.write_text('{"status": "done"}')
    assert read_run_file(path) == '{"status": "done"}'
    with pytest.raises(RunFileTooLarge):
        read_run_file(path, limit=5)
