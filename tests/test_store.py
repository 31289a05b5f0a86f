"""The run store (SQLite) and the search lock, including kill -9 of their holders."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from hpsearch.errors import StoreError
from hpsearch.runs import JobHandle, RunStatus
from hpsearch.store import SCHEMA_VERSION, RunStore, SearchLock, lock_holder


def name(index: int) -> str:
    return f"sim_20260101120000_{index + 1:03d}"


@pytest.fixture
def store(tmp_path):
    with RunStore.open(tmp_path) as opened:
        yield opened


def configs(*values):
    return [(f"key{v}", {"v": v, "s": f"x {v}"}) for v in values]


def finish(store, key, status=RunStatus.DONE, **fields):
    values = dict(reason=None, exit_code=0, signal=None, summary={"acc": 0.5, "finished": 1}, ended=20.0,
                  backend_state=None)
    values.update(fields)
    store.mark_final(key, status, **values)


def test_add_configs_is_idempotent_and_indexes_are_stable(store):
    assert store.add_configs(configs(1, 2, 3), name) == 3
    assert store.add_configs(configs(3, 1, 2), name) == 0
    # A resumed search may list the same configurations in another order, plus new ones.
    assert store.add_configs(configs(4, 2, 5, 4), name) == 2
    records = store.records()
    assert [(r.key, r.index, r.run_dir) for r in records] == [
        ("key1", 0, name(0)), ("key2", 1, name(1)), ("key3", 2, name(2)), ("key4", 3, name(3)), ("key5", 4, name(4))]
    assert records[0].config == {"v": 1, "s": "x 1"}
    assert {r.status for r in records} == {RunStatus.QUEUED}


def test_indexes_survive_reopening(tmp_path):
    with RunStore.open(tmp_path) as first:
        first.add_configs(configs(1, 2), name)
    with RunStore.open(tmp_path) as second:
        assert second.add_configs(configs(0, 1, 2, 3), name) == 2
        assert [(r.key, r.index) for r in second.records()] == [("key1", 0), ("key2", 1), ("key0", 2), ("key3", 3)]


def test_bulk_add_keeps_keys_unique_and_lookups_working(store):
    items = [(f"k{i}", {"i": i}) for i in range(30_000)]
    assert store.add_configs(items, name) == 30_000
    assert store.add_configs(items[:10], name) == 0
    assert store.get("k29999").index == 29_999
    assert [r.index for r in store.queued(3)] == [0, 1, 2]
    with pytest.raises(StoreError):  # the unique index on key exists again after the bulk insert
        with store._transaction() as db:
            db.execute("INSERT INTO runs (key, idx, config, run_dir, status) VALUES ('k5', 99999, '{}', 'x', 'queued')")


def test_status_transitions(store):
    store.add_configs(configs(1, 2, 3), name)
    handle = JobHandle("key1", "local", "4242", "gpu 1", {"create_time": 12.5})
    store.mark_running("key1", handle, started=10.0)
    record = store.get("key1")
    assert (record.status, record.attempts, record.backend, record.job_id, record.where, record.extra,
            record.started) == (RunStatus.RUNNING, 1, "local", "4242", "gpu 1", {"create_time": 12.5}, 10.0)
    assert [r.key for r in store.queued(10)] == ["key2", "key3"]

    finish(store, "key1", RunStatus.FAILED, reason="exit code 3", exit_code=3, summary=None, backend_state="EXIT")
    record = store.get("key1")
    assert (record.status, record.reason, record.exit_code, record.ended, record.backend_state) == (
        RunStatus.FAILED, "exit code 3", 3, 20.0, "EXIT")

    store.requeue("key1", "exit code 3")
    record = store.get("key1")
    assert (record.status, record.attempts, record.reason, record.job_id) == (RunStatus.QUEUED, 1, "exit code 3", None)
    assert [r.key for r in store.queued(1)] == ["key1"]

    store.mark_running("key1", handle, started=30.0)
    assert store.get("key1").reason is None  # a new attempt forgets the old outcome
    finish(store, "key1", summary={"acc": [0.1, 1e-05], "finished": 1})
    record = store.get("key1")
    assert (record.status, record.attempts, record.summary) == (RunStatus.DONE, 2, {"acc": [0.1, 1e-05], "finished": 1})

    counts = store.counts()
    assert counts[RunStatus.DONE] == 1 and counts[RunStatus.QUEUED] == 2 and counts[RunStatus.RUNNING] == 0
    assert [r.key for r in store.records([RunStatus.DONE, RunStatus.FAILED])] == ["key1"]


def test_unknown_key_and_bad_status_are_refused(store):
    store.add_configs(configs(1), name)
    with pytest.raises(StoreError, match="no configuration with key 'nope'"):
        store.requeue("nope")
    with pytest.raises(ValueError):
        finish(store, "key1", RunStatus.RUNNING)
    assert store.get("nope") is None


def test_running_handles_are_what_adopt_needs(store):
    store.add_configs(configs(1, 2, 3), name)
    store.mark_running("key1", JobHandle("key1", "slurm", "123_4", "node7", {"array": True}), 1.0)
    store.mark_running("key3", JobHandle("key3", "local", "99"), 1.0)
    store.mark_running("key2", JobHandle("key2", "local", "98"), 1.0)
    finish(store, "key2")
    assert store.running_handles() == [
        JobHandle("key1", "slurm", "123_4", "node7", {"array": True}),
        JobHandle("key3", "local", "99", "", {}),
    ]


def test_meta_values_are_json(store):
    assert store.get_meta("stamp") is None
    assert store.get_meta("stamp", "none") == "none"
    store.set_meta("stamp", "20260101120000")
    store.set_meta("width", 3)
    store.set_meta("width", 4)
    assert store.get_meta("stamp") == "20260101120000" and store.get_meta("width") == 4


def test_database_settings(tmp_path):
    RunStore.open(tmp_path).close()
    db = sqlite3.connect(tmp_path / "hpsearch.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


def test_newer_schema_is_refused(tmp_path):
    RunStore.open(tmp_path).close()
    db = sqlite3.connect(tmp_path / "hpsearch.db")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer than this hpsearch"):
        RunStore.open(tmp_path)


def test_garbage_file_is_a_store_error_naming_it(tmp_path):
    (tmp_path / "hpsearch.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="hpsearch.db"):
        RunStore.open(tmp_path)


def test_missing_folder_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        RunStore.open(tmp_path / "nope")


# ---- kill -9 of a writer

WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from hpsearch.runs import JobHandle, RunStatus
    from hpsearch.store import RunStore

    store = RunStore.open(Path(sys.argv[1]))
    chunk = int(sys.argv[2])
    n = len(store.records())
    print("start", flush=True)
    while True:
        keys = [f"k{i}" for i in range(n, n + chunk)]
        store.add_configs(((k, {"i": k}) for k in keys), lambda i: f"sim_{i:07d}")
        n += chunk
        for key in keys[:100]:
            store.mark_running(key, JobHandle(key, "local", "1", "cpu"), 1.0)
            store.mark_final(key, RunStatus.DONE, reason=None, exit_code=0, signal=None,
                             summary={"finished": 1}, ended=2.0, backend_state=None)
            store.requeue(key) if key.endswith("7") else None
        print("round", n, flush=True)
""")


