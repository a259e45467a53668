"""RedisStore against a real redis-server started for this session on a free loopback port.

The backend-generic tests of test_store.py run here too, fed by this module's `store` fixture.
Without redis-server or the redis package these tests skip, or fail when CI=true.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from app.store import open_store
from tests.support import unavailable

# Backend-generic behaviour tests; collected again in this module with the redis `store` fixture.
from tests.store.test_store import (  # noqa: F401
    assert_processes_serialize,
    rec,
    test_checkpoint_argument_checks,
    test_checkpoint_put_racing_delete_leaves_no_orphans,
    test_checkpoints_round_trip_order_and_overwrite,
    test_create_get_put_delete_count,
    test_create_keeps_given_created_at_and_put_keeps_it,
    test_delete_cascades_to_checkpoints,
    test_duplicate_create_raises_and_keeps_original,
    test_get_status_reads_spec_and_status,
    test_invalid_ids_rejected,
    test_invalid_setting_keys_rejected,
    test_list_status_order_fields_and_copies,
    test_json_edge_values_round_trip,
    test_lock_released_on_exception,
    test_lock_serializes_threads,
    test_lock_timeout_and_release,
    test_lock_waiter_proceeds_after_release,
    test_oldest_idle,
    test_prune_checkpoints_keeps_newest_steps,
    test_put_checkpoints_writes_a_batch_then_prunes_by_count_and_bytes,
    test_put_checkpoints_for_a_missing_model_or_a_bad_step_writes_nothing,
    test_put_missing_raises,
    test_returned_records_are_copies,
    test_settings_round_trip_overwrite_and_copies,
)

try:
    import redis
    from app.store.redis import RedisStore
except ImportError as exc:  # pragma: no cover - depends on the environment
    redis = RedisStore = None  # type: ignore[assignment]
    _IMPORT_ERROR = str(exc)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def redis_lib():
    if redis is None:
        unavailable(f"the redis client package is not installed ({_IMPORT_ERROR}); pip install redis")
    return redis


@pytest.fixture
def prefix():
    """A fresh key prefix per test, so tests never see each other's keys on the shared server."""
    return f"t{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def url(redis_server, prefix):
    return f"{redis_server}?prefix={prefix}"


@pytest.fixture
def store(url):
    s = open_store(url)
    yield s
    s.close()


@pytest.fixture
def raw(redis_server):
    r = redis.Redis.from_url(redis_server)
    yield r
    r.close()


# --- layout and URL handling -----------------------------------------------------------------

def test_open_store_returns_redis_store_with_prefix(redis_server, prefix):
    s = open_store(f" {redis_server}?prefix={prefix} ")
    assert isinstance(s, RedisStore) and s.prefix == prefix
    s.close()
    d = open_store(redis_server)
    assert d.prefix == "playground:"
    d.close()


def test_open_store_rediss_and_bad_urls(redis_lib):
    s = open_store("rediss://user:s3cret@cache.example:6380/2?prefix=app:&socket_timeout=3")
    kw = s._r.connection_pool.connection_kwargs
    assert s._r.connection_pool.connection_class is redis.connection.SSLConnection
    assert (kw["host"], kw["port"], kw["db"], kw["socket_timeout"], s.prefix) == ("cache.example", 6380, 2, 3.0, "app:")
    assert "s3cret" not in repr(s) and "user:***@" in s.url
    s.close()  # never connected: lazy
    for bad in ("redis://h/0?prefix=a&prefix=b", "redis://u:s3cret@h/0?prefix=has%20space",
                "redis://h/0?decode_responses=true", "redis://:s3cret@h:notaport/0"):
        with pytest.raises(ValueError) as exc:
            open_store(bad)
        msg = str(exc.value)
        assert bad.split("?")[0].replace("s3cret", "***") in msg and "s3cret" not in msg


def test_hash_and_zset_layout(store, raw, prefix):
    r = rec("m1")
    store.create(r)
    h = raw.hgetall(f"{prefix}model:m1")
    assert set(h) == {b"spec", b"status", b"token_hash", b"created_at", b"updated_at", b"state", b"history",
                      b"version", b"owner", b"nbytes", b"ckpt_bytes"}
    assert h[b"state"] == b"\x00state\xff" and float(h[b"updated_at"]) == r.updated_at
    assert raw.zrange(f"{prefix}models", 0, -1, withscores=True) == [(b"m1", r.updated_at)]
    assert raw.zrange(f"{prefix}used", 0, -1, withscores=True) == [(b"m1", r.updated_at)]
    assert raw.get(f"{prefix}format") == b"3"
    store.delete("m1")
    assert raw.exists(f"{prefix}model:m1", f"{prefix}models", f"{prefix}used") == 0


def test_oldest_idle_ties_broken_by_id(store, raw, prefix):
    for mid in ("c", "a", "b"):
        store.create(rec(mid))
    raw.zadd(f"{prefix}models", {"a": 5.0, "b": 5.0, "c": 5.0})
    assert store.oldest_idle() == "a"


def test_prefixes_isolate_stores(redis_server, store):
    store.create(rec("m1"))
    other = open_store(f"{redis_server}?prefix=other{uuid.uuid4().hex[:8]}:")
    assert other.count() == 0 and other.get("m1") is None
    other.create(rec("m1", n=5))
    assert store.get("m1").status["n"] == 0
    other.close()


