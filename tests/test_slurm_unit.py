"""Slurm executor without Slurm: job-script text, the parsers on captured
scheduler output, array splitting, and polling that backs off while
``squeue`` fails (the fake Slurm of tests/fakes/slurm on PATH). The promises
every executor keeps are in tests/test_executor_contract.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpsearch.errors import SchedulerQueryError, SubmissionError, UsageError
from hpsearch.executors.base import Wakeup
from hpsearch.executors.cluster import (
    Ending,
    JobState,
    StatusWatcher,
    outcome_for,
)
from hpsearch.executors.jobscript import option_groups
from hpsearch.executors.slurm import (
    SlurmExecutor,
    SlurmOptions,
    expand_ids,
    format_limit,
    parse_exit_code,
    parse_max_array_size,
    parse_sacct,
    parse_sbatch_id,
    parse_scontrol,
    parse_squeue,
    sbatch_array_script,
    sbatch_script,
    slurm_state,
)
from hpsearch.runs import EXIT_CODE_FILE, JobHandle, LaunchSpec
from tests.cluster_fixtures import collect

DATA = Path(__file__).resolve().parent / "data"
NASTY = ["a b", "it's", 'say "hi"', "$(touch PWNED)", "`touch PWNED2`", "x; touch PWNED3 #", "new\nline",
         "back\\slash", "*", "~", "%j"]


def golden_spec() -> LaunchSpec:
    return LaunchSpec(
        key="k0001",
        name="sim_20260101120000_01",
        argv=("/usr/bin/python3", "train.py", "--lr=0.1", "--name=a b", "--out_dir=/search dir/sim_20260101120000_01"),
        cwd=Path("/project"),
        run_dir=Path("/search dir/sim_20260101120000_01"),
        env={"HPSEARCH_RUN_KEY": "k0001", "HPSEARCH_SEARCH_DIR": "/search dir"},
    )


def golden_options(**overrides) -> SlurmOptions:
    values = dict(num_jobs=3, num_hours=2, mem="4G", gres="gpu:1", partition="gpu", constraint="a100|h100",
                  extra=["--account=my lab", "-x", "node1", "--exclusive"],
                  setup="module load cuda/12\nsource '/opt/my env/bin/activate'")
    values.update(overrides)
    return SlurmOptions(**values)


def check_golden(name: str, text: str) -> None:
    path = DATA / name
    assert text == path.read_text(), f"{name} changed; if on purpose, rewrite tests/data/{name} from the new text"


def test_job_script_matches_golden_file():
    check_golden("slurm_job.golden.sh", sbatch_script(golden_spec(), golden_options()))


def test_array_script_matches_golden_file():
    first = golden_spec()
    second = LaunchSpec(key="k0002", name="sim_20260101120000_02", argv=("python3", "train.py", "--lr=1e-05"),
                        cwd=Path("/project"), run_dir=Path("/search dir/sim_20260101120000_02"))
    text = sbatch_array_script([first, second], golden_options(extra=[], setup=""), name="search_array_001",
                               log_dir=Path("/search dir/job_logs"))
    check_golden("slurm_array.golden.sh", text)


def test_empty_options_are_left_out():
    text = sbatch_script(golden_spec(), SlurmOptions(mem="", gres="", partition="", qos="", constraint=""))
    directives = [line for line in text.splitlines() if line.startswith("#SBATCH")]
    assert directives == [
        "#SBATCH --job-name=sim_20260101120000_01",
        "#SBATCH '--output=/search dir/sim_20260101120000_01/slurm-%j.out'",
        "#SBATCH '--error=/search dir/sim_20260101120000_01/slurm-%j.out'",
        "#SBATCH --time=24:00:00",
        "#SBATCH --signal=B:USR1@120",
    ]


def test_percent_in_the_run_folder_is_kept_literal():
    spec = LaunchSpec(key="k", name="sim_1", argv=("true",), cwd=Path("/p"), run_dir=Path("/out/100%/sim_1"))
    assert "#SBATCH --output=/out/100%%/sim_1/slurm-%j.out" in sbatch_script(spec, SlurmOptions()).splitlines()


# --------------------------------------------------------------------------- quoting, really executed


@pytest.fixture
def stub_python(tmp_path: Path) -> Path:
    """A program that records its argv and environment as JSON next to itself."""
    stub = tmp_path / "stub python"
    stub.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "json.dump({'argv': sys.argv[1:], 'cwd': os.getcwd(), 'env': dict(os.environ)},\n"
        "          open(os.path.join(os.path.dirname(sys.argv[0]), 'record.json'), 'w'))\n"
        "print('to stdout'); print('to stderr', file=sys.stderr); sys.exit(3)\n"
    )
    stub.chmod(0o755)
    return stub


def test_script_passes_every_value_exactly_and_records_the_exit_code(tmp_path, stub_python):
    run_dir = tmp_path / "search 'dir' $(x)" / "sim_1"
    run_dir.mkdir(parents=True)
    cwd = tmp_path / "project; rm -rf"
    cwd.mkdir()
    values = [f"--v{i}={value}" for i, value in enumerate(NASTY)]
    spec = LaunchSpec(key="key 'with' $(quotes)", name="sim_1", argv=(str(stub_python), *values), cwd=cwd,
                      run_dir=run_dir, env={"HPSEARCH_SEARCH_DIR": "$(touch PWNED4)", "OTHER": "a\nb"})
    script = run_dir / "job.sh"
    script.write_text(sbatch_script(spec, golden_options(setup="export FROM_SETUP='set up'")))
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    result = subprocess.run(["bash", str(script)], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 3
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["argv"] == values
    assert record["cwd"] == str(cwd)
    assert record["env"]["HPSEARCH_RUN_KEY"] == "key 'with' $(quotes)"
    assert record["env"]["HPSEARCH_SEARCH_DIR"] == "$(touch PWNED4)"
    assert record["env"]["OTHER"] == "a\nb"
    assert record["env"]["FROM_SETUP"] == "set up"
    assert (run_dir / EXIT_CODE_FILE).read_text() == "3\n"
    assert (run_dir / "stdout.txt").read_text() == "to stdout\n"
    assert (run_dir / "stderr.txt").read_text() == "to stderr\n"
    assert not list(tmp_path.rglob("PWNED*")) and not list(Path.cwd().glob("PWNED*"))
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".")] == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")), max_size=4))
def test_any_argv_survives_the_job_script(tmp_path, values):
    spec = LaunchSpec(key="k", name="sim_1", argv=("printf", "%s\\0", "first", *values), cwd=tmp_path, run_dir=tmp_path)
    script = tmp_path / "job.sh"
    script.write_text(sbatch_script(spec, SlurmOptions()))
    (tmp_path / "stdout.txt").unlink(missing_ok=True)
    assert subprocess.run(["bash", str(script)]).returncode == 0
    printed = (tmp_path / "stdout.txt").read_bytes().decode()
    assert printed.split("\0")[:-1] == ["first", *values]


def test_missing_working_directory_is_reported_in_the_runs_stderr(tmp_path):
    run_dir = tmp_path / "sim_1"
    run_dir.mkdir()
    spec = LaunchSpec(key="k", name="sim_1", argv=("true",), cwd=tmp_path / "gone", run_dir=run_dir)
    script = run_dir / "job.sh"
    script.write_text(sbatch_script(spec, SlurmOptions()))
    assert subprocess.run(["bash", str(script)], capture_output=True).returncode == 1
    assert (run_dir / EXIT_CODE_FILE).read_text() == "1\n"
    assert "gone" in (run_dir / "stderr.txt").read_text()


def test_array_script_runs_the_task_of_its_index_only(tmp_path, stub_python):
    specs = []
    for i in range(3):
        run_dir = tmp_path / f"sim_{i}"
        run_dir.mkdir()
        specs.append(LaunchSpec(key=f"k{i}", name=f"sim_{i}", argv=(str(stub_python), f"--i={i} 'q'"),
                                cwd=tmp_path, run_dir=run_dir))
    script = tmp_path / "array.sh"
    script.write_text(sbatch_array_script(specs, SlurmOptions(), name="a", log_dir=tmp_path))
    env = dict(os.environ, SLURM_ARRAY_TASK_ID="1")
    assert subprocess.run(["bash", str(script)], env=env, capture_output=True).returncode == 3
    assert json.loads((tmp_path / "record.json").read_text())["argv"] == ["--i=1 'q'"]
    assert [(tmp_path / f"sim_{i}" / EXIT_CODE_FILE).exists() for i in range(3)] == [False, True, False]
    env["SLURM_ARRAY_TASK_ID"] = "7"
    result = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert result.returncode == 2 and "no run for array index 7" in result.stderr


def test_invalid_environment_name_is_refused(tmp_path):
    spec = LaunchSpec(key="k", name="sim_1", argv=("true",), cwd=tmp_path, run_dir=tmp_path, env={"A-B": "x"})
    with pytest.raises(SubmissionError, match="A-B"):
        sbatch_script(spec, SlurmOptions())


@pytest.mark.parametrize(
    "tokens, groups",
    [
        (["--account=x", "--exclusive"], [["--account=x"], ["--exclusive"]]),
        (["-A", "lab", "-p", "gpu", "--nice=5"], [["-A", "lab"], ["-p", "gpu"], ["--nice=5"]]),
        ([], []),
    ],
)
def test_extra_options_are_grouped_per_option(tokens, groups):
    assert option_groups(tokens, "--slurm_extra") == groups


@pytest.mark.parametrize("tokens, problem", [(["account"], "not an option"), (["--comment=a\nb"], "line break")])
def test_bad_extra_options_are_usage_errors(tokens, problem):
    with pytest.raises(UsageError, match=problem):
        SlurmOptions(extra=tokens)


def test_bad_counts_are_usage_errors():
    with pytest.raises(UsageError, match="--num_jobs"):
        SlurmOptions(num_jobs=0)


# --------------------------------------------------------------------------- parsers on captured text


@pytest.mark.parametrize(
    "text, job_id", [("22\n", "22"), ("22;ci\n", "22"), ("", None), ("Submitted batch job 5", None)]
)
def test_sbatch_answer(text, job_id):
    assert parse_sbatch_id(text) == job_id


def test_squeue_lines_with_arrays_and_pending_ranges():
    text = (DATA / "squeue_array.txt").read_text()
    states = parse_squeue(text)
    assert states["3_0"] == JobState("COMPLETED", Ending.EXITED)
    assert states["3_1"].ending is Ending.EXITED
    for task in ("3_2", "3_3", "3_4", "3_5"):
        assert states[task] == JobState("PENDING")
    assert [k for k in states if k.startswith("40_")] == ["40_5", "40_6", "40_7", "40_9"]
    assert states["9"] == JobState("CANCELLED", Ending.KILLED)
    assert states["21"] == JobState("TIMEOUT after 0:01:00", Ending.TIMED_OUT)
    assert states["22"].ending is None and states["22"].state == "RUNNING"


def test_sacct_lines_with_cancelled_by_and_every_final_state():
    states = parse_sacct((DATA / "sacct.txt").read_text())
    assert states["9"] == JobState("CANCELLED by 0", Ending.KILLED, None, 15)
    assert states["10"] == JobState("CANCELLED by 0", Ending.KILLED, 0, None)
    assert states["11"] == JobState("COMPLETED", Ending.EXITED, 0, None)
    assert states["12"] == JobState("FAILED", Ending.EXITED, 3, None)
    assert states["13"] == JobState("TIMEOUT after 1:00:00", Ending.TIMED_OUT, None, 15)
    assert states["14"].ending is Ending.INTERRUPTED and states["14"].state == "NODE_FAIL"
    assert states["15"].ending is Ending.INTERRUPTED and states["15"].state == "PREEMPTED"
    assert states["16"].ending is Ending.KILLED and states["16"].state == "OUT_OF_MEMORY"
    assert states["17_3"] == JobState("COMPLETED", Ending.EXITED, 0, None)
    assert states["18"].ending is Ending.INTERRUPTED  # BOOT_FAIL
    assert states["19"].ending is Ending.TIMED_OUT  # DEADLINE
    assert states["20"].ending is None  # PENDING
    assert states["23_4"].ending is None and states["23_5"].ending is None


def test_scontrol_records():
    states = parse_scontrol((DATA / "scontrol_show_job.txt").read_text())
    assert states == {
        "21": JobState("FAILED", Ending.EXITED, 3, None),
        "22_1": JobState("FAILED", Ending.EXITED, 1, None),  # JobId=25 ArrayJobId=22 ArrayTaskId=1
        "23": JobState("CANCELLED", Ending.KILLED, None, 15),
        "20": JobState("TIMEOUT after 0:01:00", Ending.TIMED_OUT, None, 15),
    }


@pytest.mark.parametrize(
    "state, ending",
    [("PENDING", None), ("RUNNING", None), ("COMPLETING", None), ("COMPLETED", Ending.EXITED),
     ("FAILED", Ending.EXITED), ("CANCELLED", Ending.KILLED), ("CANCELLED by 1000", Ending.KILLED),
     ("CANCELLED+", Ending.KILLED), ("TIMEOUT", Ending.TIMED_OUT), ("NODE_FAIL", Ending.INTERRUPTED),
     ("PREEMPTED", Ending.INTERRUPTED), ("OUT_OF_MEMORY", Ending.KILLED), ("BOOT_FAIL", Ending.INTERRUPTED),
     ("DEADLINE", Ending.TIMED_OUT), ("REQUEUED", None), ("SOMETHING_NEW", None)],
)
def test_every_state_is_classified(state, ending):
    assert slurm_state(state).ending is ending


@pytest.mark.parametrize(
    "text, result",
    [("3:0", (3, None)), ("0:15", (None, 15)), ("0:0", (0, None)), ("", (None, None)), ("x", (None, None))],
)
def test_exit_code_field(text, result):
    assert parse_exit_code(text) == result


@pytest.mark.parametrize(
    "text, result",
    [("1:00", "0:01:00"), ("01:00:00", "1:00:00"), ("1-02:03:04", "26:03:04"), ("30", "0:30:00"),
     ("UNLIMITED", "UNLIMITED")],
)
def test_time_limits(text, result):
    assert format_limit(text) == result


def test_array_id_ranges():
    assert expand_ids("5_[1-3,7%2]") == ["5_1", "5_2", "5_3", "5_7"]
    assert expand_ids("5_[0-6:3]") == ["5_0", "5_3", "5_6"]
    assert expand_ids("5_4") == ["5_4"]


def test_max_array_size_from_config():
    assert parse_max_array_size((DATA / "scontrol_show_config.txt").read_text()) == 1001
    assert parse_max_array_size("ClusterName = x\n") is None


# --------------------------------------------------------------------------- outcomes


def test_outcomes_prefer_the_recorded_exit_code(tmp_path):
    (tmp_path / EXIT_CODE_FILE).write_text("7\n")
    outcome = outcome_for("k", tmp_path, JobState("FAILED", Ending.EXITED, 1))
    assert (outcome.exit_code, outcome.backend_state) == (7, "FAILED")
    assert outcome_for("k", tmp_path, JobState("RUNNING")) is None
    assert outcome_for("k", tmp_path, None).exit_code == 7


def test_outcomes_without_recorded_exit_code(tmp_path):
    assert outcome_for("k", tmp_path, JobState("FAILED", Ending.EXITED, 3)).exit_code == 3
    cancelled = outcome_for("k", tmp_path, JobState("CANCELLED by 0", Ending.KILLED, 0))
    assert (cancelled.exit_code, cancelled.interrupted, cancelled.timed_out) == (None, False, False)
    timeout = outcome_for("k", tmp_path, JobState("TIMEOUT after 0:01:00", Ending.TIMED_OUT, None, 15))
    assert (timeout.timed_out, timeout.signal, timeout.backend_state) == (True, 15, "TIMEOUT after 0:01:00")
    assert outcome_for("k", tmp_path, JobState("NODE_FAIL", Ending.INTERRUPTED)).interrupted
    lost = outcome_for("k", tmp_path, None)
    assert lost.interrupted and lost.backend_state == "unknown to the scheduler"


# --------------------------------------------------------------------------- the executor with fake commands


def make_specs(root: Path, count: int, *argv: str) -> list[LaunchSpec]:
    specs = []
    for i in range(count):
        run_dir = root / f"sim_{i:02d}"
        run_dir.mkdir(parents=True)
        specs.append(LaunchSpec(key=f"k{i}", name=run_dir.name, argv=argv or ("true",), cwd=root, run_dir=run_dir))
    return specs


def slurm(search_dir: Path, **options) -> SlurmExecutor:
    options = {"mem": "", "gres": "", **options}
    return SlurmExecutor(Wakeup(), SlurmOptions(**options), search_dir, poll_interval=0.05, max_poll_interval=0.2)


def test_arrays_larger_than_max_array_size_are_split_and_chained(tmp_path, fake_slurm):
    fake_slurm.write("max_array_size", "4")
    executor = slurm(tmp_path, array=True, num_jobs=2)
    handles = executor.submit_many(make_specs(tmp_path, 10))
    arrays = sorted({h.job_id.split("_")[0] for h in handles}, key=int)
    assert len(arrays) == 3
    assert [h.job_id for h in handles] == [f"{arrays[i // 4]}_{i % 4}" for i in range(10)]
    sbatch = fake_slurm.calls("sbatch")
    assert [call[:-1] for call in sbatch] == [
        ["--parsable"],
        ["--parsable", f"--dependency=afterany:{arrays[0]}"],
        ["--parsable", f"--dependency=afterany:{arrays[0]}:{arrays[1]}"],
    ]
    scripts = [Path(call[-1]) for call in sbatch]
    assert [s.name for s in scripts] == ["array_001.sh", "array_002.sh", "array_003.sh"]
    assert "#SBATCH --array=0-3%2" in scripts[0].read_text().splitlines()
    assert "#SBATCH --array=0-1%2" in scripts[2].read_text().splitlines()
    assert fake_slurm.calls("scontrol") == [["show", "config"]]  # MaxArraySize is read once
    assert executor.in_flight() == 10
    outcomes = collect(executor, 10, timeout=60)
    assert sorted(o.exit_code for o in outcomes) == [0] * 10


def test_per_job_mode_keeps_at_most_num_jobs_in_the_queue(tmp_path, fake_slurm):
    executor = slurm(tmp_path, num_jobs=3)
    assert executor.capacity() == 3
    handles = executor.submit_many(make_specs(tmp_path, 2))
    assert [h.job_id for h in handles] == ["100", "101"]
    assert handles[0].extra == {"run_dir": str(tmp_path / "sim_00")}
    assert executor.capacity() == 1


def test_refused_submission_is_returned_with_sbatchs_message(tmp_path, fake_slurm):
    fake_slurm.write("fail_sbatch", "1")
    executor = slurm(tmp_path)
    [result] = executor.submit_many(make_specs(tmp_path, 1))
    assert isinstance(result, SubmissionError)
    assert "Invalid account" in str(result) and "sim_00" in str(result)
    assert executor.in_flight() == 0


def test_generate_only_writes_scripts_and_submits_nothing(tmp_path, fake_slurm):
    executor = slurm(tmp_path / "search dir", generate_only=True)
    specs = make_specs(tmp_path / "search dir", 3)
    handles = executor.submit_many(specs)
    assert [h.job_id for h in handles] == ["", "", ""]
    assert fake_slurm.calls("sbatch") == [] and executor.in_flight() == 0
    submit = tmp_path / "search dir" / "submit.sh"
    assert subprocess.run(["bash", "-n", str(submit)]).returncode == 0
    assert os.access(submit, os.X_OK)
    subprocess.run(["bash", str(submit)], check=True, capture_output=True)
    submitted = [Path(call[-1]) for call in fake_slurm.calls("sbatch")]
    assert submitted == [tmp_path / "search dir" / f"sim_{i:02d}" / "job.sh" for i in range(3)]
    wait_until(lambda: all((spec.run_dir / EXIT_CODE_FILE).exists() for spec in specs), 30)
    assert [executor.harvest(spec.key, spec.run_dir)[1].exit_code for spec in specs] == [0, 0, 0]


def test_generate_only_array_writes_one_array_script(tmp_path, fake_slurm):
    executor = slurm(tmp_path, generate_only=True, array=True)
    executor.submit_many(make_specs(tmp_path, 3))
    assert (tmp_path / "submit.sh").read_text().splitlines()[-1] == f"sbatch --parsable {tmp_path}/array_001.sh"
    assert fake_slurm.calls("sbatch") == []


def wait_until(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.05)


def test_failing_squeue_backs_off_and_never_ends_a_job(tmp_path, fake_slurm):
    executor = SlurmExecutor(Wakeup(), SlurmOptions(mem="", gres=""), tmp_path, poll_interval=0.2,
                             max_poll_interval=0.8)
    [spec] = make_specs(tmp_path, 1, "sleep", "6")
    executor.submit(spec)
    fake_slurm.fail_squeue(4)
    while len(fake_slurm.calls("squeue")) < 5:
        time.sleep(executor.next_event_in())
        assert executor.poll() == []
    times = fake_slurm.call_times("squeue")
    gaps = [later - earlier for earlier, later in zip(times, times[1:5])]
    # waits of 0.4, 0.8 (the cap), 0.8, 0.8 s after the failures, plus each call's own time
    assert gaps[0] < gaps[2] and all(0.75 <= gap <= 1.8 for gap in gaps[1:]), gaps
    assert executor.in_flight() == 1
    [outcome] = collect(executor, 1, timeout=30)  # from its exit_code.txt, whatever squeue says
    assert (outcome.key, outcome.exit_code) == ("k0", 0) and outcome.backend_state in ("exit code 0", "COMPLETED")


def test_squeue_failing_for_too_long_stops_the_search(tmp_path, fake_slurm):
    executor = SlurmExecutor(Wakeup(), SlurmOptions(mem="", gres=""), tmp_path, poll_interval=0.01,
                             max_poll_interval=0.02, give_up_after=0.2)
    executor.submit(make_specs(tmp_path, 1, "sleep", "30")[0])
    fake_slurm.fail_squeue(-1)
    deadline = time.monotonic() + 20
    with pytest.raises(SchedulerQueryError, match="Unable to contact slurm controller"):
        while time.monotonic() < deadline:
            time.sleep(executor.next_event_in())
            executor.poll()
    assert len(fake_slurm.calls("squeue")) >= 5


def test_job_unknown_everywhere_ends_by_its_exit_code_file(tmp_path, fake_slurm):
    run_dir = tmp_path / "sim_1"
    run_dir.mkdir()
    (run_dir / EXIT_CODE_FILE).write_text("4\n")
    executor = slurm(tmp_path)
    outcomes = executor.adopt([JobHandle("k1", "slurm", "77", extra={"run_dir": str(run_dir)})])
    assert [(o.exit_code, o.interrupted) for o in outcomes] == [(4, False)]
    assert fake_slurm.calls("scontrol") == [] and fake_slurm.calls("sacct") == []  # the folder told it all
    assert fake_slurm.calls("sbatch") == []


def test_job_that_left_the_queue_is_settled_by_sacct(tmp_path, fake_slurm, monkeypatch):
    monkeypatch.setenv("FAKE_SLURM_MIN_JOB_AGE", "0")  # ended jobs leave squeue and scontrol at once
    fake_slurm.write("accounting", "")
    executor = slurm(tmp_path, num_jobs=2)
    specs = make_specs(tmp_path, 2, "sh", "-c", "exit 3")
    executor.submit_many(specs)
    wait_until(lambda: all((spec.run_dir / EXIT_CODE_FILE).exists() for spec in specs), 30)
    for spec in specs:  # as if the script had been killed before it could record its status
        (spec.run_dir / EXIT_CODE_FILE).unlink()
    outcomes = collect(executor, 2, timeout=30)
    assert sorted((o.key, o.exit_code, o.backend_state) for o in outcomes) == [("k0", 3, "FAILED"),
                                                                              ("k1", 3, "FAILED")]
    assert fake_slurm.calls("sacct")


def test_cancel_reports_interrupted_except_runs_that_recorded_their_end(tmp_path, fake_slurm):
    executor = slurm(tmp_path)
    specs = make_specs(tmp_path, 2, "sleep", "30")
    executor.submit_many(specs)
    (tmp_path / "sim_01" / EXIT_CODE_FILE).write_text("0\n")  # it ended just before the cancel
    outcomes = executor.shutdown(cancel=True)
    assert fake_slurm.calls("scancel") == [["100", "101"]]
    assert sorted((o.key, o.interrupted, o.exit_code) for o in outcomes) == [("k0", True, None), ("k1", False, 0)]


def test_status_watcher_backoff_with_a_clock():
    now = [0.0]
    watcher = StatusWatcher(2.0, 30.0, give_up_after=100.0, min_failures=3, clock=lambda: now[0])
    assert not watcher.due() and watcher.next_in() == 2.0
    now[0] = 2.0
    delays = []
    for _ in range(5):
        watcher.failed("boom")
        delays.append(watcher.next_in())
        now[0] += watcher.next_in()
    assert delays == [4.0, 8.0, 16.0, 30.0, 30.0]
    watcher.succeeded()  # 90 s after the start: half of it, capped
    assert watcher.next_in() == 30.0
    watcher.submitted()
    assert watcher.next_in() == 2.0
    now[0] += 2.0
    watcher.succeeded()
    assert watcher.next_in() == 2.0  # 2 s after the submission: the floor
    now[0] += 18.0
    watcher.succeeded()
    assert watcher.next_in() == 10.0
    for _ in range(2):  # 60 s of failures: below give_up_after
        watcher.failed("boom")
        now[0] += 60.0
    with pytest.raises(SchedulerQueryError, match="boom"):
        watcher.failed("boom")
