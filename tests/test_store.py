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
from hpsearch.store import (
    SCHEMA_VERSION,
    CorruptStoreError,
    RunRecord,
    RunStore,
    SearchLock,
    lock_holder,
    set_aside_damaged,
)


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


def test_newer_schema_is_not_taken_for_damage(tmp_path):
    RunStore.open(tmp_path).close()
    db = sqlite3.connect(tmp_path / "hpsearch.db")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(StoreError) as caught:
        RunStore.open(tmp_path, check=True)
    assert not isinstance(caught.value, CorruptStoreError)


def filled_store_bytes(folder) -> bytes:
    with RunStore.open(folder) as opened:
        opened.add_configs([(f"key{i}", {"v": i, "pad": "x" * 400}) for i in range(100)], name)
    return (folder / "hpsearch.db").read_bytes()


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "foreign"])
def test_damaged_files_are_corrupt_store_errors(tmp_path, damage):
    data = filled_store_bytes(tmp_path)
    path = tmp_path / "hpsearch.db"
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(len(data)))
    else:  # a SQLite database, but not ours
        path.unlink()
        db = sqlite3.connect(path)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("CREATE TABLE runs (x)")
        db.commit()
        db.close()
    with pytest.raises(CorruptStoreError, match="hpsearch.db"):
        RunStore.open(tmp_path, check=True)


def test_set_aside_moves_the_database_with_its_wal_and_shm(tmp_path):
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"hpsearch.db{suffix}").write_text(suffix or "main")
    first = set_aside_damaged(tmp_path, "20260101-120000")
    (tmp_path / "hpsearch.db").write_text("again")
    second = set_aside_damaged(tmp_path, "20260101-120000")
    assert first.name == "hpsearch.db.corrupt-20260101-120000"
    assert second.name == "hpsearch.db.corrupt-20260101-120000-2" and second.read_text() == "again"
    assert (tmp_path / "hpsearch.db.corrupt-20260101-120000-wal").read_text() == "-wal"
    assert (tmp_path / "hpsearch.db.corrupt-20260101-120000-shm").read_text() == "-shm"
    assert not (tmp_path / "hpsearch.db").exists()


def test_restore_stores_whole_records(store):
    record = RunRecord("k", 7, {"v": 1}, "sim_x", RunStatus.DONE, attempts=2, backend="slurm", job_id="12_3",
                       where="node1", extra={"array": "12"}, started=1.0, ended=2.0, exit_code=0, signal=None,
                       reason=None, summary={"acc": 0.5}, backend_state="COMPLETED")
    assert store.restore([record]) == 1
    assert store.get("k") == record
    with pytest.raises(StoreError):
        store.restore([record])  # keys are unique
    assert store.done_summaries() == [("sim_x", {"acc": 0.5})]


def test_read_only_opening_creates_nothing(tmp_path):
    with pytest.raises(StoreError):
        RunStore.open(tmp_path, readonly=True)
    assert list(tmp_path.iterdir()) == []
    filled_store_bytes(tmp_path)
    with RunStore.open(tmp_path, readonly=True) as opened:
        assert len(opened.records()) == 100
        with pytest.raises(StoreError):
            opened.set_meta("x", 1)


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
