"""Behaviour tests for the model store, run against every backend where it applies."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from app.store import MemoryStore, ModelRecord, SqliteStore, open_store

ROOT = Path(__file__).resolve().parents[2]


def rec(model_id: str = "m1", n: int = 0) -> ModelRecord:
    return ModelRecord(id=model_id, spec={"layers": [2, 4, 1], "act": "tanh"},
                       status={"step": 0, "n": n, "diverged": False, "diverged_at": None},
                       state=b"\x00state\xff", history=b"hist", token_hash="h")


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    s = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "db" / "models.sqlite3")
    yield s
    s.close()


# --- CRUD -----------------------------------------------------------------------------------

def test_create_get_put_delete_count(store):
    assert store.count() == 0 and store.get("m1") is None
    r = rec()
    before = time.time()
    store.create(r)
    assert before <= r.created_at == r.updated_at <= time.time()
    got = store.get("m1")
    assert got == r and isinstance(got.state, bytes)
    assert store.count() == 1

    time.sleep(0.002)
    got.status["step"] = 7
    got.state, got.history, got.token_hash = b"new", b"", "h2"
    store.put(got)
    again = store.get("m1")
    assert again.status["step"] == 7 and again.state == b"new" and again.history == b""
    assert again.token_hash == "h2"
    assert again.created_at == r.created_at and again.updated_at == got.updated_at > r.updated_at

    assert store.delete("m1") is True
    assert store.delete("m1") is False
    assert store.get("m1") is None and store.get_status("m1") is None and store.count() == 0


def test_create_keeps_given_created_at_and_put_keeps_it(store):
    r = rec()
    r.created_at = 123.0
    store.create(r)
    r.created_at = 999.0  # put must not rewrite creation time
    store.put(r)
    assert store.get("m1").created_at == 123.0


def test_duplicate_create_raises_and_keeps_original(store):
    store.create(rec(n=1))
    with pytest.raises(KeyError):
        store.create(rec(n=2))
    assert store.get("m1").status["n"] == 1 and store.count() == 1


def test_put_missing_raises(store):
    with pytest.raises(KeyError):
        store.put(rec("nope"))
    assert store.count() == 0


def test_returned_records_are_copies(store):
    r = rec()
    store.create(r)
    r.spec["act"] = "relu"  # mutating the caller's dict after create must not leak into the store
    got = store.get("m1")
    got.status["n"] = 99
    assert store.get("m1").spec["act"] == "tanh" and store.get("m1").status["n"] == 0


def test_get_status_reads_spec_and_status(store):
    r = rec()
    r.state = os.urandom(1 << 20)
    store.create(r)
    spec, status = store.get_status("m1")
    assert spec == r.spec and status == r.status
    assert store.get_status("missing") is None


def test_json_edge_values_round_trip(store):
    r = rec()
    r.status = {"train_loss": float("nan"), "test_loss": float("inf"), "diverged": True,
                "diverged_at": 12, "lr": np.float32(0.5), "w": np.arange(3)}
    store.create(r)
    _, status = store.get_status("m1")
    assert math.isnan(status["train_loss"]) and status["test_loss"] == math.inf
    assert status["lr"] == 0.5 and status["w"] == [0, 1, 2] and status["diverged_at"] == 12


def test_oldest_idle(store):
    assert store.oldest_idle() is None
    for mid in ("a", "b", "c"):
        store.create(rec(mid))
        time.sleep(0.002)
    assert store.oldest_idle() == "a"
    store.put(store.get("a"))  # touching a makes it the most recent
    assert store.oldest_idle() == "b"
    store.delete("b")
    assert store.oldest_idle() == "c"


def test_invalid_ids_rejected(store):
    for bad in ("../x", "a/b", "", "a.b", "é", "x" * 129):
        with pytest.raises(ValueError):
            store.create(rec(bad))
        with pytest.raises(ValueError):
            with store.lock(bad):
                pass
    assert store.get("../x") is None and store.delete("../x") is False


# --- class view, settings, checkpoints -----------------------------------------------------

def test_list_status_order_fields_and_copies(store):
    assert store.list_status() == []
    for mid, created in (("b", 2.0), ("a", 2.0), ("c", 1.0)):
        r = rec(mid)
        r.created_at, r.state = created, os.urandom(1 << 18)
        store.create(r)
    rows = store.list_status()
    assert [row[0] for row in rows] == ["c", "a", "b"]  # created_at, then id
    for mid, spec, status, updated in rows:
        assert spec == rec().spec and status == rec().status and updated == store.get(mid).updated_at
    rows[0][2]["n"] = 99  # returned dicts are copies
    time.sleep(0.002)
    c = store.get("c")
    c.status["step"] = 5
    store.put(c)
    store.delete("a")
    rows = store.list_status()
    assert [row[0] for row in rows] == ["c", "b"]  # put() does not reorder
    assert rows[0][2] == {**rec().status, "step": 5} and rows[0][3] == c.updated_at


def test_settings_round_trip_overwrite_and_copies(store):
    assert store.get_setting("class.frozen") is None
    store.put_setting("class.frozen", {"frozen": True})
    store.put_setting("class.preset", {})
    assert store.get_setting("class.frozen") == {"frozen": True} and store.get_setting("class.preset") == {}
    store.put_setting("class.frozen", {"frozen": False, "by": "t"})
    got = store.get_setting("class.frozen")
    assert got == {"frozen": False, "by": "t"}
    got["frozen"] = True
    assert store.get_setting("class.frozen")["frozen"] is False
    big = {"X": np.random.default_rng(0).random((50_000, 4)).tolist(), "y": list(range(50_000))}
    store.put_setting("class.hidden_test", big)  # a few MB of JSON
    assert store.get_setting("class.hidden_test") == big
    with pytest.raises(TypeError):
        store.put_setting("class.frozen", [1, 2])  # type: ignore[arg-type]
    assert store.get_setting("class.frozen") == {"frozen": False, "by": "t"}


def test_invalid_setting_keys_rejected(store):
    for good in ("a", "x" * 64, "A-b_c.9"):
        store.put_setting(good, {"k": good})
        assert store.get_setting(good) == {"k": good}
    for bad in ("", "x" * 65, "a b", "a/b", "a:b", "é", None, 5):
        with pytest.raises(ValueError):
            store.put_setting(bad, {})  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            store.get_setting(bad)  # type: ignore[arg-type]


def test_checkpoints_round_trip_order_and_overwrite(store):
    store.create(rec())
    assert store.list_checkpoints("m1") == []
    before = time.time()
    for step in (20, 5, 10):
        store.put_checkpoint("m1", step, b"s%d\x00" % step, b"h%d" % step, {"step": step, "loss": 0.5})
    rows = store.list_checkpoints("m1")
    assert [r[0] for r in rows] == [5, 10, 20] and all(isinstance(r[0], int) for r in rows)
    assert all(r[1] == {"step": r[0], "loss": 0.5} and before <= r[2] <= time.time() for r in rows)
    assert store.get_checkpoint("m1", 10) == (b"s10\x00", b"h10", {"step": 10, "loss": 0.5})
    store.put_checkpoint("m1", 10, b"new", b"", {"step": 10, "loss": float("nan")})
    state, history, status = store.get_checkpoint("m1", 10)
    assert (state, history) == (b"new", b"") and math.isnan(status["loss"]) and len(store.list_checkpoints("m1")) == 3
    store.put_checkpoint("m1", np.int64(7), b"np", b"", {})  # numpy steps are accepted
    assert store.get_checkpoint("m1", np.int64(7)) == (b"np", b"", {}) and store.get_checkpoint("m1", 7)[0] == b"np"
    status["loss"] = 1.0  # returned dicts are copies
    assert math.isnan(store.get_checkpoint("m1", 10)[2]["loss"])
    assert store.get_checkpoint("m1", 6) is None and store.get_checkpoint("other", 10) is None
    assert store.get("m1").state == b"\x00state\xff"  # the record itself is untouched


def test_checkpoint_argument_checks(store):
    store.create(rec())
    with pytest.raises(KeyError):
        store.put_checkpoint("missing", 1, b"", b"", {})
    with pytest.raises(ValueError):
        store.put_checkpoint("../x", 1, b"", b"", {})
    for bad in (-1, 1.5, True, "3", None, 2**53):
        with pytest.raises(ValueError):
            store.put_checkpoint("m1", bad, b"", b"", {})  # type: ignore[arg-type]
        assert store.get_checkpoint("m1", bad) is None  # type: ignore[arg-type]
    for bad in (-1, 1.5, None):
        with pytest.raises(ValueError):
            store.prune_checkpoints("m1", bad)  # type: ignore[arg-type]
    assert store.list_checkpoints("m1") == [] and store.list_checkpoints("missing") == []
    assert store.list_checkpoints("../x") == [] and store.get_checkpoint("../x", 1) is None


def test_delete_cascades_to_checkpoints(store):
    for mid in ("m1", "m2"):
        store.create(rec(mid))
        for step in (1, 2):
            store.put_checkpoint(mid, step, b"s", b"h", {"step": step})
    assert store.delete("m1")
    assert store.list_checkpoints("m1") == [] and store.get_checkpoint("m1", 1) is None
    assert [r[0] for r in store.list_checkpoints("m2")] == [1, 2]
    store.create(rec("m1"))  # a new model under the old id starts clean
    assert store.list_checkpoints("m1") == []


def test_prune_checkpoints_keeps_newest_steps(store):
    store.create(rec())
    store.create(rec("m2"))
    store.put_checkpoint("m2", 1, b"", b"", {})
    store.prune_checkpoints("m1", 3)  # nothing to prune is fine
    for step in (4, 9, 0, 7, 2, 8, 1, 6, 3, 5):
        store.put_checkpoint("m1", step, b"s%d" % step, b"", {"step": step})
    store.prune_checkpoints("m1", 3)
    assert [r[0] for r in store.list_checkpoints("m1")] == [7, 8, 9]
    assert store.get_checkpoint("m1", 6) is None and store.get_checkpoint("m1", 9)[0] == b"s9"
    store.prune_checkpoints("m1", 5)
    assert [r[0] for r in store.list_checkpoints("m1")] == [7, 8, 9]
    store.prune_checkpoints("m1", 0)
    assert store.list_checkpoints("m1") == [] and store.get_checkpoint("m1", 9) is None
    assert [r[0] for r in store.list_checkpoints("m2")] == [1]  # other models untouched


def test_put_checkpoints_writes_a_batch_then_prunes_by_count_and_bytes(store):
    store.create(rec())
    store.put_checkpoints("m1", [(s, b"x" * 10, b"", {"step": s}) for s in (1, 2, 3)], keep=10)
    store.put_checkpoints("m1", [(s, b"y" * 10, b"h", {"step": s}) for s in (3, 4, 5)], keep=4)
    assert [r[0] for r in store.list_checkpoints("m1")] == [2, 3, 4, 5]  # the newest 4; step 3 overwritten
    assert store.get_checkpoint("m1", 3) == (b"y" * 10, b"h", {"step": 3})
    store.put_checkpoints("m1", [(6, b"z" * 30, b"", {})], keep=10, max_bytes=45)  # 30 + 11: two fit, 3 do not
    assert store.checkpoint_sizes("m1") == [(5, 11), (6, 30)]
    store.put_checkpoints("m1", [(7, b"w" * 99, b"", {})], keep=10, max_bytes=45)  # too big alone: it stays
    assert store.checkpoint_sizes("m1") == [(7, 99)]


def test_put_checkpoints_for_a_missing_model_or_a_bad_step_writes_nothing(store):
    store.create(rec())
    with pytest.raises(KeyError):
        store.put_checkpoints("missing", [(1, b"s", b"", {})], keep=5)
    assert store.list_checkpoints("missing") == []
    with pytest.raises(ValueError):
        store.put_checkpoints("m1", [(1, b"s", b"", {}), (-1, b"s", b"", {})], keep=5)
    with pytest.raises(ValueError):
        store.put_checkpoints("m1", [(1, b"s", b"", {})], keep=-1)
    assert store.list_checkpoints("m1") == []  # a bad entry writes none of the batch


def test_checkpoint_put_racing_delete_leaves_no_orphans(store):
    for round_ in range(5):
        store.create(rec())
        started = threading.Event()

        def writer():
            step = 0
            while True:
                try:
                    store.put_checkpoint("m1", step, b"s", b"h", {})
                except KeyError:
                    return
                started.set()
                step += 1

        t = threading.Thread(target=writer)
        t.start()
        assert started.wait(5)
        assert store.delete("m1")
        t.join(5)
        assert store.list_checkpoints("m1") == [] and store.get_checkpoint("m1", 0) is None


# --- locking ---------------------------------------------------------------------------------

def test_lock_serializes_threads(store):
    store.create(rec())
    inside, peak = [0], [0]
    guard = threading.Lock()

    def work():
        for _ in range(20):
            with store.lock("m1"):
                with guard:
                    inside[0] += 1
                    peak[0] = max(peak[0], inside[0])
                r = store.get("m1")
                time.sleep(0.0005)  # widen the read-modify-write window so a broken lock would lose updates
                r.status["n"] += 1
                store.put(r)
                with guard:
                    inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get("m1").status["n"] == 160 and peak[0] == 1


def test_lock_timeout_and_release(store):
    with store.lock("m1"):
        with pytest.raises(TimeoutError):
            with store.lock("m1", timeout=0.1):
                pass
        with store.lock("other", timeout=0.1):  # locks are per model
            pass
    with store.lock("m1", timeout=0.1):  # released on exit, and the failed attempt left nothing behind
        pass


def test_lock_released_on_exception(store):
    with pytest.raises(RuntimeError):
        with store.lock("m1"):
            raise RuntimeError("boom")
    with store.lock("m1", timeout=0):
        pass


def test_lock_waiter_proceeds_after_release(store):
    got = threading.Event()

    def waiter():
        with store.lock("m1", timeout=5):
            got.set()

    with store.lock("m1"):
        t = threading.Thread(target=waiter)
        t.start()
        time.sleep(0.05)
        assert not got.is_set()
    t.join(5)
    assert got.is_set()


# --- sqlite specifics ------------------------------------------------------------------------

def test_sqlite_persists_across_reopen_and_uses_wal(tmp_path):
    path = tmp_path / "a" / "b" / "m.sqlite3"
    s = SqliteStore(path)
    s.create(rec("x"))
    s.create(rec("y"))
    s.close()
    with pytest.raises(RuntimeError):
        s.get("x")
    s.close()  # idempotent

    s2 = SqliteStore(path)
    assert s2.count() == 2 and s2.get("x") == SqliteStore(path).get("x")
    assert s2.get("x").state == b"\x00state\xff"
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert (tmp_path / "a" / "b" / "m.sqlite3.locks").is_dir()
    s2.close()


def test_sqlite_lock_file_location_and_delete(tmp_path):
    s = SqliteStore(tmp_path / "m.sqlite3")
    s.create(rec("abc"))
    lock_file = tmp_path / "m.sqlite3.locks" / "abc.lock"
    with s.lock("abc"):
        assert lock_file.exists()
    assert lock_file.exists()  # unlock only closes
    assert s.delete("abc") and not lock_file.exists()
    with s.lock("abc", timeout=0.1):
        pass
    s.close()


def test_sqlite_lock_stays_exclusive_across_delete(tmp_path):
    s = SqliteStore(tmp_path / "m.sqlite3")
    s.create(rec())
    holding, release = threading.Event(), threading.Event()

    def waiter():
        with s.lock("m1", timeout=5):
            holding.set()
            release.wait(5)

    with s.lock("m1"):
        t = threading.Thread(target=waiter)
        t.start()
        time.sleep(0.05)  # waiter is now polling the lock file
        s.delete("m1")  # unlinks it under the waiter
    assert holding.wait(5)
    with pytest.raises(TimeoutError):  # the waiter must hold the file that now exists, not the orphan
        with s.lock("m1", timeout=0.1):
            pass
    release.set()
    t.join(5)
    s.close()


def test_sqlite_settings_and_checkpoints_shared_between_instances(tmp_path):
    a, b = SqliteStore(tmp_path / "m.sqlite3"), SqliteStore(tmp_path / "m.sqlite3")
    a.put_setting("class.frozen", {"frozen": True})
    assert b.get_setting("class.frozen") == {"frozen": True}
    b.put_setting("class.frozen", {"frozen": False})
    assert a.get_setting("class.frozen") == {"frozen": False}
    a.create(rec())
    a.put_checkpoint("m1", 3, b"s", b"h", {"step": 3})
    assert b.get_checkpoint("m1", 3) == (b"s", b"h", {"step": 3}) and b.list_status()[0][0] == "m1"
    b.delete("m1")
    assert a.list_checkpoints("m1") == []
    a.close()
    b.close()
    c = SqliteStore(tmp_path / "m.sqlite3")  # and it survives a reopen
    assert c.get_setting("class.frozen") == {"frozen": False}
    c.close()


def test_sqlite_list_views_never_read_blobs(tmp_path):
    s = SqliteStore(tmp_path / "m.sqlite3")
    s.create(rec())
    s.put_checkpoint("m1", 1, b"s", b"h", {})
    read: set[tuple[str, str]] = set()

    def authorizer(action, table, column, *_):
        if action == sqlite3.SQLITE_READ:
            read.add((table, column))
        return sqlite3.SQLITE_OK

    s._conn().set_authorizer(authorizer)
    assert s.list_status()[0][0] == "m1" and s.list_checkpoints("m1")[0][0] == 1
    assert read and not {c for _, c in read} & {"state", "history"}
    s.close()


def test_sqlite_upgrades_a_database_without_the_new_tables(tmp_path):
    db = tmp_path / "old.sqlite3"
    old = sqlite3.connect(db)
    old.executescript("""CREATE TABLE models (id TEXT PRIMARY KEY, spec TEXT NOT NULL, status TEXT NOT NULL,
        token_hash TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL, updated_at REAL NOT NULL,
        state BLOB NOT NULL, history BLOB NOT NULL);
        INSERT INTO models VALUES ('m1', '{}', '{"step": 1}', '', 1.0, 2.0, x'00', x'');""")
    old.close()
    s = SqliteStore(db)
    assert s.list_status() == [("m1", {}, {"step": 1}, 2.0)] and s.get_setting("class.preset") is None
    s.put_checkpoint("m1", 1, b"s", b"h", {})
    s.put_setting("class.preset", {"link": "x"})
    assert s.list_checkpoints("m1")[0][0] == 1 and s.get_setting("class.preset") == {"link": "x"}
    s.close()


def _run(code: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


INCREMENT = """
import os, sys, time
from app.store import open_store
s = open_store(sys.argv[1])
s.count()  # connect before the barrier
print("ready", flush=True)
while not os.path.exists(sys.argv[2]):  # start barrier so both processes really overlap
    time.sleep(0.001)
