"""Format-2 store behaviour on every backend: compare-and-swap saves, leases, last use, owners,
datasets and checkpoint sizes."""
from __future__ import annotations

import threading
import time
import uuid

import pytest

from app.store import MemoryStore, ModelRecord, SqliteStore, open_store
from app.store.base import FORMAT_VERSION, StaleVersion


def rec(model_id: str = "m1", version: int = 1, owner: str = "") -> ModelRecord:
    return ModelRecord(id=model_id, spec={"s": 1}, status={"step": 0, "version": version},
                       state=b"state", history=b"hist", token_hash="h", owner=owner)


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def store(request, tmp_path):
    if request.param == "memory":
        s = MemoryStore()
    elif request.param == "sqlite":
        s = SqliteStore(tmp_path / "db.sqlite3")
    else:
        url = request.getfixturevalue("redis_server")
        s = open_store(f"{url}?prefix=v{uuid.uuid4().hex[:10]}:")
    yield s
    s.close()


def test_put_is_a_compare_and_swap_on_the_version(store):
    store.create(rec(version=1))
    store.put(rec(version=2), expected_version=1)
    with pytest.raises(StaleVersion):
        store.put(rec(version=2), expected_version=1)  # someone else already saved version 2
    assert store.get("m1").version == 2
    with pytest.raises(KeyError):
        store.put(rec("gone", version=2), expected_version=1)


def test_only_one_of_many_concurrent_saves_of_one_version_wins(store):
    store.create(rec(version=1))
    wins, stale = [], []
    barrier = threading.Barrier(8)

    def save(i: int) -> None:
        barrier.wait()
        r = rec(version=2)
        r.status["writer"] = i
        try:
            store.put(r, expected_version=1)
            wins.append(i)
        except StaleVersion:
            stale.append(i)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(stale) == 7
    assert store.get("m1").status["writer"] == wins[0]


def test_leases_exclude_other_owners_until_released_or_expired(store):
    store.create(rec())
    assert store.lease_holder("m1") is None
    assert store.acquire_lease("m1", "A", ttl=30)
    assert store.acquire_lease("m1", "A", ttl=30)  # renew
    assert not store.acquire_lease("m1", "B", ttl=30)
    assert store.lease_holder("m1") == "A"
    store.release_lease("m1", "B")  # not B's: nothing happens
    assert store.lease_holder("m1") == "A"
    store.release_lease("m1", "A")
    assert store.lease_holder("m1") is None and store.acquire_lease("m1", "B", ttl=0.05)
    time.sleep(0.2)
    assert store.lease_holder("m1") is None and store.acquire_lease("m1", "A", ttl=30)  # B's lapsed


def test_uses_and_owners(store):
    store.create(rec("a", owner="x"))
    store.create(rec("b", owner="x"))
    store.create(rec("c", owner="y"))
    assert (store.count_owned("x"), store.count_owned("y"), store.count_owned("z")) == (2, 1, 0)
    store.touch("a", when=100.0)
    store.touch("b", when=50.0)
    store.touch("gone", when=1.0)  # nothing to touch
    assert store.least_used(before=200.0) == ["b", "a"]
    assert store.least_used(before=75.0) == ["b"]
    assert store.least_used(before=200.0, limit=1) == ["b"]
    store.delete("a")
    assert store.count_owned("x") == 1 and store.least_used(before=200.0) == ["b"]


def test_datasets_and_checkpoint_sizes(store):
    store.put_dataset("d1", {"rows": 1}, b"\x00" * 16)
    time.sleep(0.01)
    store.put_dataset("d2", {"rows": 2}, b"\x01" * 32)
    assert store.get_dataset("d1") == ({"rows": 1}, b"\x00" * 16)
    assert store.get_dataset("nope") is None and store.get_dataset("../x") is None
    assert [(i, n) for i, _, n in store.list_datasets()] == [("d1", 16), ("d2", 32)]
    assert store.delete_dataset("d1") and not store.delete_dataset("d1")
    store.create(rec())
    store.put_checkpoint("m1", 5, b"12345", b"", {})
    store.put_checkpoint("m1", 9, b"1", b"22", {})
    assert store.checkpoint_sizes("m1") == [(5, 5), (9, 3)]


def test_the_format_version_is_recorded(store):
    store.ping()
    assert store.format_version() == FORMAT_VERSION
