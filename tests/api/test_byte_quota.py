"""Byte quotas: the bytes of models and their checkpoints are counted per client address and in all, on
every backend; a create, save or checkpoint past either bound is a 507 naming the setting and changes
nothing, the counters always equal what is stored, and a deleted class gives its SQLite disk back."""
from __future__ import annotations

import os
import uuid

import pytest

from app.store.base import checkpoint_bytes, dump_json, record_bytes

from .utils import SMALL, client_for, create, make_app

PER_CLIENT = {"detail": "this address stores at most {} bytes of models and checkpoints; delete a model first "
                        "(PLAYGROUND_MAX_BYTES_PER_CLIENT)"}
TOTAL = {"detail": "the server stores at most {} bytes of models and checkpoints; delete models or ask the "
                   "operator to raise PLAYGROUND_MAX_STORE_BYTES"}


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store_url(request, tmp_path):
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/q.sqlite3"
    return f"{request.getfixturevalue('redis_server')}?prefix=q{uuid.uuid4().hex[:10]}:"


def stored_bytes(store, owner: str | None = None) -> int:
    """What the counters must say, recounted from every record and checkpoint."""
    total = 0
    for row in store.list_status():
        rec = store.get(row.id)
        if owner is not None and rec.owner != owner:
            continue
        total += record_bytes(dump_json(rec.spec), dump_json(rec.status), rec.state, rec.history)
        for c in store.list_checkpoints(row.id):
            state, history, status = store.get_checkpoint(row.id, c.step)
            total += checkpoint_bytes(dump_json(status), state, history)
    return total


def snapshot(client) -> tuple:
    store = client.app.state.services.store
    rows = store.list_status()
    return ([(r.id, r.status["step"], r.status["version"]) for r in rows],
            [[c.step for c in store.list_checkpoints(r.id)] for r in rows], store.bytes_used())


def one_model_bytes(store_url: str) -> int:
    with client_for(make_app(store=store_url)) as client:
        mid = create(client, SMALL)["id"]
        store = client.app.state.services.store
        n = store.bytes_used()
        client.delete(f"/api/models/{mid}")
        assert store.bytes_used() == 0
        return n


@pytest.mark.parametrize("setting, detail", [("max_bytes_per_client", PER_CLIENT), ("max_store_bytes", TOTAL)])
def test_past_a_byte_quota_create_train_and_fork_are_507_and_change_nothing(store_url, setting, detail):
    one = one_model_bytes(store_url)
    # two new models fit, and a little growth, not the first checkpoint of a train call (a model's
    # bytes are about its state twice: the record's and the first checkpoint's)
    limit = 2 * one + one // 4
    with client_for(make_app(store=store_url, **{setting: limit})) as client:
        store = client.app.state.services.store
        a, b = create(client, SMALL)["id"], create(client, SMALL)["id"]
        owner = store.get(a).owner
        assert store.bytes_used(owner) == store.bytes_used() == stored_bytes(store) <= 2 * one + 16
        before = snapshot(client)
        expected = {"detail": detail["detail"].format(limit)}
        r = client.post("/api/models", json=SMALL)
        assert (r.status_code, r.json()) == (507, expected)
        r = client.post(f"/api/models/{a}/fork", json={"step": 0})
        assert (r.status_code, r.json()) == (507, expected)
        r = client.post(f"/api/models/{a}/train", json={"steps": 2000})  # refused at its first checkpoint
        assert (r.status_code, r.json()) == (507, expected)
        assert snapshot(client) == before
        assert client.get(f"/api/models/{a}").json()["step"] == 0  # the live model is the stored one again
        assert client.post(f"/api/models/{a}/train", json={"steps": 5}).status_code == 200  # small growth fits
        assert store.bytes_used() == stored_bytes(store) == stored_bytes(store, owner) <= limit
        assert client.delete(f"/api/models/{b}").status_code == 204
        assert store.bytes_used() == stored_bytes(store) < one + one // 4
        assert client.post("/api/models", json=SMALL).status_code == 201  # freed bytes are free again


def test_the_counters_follow_saves_checkpoints_resets_forks_and_deletes(store_url):
    with client_for(make_app(store=store_url, checkpoint_every=10, checkpoints_kept=5)) as client:
        store = client.app.state.services.store
        a = create(client, SMALL)["id"]
        client.post(f"/api/models/{a}/train", json={"steps": 120})  # pruned to the 5 newest checkpoints
        fork = client.post(f"/api/models/{a}/fork", json={"step": 100}).json()["id"]
        client.post(f"/api/models/{fork}/train", json={"steps": 30})
        client.post(f"/api/models/{a}/reset", json={})
        client.patch(f"/api/models/{fork}", json={"nickname": "a much longer nickname than before"})
        assert store.bytes_used() == stored_bytes(store) == store.bytes_used(store.get(a).owner)
        client.delete(f"/api/models/{a}")
        assert store.bytes_used() == stored_bytes(store) > 0
        client.delete(f"/api/models/{fork}")
        assert store.bytes_used() == 0


def test_a_deleted_class_gives_its_sqlite_disk_back(tmp_path):
    db = tmp_path / "class.sqlite3"
    big = {"layers": [{"units": 64, "activation": "tanh"}, {"units": 64, "activation": "tanh"},
                      {"units": 1, "activation": "sigmoid"}], "data": {"dataset": "circle", "samples": 20000}}

    def on_disk() -> int:
        return sum(os.path.getsize(p) for p in (db, f"{db}-wal") if os.path.exists(p))

    with client_for(make_app(store=f"sqlite:///{db}")) as client:
        empty = on_disk()
        ids = [create(client, big)["id"] for _ in range(40)]
        full = on_disk()
        assert full > empty + 40 * 600_000  # 40 students' models, each with 20,000 rows and a checkpoint
        for mid in ids:
            assert client.delete(f"/api/models/{mid}").status_code == 204
        assert on_disk() < empty + (full - empty) // 2