for _ in range(20):
    with s.lock("m1"):
        r = s.get("m1")
        time.sleep(0.002)
        r.status["n"] += 1
        r.history += b"%d," % os.getpid()
        s.put(r)
s.close()
"""


def assert_processes_serialize(store, url: str, tmp_path) -> None:
    """Two processes x 20 locked read-modify-writes on one record end at exactly 40, both taking part."""
    r = rec()
    r.history = b""
    store.create(r)
    go = str(tmp_path / "go")
    procs = [_run(INCREMENT, url, go) for _ in range(2)]
    for p in procs:
        line = p.stdout.readline().strip()
        assert line == "ready", p.stderr.read()
    Path(go).touch()
    for p in procs:
        _, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
    final = store.get("m1")
    assert final.status["n"] == 40
    assert set(final.history.split(b",")[:-1]) == {b"%d" % p.pid for p in procs}


def test_sqlite_lock_across_processes(tmp_path):
    db = tmp_path / "m.sqlite3"
    with SqliteStore(str(db)) as s:
        assert_processes_serialize(s, f"sqlite:///{db}", tmp_path)


HOLD = """
import sys, time
from app.store import SqliteStore
s = SqliteStore(sys.argv[1])
with s.lock("m1"):
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_sqlite_lock_timeout_across_processes(tmp_path):
    db = str(tmp_path / "m.sqlite3")
    s = SqliteStore(db)
    p = subprocess.Popen([sys.executable, "-c", HOLD, db], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        with pytest.raises(TimeoutError):
            with s.lock("m1", timeout=0.1):
                pass
    finally:
        p.communicate("\n", timeout=10)
    with s.lock("m1", timeout=1):
        pass
    s.close()


KILLED = """
import os, signal, sys
from app.store import SqliteStore, ModelRecord
s = SqliteStore(sys.argv[1])
r = ModelRecord("k", {"a": 1}, {"step": 0}, b"s0", b"h0")
s.create(r)
r.status["step"], r.state = 5, b"s" * 100000
s.put(r)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_sqlite_put_survives_kill_9(tmp_path):
    db = str(tmp_path / "m.sqlite3")
    p = _run(KILLED, db)
    p.communicate(timeout=30)
    assert p.returncode == -signal.SIGKILL
    s = SqliteStore(db)
    r = s.get("k")
    assert r.status == {"step": 5} and r.state == b"s" * 100000
    s.close()


# --- open_store ------------------------------------------------------------------------------

def test_open_store_memory():
    assert isinstance(open_store("memory://"), MemoryStore)
    assert isinstance(open_store(" MEMORY:// "), MemoryStore)


def test_open_store_sqlite_relative_and_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rel = open_store("sqlite:///data/rel.sqlite3")
    assert isinstance(rel, SqliteStore) and rel.path == str(tmp_path / "data" / "rel.sqlite3")
    rel.create(rec())
    rel.close()
    assert (tmp_path / "data" / "rel.sqlite3").is_file()

    absolute = tmp_path / "abs" / "x.sqlite3"
    url = "sqlite:///" + str(absolute)  # str(absolute) starts with "/", giving four slashes
    assert url.startswith("sqlite:////")
    s = open_store(url)
    assert s.path == str(absolute) and absolute.is_file()
    s.close()


@pytest.mark.parametrize("url", ["", "memory", "memory://x", "sqlite://", "sqlite:///", "sqlite://host/x.db",
                                 "sqlite:///dir/", "sqlite:///:memory:", "foo://localhost:6379/0",
                                 "file:///tmp/x", "/tmp/x.sqlite3"])
def test_open_store_rejects(url):
    with pytest.raises(ValueError) as exc:
        open_store(url)
    msg = str(exc.value)
    assert repr(url.strip()) in msg or repr(url) in msg
    assert "memory://" in msg and "sqlite:///" in msg


def test_open_store_error_masks_password_and_non_string():
    with pytest.raises(ValueError) as exc:
        open_store("redis://user:s3cret@host:notaport/0")
    assert "s3cret" not in str(exc.value) and "redis://user:***@host:notaport/0" in str(exc.value)
    with pytest.raises(ValueError):
        open_store(None)  # type: ignore[arg-type]