def test_persists_across_instances_and_close(url):
    a = open_store(url)
    b = open_store(url)
    r = rec("x")
    a.create(r)
    a.create(rec("y"))
    assert b.count() == 2 and b.get("x") == r
    a.close()
    a.close()  # idempotent
    with pytest.raises(RuntimeError):
        a.get("x")
    with pytest.raises(RuntimeError):
        a.lock("x")
    assert b.get("x").state == b"\x00state\xff"
    with pytest.raises(KeyError):
        b.create(rec("x"))
    b.close()
    c = open_store(url)
    assert c.count() == 2
    c.close()


def test_concurrent_create_exactly_one_wins(store):
    wins, dupes = [], []
    barrier = threading.Barrier(8)

    def attempt(i):
        barrier.wait()
        try:
            store.create(rec("race", n=i))
            wins.append(i)
        except KeyError:
            dupes.append(i)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(dupes) == 7
    assert store.get("race").status["n"] == wins[0] and store.count() == 1


def test_put_after_delete_does_not_resurrect(store, raw, prefix):
    r = rec()
    store.create(r)
    store.delete("m1")
    with pytest.raises(KeyError):
        store.put(r)
    assert raw.exists(f"{prefix}model:m1") == 0 and store.count() == 0


def test_lock_validates_id_before_with_block(store):
    with pytest.raises(ValueError):
        store.lock("../x")  # raised by the call itself, not only on entering


def test_settings_shared_between_instances_and_layout(url, raw, prefix):
    a, b = open_store(url), open_store(url)
    a.put_setting("class.frozen", {"frozen": True})
    assert b.get_setting("class.frozen") == {"frozen": True}
    b.put_setting("class.frozen", {"frozen": False})
    assert a.get_setting("class.frozen") == {"frozen": False}
    assert raw.get(f"{prefix}setting:class.frozen") == b'{"frozen":false}'
    a.close()
    b.close()


def test_checkpoint_layout_and_delete_removes_every_key(store, raw, prefix):
    store.create(rec())
    for step in (3, 1, 2):
        store.put_checkpoint("m1", step, b"\x00s", b"h", {"step": step})
    assert raw.zrange(f"{prefix}checkpoints:m1", 0, -1, withscores=True) == [(b"1", 1.0), (b"2", 2.0), (b"3", 3.0)]
    h = raw.hgetall(f"{prefix}checkpoint:m1:2")
    assert set(h) == {b"status", b"created_at", b"state", b"history", b"nbytes"} and h[b"state"] == b"\x00s"
    store.prune_checkpoints("m1", 1)
    assert raw.exists(f"{prefix}checkpoint:m1:1", f"{prefix}checkpoint:m1:2") == 0
    store.put_setting("class.preset", {})
    store.delete("m1")
    assert sorted(raw.keys(f"{prefix}*")) == [f"{prefix}format".encode(), f"{prefix}setting:class.preset".encode()]


def test_list_views_do_not_transfer_blobs(store, raw):
    for mid in ("a", "b", "c"):
        r = rec(mid)
        r.state = os.urandom(1 << 20)
        store.create(r)
        store.put_checkpoint(mid, 1, r.state, r.state, {})
    sent = lambda: raw.info("stats")["total_net_output_bytes"]  # noqa: E731
    before = sent()
    assert [row[0] for row in store.list_status()] == ["a", "b", "c"]
    assert [row[0] for row in store.list_checkpoints("a")] == [1]
    assert sent() - before < 64_000  # the 1 MB blobs never left the server
    before = sent()
    store.get_checkpoint("a", 1)
    assert sent() - before > 2_000_000  # (and the measurement does see blobs when they are sent)


# --- locking across processes ----------------------------------------------------------------

def _run(code: str, *args: str, stdin: int | None = None) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, env=env, stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_lock_across_processes(store, url, tmp_path):
    assert_processes_serialize(store, url, tmp_path)


HOLD_THEN_DIE = """
import sys
from app.store.redis import RedisStore
s = RedisStore(sys.argv[1], lock_lease=float(sys.argv[2]))
with s.lock("m1"):
    print("held", flush=True)
    sys.stdin.readline()  # hold until killed
"""


def test_lock_of_killed_holder_expires_after_lease(store, url):
    lease = 0.6
    p = _run(HOLD_THEN_DIE, url, str(lease), stdin=subprocess.PIPE)
    try:
        assert p.stdout.readline().strip() == "held", p.stderr.read()
        time.sleep(lease)  # the holder is alive: its renewer keeps the lock past the first lease
        with pytest.raises(TimeoutError):
            with store.lock("m1", timeout=0.1):
                pass
        os.kill(p.pid, signal.SIGKILL)
    finally:
        p.kill()
        p.communicate(timeout=10)
    assert p.returncode == -signal.SIGKILL
    with store.lock("m1", timeout=5):  # freed by expiry, not forever held (no timing asserted)
        pass


def test_lease_is_renewed_while_held(url):
    s = RedisStore(url, lock_lease=0.3)
    other = RedisStore(url, lock_lease=0.3)
    with s.lock("m1"):
        with pytest.raises(TimeoutError):  # well past the 0.3 s lease, still exclusive
            with other.lock("m1", timeout=0.9):
                pass
    with other.lock("m1", timeout=0.1):  # and really released on exit
        pass
    s.close()
    other.close()


def test_lock_lost_to_expiry_is_not_fatal_on_exit(store, raw, prefix, caplog):
    with store.lock("m1"):
        raw.delete(f"{prefix}lock:m1")  # simulate the lease running out while the server was away
        with store.lock("m1", timeout=0.1):  # a second holder gets it ...
            pass
    with store.lock("m1", timeout=0.1):  # ... and the first one's exit did not break anything
        pass
    assert "lost before release" in caplog.text