def kill_writer_after(tmp_path, chunk: int, lines: int) -> None:
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(chunk)], stdout=subprocess.PIPE,
                              text=True)
    try:
        for _ in range(lines):
            assert writer.stdout.readline(), "writer ended early"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()


def check_consistent(tmp_path, chunk: int) -> None:
    with RunStore.open(tmp_path) as store:
        assert store._query("PRAGMA integrity_check") == [("ok",)]
        records = store.records()
        counts = store.counts()
    assert sum(counts.values()) == len(records)
    assert len(records) % chunk == 0  # each add_configs is all or nothing
    assert [r.index for r in records] == list(range(len(records)))
    for record in records:
        if record.status == RunStatus.DONE:
            assert record.attempts == 1 and record.ended == 2.0 and record.summary == {"finished": 1}
        elif record.status == RunStatus.RUNNING:
            assert record.attempts == 1 and record.started == 1.0 and record.ended is None
        else:
            assert record.status == RunStatus.QUEUED and record.attempts in (0, 1)


@pytest.mark.parametrize("chunk, lines", [(500, 4), (500, 9), (25_000, 1), (25_000, 3)])
def test_store_survives_kill_9_of_a_writer(tmp_path, chunk, lines):
    kill_writer_after(tmp_path, chunk, lines)
    check_consistent(tmp_path, chunk)
    kill_writer_after(tmp_path, chunk, 2)  # a second writer resumes on the killed one's database
    check_consistent(tmp_path, chunk)


# ---- the search lock

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from hpsearch.store import SearchLock

    lock = SearchLock(Path(sys.argv[1]))
    lock.acquire()
    print("locked", flush=True)
    time.sleep(120)
""")


def start_holder(tmp_path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_second_lock_from_another_process_is_refused_with_holder(tmp_path):
    holder = start_holder(tmp_path)
    try:
        with pytest.raises(StoreError) as info:
            SearchLock(tmp_path).acquire()
        message = str(info.value)
        assert f"another hpsearch driver (pid {holder.pid} on {socket.gethostname()}) is running on {tmp_path}" \
            in message
        assert lock_holder(tmp_path) == f"pid {holder.pid} on {socket.gethostname()}"
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


def test_lock_is_released_when_its_holder_is_killed(tmp_path):
    holder = start_holder(tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    holder.stdout.close()
    assert lock_holder(tmp_path) is None
    with SearchLock(tmp_path) as lock:
        assert lock.held
        assert lock_holder(tmp_path) == f"pid {os.getpid()} on {socket.gethostname()}"


def test_lock_release_lets_the_next_driver_in(tmp_path):
    first = SearchLock(tmp_path)
    first.acquire()
    with pytest.raises(StoreError, match="another hpsearch driver"):
        SearchLock(tmp_path).acquire()  # its own descriptor: refused even within one process
    first.release()
    assert lock_holder(tmp_path) is None
    with SearchLock(tmp_path):
        pass
    assert (tmp_path / ".hpsearch.lock").exists()
